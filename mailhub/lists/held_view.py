"""A held post as the facilitators' review shows it: the first lines of its text (cleaned,
wrapped, at most EXCERPT_LINES), and the post itself to attach as `message/rfc822`, with
the poster's address taken out of its header block on a list whose addresses are hidden.

Bounded work: only the post's first EXCERPT_BYTES are read for the excerpt, and a post
larger than that is read in the content worker (mailhub.content), never on the event loop.
A post larger than ATTACH_MAX_BYTES is not attached; the review gives its size instead.
The attachment is made of the post's own bytes (header fields dropped or replaced whole,
everything else byte for byte), never re-serialised.
"""

from __future__ import annotations

import re
import secrets
import textwrap
from dataclasses import dataclass
from email.message import EmailMessage

from mailhub import content
from mailhub.messages import address, to_bytes
from mailhub.parsing import addresses, body_text, decode_words, parse
from mailhub.store import Tx
from mailhub.store.held_view import held_size_and_head
from mailhub.store.lists import held_raw

EXCERPT_BYTES = 64 * 1024
EXCERPT_LINES = 15
# The excerpt is indented by four spaces in the review: lines of 68 keep it within 72.
EXCERPT_WIDTH = 68
ATTACH_MAX_BYTES = 1024 * 1024
# Reading an excerpt in the content worker: a 64 KB start parses in milliseconds.
EXCERPT_TIMEOUT = 5.0

# Control characters but the line break (tabs are expanded first), and the invisible
# direction and zero-width marks that can make text read other than it is.
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")
_QUOTE = re.compile(r"^(?:>[ ]?)+")
_FIELD_NAME = re.compile(rb"^([!-9;-~]+)[ \t]*:")
# Fields that name the poster or their mail host, removed on a hidden list (From is replaced).
_POSTER_FIELDS = frozenset({b"sender", b"reply-to", b"return-path", b"received"})


@dataclass(frozen=True)
class Excerpt:
    name: str  # the From: display name ('' if none)
    lines: tuple[str, ...]  # at most EXCERPT_LINES, each at most EXCERPT_WIDTH characters
    more: bool  # the text goes on (or was cut at EXCERPT_BYTES)
    readable: bool = True  # False: the post could not be read in time


@dataclass(frozen=True)
class HeldView:
    excerpt: Excerpt
    size: int  # bytes
    attachment: bytes | None  # the post to attach, or None when it is too large


# --- the excerpt (pure; run in the content worker for a large post) ----------------------


def excerpt(head: bytes, truncated: bool = False) -> Excerpt:
    """The first lines of a post's text from its first bytes `head` (pure). The plain
    part, or HTML read as text; control characters removed, tabs expanded, runs of blank
    lines made one, long lines wrapped (a quoted line keeps its `>` on each piece)."""
    msg, problem = content.read_message(head)
    if msg is None:
        return Excerpt("", (f"({problem})",), False)
    senders = addresses(msg, "from")
    name = senders[0][0] if senders else ""
    text = body_text(msg).replace("\r\n", "\n").replace("\r", "\n")
    out: list[str] = []
    more = truncated
    blank = False
    for line in text.split("\n"):
        # Only what can be shown is wrapped: a 64 KB line costs no more than 15 short ones.
        line = _CONTROL.sub("", line[: EXCERPT_WIDTH * EXCERPT_LINES].expandtabs(4)).rstrip()
        if not line:
            blank = bool(out)
            continue
        if len(out) >= EXCERPT_LINES:
            more = True
            break
        if blank:
            out.append("")
            blank = False
        out.extend(_wrap(line))
    if len(out) > EXCERPT_LINES:
        out, more = out[:EXCERPT_LINES], True
    while out and not out[-1]:
        out.pop()
    return Excerpt(name, tuple(out), more)


def _wrap(line: str) -> list[str]:
    quote = _QUOTE.match(line)
    prefix = quote.group(0) if quote else ""
    return textwrap.wrap(
        line,
        EXCERPT_WIDTH,
        subsequent_indent=prefix,
        break_on_hyphens=False,
        drop_whitespace=True,
    ) or [line[:EXCERPT_WIDTH]]


