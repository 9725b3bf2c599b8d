"""Reading incoming mail without ever crashing on it.

Incoming mail can be anything: broken MIME, unknown charsets, 8-bit junk, headers
that make `str(msg['From'])` raise under policy.default. These helpers read raw
header values and decode them defensively; every string they return is free of
control characters, so it is safe to put into a header of a message we send.
"""

from __future__ import annotations

import re
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses, parseaddr
from html.parser import HTMLParser

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\u0085]+")
_FOLD = re.compile(r"\r?\n[ \t]")


def parse(raw: bytes) -> EmailMessage:
    """Parse bytes into a message. The parser is lenient: defects are recorded, not raised."""
    return BytesParser(policy=policy.default).parsebytes(raw)  # type: ignore[return-value]


def clean(value: str) -> str:
    """One line of text: control characters (CR, LF, NUL...) become a space."""
    return _CONTROL.sub(" ", value).strip()


def _decode(raw_value: str) -> str:
    value = _FOLD.sub(" ", raw_value)
    try:
        value = str(make_header(decode_header(value)))
    except Exception:  # noqa: BLE001 - any undecodable header falls back to its raw text
        pass
    # 8-bit bytes in headers arrive as surrogate escapes: show them as replacement chars.
    value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return clean(value)


def header_values(msg: Message, name: str) -> list[str]:
    """Every value of header `name`, decoded and cleaned. Never raises."""
    wanted = name.lower()
    out = []
    for key, value in msg.raw_items():
        if key.lower() == wanted:
            out.append(_decode(value if isinstance(value, str) else str(value)))
    return out


def header(msg: Message, name: str) -> str:
    """The first value of header `name`, decoded and cleaned; '' if absent."""
    values = header_values(msg, name)
    return values[0] if values else ""


def addresses(msg: Message, *names: str) -> list[tuple[str, str]]:
    """(display name, address) pairs from the named address headers. Never raises."""
    values = [v for n in names for v in header_values(msg, n)]
    try:
        pairs = getaddresses(values)
    except Exception:  # noqa: BLE001
        pairs = [parseaddr(v) for v in values]
    return [(clean(n), clean(a)) for n, a in pairs if a and "@" in a]


def sender_address(msg: Message) -> str:
    """The From: address, lower-cased, or '' when there is none that parses."""
    pairs = addresses(msg, "from")
    return pairs[0][1].lower() if pairs else ""


# Elements that break a line when HTML is read as text.
BLOCK_TAGS = frozenset(
    {
        "p",
        "div",
        "br",
        "li",
        "tr",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "blockquote",
        "pre",
        "table",
        "ul",
        "ol",
        "hr",
    }
)


class _TextExtractor(HTMLParser):
    _BLOCK = BLOCK_TAGS

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in ("script", "style", "head"):
            self._skip += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head"):
            self._skip = max(0, self._skip - 1)
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    extractor = _TextExtractor()
    try:
        extractor.feed(html)
        extractor.close()
    except Exception:  # noqa: BLE001 - malformed HTML still yields what was read
        pass
    text = "".join(extractor.parts)
    return re.sub(r"\n{3,}", "\n\n", re.sub(r"[ \t]+", " ", text)).strip()


def part_text(part: Message) -> str:
    """The decoded text of one non-multipart part (quoted-printable/base64 and charset undone)."""
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001
        payload = None
    if payload is None:
        raw = part.get_payload()
        return raw if isinstance(raw, str) else ""
    charset = "utf-8"
    try:
        charset = part.get_content_charset() or "utf-8"
    except Exception:  # noqa: BLE001
        pass
    try:
        text = payload.decode(charset, "replace")
    except (LookupError, UnicodeError):
        text = payload.decode("utf-8", "replace")
    if _content_type(part) == "text/html":
        text = html_to_text(text)
    return text.replace("\x00", "")


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type()
    except Exception:  # noqa: BLE001
        return "text/plain"


def body_text(msg: Message, *, attachments: bool = False) -> str:
    """The readable text of a message: text/plain parts, or text/html converted when a
    multipart/alternative has no plain part. With attachments=True, text attachments too."""
    texts: list[str] = []

    def visit(part: Message) -> None:
        ctype = _content_type(part)
        if part.is_multipart():
            children = part.get_payload()
            if not isinstance(children, list):
                return
            if ctype == "multipart/alternative":
                plain = [c for c in children if _content_type(c) == "text/plain"]
                children = plain[:1] or children[-1:]
            for child in children:
                visit(child)
            return
        is_attachment = (part.get("Content-Disposition") or "").lower().startswith("attachment")
        if ctype in ("text/plain", "text/html") and (attachments or not is_attachment):
            texts.append(part_text(part))

    try:
        visit(msg)
    except Exception:  # noqa: BLE001 - a broken structure yields the text read so far
        pass
    return "\n".join(t for t in texts if t)
