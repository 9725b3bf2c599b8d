"""Reading incoming mail without ever crashing on it.

Incoming mail can be anything: broken MIME, unknown charsets, 8-bit junk, headers
that make `str(msg['From'])` raise under policy.default. These helpers read raw
header values and decode them defensively; every string they return is free of
control characters, so it is safe to put into a header of a message we send.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser, BytesParser
from email.utils import getaddresses, parseaddr

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\u0085]+")
_FOLD = re.compile(r"\r?\n[ \t]")


def parse(raw: bytes) -> EmailMessage:
    """Parse bytes into a message. The parser is lenient: defects are recorded, not raised."""
    return BytesParser(policy=policy.default).parsebytes(raw)  # type: ignore[return-value]


_SURROGATES = re.compile(r"[\ud800-\udfff]+")
# An RFC 2047 encoded word, as leniently as the email package reads one (it accepts
# whitespace inside, and any charset, decoding an unknown one as ASCII).
ENCODED_WORD = re.compile(r"=\?([^?]*)\?([bBqQ])\?(.*?)\?=", re.DOTALL)
_BETWEEN_WORDS = re.compile(r"(\?=)[ \t]+(?==\?)")


def clean(value: str) -> str:
    """One line of text: control characters (CR, LF, NUL...) become a space, and a lone
    surrogate (an undecodable byte, as the email package keeps one) a replacement character,
    so that the text can always be written out again."""
    if not value.isascii():
        value = _SURROGATES.sub(lambda m: "\ufffd" * len(m.group()), value)
    return _CONTROL.sub(" ", value).strip()


def word_text(charset: str, encoding: str, payload: str) -> str:
    """The text of one encoded word, undone as leniently as any reader would: bytes that
    its charset cannot decode become replacement characters."""
    if not payload.isascii():  # raw 8-bit inside a word: not decodable, shown as such
        return re.sub(r"[^\x00-\x7f]", "\ufffd", payload)
    data = payload.encode("ascii")
    try:
        if encoding in "bB":
            data = base64.b64decode(data + b"=" * (-len(data) % 4))
        else:
            data = binascii.a2b_qp(data, header=True)
    except (binascii.Error, ValueError):
        return payload
    charset = charset.split("*", 1)[0] or "ascii"
    try:
        return data.decode(charset, "replace")
    except LookupError:
        return data.decode("latin-1")


def decode_words(value: str) -> str:
    """Every encoded word in `value` decoded leniently (`word_text`); the space between two
    adjacent words goes, as RFC 2047 says."""
    return ENCODED_WORD.sub(lambda m: word_text(*m.groups()), _BETWEEN_WORDS.sub(r"\1", value))


def _decode(raw_value: str) -> str:
    value = _FOLD.sub(" ", raw_value)
    if not value.isascii():
        # 8-bit bytes in headers arrive as surrogate escapes: UTF-8 (RFC 6532) is read as
        # such, anything else shows as replacement characters. (The email package would
        # read an encoded word holding them as the text "\udcd6".)
        value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        return clean(decode_words(value) if "=?" in value else value)
    try:
        value = str(make_header(decode_header(value)))
    except Exception:  # noqa: BLE001 - a word its charset cannot decode: read leniently
        value = decode_words(value)
    return clean(value)


def header_values(msg: Message, name: str) -> list[str]:
    """Every value of header `name`, decoded and cleaned. Never raises."""
    wanted = name.lower()
    out = []
    for key, value in msg.raw_items():
        if key.lower() == wanted:
            out.append(_decode(value if isinstance(value, str) else str(value)))
    return out


def parse_head(head: bytes) -> Message:
    """A header block alone, parsed (for reading values: nothing is written from it)."""
    return BytesHeaderParser(policy=policy.default).parsebytes(head + b"\r\n\r\n")


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


# One pass over the tags: `<[^<>]*>` stops at the next `<`, so no character is read more
# than twice whatever the markup. (html.parser, used before, is quadratic on some markup
# in Python 3.11: an 80 KB message held the event loop for ~25 s.)
_TAG = re.compile(r"<([^<>]*)>")
_TAG_NAME = re.compile(r"(/?)\s*([A-Za-z][A-Za-z0-9:-]*)")
_HIDDEN = frozenset({"script", "style", "head", "title"})
_SPACES = re.compile(r"[ \t\f\v\r]+")
_BLANK_LINES = re.compile(r"\n[ \n]*\n")


def html_to_text(markup: str) -> str:
    """The text a reader sees in HTML: tags gone, block elements as line breaks, script,
    style and head skipped, entities unescaped. Linear in the length of the markup."""
    parts: list[str] = []
    hidden = ""  # the element whose content is skipped until it closes
    pos = 0
    for m in _TAG.finditer(markup):
        if not hidden:
            parts.append(markup[pos : m.start()])
        pos = m.end()
        name = _TAG_NAME.match(m.group(1))
        if name is None:
            continue  # a comment, a doctype, or a stray pair of brackets
        closing, tag = name.group(1) == "/", name.group(2).lower()
        if hidden:
            if closing and tag == hidden:
                hidden = ""
            continue
        if tag in _HIDDEN and not closing and not m.group(1).rstrip().endswith("/"):
            hidden = tag
        elif tag in BLOCK_TAGS:
            parts.append("\n")
    if not hidden:
        parts.append(markup[pos:])
    text = _SPACES.sub(" ", html.unescape("".join(parts)))
    return _BLANK_LINES.sub("\n\n", text.replace("\n ", "\n")).strip()


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
