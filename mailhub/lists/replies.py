"""What a person wrote in a reply: the readable text of the message (the plain part, or the
HTML part without its quote) and the new lines in it, before any signature or quoted
original. Read from replies to a review (commands) and to a join confirmation (a note
for the facilitators). Pure.
"""

from __future__ import annotations

import re
from email.message import Message

from mailhub.parsing import body_text, html_to_text, part_text

MAX_LINES = 200  # new lines read at most: a reply longer than this is a letter, not commands

_STOP = (
    re.compile(r"^--\s*$"),
    re.compile(r"^-{2,}\s*original message\s*-{2,}", re.IGNORECASE),
    re.compile(r"^_{10,}\s*$"),
    re.compile(r"^on\b.*\bwrote:\s*$", re.IGNORECASE),
    re.compile(r"^ar\b.*\bysgrifennodd\b.*:\s*$", re.IGNORECASE),
    re.compile(r"^from:\s", re.IGNORECASE),
    re.compile(r"^oddi wrth:\s", re.IGNORECASE),
)
_HTML_QUOTE = re.compile(
    r"<blockquote|<hr\b|<div[^>]*(?:gmail_quote|divRplyFwdMsg|moz-cite-prefix|appendonsend)",
    re.IGNORECASE,
)


def new_lines(text: str) -> list[str]:
    """The lines a person wrote: before any signature or quoted original, without `>` lines."""
    out: list[str] = []
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")[: MAX_LINES * 5]:
        # A command or an attribution line is short: reading at most 1,000 characters of
        # a line keeps every pattern below cheap whatever a line holds.
        line = raw[:1000].replace("\u00a0", " ").strip()
        if raw.rstrip("\n") == "-- " or any(p.match(line) for p in _STOP):
            break
        if line.startswith(">") or not line:
            continue
        out.append(line)
    return out[:MAX_LINES]


def strip_html_quote(html: str) -> str:
    """The HTML of a reply up to where the quoted original starts."""
    m = _HTML_QUOTE.search(html)
    return html[: m.start()] if m else html


def reply_text(msg: Message) -> str:
    """The text a facilitator wrote: the plain part, or the HTML part without its quote."""
    plain: Message | None = None
    html: Message | None = None
    try:
        for part in msg.walk():
            if part.is_multipart():
                continue
            disposition = (part.get("Content-Disposition") or "").lower()
            if disposition.startswith("attachment"):
                continue
            ctype = part.get_content_type()
            if ctype == "text/plain" and plain is None:
                plain = part
            elif ctype == "text/html" and html is None:
                html = part
    except Exception:  # noqa: BLE001 - a broken structure: fall back to the general reader
        return body_text(msg)
    if plain is not None:
        return part_text(plain)
    if html is not None:
        try:
            payload = html.get_payload(decode=True) or b""
            charset = html.get_content_charset() or "utf-8"
            source = payload.decode(charset, "replace")
        except (LookupError, UnicodeError, AttributeError):
            return part_text(html)
        return html_to_text(strip_html_quote(source))
    return body_text(msg)
