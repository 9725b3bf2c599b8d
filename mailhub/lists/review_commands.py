"""Reading a facilitator's reply to a review: lines such as `approve 1 3`,
`reject 2 not a public-sector employee`, `approve all`, `discard 4`, `accept 4`, and
their Welsh forms (`cymeradwyo 1 3`, `gwrthod 2 …`, `cymeradwyo'r cyfan`, `derbyn pob un`).

`parse_reply` is pure. Only the new text of a reply counts (mailhub.lists.replies):
quoted lines, what follows a signature or a client's "On ... wrote:" line, and the quoted
part of an HTML-only reply are ignored, so a review quoted back can never act by itself.

A line that looks like a command but is not one ("aprove 1") is never acted on: it comes
back as a Problem that quotes it and suggests the closest command, in each language.
"""

from __future__ import annotations

import difflib
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
# The word each language's mail suggests for a verb.
WORDS = {
    "en": {APPROVE: "approve", REJECT: "reject", ACCEPT: "accept", DISCARD: "discard"},
    "cy": {APPROVE: "cymeradwyo", REJECT: "gwrthod", ACCEPT: "derbyn", DISCARD: "taflu"},
}
# "all", one word or two. Welsh says it with a noun or a pronoun: "y cyfan", "y cwbl",
# "pob un", "pawb" (people); "cymeradwyo'r cyfan" is read as "cymeradwyo y cyfan".
# "pob" alone was what older reviews taught, so it still works.
ALL_WORDS = {"all", "everything", "pob", "popeth", "pawb", "cyfan", "cwbl"}
ALL_PHRASES = {("y", "cyfan"), ("y", "cwbl"), ("pob", "un"), ("the", "lot")}
MAX_RANGE = 500  # `approve 1-100000` is a mistake, not a request
# How alike a mistyped word must be to a command word before we suggest it: "aprove"
# and "cymeradwyio" pass, "approval" followed by prose never reaches here (no number).
SUGGEST_CUTOFF = 0.75
MAX_PROBLEMS = 20  # lines quoted back at most: the answer stays readable
SUGGESTION_WIDTH = 44  # "    Oeddech chi'n golygu: " + 44 + "?" fits in 72

# Why a line was not acted on (each template says it in its own language).
NO_NUMBER = "no-number"
TOO_LONG = "too-long"
RANGE = "range"
UNCLEAR = "unclear"
UNKNOWN = "unknown"


_TARGET = re.compile(r"#?(\d{1,6})(?:[ \t]*-[ \t]*#?(\d{1,6}))?")
# The run of numbers after a command word: digits, `#`, ranges, and the separators people
# write between them (spaces, commas, "&", "and", Welsh "a"/"ac"). Each step consumes at
# least one character and the branches start differently, so matching is linear: no
# nested repetition that could backtrack (`approve 111…1x` once took exponential time).
_NUMBERS = re.compile(r"(?:[\s,&#0-9-]|(?:and|ac|a)(?=\s))+", re.IGNORECASE)
_LONG_NUMBER = re.compile(r"\d{7}")
_ELIDED_ARTICLE = ("'r", "\u2019r")  # cymeradwyo'r (cyfan): the verb with "y" elided


@dataclass(frozen=True)
class Command:
    verb: str  # approve | reject | accept | discard
    numbers: tuple[int, ...]  # the entry numbers, in the order written; () when `all`
    all: bool
    reason: str
    line: str


@dataclass(frozen=True)
class Problem:
    """A line that looked like a command and was not acted on: quoted back to the
    facilitator with why, and (for a mistyped command word) the line they meant."""

    line: str  # as written, at most 80 characters
    code: str  # NO_NUMBER | TOO_LONG | RANGE | UNCLEAR | UNKNOWN
    detail: str = ""  # the range, for RANGE
    suggest_en: str = ""  # "approve 1", for UNKNOWN
    suggest_cy: str = ""  # "cymeradwyo 1"

    def suggestion(self, language: str) -> str:
        return self.suggest_cy if language == "cy" else self.suggest_en


@dataclass(frozen=True)
class ParsedReply:
    commands: tuple[Command, ...]
    problems: tuple[Problem, ...]  # lines that look like commands but could not be acted on


@dataclass(frozen=True)
class _Targets:
    numbers: list[int]
    all: bool
    written: str  # the numbers as written ("1, 3"), "" for all
    remainder: str


def _all_phrase(rest: str) -> str | None:
    """What follows an "all" word or phrase at the start of `rest`, or None."""
    words = rest.split(None, 2)
    lowered = [w.lower().strip(".:;,!") for w in words]
    if len(lowered) >= 2 and (lowered[0], lowered[1]) in ALL_PHRASES:
        return words[2] if len(words) > 2 else ""
    if lowered and lowered[0] in ALL_WORDS:
        return rest.split(None, 1)[1] if len(words) > 1 else ""
    return None


