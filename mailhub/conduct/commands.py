"""Email commands in a committee message, one per line: parsing only (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailhub.errors import ConfigError
from mailhub.readers import parse_duration

OUTCOMES = ("no-action", "reprimand", "temporary-ban", "permanent-ban", "other")
USAGE = (
    "#close no-action | reprimand | other | temporary-ban DURATION LIST|all ADDRESS"
    " | permanent-ban LIST|all ADDRESS"
)
# Welsh commands work as well as the English ones: verbs and outcomes.
_VERBS_CY = {
    "ymneilltuo": "recuse",
    "rhannu": "share",
    "cau": "close",
    "ailgynnwys": "readmit",
    "rhyddhau": "release",
}
_OUTCOMES_CY = {
    "dim-camau": "no-action",
    "cerydd": "reprimand",
    "gwaharddiad-dros-dro": "temporary-ban",
    "gwaharddiad-parhaol": "permanent-ban",
    "arall": "other",
}
_ALL_CY = {"y-cyfan": "all", "pob-rhestr": "all"}
# Linear: the verb is anchored at a line start and the rest of the line is taken whole.
_LINE = re.compile(
    r"^[ \t]*#(recuse|share|close|readmit|release|ymneilltuo|rhannu|cau|ailgynnwys|rhyddhau)"
    r"\b([^\n]*)$",
    re.I | re.M,
)


@dataclass(frozen=True)
class Recuse:
    name: str = ""  # empty: the writer steps out; else the member to keep out


@dataclass(frozen=True)
class Release:
    """The fallback reviewer releases what was held back for checking."""


@dataclass(frozen=True)
class Share:
    pass


@dataclass(frozen=True)
class Close:
    outcome: str
    duration: float | None = None  # seconds, for temporary-ban
    scope: str = ""  # a list name or 'all', for bans
    addresses: tuple[str, ...] = ()
    note: str = ""

    @property
    def is_ban(self) -> bool:
        return self.outcome.endswith("-ban")

    def describe(self) -> str:
        parts = [self.outcome]
        if self.duration is not None:
            parts.append(f"{self.duration / 86400:g}d")
        if self.scope:
            parts.append(self.scope)
        parts.extend(self.addresses)
        return " ".join(parts)


@dataclass(frozen=True)
class Readmit:
    name: str


@dataclass(frozen=True)
class Invalid:
    line: str
    problem: str


Command = Recuse | Share | Close | Readmit | Release | Invalid


def parse_commands(text: str) -> list[Command]:
    """Commands on lines of their own; quoted lines (`> #close ...`) never count."""
    out: list[Command] = []
    for m in _LINE.finditer(text):
        verb, args = m.group(1).lower(), m.group(2).strip()
        verb = _VERBS_CY.get(verb, verb)
        line = f"#{verb} {args}".strip()
        if verb == "recuse":
            out.append(Recuse(args[:200]))
        elif verb == "release":
            out.append(Release())
        elif verb == "share":
            out.append(Share())
        elif verb == "readmit":
            out.append(Readmit(args) if args else Invalid(line, "say whom: #readmit NAME"))
        else:
            out.append(parse_close(args, line))
    return out


def parse_close(args: str, line: str = "") -> Close | Invalid:
    line = line or f"#close {args}"
    tokens = [_OUTCOMES_CY.get(t.lower(), _ALL_CY.get(t.lower(), t)) for t in args.split()]
    if not tokens or tokens[0].lower() not in OUTCOMES:
        return Invalid(line, f"the outcome must be one of: {USAGE}")
    outcome = tokens[0].lower()
    rest = tokens[1:]
    if outcome not in ("temporary-ban", "permanent-ban"):
        return Close(outcome, note=" ".join(rest)[:200])
    addresses = tuple(t.strip("<>,;").lower() for t in rest if "@" in t)
    words = [t for t in rest if "@" not in t]
    duration = None
    if outcome == "temporary-ban":
        if not words:
            return Invalid(
                line, "say how long, e.g. #close temporary-ban 7d all person@example.org"
            )
        try:
            duration = parse_duration(words.pop(0), "duration")
        except ConfigError:
            return Invalid(line, "the duration must look like 7d, 2w or 12h")
        if duration <= 0:
            return Invalid(line, "the duration must be more than zero")
    if len(words) != 1:
        return Invalid(line, "say which list the ban is for, or all")
    if not addresses:
        return Invalid(line, "name the address to ban, e.g. ... all person@example.org")
    return Close(outcome, duration, words[0].lower(), addresses)
