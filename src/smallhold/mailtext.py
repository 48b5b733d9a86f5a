"""Mail as text: bytes in a declared charset, and the readable text of an HTML body.

Two apps read mail (life's mbox exports, ops's SMTP listener) and apps never import each
other, so the decoding both need lives here, below them, on the standard library only.
Mail lies about its charset often enough that a wrong or unknown label must not turn a
message into an exception or into mojibake when the bytes are plainly UTF-8.
"""

from __future__ import annotations

import codecs
import re
from html.parser import HTMLParser

# labels whose common meaning is wider than the name: "latin-1" mail is usually Windows-1252
# (curly quotes in 0x80-0x9F), "ascii" mail is usually UTF-8 that nobody declared
CHARSET_ALIASES = {"us-ascii": "utf-8", "ascii": "utf-8", "iso-8859-1": "cp1252",
                   "latin-1": "cp1252", "latin1": "cp1252"}


def codec_for(charset: str | None) -> str:
    """A codec Python has for ``charset``: aliases applied, UTF-8 when missing or unknown."""
    if not charset:
        return "utf-8"
    name = charset.strip().strip("\"'").lower()
    name = CHARSET_ALIASES.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return "utf-8"


def decode_bytes(data: bytes, charset: str | None) -> str:
    """The declared charset if the bytes really are in it, else UTF-8, else the declared
    one (or UTF-8) with what does not decode replaced. Never raises."""
    declared = codec_for(charset)
    for codec in dict.fromkeys((declared, "utf-8")):
        try:
            return data.decode(codec)
        except (UnicodeDecodeError, LookupError):
            continue
    return data.decode(declared, errors="replace")


class _TextOnly(HTMLParser):
    """Keeps the readable text of HTML: no tags, scripts or styles; blocks on their own lines."""

    _BLOCKS = frozenset({"p", "br", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6",
                         "table", "ul", "ol", "pre", "blockquote", "hr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "head"):
            self._hidden += 1
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head"):
            self._hidden = max(0, self._hidden - 1)
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def html_text(html: str) -> str:
    """The text a reader sees in ``html``: words on a line joined by single spaces, blocks
    separated by at most one blank line."""
    parser = _TextOnly()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # HTMLParser is lenient; this is for the case it is not
        return " ".join(re.sub(r"<[^>]*>", " ", html).split())
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


__all__ = ["CHARSET_ALIASES", "codec_for", "decode_bytes", "html_text"]
