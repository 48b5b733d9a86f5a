"""Inbound mail: messages (good, broken, HTML-only, oversized) become events, or are
refused in the SMTP dialogue; a failing consumer makes the sender keep the mail."""

from __future__ import annotations

import smtplib
import threading
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest

from smallhold.apps.ops.mailin import DEFAULT_HOST, MailListener, mail_event
from smallhold.apps.ops.models import Event, event_key


def _mail(subject: str = "Disk full on db-2", body: str = "The WAL volume is at 97%.",
          message_id: str | None = "<abc.123@mail.example>") -> bytes:
    mail = EmailMessage()
    mail["From"] = "Grace Hopper <grace@example.com>"
    mail["To"] = "ops@smallhold.test, oncall@smallhold.test"
    mail["Subject"] = subject
    if message_id:
        mail["Message-ID"] = message_id
    mail.set_content(body)
    return mail.as_bytes()


def test_a_message_becomes_an_event() -> None:
    when = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    event = mail_event(_mail(), mail_from="bounce@example.com",
                       rcpt_tos=["ops@smallhold.test"], received_at=when)
    assert (event.source, event.type) == ("mail", "mail.received")
    assert event.key == event_key("mail", "abc.123@mail.example")
    assert event.summary == "Disk full on db-2"
    assert event.text == "The WAL volume is at 97%."
    assert event.labels == {"from": "grace@example.com",
                            "to": "ops@smallhold.test, oncall@smallhold.test",
                            "subject": "Disk full on db-2"}
    assert event.received_at == when
    assert event.payload["envelope"]["mail_from"] == "bounce@example.com"


def test_without_message_id_the_key_is_a_digest_of_the_message() -> None:
    raw = _mail(message_id=None)
    assert mail_event(raw).key == mail_event(raw).key
    assert mail_event(raw).key != mail_event(_mail(body="other", message_id=None)).key
    assert mail_event(raw).key.startswith("mail-")


BROKEN = (
    b"From: =?x-bogus?q?Caf=E9?= <cafe@example.com>\r\n"
    b"To: ops@smallhold.test\r\n"
    b"Subject: =?iso-8859-1?q?Caf=E9_d=E9j=E0_vu?= =?utf-8?b?////?= =?nope?x?zz?=\r\n"
    b"Message-ID: <broken@example.com>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: multipart/alternative; boundary=XX\r\n"
    b"\r\n"
    b"--XX\r\n"
    b"Content-Type: text/plain; charset=\"x-unknown-charset\"\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Caf=E9 is down =\r\n"
    b"since noon=FF=FE\r\n"
    b"--XX\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"not base64 at all!!\r\n"
    b"--XX\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"bad utf-8: \xc3\x28 \xff end\r\n"
    b"--XX--\r\n"
)


def test_a_broken_charset_message_becomes_an_event_with_replacements() -> None:
    event = mail_event(BROKEN)
    assert event.key == event_key("mail", "broken@example.com")
    assert event.summary.startswith("Café déjà vu")
    assert "Caf" in event.text and "since noon" in event.text
    assert "bad utf-8:" in event.text and "end" in event.text
    assert "\udcff" not in event.text and "\x00" not in event.text
    event.model_dump_json()  # the whole event is valid text
    assert event.labels["from"] == "cafe@example.com"


@pytest.mark.parametrize("raw", [
    b"", b"\x00\xff\xfe garbage", b"Subject: only a header",
    b"Content-Type: multipart/mixed\r\n\r\nno boundary",
    b"Subject: =?utf-8?q?unterminated\r\n\r\nbody",
    b"From: <<<@@@>>>\r\nTo: ,,,;;;\r\n\r\nx",
])
def test_garbage_never_crashes(raw: bytes) -> None:
    event = mail_event(raw)
    assert event.source == "mail" and event.summary
    event.model_dump_json()


def test_html_only_mail_becomes_text_and_attachments_are_listed() -> None:
    mail = EmailMessage()
    mail["Subject"] = "Alert"
    mail["Message-ID"] = "<html@example.com>"
    mail.set_content("<html><head><style>p{}</style></head><body><p>Checkout <b>down</b>"
                     "</p><script>alert(1)</script><p>since 14:05</p></body></html>",
                     subtype="html")
    mail.add_attachment(b"log lines", maintype="text", subtype="plain", filename="gw.log")
    event = mail_event(mail.as_bytes())
    assert "Checkout down" in event.text and "since 14:05" in event.text
    assert "alert(1)" not in event.text and "<" not in event.text
    assert event.payload["attachments"] == ["gw.log"]


def test_the_listener_takes_mail_over_smtp() -> None:
    got: list[Event] = []
    arrived = threading.Event()

    def take(event: Event) -> None:
        got.append(event)
        arrived.set()

    with MailListener(take, port=0) as listener:
        assert listener.host == DEFAULT_HOST == "127.0.0.1"
        with smtplib.SMTP(listener.host, listener.port, timeout=5) as client:
            client.sendmail("grace@example.com", ["ops@smallhold.test"], BROKEN)
        assert arrived.wait(5)
    [event] = got
    assert event.key == event_key("mail", "broken@example.com")
    assert event.payload["envelope"]["rcpt_tos"] == ["ops@smallhold.test"]


def test_oversized_mail_is_refused_and_never_read() -> None:
    got: list[Event] = []
    with MailListener(got.append, port=0, max_bytes=2048) as listener, \
            smtplib.SMTP(listener.host, listener.port, timeout=5) as client:
        with pytest.raises(smtplib.SMTPException) as caught:
            client.sendmail("a@example.com", ["ops@smallhold.test"],
                            _mail(body="x" * 10_000))
        code = getattr(caught.value, "smtp_code", None) or next(
            iter(getattr(caught.value, "recipients", {}).values()), (None,))[0]
        assert code == 552
    assert got == []


def test_a_failing_consumer_makes_the_sender_keep_the_mail() -> None:
    def broken(event: Event) -> None:
        raise RuntimeError("database down")

    with MailListener(broken, port=0) as listener, \
            smtplib.SMTP(listener.host, listener.port, timeout=5) as client:
        with pytest.raises(smtplib.SMTPDataError) as caught:
            client.sendmail("a@example.com", ["ops@smallhold.test"], _mail())
        assert caught.value.smtp_code == 451  # temporary: the sending server retries
