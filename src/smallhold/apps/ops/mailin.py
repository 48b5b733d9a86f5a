"""Inbound mail: a local SMTP listener that turns each message into an :class:`Event`.

A site points a mail route (or a forwarding rule) at this listener; it binds 127.0.0.1 by
default because it authenticates nobody, so anything that can reach it can make events:
exposing it is a decision for the site's mail relay, not a default. Messages over the
size limit are refused during the SMTP dialogue (552), so they are never read.

Mail is the least disciplined input ops takes: wrong or unknown charsets, broken
encoded-words, HTML-only bodies, no Message-ID. :func:`mail_event` never raises on any
of it: what cannot be decoded is replaced, not fatal. The event's key comes from the
Message-ID (a digest of the raw message when there is none), so a message delivered twice
starts one workflow. A callback that fails answers 451, so the sending server keeps the
message and tries again later: nothing is lost.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email import message_from_bytes
from email.header import decode_header
from email.message import Message
from email.utils import getaddresses, parseaddr
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session

from smallhold.apps.ops.models import Event, event_key
from smallhold.mailtext import decode_bytes, html_text

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 2525
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
TEXT_MAX = 100_000  # characters of body kept in the event
SUMMARY_MAX = 300


class SmtpController(Controller):
    """aiosmtpd's threaded controller, also on port 0: the kernel picks a free port, and
    the controller's start-up self-test connects to the port actually bound."""

    def _trigger_server(self) -> None:
        server = self.server
        if self.port == 0 and isinstance(server, asyncio.Server) and server.sockets:
            self.port = int(server.sockets[0].getsockname()[1])
        super()._trigger_server()  # type: ignore[no-untyped-call]


# decoding ------------------------------------------------------------------------------

def _clean(text: str) -> str:
    """No lone surrogates (left by a surrogateescape somewhere) and no NULs."""
    return text.encode("utf-8", "replace").decode("utf-8", "replace").replace("\x00", "")


def header_text(value: Any) -> str:
    """A header as text: encoded-words decoded with their charsets, unknown or broken ones
    replaced, folding undone."""
    if value is None:
        return ""
    raw = str(value)
    try:
        parts = decode_header(raw)
    except Exception:  # a malformed encoded-word: the raw text is better than nothing
        return _clean(" ".join(raw.split()))
    out: list[str] = []
    for chunk, charset in parts:
        out.append(decode_bytes(chunk, charset) if isinstance(chunk, bytes) else chunk)
    return _clean(" ".join("".join(out).split()))


def _part_text(part: Message) -> str:
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        payload = None
    if not isinstance(payload, bytes):
        raw = part.get_payload()
        return raw if isinstance(raw, str) else ""
    try:
        charset = part.get_content_charset()
    except Exception:
        charset = None
    return decode_bytes(payload, charset)


def body_text(message: Message) -> tuple[str, list[str]]:
    """(the plain text, the attachments' names): text/plain preferred, HTML made text
    when it is all there is."""
    plain: list[str] = []
    html: list[str] = []
    attachments: list[str] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        disposition = (part.get("Content-Disposition") or "").split(";")[0].strip().lower()
        filename = part.get_filename()
        if disposition == "attachment" or (filename and disposition != "inline"):
            attachments.append(header_text(filename or "unnamed"))
            continue
        kind = part.get_content_type()
        if kind == "text/plain":
            plain.append(_part_text(part))
        elif kind == "text/html":
            html.append(_part_text(part))
    text = "\n\n".join(p.strip() for p in plain if p.strip())
    if not text and html:
        text = "\n\n".join(html_text(h) for h in html)
    return _clean(text.replace("\r\n", "\n")), attachments


def _addresses(values: Sequence[str]) -> list[str]:
    found = [addr for _, addr in getaddresses([header_text(v) for v in values]) if addr]
    return list(dict.fromkeys(found))


