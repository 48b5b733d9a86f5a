"""parse_mbox against the personas' ground truth, and against broken and unusual mail."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from life_data import SEEDS, Personas

from smallhold.apps.life.errors import SourceError
from smallhold.apps.life.models import Message, Problem
from smallhold.apps.life.sources.mail import parse_mbox


def parsed(path: Path) -> tuple[list[Message], list[Problem]]:
    records = list(parse_mbox(path))
    return ([r for r in records if isinstance(r, Message)],
            [r for r in records if isinstance(r, Problem)])


def mail(n: int, *headers: str, body: str = "Hello.", content: str = "") -> bytes:
    """One mbox entry (separator, headers, blank line, body), as bytes."""
    head = [f"From sender{n}@example.com Mon Mar  3 10:0{n % 10}:00 2025",
            f"From: Sender {n} <sender{n}@example.com>", "To: me@example.com",
            f"Subject: Message {n}", f"Date: Mon, 03 Mar 2025 10:0{n % 10}:00 +0100",
            f"Message-ID: <m{n}@example.com>", *headers]
    if content:
        head.append(content)
    return ("\n".join(head) + "\n\n" + body + "\n\n").encode("utf-8")


def write(tmp_path: Path, *entries: bytes, name: str = "mail.mbox") -> Path:
    path = tmp_path / name
    path.write_bytes(b"".join(entries))
    return path


# ---------------------------------------------------------------- the personas' ground truth


@pytest.mark.parametrize("seed", SEEDS)
def test_messages_and_threads(life_personas: Personas, seed: int) -> None:
    persona = life_personas.get(seed)
    messages, problems = parsed(persona.mbox)
    assert problems == []
    assert len(messages) == persona.truth["counts"]["messages"]
    assert [m.source.location for m in messages] == [
        f"message {n}" for n in range(1, len(messages) + 1)]
    by_id = {m.message_id: m for m in messages}
    assert len(by_id) == len(messages)
    # a reply sits in the thread of what it answers, and only replies leave their own thread
    for message in messages:
        if message.in_reply_to in by_id:
            assert message.thread == by_id[message.in_reply_to].thread
        assert (message.thread == message.message_id) == (not message.in_reply_to)
        assert datetime.fromisoformat(message.date).tzinfo is not None
        assert message.sender.email and message.to and message.body
    assert len({m.thread for m in messages}) == sum(1 for m in messages if not m.in_reply_to)


@pytest.mark.parametrize("seed", SEEDS)
def test_the_family_contacts_unanswered_messages(life_personas: Personas, seed: int) -> None:
    persona = life_personas.get(seed)
    truth = persona.truth
    contact = truth["persona"]["family_contact"]["email"]
    own = set(truth["persona"]["emails"])
    messages, _ = parsed(persona.mbox)

    def when(message: Message) -> datetime:
        return datetime.fromisoformat(message.date)

    unanswered = [m for m in messages if m.sender.email == contact and not any(
        r.sender.email in own and r.in_reply_to == m.message_id and when(r) > when(m)
        for r in messages)]
    expected = truth["patterns"]["neglected_relationship"]["evidence"]["unanswered"]
    assert [(m.message_id, m.subject) for m in unanswered] == [
        (e["message_id"], e["subject"]) for e in expected]
    assert [when(m).date().isoformat() for m in unanswered] == [e["date"] for e in expected]
    last = truth["patterns"]["neglected_relationship"]["last_reply"]
    [reply] = [m for m in messages if m.message_id == last["message_id"]]
    assert reply.sender.email in own and reply.date.startswith(last["date"])


# ---------------------------------------------------------------- hand-written inputs


def test_broken_charsets_are_replaced_not_raised(tmp_path: Path) -> None:
    latin1_as_utf8 = (b"From x@example.com Mon Mar  3 10:00:00 2025\nFrom: x@example.com\n"
                      b"Date: Mon, 03 Mar 2025 10:00:00 +0100\nMessage-ID: <a@x>\n"
                      b"Content-Type: text/plain; charset=utf-8\n\n"
                      + "Grüße aus Köln\n\n".encode("latin-1"))
    unknown = mail(2, content="Content-Type: text/plain; charset=x-no-such-charset",
                   body="caf\u00e9").replace(b"caf\xc3\xa9", b"caf\xe9")
    declared_latin1 = mail(3, content='Content-Type: text/plain; charset="iso-8859-1"',
                           body="x").replace(b"\n\nx\n", b"\n\n\x93quoted\x94 \xe9t\xe9\n")
    messages, problems = parsed(write(tmp_path, latin1_as_utf8, unknown, declared_latin1))
    assert problems == []
    assert messages[0].body == "Gr\ufffd\ufffde aus K\ufffdln\n"
    assert messages[1].body == "caf\ufffd\n"
    assert messages[2].body == "\u201cquoted\u201d \u00e9t\u00e9\n"  # what ISO-8859-1 means in mail


def test_a_cut_short_mbox_keeps_its_complete_messages(tmp_path: Path) -> None:
    whole = write(tmp_path, mail(1), mail(2), mail(3, body="A long body. " * 20))
    data = whole.read_bytes()
    for cut in (len(data) - 40, data.index(b"Subject: Message 3")):
        path = tmp_path / f"cut{cut}.mbox"
        path.write_bytes(data[:cut])
        messages, problems = parsed(path)
        assert [m.message_id for m in messages] == ["<m1@example.com>", "<m2@example.com>"]
        assert [(p.location, "ends inside" in p.reason) for p in problems] == [
            ("message 3", True)]
    multipart = mail(4, "MIME-Version: 1.0", content='Content-Type: multipart/mixed; boundary="b"',
                     body="--b\nContent-Type: text/plain\n\nPart one.\n--b\nContent-Type: text/pl")
    messages, problems = parsed(write(tmp_path, mail(1), multipart, name="parts.mbox"))
    assert len(messages) == 1 and problems[0].location == "message 2"


def test_headers_ids_threads_and_names(tmp_path: Path) -> None:
    reply = mail(2, "In-Reply-To: <m1@example.com>",
                 "References: <root@example.com>\n <m1@example.com>",
                 "Cc: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <JM@Example.DE>, Ann <ann@x.org>")
    reply = reply.replace(b"From: Sender 2 <sender2@example.com>",
                          b'From: "=?iso-8859-1?q?Ren=E9?= Roe" <Rene@Example.com>')
    no_id = mail(3).replace(b"Message-ID: <m3@example.com>\n", b"")
    messages, problems = parsed(write(tmp_path, mail(1), reply, no_id))
    assert problems == []
    first, second, third = messages
    assert first.thread == first.message_id == "<m1@example.com>"
    assert second.in_reply_to == "<m1@example.com>"
    assert second.references == ["<root@example.com>", "<m1@example.com>"]
    assert second.thread == "<root@example.com>"
    assert (second.sender.email, second.sender.name) == ("rene@example.com", "René Roe")
    assert [(p.email, p.name) for p in second.cc] == [("jm@example.de", "Jürgen Müller"),
                                                      ("ann@x.org", "Ann")]
    assert second.date == "2025-03-03T10:02:00+01:00"
    assert third.message_id.endswith("@smallhold.invalid>") and third.thread == third.message_id
    again, _ = parsed(write(tmp_path, no_id, name="again.mbox"))
    assert again[0].message_id == third.message_id  # synthesised ids are stable


def test_an_undated_message_is_a_problem_and_the_rest_continue(tmp_path: Path) -> None:
    bad = mail(2).replace(b"Date: Mon, 03 Mar 2025 10:02:00 +0100", b"Date: sometime soon")
    none = mail(3).replace(b"Date: Mon, 03 Mar 2025 10:03:00 +0100\n", b"")
    unknown_offset = mail(4).replace(b"+0100", b"-0000")
    messages, problems = parsed(write(tmp_path, mail(1), bad, none, unknown_offset))
    assert [m.message_id for m in messages] == ["<m1@example.com>", "<m4@example.com>"]
    assert messages[1].date == "2025-03-03T10:04:00+00:00"
    assert [p.location for p in problems] == ["message 2", "message 3"]
    assert "Date" in problems[0].reason and problems[0].file == "mail.mbox"


def test_bodies_from_mime_parts(tmp_path: Path) -> None:
    mime = "MIME-Version: 1.0"
    alternative = mail(1, mime, content='Content-Type: multipart/alternative; boundary="b"', body=(
        "--b\nContent-Type: text/html; charset=utf-8\n\n<p>HTML</p>\n"
        "--b\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable"
        "\n\nPlain =C3=A9t=C3=A9 text\n--b--"))
    html_only = mail(2, mime, content="Content-Type: text/html; charset=utf-8", body=(
        "<html><head><style>p {color: red}</style></head><body><h1>Title</h1>"
        "<p>One &amp; two</p><script>alert(1)</script><p>Three<br>four</p></body></html>"))
    attachment_first = mail(3, mime, content='Content-Type: multipart/mixed; boundary="c"', body=(
        "--c\nContent-Type: text/plain\nContent-Disposition: attachment; filename=a.txt\n\n"
        "attached\n--c\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: "
        "base64\n\nSGVsbG8gZnJvbSBiYXNlNjQ=\n--c--"))
    messages, problems = parsed(write(tmp_path, alternative, html_only, attachment_first))
    assert problems == []
    assert messages[0].body.strip() == "Plain été text"
    assert messages[1].body == "Title\n\nOne & two\n\nThree\nfour"
    assert messages[2].body == "Hello from base64"


def test_from_lines_in_bodies_do_not_split_messages(tmp_path: Path) -> None:
    body = "Hi,\nFrom here on it is fine.\n\nFrom the team\n>From an escaped line\nBye"
    messages, _ = parsed(write(tmp_path, mail(1, body=body), mail(2)))
    assert len(messages) == 2
    assert messages[0].body == ("Hi,\nFrom here on it is fine.\n\nFrom the team\n"
                                "From an escaped line\nBye\n")


def test_crlf_mbox(tmp_path: Path) -> None:
    data = (mail(1) + mail(2)).replace(b"\n", b"\r\n")
    messages, problems = parsed(write(tmp_path, data))
    assert problems == [] and [m.subject for m in messages] == ["Message 1", "Message 2"]
    assert messages[0].body == "Hello.\n"


@pytest.mark.parametrize("content", [b"", b"Subject: hi\n\nnot an mbox\n", b"\x00\x01binary"])
def test_a_file_that_is_not_an_mbox_is_a_source_error(tmp_path: Path, content: bytes) -> None:
    path = write(tmp_path, content, name="notes.mbox")
    if not content:  # an empty mbox is an empty mailbox
        assert parsed(path) == ([], [])
        return
    with pytest.raises(SourceError, match=r"notes\.mbox: not an mbox file") as caught:
        list(parse_mbox(path))
    assert "\n" not in str(caught.value)
    with pytest.raises(SourceError, match="cannot read"):
        list(parse_mbox(tmp_path / "missing.mbox"))


def test_exact_separators_split_without_a_blank_line(tmp_path: Path) -> None:
    """Some writers (Google Takeout among them) put no blank line before the next message."""
    first = mail(1).rstrip(b"\n") + b"\n"
    second = mail(2).replace(b"From sender2@example.com Mon Mar  3 10:02:00 2025",
                             b"From 1726040429442426247@xxx Mon Mar 03 10:02:00 +0000 2025")
    messages, problems = parsed(write(tmp_path, first, second))
    assert problems == [] and [m.body for m in messages] == ["Hello.\n", "Hello.\n"]
