"""Building the mail mailhub sends: jinja2 text templates → EmailMessage (policy.SMTP).

Headers are always set through EmailMessage, never by joining strings, and every
value passes through `parsing.clean` first, so nothing from an incoming message
can inject a header into one we send.
"""

from __future__ import annotations

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
from mailhub.parsing import clean

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
            " / ".join(p.subject for p in parts),
            SEPARATOR.join(p.body.rstrip() for p in parts) + "\n",
        )


def address(display_name: str, addr: str) -> str:
    """A `Name <addr>` header value, quoted as needed; internationalised addresses allowed."""
    try:
        return str(Address(display_name=clean(display_name), addr_spec=clean(addr)))
    except (ValueError, IndexError, TypeError):
        # An address the parser cannot take apart: keep it bare rather than fail.
        return clean(addr)


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
    msg["From"] = from_
    msg["To"] = ", ".join(to) if isinstance(to, list) else to
    msg["Subject"] = clean(subject)
    msg["Date"] = format_datetime(as_datetime(now))
    msg["Message-ID"] = new_message_id(domain)
    for name, value in (headers or {}).items():
        if value:
            msg[name] = clean(value)
    msg.set_content(body, charset="utf-8", cte="quoted-printable")
    return msg


def to_bytes(msg: EmailMessage) -> bytes:
    """Serialise for SMTP: 7-bit headers where possible, UTF-8 headers (RFC 6532) only when an
    address cannot be written any other way (an internationalised local part)."""
    try:
        return msg.as_bytes(policy=policy.SMTP)
    except UnicodeEncodeError:
        return msg.as_bytes(policy=policy.SMTPUTF8)


_MIME_HEADERS = {"content-type", "content-transfer-encoding", "mime-version"}


def split_raw(raw: bytes) -> tuple[bytes, bytes]:
    """Split raw mail at the first empty line: (header block, body)."""
    m = re.search(rb"\r?\n\r?\n", raw)
    if not m:
        return raw, b""
    return raw[: m.start()], raw[m.end() :]


def mime_header_lines(raw: bytes) -> list[bytes]:
    """The original's own MIME header fields (with their folded lines), verbatim."""
    head, _ = split_raw(raw)
    fields: list[list[bytes]] = []
    for line in re.split(rb"\r?\n", head):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1].append(line)
        else:
            fields.append([line])
    keep = []
    for lines in fields:
        name = lines[0].split(b":", 1)[0].strip().lower()
        if name.decode("ascii", "replace") in _MIME_HEADERS:
            keep.append(b"\r\n".join(lines))
    return keep


def rewrap(raw: bytes, envelope: EmailMessage) -> bytes:
    """Resend the original's body (any MIME, any bytes, untouched) under new headers.

    `envelope` is an EmailMessage with only the headers we want (From, To, Subject,
    Reply-To...). Working on bytes means a malformed original can never fail to
    serialise, and its own headers (but for MIME structure) are never carried over.
    """
    head = to_bytes(envelope).split(b"\r\n\r\n", 1)[0]
    lines = [ln for ln in head.split(b"\r\n") if ln]
    mime = mime_header_lines(raw) or [b"Content-Type: text/plain; charset=utf-8"]
    if not any(m.lower().startswith(b"mime-version") for m in mime):
        mime.insert(0, b"MIME-Version: 1.0")
    _, body = split_raw(raw)
    return b"\r\n".join(lines + mime) + b"\r\n\r\n" + body
