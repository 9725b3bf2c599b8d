"""The list footer, put into a copy with the least change (pure, on bytes).

A single text part gets the text appended in its own transfer encoding; HTML parts
(text/html, multipart/alternative or related, also first in a multipart/mixed with
attachments) get it inside, escaped, before `</body>`, with their text part; a
multipart/mixed otherwise gets one more text part; anything else (signed, unknown charset)
is wrapped with the footer beside it; encrypted mail is left as it is. Every other byte of
the body is the poster's.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
import secrets
from email import policy
from email.message import EmailMessage, Message

from mailhub.messages import clean_fields, raw_fields, split_raw, to_bytes
from mailhub.parsing import parse, parse_head

FOOTER_RULE = "_______________________________________________"
# Encrypted content cannot take a footer without becoming unreadable.
_UNTOUCHABLE = {"multipart/encrypted", "application/pkcs7-mime", "application/x-pkcs7-mime"}


def _qp(text: str) -> bytes:
    """UTF-8 text as quoted-printable lines ending in CRLF."""
    data = binascii.b2a_qp(text.encode("utf-8"), istext=True)
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _footer_part(text: str) -> bytes:
    return (
        b'Content-Type: text/plain; charset="utf-8"\r\n'
        b"Content-Transfer-Encoding: quoted-printable\r\n"
        b"Content-Disposition: inline\r\n\r\n" + _qp(text.lstrip("\n"))
    )


_MIME = frozenset({"content-type", "content-transfer-encoding", "mime-version"})
# Charsets in which ASCII text appended to the body reads as itself.
_ASCII_COMPATIBLE = re.compile(r"(us-)?ascii|utf-?8|iso-?8859-\d+|windows-125\d|latin-?1|cp125\d")
_NO_CHANGE: tuple[list[bytes] | None, frozenset[str]] = (None, frozenset())


def with_footer(
    msg: Message, raw: bytes, body: bytes, footer: str
) -> tuple[list[bytes] | None, frozenset[str], bytes]:
    """Append the footer where the reader will see it, without breaking the structure, by
    editing bytes: (MIME header lines that replace the original's or None, the names of
    the original fields they replace, the new body).

    A single text/plain part gets the text appended (re-encoded as UTF-8 quoted-printable
    only when its own encoding cannot take it); multipart/mixed gets one more text/plain
    part before its closing delimiter; anything else (HTML only, alternative, signed, an
    attachment) is wrapped in a multipart/mixed with the footer after it, which keeps a
    signature verifiable. Encrypted mail is left as it is.

    A body that cannot be edited in place (a charset no codec knows, a structure the email
    package cannot read) is wrapped the same way: the footer is never dropped.
    """
    if not footer.strip():
        return (*_NO_CHANGE, body)
    text = f"\n{FOOTER_RULE}\n{footer.rstrip()}\n"
    try:
        ctype = msg.get_content_type()
        if ctype in _UNTOUCHABLE:
            return (*_NO_CHANGE, body)
        disposition = str(msg.get("Content-Disposition") or "").strip().lower()
        if ctype == "text/plain" and not disposition.startswith("attachment"):
            return _plain_footer(msg, raw, body, text)
        if ctype == "text/html" and not disposition.startswith("attachment"):
            return (*_NO_CHANGE, _html_footer(msg, body, text))
        inside = _footer_inside(msg, body, text)
        if inside is not None:
            return (*_NO_CHANGE, inside)
        boundary = msg.get_boundary() if ctype == "multipart/mixed" else None
        if boundary:
            delimiter = b"--" + boundary.encode("ascii")
            part = _footer_part(text)
            at = body.rfind(delimiter + b"--")
            if at > 0 and body[at - 1 : at] == b"\n" or at == 0:
                return (*_NO_CHANGE, body[:at] + delimiter + b"\r\n" + part + b"\r\n" + body[at:])
            tail = b"" if body.endswith(b"\n") else b"\r\n"
            return (
                *_NO_CHANGE,
                body + tail + delimiter + b"\r\n" + part + b"\r\n" + delimiter + b"--\r\n",
            )
        return _wrapped(raw, body, text)
    except Exception:  # noqa: BLE001 - a post we cannot edit in place: the footer beside it
        pass
    try:
        return _wrapped(raw, body, text)
    except Exception:  # noqa: BLE001 - not even its header fields read: it goes out as it is
        return (*_NO_CHANGE, body)


# --- the footer inside an HTML post's own parts ----------------------------------------------
# An HTML post (text/html, multipart/alternative, multipart/related, or one of those first in
# a multipart/mixed with attachments) gets the footer inside its text and HTML parts: a part
# of its own after the attachments is shown by Outlook as one more attachment. Only the
# edited parts change; every other byte of the body is the poster's.

_HTML_END = (re.compile(rb"</body\s*>", re.IGNORECASE), re.compile(rb"</html\s*>", re.IGNORECASE))
_HOLDS_BODY = frozenset({"multipart/alternative", "multipart/related"})


class _NotEditable(ValueError):
    """This part cannot take the footer inside it (the caller puts it beside instead)."""


def _html_lines(text: str) -> bytes:
    """The footer as HTML in ASCII (characters past ASCII as references), so it reads the
    same in any ASCII-compatible charset and needs no re-encoding of 7bit or 8bit parts."""
    lines = [html.escape(line) for line in text.strip("\n").split("\n")]
    markup = '\n<hr>\n<div style="font-size:small">\n' + "<br>\n".join(lines[1:]) + "\n</div>\n"
    return markup.encode("ascii", "xmlcharrefreplace").replace(b"\n", b"\r\n")


def _into_html(document: bytes, footer: bytes) -> bytes:
    """The footer before the last </body> (else </html>), else at the end."""
    for end in _HTML_END:
        found = list(end.finditer(document))
        if found:
            at = found[-1].start()
            return document[:at] + footer + document[at:]
    tail = b"" if not document or document.endswith(b"\n") else b"\r\n"
    return document + tail + footer


def _html_footer(msg: Message, body: bytes, text: str) -> bytes:
    """An HTML part's body with the footer in it, in the part's own transfer encoding."""
    charset = (msg.get_content_charset() or "us-ascii").lower()
    if _ASCII_COMPATIBLE.fullmatch(charset) is None:
        raise _NotEditable(f"charset {charset}")
    footer = _html_lines(text)
    cte = str(msg.get("Content-Transfer-Encoding") or "7bit").strip().lower()
    if cte in ("7bit", "8bit", "binary"):
        return _into_html(body, footer)
    if cte == "quoted-printable":
        decoded = binascii.a2b_qp(body).replace(b"\r\n", b"\n")
        new = _into_html(decoded, footer.replace(b"\r\n", b"\n"))
        return binascii.b2a_qp(new, istext=True).replace(b"\n", b"\r\n")
    if cte == "base64":
        new = _into_html(base64.b64decode(body), footer)
        return base64.encodebytes(new).replace(b"\n", b"\r\n")
    raise _NotEditable(f"transfer encoding {cte}")


def _part_spans(body: bytes, boundary: str) -> list[tuple[int, int]]:
    """Where each part of a multipart body starts and ends (its header block and body,
    without the line breaks that belong to the delimiters)."""
    delimiter = re.compile(
        rb"(?:^|\r?\n)--" + re.escape(boundary.encode("ascii")) + rb"(--)?[ \t]*(?:\r?\n|$)"
    )
    spans: list[tuple[int, int]] = []
    start = None
    for m in delimiter.finditer(body):
        if start is not None:
            spans.append((start, m.start()))
        if m.group(1):
            return spans
        start = m.end()
    raise _NotEditable("no closing delimiter")


def _edited_part(part: bytes, text: str) -> bytes:
    """One part (header block and body) with the footer inside it."""
    head, sep, body = re.split(rb"(\r?\n\r?\n)", part, maxsplit=1) if part else (b"", b"", b"")
    if not sep:  # a part with no body (or no header block): nothing to put the footer in
        raise _NotEditable("empty part")
    msg = parse_head(head)
    ctype = msg.get_content_type()
    if str(msg.get("Content-Disposition") or "").strip().lower().startswith("attachment"):
        raise _NotEditable("attachment")
    if ctype == "text/html":
        return head + sep + _html_footer(msg, body, text)
    if ctype == "text/plain":
        mime, replaced, new_body = _plain_footer(msg, part, body, text)
        if mime is None:
            return head + sep + new_body
        if any(line.lower().startswith(b"content-type: multipart/") for line in mime):
            raise _NotEditable("text that cannot be decoded")
        own = clean_fields([(n, v) for n, v in raw_fields(head) if n.lower() not in replaced])
        new_head = own + [ln for ln in mime if not ln.lower().startswith(b"mime-version")]
        return b"\r\n".join(new_head) + b"\r\n\r\n" + new_body
    return head + sep + _footer_in_multipart(msg, body, text)


def _footer_in_multipart(msg: Message, body: bytes, text: str) -> bytes:
    """multipart/alternative: the footer in each text and HTML part; multipart/related (an
    HTML page with its images): in its first part, the page."""
    ctype = msg.get_content_type()
    boundary = msg.get_boundary()
    if ctype not in _HOLDS_BODY or not boundary:
        raise _NotEditable(ctype)
    spans = _part_spans(body, boundary)
    if ctype == "multipart/related":
        spans = spans[:1]
    out, at, edited = [], 0, 0
    for start, end in spans:
        try:
            new = _edited_part(body[start:end], text)
        except _NotEditable:
            continue
        out += [body[at:start], new]
        at, edited = end, edited + 1
    if not edited:
        raise _NotEditable("no text or HTML part")
    return b"".join([*out, body[at:]])


def _footer_inside(msg: Message, body: bytes, text: str) -> bytes | None:
    """The body with the footer inside an HTML post's parts, or None when it is not one
    (plain text with attachments keeps the footer as a part of its own: it shows as text)."""
    ctype = msg.get_content_type()
    boundary = msg.get_boundary()
    if not boundary:
        return None
    try:
        if ctype in _HOLDS_BODY:
            return _footer_in_multipart(msg, body, text)
        if ctype == "multipart/mixed":
            spans = _part_spans(body, boundary)
            if not spans:
                return None
            start, end = spans[0]
            first = parse_head(re.split(rb"\r?\n\r?\n", body[start:end], maxsplit=1)[0])
            if first.get_content_type() not in _HOLDS_BODY | {"text/html"}:
                return None
            return body[:start] + _edited_part(body[start:end], text) + body[end:]
    except (_NotEditable, ValueError, LookupError, binascii.Error):
        return None
    return None


def _plain_footer(
    msg: Message, raw: bytes, body: bytes, text: str
) -> tuple[list[bytes] | None, frozenset[str], bytes]:
    cte = str(msg.get("Content-Transfer-Encoding") or "7bit").strip().lower()
    charset = (msg.get_content_charset() or "us-ascii").lower()
    fits = charset in ("utf-8", "utf8") or (
        text.isascii() and _ASCII_COMPATIBLE.fullmatch(charset) is not None
    )
    tail = b"" if not body or body.endswith(b"\n") else b"\r\n"
    if fits and (cte == "8bit" or (cte == "7bit" and text.isascii())):
        return (*_NO_CHANGE, body + tail + text.replace("\n", "\r\n").encode("utf-8"))
    if fits and cte == "quoted-printable":
        return (*_NO_CHANGE, body + tail + _qp(text))
    # base64, another charset, or 8-bit text under 7bit: decode, append, re-encode. A
    # charset that cannot be decoded (unknown, or bytes not in it) is not guessed at: the
    # body is kept as it is and the footer goes beside it (`_wrapped`).
    try:
        content = _strict_text(parse(raw), charset)
    except (LookupError, UnicodeError, ValueError, TypeError, AttributeError):
        return _wrapped(raw, body, text)
    new = EmailMessage(policy=policy.SMTP)
    new.set_content(
        content + ("" if content.endswith("\n") else "\n") + text,
        charset="utf-8",
        cte="quoted-printable",
    )
    head, new_body = split_raw(to_bytes(new))
    lines = [ln for ln in head.split(b"\r\n") if ln]
    return lines, _MIME, new_body


def _strict_text(part: Message, charset: str) -> str:
    """The text of a single part, its transfer encoding undone, decoded strictly."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        raise ValueError("no payload")
    return payload.decode(charset if charset != "us-ascii" else "ascii", "strict")


def _wrapped(
    raw: bytes, body: bytes, text: str
) -> tuple[list[bytes] | None, frozenset[str], bytes]:
    boundary = f"mailhub-{secrets.token_hex(12)}".encode()
    delimiter = b"--" + boundary
    content = [(n, v) for n, v in raw_fields(split_raw(raw)[0]) if n.lower().startswith("content-")]
    part_head = b"".join(line + b"\r\n" for line in clean_fields(content))
    new_body = (
        delimiter
        + b"\r\n"
        + part_head
        + b"\r\n"
        + body
        + b"\r\n"
        + delimiter
        + b"\r\n"
        + _footer_part(text)
        + b"\r\n"
        + delimiter
        + b"--\r\n"
    )
    mime = [b"MIME-Version: 1.0", b'Content-Type: multipart/mixed; boundary="' + boundary + b'"']
    drop = frozenset({"mime-version"} | {n.lower() for n, _ in content})
    return mime, drop, new_body