async def read_excerpt(size: int, head: bytes) -> Excerpt:
    """The excerpt of a post of `size` bytes whose first bytes are `head`: read where it
    is (small, simple posts: well under a millisecond) or in the content worker."""
    truncated = size > len(head)
    if truncated or content.needs_bounded_read(head):
        result = await content.run_bounded(
            excerpt, head, truncated, timeout=EXCERPT_TIMEOUT, what="held post excerpt"
        )
        return result if result is not None else Excerpt("", (), False, readable=False)
    return excerpt(head, truncated)


async def held_view(tx: Tx, held_id: int, hide: tuple[str, str] | None = None) -> HeldView:
    """What the review shows of held post `held_id`. `hide`: (the list's display name, its
    posting address) on a list whose addresses are hidden: the attachment then names the
    poster as members see them, `Name via List <LIST@D>`, and holds none of their addresses."""
    size, head = await held_size_and_head(tx, held_id, EXCERPT_BYTES)
    shown = await read_excerpt(size, head)
    attachment = None
    if size <= ATTACH_MAX_BYTES:
        raw, _ = await held_raw(tx, held_id)
        attachment = raw if hide is None else without_poster(raw, *hide)
    return HeldView(shown, size, attachment)


# --- the attachment ------------------------------------------------------------------------


def _fields(head: bytes) -> list[bytes]:
    """A header block split into whole fields (continuation lines included), each with its
    own line ending, so that joining them gives the block back byte for byte."""
    out: list[bytes] = []
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and out:
            out[-1] += line
        else:
            out.append(line)
    return out


def without_poster(raw: bytes, list_display_name: str, list_address: str) -> bytes:
    """The post with the poster's address out of its header block (pure): From: becomes
    `Name via List <LIST@D>`; Sender, Reply-To, Return-Path and Received go, and so does any
    other field that names one of the poster's addresses. Every other byte is the post's."""
    m = re.search(rb"\r?\n\r?\n", raw)
    cut = (m.start() + (2 if raw[m.start() : m.start() + 2] == b"\r\n" else 1)) if m else len(raw)
    head, rest = raw[:cut], raw[cut:]
    head_msg = parse(head)  # the header block only: small, and the parser never raises
    poster = addresses(head_msg, "from")
    hide = {a.lower() for _, a in addresses(head_msg, "from", "sender", "reply-to", "return-path")}
    hide.discard(list_address.lower())
    name = poster[0][0] if poster and "@" not in poster[0][0] else ""
    shown = address(f"{name or 'A member'} via {list_display_name}", list_address)
    kept: list[bytes] = []
    for field in _fields(head):
        found = _FIELD_NAME.match(field)
        key = found.group(1).lower() if found else b""
        ending = field[len(field.rstrip(b"\r\n")) :]
        if key == b"from":
            kept.append(b"From: " + shown.encode("utf-8") + (ending or b"\r\n"))
        elif key in _POSTER_FIELDS or _names_any(field, hide):
            continue
        else:
            kept.append(field)
    return b"".join(kept) + rest


def _names_any(field: bytes, hide: set[str]) -> bool:
    text = field.decode("utf-8", "replace").lower()
    if "=?" in text:
        text += " " + decode_words(text)
    text = text.replace("%40", "@")
    return any(a in text for a in hide)


def with_attachments(msg: EmailMessage, attachments: list[tuple[str, bytes]]) -> bytes:
    """`msg` (a text message we built) as multipart/mixed: its text first, then each
    (filename, message bytes) as a message/rfc822 part holding those bytes unchanged."""
    if not attachments:
        return to_bytes(msg)
    boundary = "=_held_" + secrets.token_hex(16)
    while any(boundary.encode() in data for _, data in attachments):
        boundary = "=_held_" + secrets.token_hex(16)
    msg.make_mixed()
    msg.set_boundary(boundary)
    out = to_bytes(msg)
    closing = f"--{boundary}--".encode()
    at = out.rfind(closing)
    parts = [out[:at]]
    for filename, data in attachments:
        # message/rfc822 may only be 7bit, 8bit or binary (RFC 2046 §5.2.1): no re-encoding.
        encoding = "7bit" if data.isascii() else "8bit"
        parts.append(
            f"--{boundary}\r\nContent-Type: message/rfc822\r\n"
            f'Content-Disposition: attachment; filename="{filename}"\r\n'
            f"Content-Transfer-Encoding: {encoding}\r\n\r\n".encode()
            + data
            # This line break belongs to the delimiter that follows (RFC 2046 §5.1.1): the
            # part's body is `data` to the last byte.
            + b"\r\n"
        )
    parts.append(closing + b"\r\n")
    return b"".join(parts)