def mail_event(raw: bytes, *, mail_from: str | None = None, rcpt_tos: Sequence[str] = (),
               received_at: datetime | None = None) -> Event:
    """One message as an event. Never raises on a malformed message."""
    message = message_from_bytes(raw)  # compat32: lenient, and never raises on access
    message_id = header_text(message.get("Message-ID")).strip()
    identity = message_id.strip("<>") or "sha256:" + hashlib.sha256(raw).hexdigest()
    subject = header_text(message.get("Subject"))
    sender_header = header_text(message.get("From"))
    sender = parseaddr(sender_header)[1] or sender_header or (mail_from or "")
    to = _addresses(message.get_all("To") or []) or [str(r) for r in rcpt_tos]
    cc = _addresses(message.get_all("Cc") or [])
    text, attachments = body_text(message)
    if len(text) > TEXT_MAX:
        text = text[:TEXT_MAX] + "…"
    summary = subject or (text.splitlines()[0] if text.strip() else "(no subject)")
    if len(summary) > SUMMARY_MAX:
        summary = summary[:SUMMARY_MAX - 1] + "…"
    return Event(
        source="mail", type="mail.received", key=event_key("mail", identity),
        received_at=received_at or datetime.now(UTC), summary=summary, text=text,
        labels={"from": sender, "to": ", ".join(to), "subject": subject},
        payload={"message_id": message_id, "from": sender_header, "to": to, "cc": cc,
                 "date": header_text(message.get("Date")), "attachments": attachments,
                 "envelope": {"mail_from": mail_from or "", "rcpt_tos": list(rcpt_tos)},
                 "size": len(raw)})


# the listener --------------------------------------------------------------------------

class _Inbound:
    def __init__(self, on_event: Callable[[Event], None],
                 clock: Callable[[], datetime]) -> None:
        self.on_event = on_event
        self.clock = clock

    async def handle_DATA(self, server: SMTPServer, session: Session,
                          envelope: Envelope) -> str:
        raw = envelope.original_content or (
            envelope.content if isinstance(envelope.content, bytes) else b"")
        try:
            event = mail_event(raw, mail_from=envelope.mail_from,
                               rcpt_tos=[str(r) for r in envelope.rcpt_tos],
                               received_at=self.clock())
        except Exception:  # mail_event is meant never to raise; keep the mail if it does
            log.exception("ops: could not read an inbound message")
            return "451 4.6.0 could not read the message; try again later"
        try:
            await asyncio.get_running_loop().run_in_executor(None, self.on_event, event)
        except Exception:
            log.exception("ops: the inbound mail %s was not taken", event.key)
            return "451 4.3.0 temporarily unable to take the message; try again later"
        log.info("ops: mail %s from %s taken", event.key, event.labels.get("from"))
        return "250 2.0.0 OK: taken"


class MailListener:
    """An SMTP listener (aiosmtpd, its own thread) that hands each message to
    ``on_event`` as an :class:`Event`; ``on_event`` runs in a worker thread, so it may
    block (write to the database, start a workflow)."""

    def __init__(self, on_event: Callable[[Event], None], *, host: str = DEFAULT_HOST,
                 port: int = DEFAULT_PORT, max_bytes: int = DEFAULT_MAX_BYTES,
                 server_hostname: str | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.host = host
        self.max_bytes = max_bytes
        self._controller = SmtpController(
            _Inbound(on_event, clock), hostname=host, port=port,
            server_hostname=server_hostname, data_size_limit=max_bytes)

    @property
    def port(self) -> int:
        return int(self._controller.port)

    def start(self) -> MailListener:
        self._controller.start()
        log.info("ops: taking mail on %s:%d", self.host, self.port)
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> MailListener:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()


__all__ = ["DEFAULT_HOST", "DEFAULT_MAX_BYTES", "DEFAULT_PORT", "MailListener",
           "SmtpController", "body_text", "header_text", "mail_event"]
