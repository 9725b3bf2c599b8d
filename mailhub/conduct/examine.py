"""Reading one message of a case, in the content worker process (pure: bytes in, data out).

`examine_raw` and `readable_copy` run in `mailhub.content`'s worker with a time budget,
so they take and return plain, picklable values and touch no database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailhub.conduct.cases import REF_PATTERN
from mailhub.conduct.config import CommitteeMember
from mailhub.conduct.conflicts import NamedMatch, match_texts
from mailhub.conduct.reading import scan_bytes, withhold
from mailhub.parsing import body_text, header, parse

# Text read from one message, at most: past it the scan is over budget and fails closed.
MAX_TEXT_CHARS = 5_000_000
# Where a committee member's own words end and the quoted earlier message begins.
_QUOTE_START = re.compile(
    r"(?im)^[ \t]*(?:-{2,}[ \t]*original message[ \t]*-{2,}|-{2,}[ \t]*neges wreiddiol[ \t]*-{2,}"
    r"|(?:on|ar)\b[^\n]{0,300}\b(?:wrote|ysgrifennodd)\b[^\n]{0,200}:[ \t]*$"
    r"|from:[^\n]{0,300}$(?=\n[ \t]*(?:sent|date|anfonwyd)[ \t]*:))"
)


@dataclass(frozen=True)
class Examination:
    matches: tuple[NamedMatch, ...]
    unscannable: tuple[str, ...]  # what could not be read
    over_budget: bool  # could not be read within the budget: fail closed
    refs: tuple[str, ...]  # case references the message cites
    held: tuple[str, ...] = ()  # the parts to hold back, as "name (type)"

    @classmethod
    def failed(cls) -> Examination:
        whole = ("the whole message (not checked within the time budget)",)
        return cls((), whole, True, (), whole)


def own_words(text: str) -> str:
    """A reply without what it quotes: lines starting with `>` and everything from an
    attribution line ("On ... wrote:", "-----Original Message-----") on."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    m = _QUOTE_START.search(text)
    if m:
        text = text[: m.start()]
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(">"))


def examine_raw(
    raw: bytes, committee: tuple[CommitteeMember, ...], committee_mail: bool = False
) -> Examination:
    """Who a message names and what could not be read.

    Committee mail is read for names in the writer's own words only: the quoted earlier
    messages carry other members' names in attribution lines ("On Monday, Bryn Hughes
    (case …) wrote:"), which must not recuse them.
    """
    result = scan_bytes(raw, max_chars=MAX_TEXT_CHARS)
    texts = list(result.texts)
    refs = tuple(sorted({r.upper() for t in texts for r in REF_PATTERN.findall(t)}))
    if result.over_budget or sum(len(t) for t in texts) > MAX_TEXT_CHARS:
        whole = ("the whole message (too much to check)",)
        return Examination((), whole, True, refs, whole)
    if committee_mail:
        msg = parse(raw)
        texts = [header(msg, "subject"), own_words(body_text(msg, attachments=True))]
    matches = tuple(match_texts(texts, committee))
    held = readable_copy(raw)[1] if result.unscannable else ()
    return Examination(matches, tuple(result.unscannable), False, refs, held)


def readable_copy(raw: bytes) -> tuple[bytes | None, tuple[str, ...]]:
    """The message with every part that could not be read replaced by a note."""
    withheld = withhold(raw)
    return withheld.raw, tuple(_describe(h) for h in withheld.held)


def _describe(part: object) -> str:
    name = getattr(part, "filename", "") or "(no name)"
    ctype = getattr(part, "content_type", "") or "application/octet-stream"
    return f"{name} ({ctype})"
