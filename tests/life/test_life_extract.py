"""The model's half of the graph, on a scripted backend: names kept only when the text holds
them, each text read once, newest first within the limit, gone with its source, and the
`life graph --extract` command end to end.

The scripted model names what a real one would in each text, plus one place that is in no
text ("Atlantis"), so every run also checks that nothing invented reaches the graph.
"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from smallhold.apps.life import graph_queries as queries
from smallhold.apps.life.extract import (
    MAX_CHARS,
    Mention,
    extract,
    grounded,
    stored,
    texts,
)
from smallhold.apps.life.models import Event, Message, Person, Source
from smallhold.apps.life.store import LifeStore
from smallhold.apps.life.values import Profile, Values
from smallhold.config import Settings
from smallhold.kit import Overrides
from smallhold.paths import Paths, resolve_paths
from smallhold.runtime import ChatRequest, Runtime
from smallhold.runtime.backends.scripted import ScriptedBackend
from smallhold.store.handle import VaultHandle

ME_PERSON = Person(email="me@home.example", name="Mia Meyer")
TOM = Person(email="tom.thompson@postbox.example", name="Tom Thompson")
PRIYA = Person(email="priya@acme.example", name="Priya Patel")
# what a model would name in these texts (any case), and one name no text holds
NAMES = [("place", "café luna"), ("person", "Priya Patel"), ("habit", "run"),
         ("goal", "Berlin Marathon"), ("organisation", "Acme Running Club"),
         ("place", "Studio Nine"), ("person", "Mia Meyer")]
INVENTED = {"kind": "place", "name": "Atlantis"}


def scripted_reply(request: ChatRequest) -> str:
    text = " ".join(next(m.content for m in request.messages if m.role == "user")
                    .casefold().split())
    named = [{"kind": k, "name": n} for k, n in NAMES if n.casefold() in text]
    return json.dumps({"entities": [*named, INVENTED]})


def _message(n: int, sender: Person, subject: str, body: str, day: int) -> Message:
    return Message(message_id=f"<m{n}@x>", thread=f"<m{n}@x>", subject=subject,
                   sender=sender, to=[ME_PERSON], date=f"2025-03-{day:02d}T10:00:00+01:00",
                   body=body, source=Source(file="mail.mbox", location=f"message {n}",
                                            kind="mail"))


def _event(uid: str, day: int, summary: str, description: str = "") -> Event:
    start = f"2025-03-{day:02d}T18:00:00+01:00"
    return Event(uid=uid, occurrence=start, summary=summary, start=start,
                 end=f"2025-03-{day:02d}T19:00:00+01:00", description=description,
                 source=Source(file="cal.ics", location=f"VEVENT {uid}", kind="calendar"))


def _store(vault: VaultHandle) -> LifeStore:
    store = LifeStore(vault)
    store.ingest("mail.mbox", "sha-mail", "mail", [
        _message(1, TOM, "Saturday", "Shall we meet at Café Luna after your run?\n"
                 "Priya Patel is coming too.\n\n> On Friday you wrote:\n> Atlantis Bar?", 1),
        _message(2, PRIYA, "Big news", "I signed up for the Berlin Marathon with the "
                 "Acme Running Club. Mia Meyer, you should too!", 5),
        _message(3, ME_PERSON, "Re: Big news", "", 6)])
    store.ingest("cal.ics", "sha-cal", "calendar", [
        _event("yoga", 3, "Yoga", "Bring a mat. Class at Studio   Nine, Torstraße 1."),
        _event("yoga", 10, "Yoga", "Bring a mat. Class at Studio   Nine, Torstraße 1."),
        _event("sync", 11, "Sync")])  # no description: nothing for the model
    return store


def _runtime(settings: Settings, paths: Paths, backend: ScriptedBackend) -> Runtime:
    return Runtime(settings, paths, backend=backend, trace=None)


def test_a_name_is_kept_only_when_its_text_holds_it() -> None:
    text = "Lunch at  Café\nLuna with ANN; the annual review is at Acme."
    kept, dropped = grounded([
        Mention(kind="place", name="café luna"),  # any case, any spacing: the text's spelling
        Mention(kind="person", name="Ann"),
        Mention(kind="person", name="Anna"),  # not a whole word of the text
        Mention(kind="organisation", name="Acme Corp"),  # more than the text says
        Mention(kind="place", name="Atlantis"),
        Mention(kind="place", name="Café Luna."),  # again, with punctuation: once
        Mention(kind="person", name="A"),  # too short to mean anything
    ], text)
    assert [(m.kind, m.name) for m in kept] == [("place", "Café Luna"), ("person", "ANN")]
    assert dropped == 4


def test_texts_are_messages_and_described_events_newest_first_cut_and_unquoted(
        vault: VaultHandle) -> None:
    store = _store(vault)
    store.ingest("long.mbox", "sha-long", "mail",
                 [_message(9, TOM, "Long", "word " * 2000, 20)])
    found = texts(store)
    assert [(t.kind, t.key) for t in found] == [
        ("message", "<m9@x>"), ("event", "yoga"), ("message", "<m3@x>"),
        ("message", "<m2@x>"), ("message", "<m1@x>")]  # one series is one text
    assert found[1].at.startswith("2025-03-10")  # its latest occurrence
    assert len(found[0].text) == MAX_CHARS
    assert "Atlantis Bar" not in found[-1].text  # a quoted reply is not this message's text


def test_extraction_keeps_grounded_names_with_the_model_as_source(
        vault: VaultHandle, settings: Settings, paths: Paths) -> None:
    store = _store(vault)
    backend = ScriptedBackend(reply=scripted_reply)
    report = extract(store, _runtime(settings, paths, backend), model="scripted")
    assert (report.read, report.cached, report.left, report.failed) == (4, 0, 0, 0)
    assert report.kept == 7
    assert report.dropped == 5  # Atlantis once per text, and "run" out of "Running Club"
    assert len(backend.requests) == 4
    assert backend.requests[0].params.json_schema is not None  # grammar-constrained
    queries.rebuild_graph(store, _values())
    every = queries.entities(store)
    assert not any("atlantis" in e.name.casefold() for e in every.values())
    luna = every["place:café luna"]
    assert luna.name == "Café Luna" and luna.data["source"] == "model:scripted"
    [seen] = queries.relations(store, "mentions", dst="place:café luna")
    assert seen.src == "me" and seen.data["source"] == "model:scripted"
    assert [(r["kind"], r["key"], r["source"]) for r in seen.data["evidence"]] == [
        ("message", "<m1@x>", "model:scripted")]
    # a name the headers already know is that person, not a new one; the owner is no one
    priya = queries.person(store, "priya@acme.example")
    assert priya is not None and priya["mentioned"]["count"] == 1
    assert priya["mentioned"]["source"] == "model:scripted"
    assert "person:name:mia meyer" not in every
    assert every["org:name:acme running club"].kind == "organisation"
    assert every["goal:name:berlin marathon"].kind == "goal"
    found = queries.topic(store, "studio nine")["things"]
    assert [(t["id"], t["source"]) for t in found] == [("place:studio nine",
                                                       "model:scripted")]
    [edge] = found[0]["relations"]
    assert edge["source"] == "model:scripted" and edge["evidence"][0]["key"] == "yoga"
    # the rule edges say so, beside the model's
    assert all(r.data["source"] == "rule" for r in queries.relations(store)
               if r.kind != "mentions")


def _values() -> Values:
    return Values(person=Profile(name="Mia Meyer", emails=[ME_PERSON.email],
                                 timezone="Europe/Berlin"))


def test_each_text_is_read_once_newest_first_within_the_limit(
        vault: VaultHandle, settings: Settings, paths: Paths) -> None:
    store = _store(vault)
    backend = ScriptedBackend(reply=scripted_reply)
    runtime = _runtime(settings, paths, backend)
    first = extract(store, runtime, model="scripted", limit=2)
    assert (first.read, first.left) == (2, 2)
    assert "Studio" in backend.requests[0].messages[1].content  # the newest: the event
    assert [r.key for r in stored(store)] and len(backend.requests) == 2
    rest = extract(store, runtime, model="scripted", limit=50)
    assert (rest.read, rest.cached, rest.left) == (2, 2, 0)
    calls = len(backend.requests)
    again = extract(store, runtime, model="scripted")
    assert (again.read, again.cached) == (0, 4) and len(backend.requests) == calls  # no call
    other = extract(store, runtime, model="another")  # another model reads for itself
    assert other.read == 4


def test_a_failed_text_is_kept_as_failed_and_not_asked_again(
        vault: VaultHandle, settings: Settings, paths: Paths) -> None:
    store = _store(vault)
    backend = ScriptedBackend(["this is not JSON"])
    runtime = _runtime(settings, paths, backend)
    report = extract(store, runtime, model="scripted")
    assert (report.read, report.failed, report.kept) == (4, 4, 0)
    calls = len(backend.requests)
    assert extract(store, runtime, model="scripted").read == 0
    assert len(backend.requests) == calls and stored(store) == []


def test_forgetting_a_source_removes_what_the_model_read_in_it(
        vault: VaultHandle, settings: Settings, paths: Paths) -> None:
    store = _store(vault)
    extract(store, _runtime(settings, paths, ScriptedBackend(reply=scripted_reply)),
            model="scripted")
    queries.rebuild_graph(store, _values())
    assert "place:café luna" in queries.entities(store)
    store.forget("mail.mbox")
    queries.rebuild_graph(store, _values())
    rows = vault.conn.execute("SELECT file, data FROM life_extractions").fetchall()
    assert [file for file, _ in rows] == ["cal.ics"]
    left = queries.entities(store)
    assert "place:café luna" not in left and "goal:name:berlin marathon" not in left
    assert "place:studio nine" in left
    assert not any("Priya" in str(r.data) for r in queries.relations(store, "mentions"))


MBOX = """\
From tom@postbox.example Sat Mar  1 10:00:00 2025
From: Tom Thompson <tom.thompson@postbox.example>
To: Mia Meyer <me@home.example>
Subject: Saturday
Date: Sat, 01 Mar 2025 10:00:00 +0100
Message-ID: <m1@x>
Content-Type: text/plain; charset=utf-8