def _targets(rest: str) -> _Targets | Problem:
    """Numbers (or `all`) at the start of `rest`, and the text after them; or a problem
    (its `line` is filled in by the caller)."""
    after_all = _all_phrase(rest)
    if after_all is not None:
        return _Targets([], True, "", after_all)
    m = _NUMBERS.match(rest)
    last_digit = max((i for i in range(m.end()) if rest[i].isdigit()), default=-1) if m else -1
    if last_digit < 0:
        return Problem("", NO_NUMBER)
    end = last_digit + 1
    written = rest[:end]
    if end < len(rest) and (rest[end].isalnum() or rest[end] in "_-"):
        return Problem("", NO_NUMBER)
    if _LONG_NUMBER.search(written):
        return Problem("", TOO_LONG)
    numbers: list[int] = []
    for t in _TARGET.finditer(written):
        first = int(t.group(1))
        last = int(t.group(2)) if t.group(2) else first
        if last < first or last - first >= MAX_RANGE:
            return Problem("", RANGE, f"{first}-{last}")
        numbers.extend(range(first, last + 1))
    return _Targets(numbers, False, written.strip(), rest[end:])


def _split(line: str) -> tuple[str, str]:
    """The first word (lower case, "cymeradwyo'r" as "cymeradwyo") and the rest."""
    first, _, rest = line.partition(" ")
    word = first.lower().rstrip(":")
    for article in _ELIDED_ARTICLE:
        if word.endswith(article) and len(word) > len(article):
            return word[: -len(article)], "y " + rest
    return word, rest


def _reason(remainder: str) -> str:
    return remainder.strip().lstrip(":-–—,.;").strip()


def all_words(verb: str, language: str) -> str:
    """ "approve all" / "cymeradwyo'r cyfan", "gwrthod y cyfan"."""
    word = WORDS[language][verb]
    if language == "cy":
        return word + ("'r cyfan" if word[-1] in "aeiouwy" else " y cyfan")
    return f"{word} all"


def suggestion(verb: str, targets: _Targets, language: str) -> str:
    """The line a facilitator meant, in one language: "approve 1", "gwrthod 2 reason"."""
    head = (
        all_words(verb, language) if targets.all else f"{WORDS[language][verb]} {targets.written}"
    )
    reason = _reason(targets.remainder) if verb in (REJECT, DISCARD) else ""
    line = f"{head} {reason}".strip()
    # Shown after "Did you mean: " on a line of its own, which must fit in 72 characters
    # and never wrap (a wrapped piece could start with a command word).
    return line if len(line) <= SUGGESTION_WIDTH else line[: SUGGESTION_WIDTH - 2] + " …"


def closest_verb(word: str) -> str | None:
    """The command word (either language) closest to a mistyped one, if any is close."""
    close = difflib.get_close_matches(word, list(VERBS), n=1, cutoff=SUGGEST_CUTOFF)
    return VERBS[close[0]] if close else None


def parse_line(line: str) -> Command | Problem | None:
    """A command, a problem, or None when the line is not a command at all."""
    word, rest = _split(line)
    quoted = line[:80]
    verb = VERBS.get(word)
    if verb is None:
        # "aprove 1": a command word mistyped before entry numbers. Never acted on, but
        # quoted back with what was probably meant. Prose ("approval pending") has no
        # numbers after its first word, so it is left alone.
        guess = closest_verb(word) if 2 < len(word) <= 20 else None
        targets = _targets(rest) if guess else None
        if guess is None or not isinstance(targets, _Targets):
            return None
        return Problem(
            quoted,
            UNKNOWN,
            suggest_en=suggestion(guess, targets, "en"),
            suggest_cy=suggestion(guess, targets, "cy"),
        )
    targets = _targets(rest)
    if isinstance(targets, Problem):
        return Problem(quoted, targets.code, targets.detail)
    reason = _reason(targets.remainder)
    if verb in (APPROVE, ACCEPT) and re.search(r"\d", reason):
        # `approve 1 or 2`: numbers we could not read; acting on part of it would surprise.
        return Problem(quoted, UNCLEAR)
    return Command(
        verb,
        tuple(dict.fromkeys(targets.numbers)),
        targets.all,
        reason[:500] if verb in (REJECT, DISCARD) else "",
        line[:200],
    )


def parse_reply(text: str) -> ParsedReply:
    commands: list[Command] = []
    problems: list[Problem] = []
    for line in new_lines(text):
        result = parse_line(line)
        if isinstance(result, Command):
            commands.append(result)
        elif isinstance(result, Problem) and len(problems) < MAX_PROBLEMS:
            problems.append(result)
    return ParsedReply(tuple(commands), tuple(problems))
