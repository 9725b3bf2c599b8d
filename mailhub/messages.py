"""Building the mail mailhub sends: jinja2 text templates → EmailMessage (policy.SMTP).

Headers are always set through EmailMessage, never by joining strings, and every
value passes through `safe_text` first (control characters removed, RFC 2047 encoded
words decoded and cleaned), so nothing from an incoming message can inject a header
into one we send, whatever the Python version (CVE-2024-6923: before 3.11.10/3.12.5
the email package re-folds a decoded CR/LF as a real line break). Headers kept verbatim
from incoming mail are never re-serialised by the email package: `clean_fields` cleans
and re-folds them here. `to_bytes` checks every header block it writes.

Loop trace: everything mailhub sends because of an incoming message carries that
message's X-Loop values (plus ours) and a hop count (`X-Mailhub-Hops`), and past
`MAX_HOPS` it is not sent at all (see `hops`, `trace_headers`).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import jinja2

from mailhub.clock import as_datetime
from mailhub.parsing import ENCODED_WORD, clean, word_text

# Mail that has passed this many hops (MTAs' Received lines, or mailhubs' own count)
# is in a loop: like an MTA's hop limit (Postfix: 50; RFC 5321 §6.3 asks for at least
# 100 on relays, but we are an endpoint that re-sends). A config key would belong in
# mailhub/config.py; until then this constant.
MAX_HOPS = 20
HOPS_HEADER = "X-Mailhub-Hops"
# At most this many X-Loop values are carried on (a loop through many services).
MAX_LOOP_VALUES = 20

SEPARATOR = "\n\n" + "-" * 40 + "\n\n"


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str


class Templates:
    """templates/LANG/NAME.txt: a first line `Subject: ...`, a blank line, then the body."""

    def __init__(self, directory: Path) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(directory)),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            autoescape=False,
            trim_blocks=True,
        )

    def render_one(self, name: str, language: str, **context: Any) -> Rendered:
        text = self.env.get_template(f"{language}/{name}.txt").render(language=language, **context)
        first, _, body = text.partition("\n")
        if not first.startswith("Subject:"):
            raise ValueError(f"template {language}/{name}.txt must start with a Subject: line")
        return Rendered(clean(first[len("Subject:") :]), body.lstrip("\n").rstrip() + "\n")

    def render(self, name: str, language: str, **context: Any) -> Rendered:
        """Render in one language, or both ("en+cy" / "cy+en": the first named leads)."""
        languages = language.split("+")
        parts = [self.render_one(name, lang, **context) for lang in languages]
        if len(parts) == 1:
            return parts[0]
        return Rendered(
            bilingual_subject([p.subject for p in parts]),
            SEPARATOR.join(p.body.rstrip() for p in parts) + "\n",
        )


# A subject longer than this is cut off on a phone's list of mail (and folded by a mailer).
SUBJECT_WIDTH = 78
_TAG = re.compile(r"\[[^\]]{1,40}\] ")


def bilingual_subject(subjects: list[str]) -> str:
    """`Cymraeg / English` when both fit in SUBJECT_WIDTH, else the first language's alone
    (the body has both). A tag both start with (`[C-1234-AB] `, `[List] `) is written once."""
    tag = _TAG.match(subjects[0])
    rest = list(subjects)
    if tag and all(s.startswith(tag.group(0)) for s in subjects):
        rest = [subjects[0]] + [s[tag.end() :] for s in subjects[1:]]
    joined = " / ".join(rest)
    return joined if len(joined) <= SUBJECT_WIDTH else subjects[0]


# --- header values from incoming mail -----------------------------------------------------

# Control characters, as `parsing.clean` sees them (TAB included: a value is one line).
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\u0085]")
_ENCODED_WORD = ENCODED_WORD
_word_text = word_text


def safe_text(value: str) -> str:
    """A value safe to set as a header of a message we build: one line, no control
    characters, and no encoded word left that a parser could decode to one (they are
    decoded here, repeatedly, and cleaned; one that still remains is broken up)."""
    text = clean(value)
    for _ in range(4):
        if "=?" not in text:
            return text
        decoded = clean(_ENCODED_WORD.sub(lambda m: _word_text(*m.groups()), text))
        if decoded == text:
            break
        text = decoded
    return text.replace("=?", "= ?")


def encode_words(text: str) -> str:
    """Clean text as an unstructured header value in 7-bit: itself when it is ASCII (and
    holds nothing that reads as an encoded word), else RFC 2047 UTF-8 encoded words."""
    text = safe_text(text)
    if text.isascii():
        return text
    words, chunk = [], ""
    for ch in text:
        if len((chunk + ch).encode()) > 45:  # 60 base64 characters + 12 = 72 per word
            words.append(chunk)
            chunk = ""
        chunk += ch
    words.append(chunk)
    return " ".join(f"=?utf-8?b?{base64.b64encode(w.encode()).decode()}?=" for w in words)


def _neutralise_word(m: re.Match[str]) -> str:
    text = _word_text(*m.groups())
    return m.group(0) if not _CONTROL.search(text) else encode_words(text)


def clean_raw_value(value: str) -> str:
    """A raw (undecoded) header value made safe to write out again: unfolded, control
    characters gone, and any encoded word whose text holds a control character (a CR/LF
    that a reader would turn into a line break) written anew from its cleaned text."""
    text = clean(value)
    if "=?" in text:
        text = _ENCODED_WORD.sub(_neutralise_word, text)
    return text


def fold(name: str, value: str, width: int = 78) -> bytes | None:
    """`Name: value` as header lines (CRLF between them), folded at the value's own spaces
    (lossless: unfolding gives the value back). None if a line would pass 998 octets."""
    lines: list[str] = []
    line = f"{name}:"
    # Each token carries the spaces before it, so every continuation line starts with one.
    for token in re.findall(r" *[^ ]+", " " + value.strip()):
        if len(line) + len(token) > width and not line.endswith(":"):
            lines.append(line)
            line = token
        else:
            line += token
    lines.append(line)
    out = "\r\n".join(lines).encode("utf-8", "surrogateescape")
    if any(len(ln) > 998 for ln in out.split(b"\r\n")):
        return None
    return out


def raw_fields(head: bytes) -> list[tuple[str, str]]:
    """A raw header block as (name, unfolded value) pairs, in order. Lines that are not
    fields (no colon, an mbox `From ` line) are left out; 8-bit bytes are kept."""
    fields: list[list[bytes]] = []
    for line in re.split(rb"\r?\n", head):
        if line[:1] in (b" ", b"\t"):
            if fields:
                fields[-1].append(line)
        elif line:
            fields.append([line])
    out = []
    for lines in fields:
        name, colon, value = b"".join(lines).partition(b":")
        name = name.strip()
        if not colon or not name or not re.fullmatch(rb"[!-9;-~]+", name):
            continue
        out.append((name.decode("ascii"), value.decode("utf-8", "surrogateescape")))
    return out


def clean_fields(fields: list[tuple[str, str]]) -> list[bytes]:
    """Raw header fields kept from incoming mail, cleaned (`clean_raw_value`) and re-folded
    by us, never by the email package. A field that cannot be written safely is dropped."""
    out = []
    for name, value in fields:
        text = clean_raw_value(value)
        if not text:
            continue
        line = fold(name, text)
        if line is not None:
            out.append(line)
    return out


def address(display_name: str, addr: str) -> str:
    """A `Name <addr>` header value, quoted as needed; internationalised addresses allowed
    (the display name is kept with them: `to_bytes` writes such a message as UTF-8)."""
    name, addr = safe_text(display_name), safe_text(addr)
    try:
        return str(Address(display_name=name, addr_spec=addr))
    except (ValueError, IndexError, TypeError):
        pass
    # The email package refuses a non-ASCII local part given as an addr-spec (a "defect"),
    # but takes it in parts.
    local, at, domain = addr.rpartition("@")
    if at and local and domain:
        try:
            return str(Address(display_name=name, username=local, domain=domain))
        except (ValueError, IndexError, TypeError):
            pass
    # An address the parser cannot take apart: keep it bare rather than fail.
    return addr


# An address `plain_address` writes itself: an ASCII dot-atom local part and a host name.
# Anything else (quoted local parts, address literals, internationalised addresses) is
# left to the email package, which knows every form.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_PLAIN_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})*")
# What makes a display name a quoted string (RFC 5322 specials, as the email package has them).
_SPECIALS = frozenset('()<>@,:;."[]\\')


def plain_address(display_name: str, addr: str) -> str | None:
    """`address()` in 7-bit, written without the email package (a forward is built for every
    message, and parsing each header value back was most of its cost): the display name
    cleaned (`safe_text`), quoted when it holds a special, RFC 2047 encoded when it is not
    ASCII. None when `addr` is not a plain ASCII address: then use `address()`."""
    addr = safe_text(addr)
    if not _PLAIN_ADDRESS.fullmatch(addr):
        return None
    name = safe_text(display_name)
    if not name:
        return addr
    if not name.isascii():
        name = encode_words(name)
    elif not _SPECIALS.isdisjoint(name):
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name} <{addr}>"


def header_lines(fields: list[tuple[str, str]]) -> list[bytes] | None:
    """Header fields whose values are final 7-bit text (`plain_address`, `encode_words`, a
    date, a message id), folded (`fold`) into lines. None when a value is not printable
    ASCII or cannot be folded under 998 octets: then build the message with the email
    package. The block is counted again as a receiver reads it (as `to_bytes` does)."""
    lines: list[bytes] = []
    for name, value in fields:
        if not (value.isascii() and value.isprintable()):
            return None
        line = fold(name, value)
        if line is None:
            return None
        lines.append(line)
    if field_count(b"\r\n".join(lines)) != len(fields):
        raise HeaderInjection("a header value broke into more fields than were set")
    return lines


def new_message_id(domain: str) -> str:
    return make_msgid(domain=domain)


def build_message(
    *,
    from_: str,
    to: str | list[str],
    subject: str,
    body: str,
    domain: str,
    now: float,
    headers: dict[str, str] | None = None,
) -> EmailMessage:
    """A text/plain UTF-8 message with Message-ID and Date. `from_`/`to` are full header values
    (use `address()` to build them)."""
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = safe_text(from_)
    msg["To"] = safe_text(", ".join(to) if isinstance(to, list) else to)
    msg["Subject"] = safe_text(subject)
    msg["Date"] = format_datetime(as_datetime(now))
    msg["Message-ID"] = new_message_id(domain)
    for name, value in (headers or {}).items():
        if value:
            msg[name] = safe_text(value)
    msg.set_content(body, charset="utf-8", cte="quoted-printable")
    return msg


class HeaderInjection(ValueError):
    """A header block came out with more fields than the message has (never sent)."""


def field_count(head: bytes) -> int:
    """How many fields a header block holds, read line by line as a receiver reads it."""
    return sum(1 for line in re.split(rb"\r\n|\r|\n", head) if line and line[:1] not in b" \t")


_ADDRESS_FIELDS = frozenset(
    {"from", "to", "cc", "bcc", "reply-to", "sender", "resent-from", "resent-to", "resent-cc"}
    | {"resent-sender", "resent-reply-to", "mail-followup-to", "mail-reply-to"}
)


def has_utf8_address(msg: EmailMessage) -> bool:
    """Does an address field hold an address that is not ASCII (RFC 6532)? Such a message is
    written with UTF-8 headers: the email package would otherwise put an RFC 2047 encoded
    word inside the address, which no one can reply to."""
    for name, value in msg.items():
        if name.lower() in _ADDRESS_FIELDS and not str(value).isascii():
            for a in getattr(value, "addresses", ()):
                if not a.addr_spec.isascii():
                    return True
    return False


def needs_smtputf8(raw: bytes) -> bool:
    """Does a message we send need the SMTPUTF8 extension: UTF-8 in its header block (RFC
    6532: what `to_bytes` writes for an internationalised address, or a post's own UTF-8
    header kept in a list copy)? Legacy 8-bit junk that is not UTF-8 does not count: it went
    out as before (RFC 6531 cannot help it)."""
    end = raw.find(b"\r\n\r\n")
    head = raw[: end if end >= 0 else len(raw)]
    if head.isascii():
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def to_bytes(msg: EmailMessage) -> bytes:
    """Serialise for SMTP: 7-bit headers where possible, UTF-8 headers (RFC 6532, SMTPUTF8)
    when an address cannot be written any other way (an internationalised local part or
    domain): then display names and every other field are raw UTF-8 too, and no encoded word
    is ever written inside an address.

    The header block written is read back line by line: a field more than the message has
    (a line break inside a value) raises HeaderInjection instead of sending it."""
    if has_utf8_address(msg):
        out = msg.as_bytes(policy=policy.SMTPUTF8)
    else:
        try:
            out = msg.as_bytes(policy=policy.SMTP)
        except UnicodeEncodeError:
            out = msg.as_bytes(policy=policy.SMTPUTF8)
    end = out.find(b"\r\n\r\n")
    head = out[: end if end >= 0 else len(out)]
    if field_count(head) != len(msg.keys()):
        raise HeaderInjection("a header value broke into more fields than were set")
    if _EMPTY_FIRST_LINE.search(head):
        out = refold_empty_first_lines(head) + out[len(head) :]
    return out


# A field whose first line holds only its name: the email package writes a value that does
# not fit after the name but fits on a line of its own that way (a 70-78 character
# subject), and mail clients show the line break as a leading space ("Re:  [C-…]").
_EMPTY_FIRST_LINE = re.compile(rb"^[!-9;-~]+:[ \t]*\r\n[ \t]", re.MULTILINE)


def refold_empty_first_lines(head: bytes) -> bytes:
    """A header block with every field whose first line is empty folded again by `fold`
    (the value starts on the name's line); other fields are kept byte for byte."""
    out: list[bytes] = []
    for field in re.split(rb"\r\n(?![ \t])", head):
        if _EMPTY_FIRST_LINE.match(field):
            name, _, value = field.partition(b":")
            text = re.sub(rb"\r\n(?=[ \t])", b"", value).decode("utf-8", "surrogateescape")
            folded = fold(name.decode("ascii"), text)
            if folded is not None:
                field = folded
        out.append(field)
    return b"\r\n".join(out)


# --- loop trace ----------------------------------------------------------------------------


def hops(fields: list[tuple[str, str]]) -> int:
    """How many hops a message has made: its Received lines, or the count the last mailhub
    wrote (X-Mailhub-Hops), whichever is more (a forward drops the Received lines, and a
    list copy keeps them: counting the larger never counts a hop twice)."""
    received = sum(1 for name, _ in fields if name.lower() == "received")
    own = [v.strip() for name, v in fields if name.lower() == HOPS_HEADER.lower()]
    counted = max((int(v) for v in own if v.isdigit() and len(v) < 6), default=0)
    return max(received, counted)


def loop_values(fields: list[tuple[str, str]]) -> list[str]:
    """The incoming X-Loop values, cleaned (each one line, no encoded word), at most
    MAX_LOOP_VALUES of them."""
    out: list[str] = []
    for name, value in fields:
        if name.lower() == "x-loop":
            text = safe_text(value)[:200]
            if text and text.lower() not in (v.lower() for v in out):
                out.append(text)
    return out[:MAX_LOOP_VALUES]


def trace_headers(fields: list[tuple[str, str]], loop_id: str) -> list[tuple[str, str]]:
    """The trace a message caused by the one with these header fields carries: each of its
    X-Loop values, ours, and its hop count plus one."""
    values = [v for v in loop_values(fields) if v.lower() != loop_id.lower()]
    return [("X-Loop", v) for v in [*values, loop_id]] + [(HOPS_HEADER, str(hops(fields) + 1))]


def too_many_hops(fields: list[tuple[str, str]]) -> bool:
    """Would a message caused by this one go past the hop limit? (Then it is a loop.)"""
    return hops(fields) + 1 > MAX_HOPS


def head_fields(raw: bytes) -> list[tuple[str, str]]:
    """The raw header fields of a whole message."""
    return raw_fields(split_raw(raw)[0])


_MIME_HEADERS = {"content-type", "content-transfer-encoding", "mime-version"}


def split_raw(raw: bytes) -> tuple[bytes, bytes]:
    """Split raw mail at the first empty line: (header block, body)."""
    m = re.search(rb"\r?\n\r?\n", raw)
    if not m:
        return raw, b""
    return raw[: m.start()], raw[m.end() :]


def mime_header_lines(raw: bytes) -> list[bytes]:
    """The original's own MIME header fields, cleaned and re-folded (`clean_fields`)."""
    head, _ = split_raw(raw)
    return clean_fields([(n, v) for n, v in raw_fields(head) if n.lower() in _MIME_HEADERS])


def rewrap(
    raw: bytes,
    envelope: EmailMessage,
    *,
    loop_id: str = "",
    received: bool = False,
    fields: list[tuple[str, str]] | None = None,
) -> bytes:
    """Resend the original's body (any MIME, any bytes, untouched) under new headers.

    `envelope` is an EmailMessage with only the headers we want (From, To, Subject,
    Reply-To...). Working on bytes means a malformed original can never fail to
    serialise, and its own headers (but for MIME structure, cleaned) are never carried
    over, except its loop trace: its X-Loop values, and its hop count plus one (with
    `loop_id`, ours is added to the X-Loop values unless the envelope has it already).
    With `received`, its Received lines too (cleaned), first, as a forward's trace: MTAs
    count them against their own hop limit. (Case mail does not carry them: they would
    show a committee member's mail host to a reporter.)
    """
    have = {str(v).strip().lower() for v in envelope.get_all("X-Loop") or []}
    del envelope[HOPS_HEADER]
    head = to_bytes(envelope).split(b"\r\n\r\n", 1)[0]
    lines = [ln for ln in head.split(b"\r\n") if ln]
    return rewrap_lines(
        raw, lines, loop_id=loop_id or next(iter(have), ""), have=have, received=received,
        fields=fields,
    )  # fmt: skip


def rewrap_lines(
    raw: bytes,
    lines: list[bytes],
    *,
    loop_id: str,
    have: set[str] | frozenset[str] = frozenset(),
    received: bool = False,
    fields: list[tuple[str, str]] | None = None,
) -> bytes:
    """`rewrap` with the new header block given as written lines (`header_lines`), which
    hold no X-Loop of ours unless `have` names it."""
    if fields is None:  # the original's header fields, if the caller has not read them
        fields = head_fields(raw)
    lines = list(lines)
    # The trace is written as lines of our own: its values are one cleaned line each
    # (trace_headers), and setting them through EmailMessage would parse each again (a
    # forward is built for every message; this is most of its cost).
    for name, value in trace_headers(fields, loop_id):
        if name == "X-Loop" and (not value or value.lower() in have):
            continue
        if value.isascii() and value.isprintable() and len(value) <= 200:
            lines.append(f"{name}: {value}".encode("ascii"))
    mime = mime_header_lines(raw) or [b"Content-Type: text/plain; charset=utf-8"]
    if not any(m.lower().startswith(b"mime-version") for m in mime):
        mime.insert(0, b"MIME-Version: 1.0")
    trace = clean_fields([f for f in fields if f[0].lower() == "received"]) if received else []
    _, body = split_raw(raw)
    return b"\r\n".join(trace + lines + mime) + b"\r\n\r\n" + body
