"""mbox files (RFC 4155 framing, RFC 5322 messages) as ``Message`` records, one at a time.

An mbox can be gigabytes, so the file is read line by line and only the current message is
held; ``mailbox.mbox`` would do a first pass to index offsets and opens the file for writing.
A separator is a ``From `` line in the usual ``From sender asctime`` form, or a looser one
with a time after a blank line, so an unescaped "From here on..." in a body stays in it.
Messages are parsed with ``email.policy.default`` (RFC 2047 names decoded); bodies are
decoded with their declared charset and ``errors="replace"``, so broken mail never raises.
A message the file ends inside (a cut-short export) is left out with a ``Problem``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.message import Message as MimePart
from email.parser import BytesParser
from email.utils import getaddresses
from pathlib import Path

from smallhold.apps.life.errors import SourceError
from smallhold.apps.life.models import Message, Person, Problem, Source, record_id
from smallhold.mailtext import decode_bytes, html_text

# "From sender Mon Mar  3 10:00:00 2025" (Takeout puts "+0000" before the year): a line this
# exact separates anywhere; a looser "From " line with a time only after a blank line
_STRICT_SEPARATOR = re.compile(
    rb"From \S+ +[A-Z][a-z]{2} [A-Z][a-z]{2} +\d{1,2} \d{1,2}:\d{2}(:\d{2})? .*\d{4}\s*$")
_SEPARATOR = re.compile(rb"From \S+.*\d{1,2}:\d{2}")
_ESCAPED_FROM = re.compile(rb">+From ")
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")
# what mail means by these names when the bytes say otherwise (WHATWG encoding rules)
_PARSER = BytesParser(policy=policy.default)


def parse_mbox(path: Path) -> Iterator[Message | Problem]:
    """Every message in ``path`` in file order; one that cannot be dated is a ``Problem``.

    Raises ``SourceError`` (one line) when the file cannot be read or is not an mbox.
    """
    file = path.name
    try:
        handle = path.open("rb")
    except OSError as err:
        raise SourceError(f"{file}: cannot read it ({err.strerror})") from err
    with handle:
        for number, raw, complete in _split(handle, file):
            location = f"message {number}"
            if not complete:
                yield Problem(file=file, location=location,
                              reason="the file ends inside this message; it is left out")
                continue
            try:
                yield _message(raw, Source(file=file, location=location, kind="mail"))
            except _Undated as err:
                yield Problem(file=file, location=location, reason=str(err))
            except Exception as err:  # the email package can fail in many ways
                yield Problem(file=file, location=location,
                              reason=f"cannot read this message: {type(err).__name__}: {err}")


class _Undated(ValueError):
    """A message without a readable Date: it cannot be placed in time, so it is skipped."""


def _split(lines: Iterable[bytes], file: str) -> Iterator[tuple[int, bytes, bool]]:
    """(number, bytes, complete) per message; only the current message is in memory."""
    current: list[bytes] = []
    number, blank_before, last = 0, True, b"\n"
    for line in lines:
        if line.startswith(b"From ") and (_STRICT_SEPARATOR.match(line) or (
                blank_before and _SEPARATOR.match(line))):
            if number:
                yield number, _joined(current), True
            number, current = number + 1, []
        elif number:  # mboxrd: one ">" was added to every ">*From " line of a body
            current.append(line[1:] if _ESCAPED_FROM.match(line) else line)
        elif line.strip():
            raise SourceError(f"{file}: not an mbox file (it does not begin with a "
                              "'From ' separator line)")
        blank_before, last = not line.strip(), line
    if number:
        data = _joined(current)
        # cut mid-line, or before the headers ended, or inside a multipart body
        complete = last.endswith(b"\n") and re.search(rb"\r?\n\r?\n", data) is not None
        if complete:
            message = _PARSER.parsebytes(data, headersonly=True)
            multipart = message.get_content_maintype() == "multipart"
            boundary = message.get_boundary() if multipart else None
            complete = boundary is None or f"--{boundary}--".encode() in data
        yield number, data, complete


def _joined(lines: list[bytes]) -> bytes:
    """A message's bytes; a blank line before the next separator is the mbox's, not its own."""
    return b"".join(lines[:-1] if lines and not lines[-1].strip() else lines)


def _message(raw: bytes, source: Source) -> Message:
    message = _PARSER.parsebytes(raw)
    assert isinstance(message, EmailMessage)  # policy.default builds EmailMessage
    subject = _header(message, "Subject")
    date = _date(message)
    own_id = _ids(_header(message, "Message-ID"))
    message_id = own_id[0] if own_id else (
        f"<{record_id(_header(message, 'From'), _header(message, 'Date'), subject)}"
        "@smallhold.invalid>")  # stable, so ingesting the export again adds nothing twice
    references = _ids(_header(message, "References"))
    in_reply_to = next(iter(_ids(_header(message, "In-Reply-To"))), "")
    senders = _people(message, "From") or _people(message, "Sender")
    return Message(
        message_id=message_id,
        thread=references[0] if references else (in_reply_to or message_id),
        in_reply_to=in_reply_to,
        references=references,
        subject=subject,
        sender=senders[0] if senders else Person(),
        to=_people(message, "To"),
        cc=_people(message, "Cc"),
        date=date,
        body=_body(message),
        source=source,
    )


def _header(message: EmailMessage, name: str) -> str:
    """A header's decoded text; "" when it is missing or its parser gives up."""
    try:
        value = message.get(name)
    except Exception:  # malformed headers can break the header parser
        return ""
    return "" if value is None else " ".join(str(value).split())


def _ids(value: str) -> list[str]:
    """Message-IDs in a header, angle brackets kept; a bare id gets them added."""
    found = _MESSAGE_ID.findall(value)
    if not found and value.strip() and " " not in value.strip():
        found = [f"<{value.strip().strip('<>')}>"]
    return found


def _date(message: EmailMessage) -> str:
    """Date as ISO 8601 with the sender's own offset; "-0000" (offset unknown) reads as UTC."""
    try:
        value = message.get("Date")
    except Exception:  # a malformed header can break the header parser
        value = None
    when = getattr(value, "datetime", None)
    if not isinstance(when, datetime):
        raise _Undated(f"no readable Date header ({str(value or '')[:60]!r})")
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).isoformat()


def _people(message: EmailMessage, name: str) -> list[Person]:
    try:
        header = message.get(name)
        addresses: list[tuple[str, str]] = [
            (a.display_name, a.addr_spec) for a in getattr(header, "addresses", ())
            if isinstance(a, Address)]
    except Exception:  # fall back to the lenient parser
        addresses = getaddresses([_header(message, name)])
    return [Person(email=email.strip().lower(), name=" ".join(display.split()))
            for display, email in addresses if email.strip() or display.strip()]


def _body(message: EmailMessage) -> str:
    """The first inline text/plain part, else the first text/html part as plain text."""
    html: MimePart | None = None
    for part in message.walk():
        if part.is_multipart() or part.get_content_disposition() == "attachment":
            continue
        kind = part.get_content_type()
        if kind == "text/plain":
            return _text(part)
        if kind == "text/html" and html is None:
            html = part
    return html_text(_text(html)) if html is not None else ""


def _text(part: MimePart) -> str:
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    return decode_bytes(data, part.get_content_charset()).replace("\r\n", "\n")


__all__ = ["parse_mbox"]