Shall we meet at Café Luna after your run?

From priya@acme.example Wed Mar  5 10:00:00 2025
From: Priya Patel <priya@acme.example>
To: Mia Meyer <me@home.example>
Subject: Big news
Date: Wed, 05 Mar 2025 10:00:00 +0100
Message-ID: <m2@x>

I signed up for the Berlin Marathon.
"""
ICS = """\
BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//EN
BEGIN:VEVENT
UID:yoga
DTSTART:20250303T170000Z
DTEND:20250303T180000Z
SUMMARY:Yoga
LOCATION:Studio Nine
DESCRIPTION:Bring a mat\\, the class is at Studio Nine.
END:VEVENT
END:VCALENDAR
"""


def test_the_cli_extracts_once_answers_by_topic_and_forgets(tmp_path: Path) -> None:
    backend = ScriptedBackend(reply=scripted_reply)

    def smallhold(*args: str) -> dict[str, object]:
        done = CliRunner().invoke(main, [*args, "--json"], obj=Overrides(backend=backend))
        assert done.exit_code == 0, done.output
        parsed: dict[str, object] = json.loads(done.stdout)
        return parsed

    from smallhold.cli import main

    (tmp_path / "mail.mbox").write_text(MBOX, encoding="utf-8")
    (tmp_path / "cal.ics").write_text(ICS.replace("\n", "\r\n"), encoding="utf-8")
    smallhold("life", "ingest", str(tmp_path))
    first = smallhold("life", "graph", "--extract", "-m", "scripted", "--limit", "10")
    done = first["extract"]
    assert isinstance(done, dict)
    assert (done["model"], done["read"], done["dropped"], done["left"]) == (
        "scripted", 3, 3, 0)
    summary = first["summary"]
    assert isinstance(summary, dict) and summary["sources"]["model"] >= 3
    assert summary["entities"]["place"] == 2  # Studio Nine by rule, Café Luna by the model
    calls = len(backend.requests)
    again = smallhold("life", "graph", "--extract", "-m", "scripted")["extract"]
    assert isinstance(again, dict) and (again["read"], again["cached"]) == (0, 3)
    assert len(backend.requests) == calls
    studio = smallhold("life", "graph", "Studio Nine")["topic"]
    assert isinstance(studio, dict)
    [place] = studio["things"]
    assert place["source"] == "rule"  # the LOCATION made it; the model's reading joined it
    assert {(e["kind"], e["source"]) for e in place["relations"]} == {
        ("visits", "rule"), ("mentions", "model:scripted")}
    from smallhold.store.vault import open_vault

    with open_vault(resolve_paths(), "default") as vault:  # prompts hold mail: not traced
        prompts = vault.conn.execute("SELECT messages FROM trace_calls").fetchall()
        assert not any("Café Luna" in row[0] for row in prompts)
        events = vault.conn.execute(
            "SELECT data FROM trace_events WHERE kind = 'life.extract'").fetchall()
        assert len(events) == 2 and json.loads(events[0][0])["read"] == 3
    smallhold("life", "forget", "mail.mbox", "--yes")
    luna = smallhold("life", "graph", "Café Luna")["topic"]
    assert isinstance(luna, dict) and luna["things"] == []
    with open_vault(resolve_paths(), "default") as vault:
        rows = vault.conn.execute("SELECT file FROM life_extractions").fetchall()
        assert rows == [("cal.ics",)]
