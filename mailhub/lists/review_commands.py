"""Reading a facilitator's reply to a review: lines such as `approve 1 3`,
`reject 2 not a public-sector employee`, `approve all`, `discard 4`, `accept 4`.

`parse_reply` is pure. Only the new text of a reply counts (mailhub.lists.replies):
quoted lines, what follows a signature or a client's "On ... wrote:" line, and the quoted
part of an HTML-only reply are ignored, so a review quoted back can never act by itself.
Welsh verbs are understood too, for lists run in Welsh.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailhub.lists.replies import new_lines

APPROVE = "approve"
REJECT = "reject"
ACCEPT = "accept"
DISCARD = "discard"

VERBS = {
    "approve": APPROVE,
    "reject": REJECT,
    "accept": ACCEPT,
    "discard": DISCARD,
    # Welsh: cymeradwyo (approve), gwrthod (reject), derbyn (accept), taflu (discard).
    "cymeradwyo": APPROVE,
    "gwrthod": REJECT,
    "derbyn": ACCEPT,
    "taflu": DISCARD,
}
ALL_WORDS = {"all", "pob", "popeth"}
MAX_RANGE = 500  # `approve 1-100000` is a mistake, not a request


_TARGET = re.compile(r"#?(\d{1,6})(?:[ \t]*-[ \t]*#?(\d{1,6}))?")
# The run of numbers after a command word: digits, `#`, ranges, and the separators people
# write between them (spaces, commas, "&", "and", Welsh "a"/"ac"). Each step consumes at
# least one character and the branches start differently, so matching is linear: no
# nested repetition that could backtrack (`approve 111…1x` once took exponential time).
_NUMBERS = re.compile(r"(?:[\s,&#0-9-]|(?:and|ac|a)(?=\s))+", re.IGNORECASE)
_LONG_NUMBER = re.compile(r"\d{7}")


@dataclass(frozen=True)
class Command:
    verb: str  # approve | reject | accept | discard
    numbers: tuple[int, ...]  # the entry numbers, in the order written; () when `all`
    all: bool
    reason: str
    line: str


@dataclass(frozen=True)
class ParsedReply:
    commands: tuple[Command, ...]
    problems: tuple[str, ...]  # lines that start with a command word but could not be read


def _targets(rest: str) -> tuple[list[int], bool, str, str | None]:
    """Numbers (or `all`) at the start of `rest`; then the remaining text; or a problem."""
    words = rest.split(None, 1)
    if words and words[0].lower().strip(".:;,") in ALL_WORDS:
        return [], True, words[1] if len(words) > 1 else "", None
    m = _NUMBERS.match(rest)
    last_digit = max((i for i in range(m.end()) if rest[i].isdigit()), default=-1) if m else -1
    if last_digit < 0:
        return [], False, "", "no entry number after the command word"
    end = last_digit + 1
    written = rest[:end]
    if end < len(rest) and (rest[end].isalnum() or rest[end] in "_-"):
        return [], False, "", "no entry number after the command word"
    if _LONG_NUMBER.search(written):
        return [], False, "", "no entry has a number that long"
    numbers: list[int] = []
    for t in _TARGET.finditer(written):
        first = int(t.group(1))
        last = int(t.group(2)) if t.group(2) else first
        if last < first or last - first >= MAX_RANGE:
            return [], False, "", f"the range {first}-{last} is not one I can act on"
        numbers.extend(range(first, last + 1))
    return numbers, False, rest[end:], None


def parse_line(line: str) -> Command | str | None:
    """A command, a problem (str), or None when the line is not a command at all."""
    first, _, rest = line.partition(" ")
    verb = VERBS.get(first.lower().rstrip(":"))
    if verb is None:
        return None
    numbers, is_all, remainder, problem = _targets(rest)
    if problem:
        return problem
    reason = remainder.strip().lstrip(":-–—,.;").strip()
    if verb in (APPROVE, ACCEPT) and re.search(r"\d", reason):
        # `approve 1 or 2`: numbers we could not read; acting on part of it would surprise.
        return "could not tell which entries were meant"
    return Command(
        verb,
        tuple(dict.fromkeys(numbers)),
        is_all,
        reason[:500] if verb in (REJECT, DISCARD) else "",
        line[:200],
    )


def parse_reply(text: str) -> ParsedReply:
    commands: list[Command] = []
    problems: list[str] = []
    for line in new_lines(text):
        result = parse_line(line)
        if isinstance(result, Command):
            commands.append(result)
        elif isinstance(result, str):
            problems.append(f'"{line[:80]}": {result}')
    return ParsedReply(tuple(commands), tuple(problems))
