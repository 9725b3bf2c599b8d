"""A post's parts as the archive sees them: its text, its HTML and its attachments.

One walk, used both when a post is indexed (mailhub.lists.archive_index counts the
attachments) and when its page lists them (mailhub.lists.archive_render numbers them), so
attachment N on a page is always the N-th the index counted. Bounded: at most MAX_PARTS
parts are looked at. The part fields are read raw (Message.raw_items) with a few
patterns: the email package parses a MIME field again each time a property of it is asked
for, which was most of the indexing time. Same answers as get_content_type, get_filename
and get_content_disposition for what mail clients send.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message

MAX_PARTS = 200  # MIME parts looked at: past these, nothing more is counted or listed

_TYPE = re.compile(r"\s*([!#-'*+.0-9A-Z^-~-]+/[!#-'*+.0-9A-Z^-~-]+)", re.IGNORECASE)
_NAMED = re.compile(r";\s*(?:file)?name\*?(?:\*\d+\*?)?\s*=", re.IGNORECASE)
_CHARSET = re.compile(r';\s*charset\s*=\s*"?([^";\s]+)', re.IGNORECASE)


@dataclass(frozen=True)
class PostParts:
    text: Message | None  # the first plain-text body part
    html: Message | None  # the first HTML body part
    attachments: tuple[Message, ...]  # every other content part, in order


def split(msg: Message) -> PostParts:
    text = html = None
    attachments = []
    for part in leaves(msg):
        if html is None and is_body(part, "text/html"):
            html = part
        elif text is None and is_body(part, "text/plain"):
            text = part
        else:
            attachments.append(part)
    return PostParts(text, html, tuple(attachments))


def leaves(msg: Message) -> list[Message]:
    """The post's content parts in order, at most MAX_PARTS; a forwarded message is one
    part."""
    out: list[Message] = []
    stack = [msg]
    while stack and len(out) < MAX_PARTS:
        part = stack.pop()
        if part.is_multipart() and content_type(part).startswith("multipart/"):
            payload = part.get_payload()
            stack.extend(reversed(payload[: MAX_PARTS - len(out)]))
            continue
        out.append(part)
    return out


def field(part: Message, name: str) -> str:
    for key, value in part.raw_items():
        if key.lower() == name:
            return str(value)
    return ""


def content_type(part: Message) -> str:
    m = _TYPE.match(field(part, "content-type"))
    # No valid type: text/plain (RFC 2045 5.2), as the email package reads it.
    return m.group(1).lower() if m else "text/plain"


def charset(part: Message) -> str:
    m = _CHARSET.search(field(part, "content-type"))
    return m.group(1) if m else "utf-8"


def is_body(part: Message, ctype: str) -> bool:
    """A part of type `ctype` shown as the post itself: not an attachment, not named."""
    if content_type(part) != ctype:
        return False
    disposition = field(part, "content-disposition")
    if disposition.split(";", 1)[0].strip().lower() == "attachment":
        return False
    return not (_NAMED.search(disposition) or _NAMED.search(field(part, "content-type")))
