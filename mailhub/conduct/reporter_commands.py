"""What a reporter may ask in a reply before their report is sent on: parsing only (pure).

While a new report waits for its release window, the reporter can answer the acknowledgement
with, each on a line of its own (any case, leading spaces and a final full stop allowed):

    exclude NAME[, NAME and NAME]    eithrio ENW[, ENW a/ac ENW]     keep members out
    send now / send it now           anfon nawr / anfon yn awr       send it at once

Only the reporter's own new text counts: quoted lines (`> ...`) never do, and nothing after a
signature separator (`-- `), a mail client's attribution line ("On ... wrote:",
"Ar ... ysgrifennodd:") or a forwarded/original-message separator. Whether the reply came
through the reporter's own reply address, and from their address, is for the caller to check;
so is turning an HTML-only reply into text.

This runs on untrusted text: it works line by line with string methods only (no regular
expression that could backtrack), so its time is linear in the length of the text.
"""

from __future__ import annotations

from dataclasses import dataclass

# A command line is short; anything longer is prose (and is not looked at further).
MAX_COMMAND_LINE = 500
# A name longer than this is not a committee member's name.
MAX_NAME = 100

_EXCLUDE = frozenset({"exclude", "eithrio", "eithriwch"})
_SEND_NOW = frozenset(
    {
        "send now",
        "send it now",
        "anfon nawr",
        "anfon yn awr",
        "anfon e nawr",
        "anfon o nawr",
        "anfonwch nawr",
        "anfonwch yn awr",
        "anfonwch e nawr",
        "anfonwch o nawr",
    }
)
# Words that join names, in lower case: "Ada and Bryn", "Ada a Bryn", "Ada ac Elin".
_JOINERS = frozenset({"and", "a", "ac"})
_QUOTES = "\"'“”‘’«»<>"
# Lines after which the rest is someone else's text (lower case, stripped).
_SEPARATORS = frozenset(
    {
        "--",
        "-----original message-----",
        "-----neges wreiddiol-----",
        "---------- forwarded message ---------",
        "---------- neges a anfonwyd ymlaen ---------",
    }
)
_ATTRIBUTION_PREFIXES = ("on ", "ar ")
_ATTRIBUTION_ENDS = ("wrote:", "ysgrifennodd:")


@dataclass(frozen=True)
class Exclude:
    """Keep this committee member out of the report (the name as the reporter wrote it)."""

    name: str


@dataclass(frozen=True)
class SendNow:
    """Send the report to the committee at once, without waiting for the release time."""


ReporterCommand = Exclude | SendNow


def parse_reporter_commands(text: str) -> list[ReporterCommand]:
    """The reporter's commands in `text`, in order; each name excluded once, at most one SendNow."""
    out: list[ReporterCommand] = []
    seen: set[str] = set()
    send_now = False
    previous = ""
    for raw in text.splitlines():
        line = raw.strip()
        if _ends_own_text(line, previous):
            break
        if line:
            previous = line
        if not line or line.startswith(">") or len(line) > MAX_COMMAND_LINE:
            continue
        if line.endswith("."):
            line = line[:-1].rstrip()
        words = line.split()
        if not words:
            continue
        verb = words[0].lower().rstrip(":")
        if verb in _EXCLUDE:
            for name in _names(line[len(words[0]) :]):
                if name.casefold() not in seen:
                    seen.add(name.casefold())
                    out.append(Exclude(name))
        elif not send_now and " ".join(w.lower() for w in words) in _SEND_NOW:
            send_now = True
            out.append(SendNow())
    return out


def _ends_own_text(line: str, previous: str) -> bool:
    """A signature separator (`-- `, often sent without its space), a forwarded or original
    message's separator, or a mail client's attribution line, possibly wrapped over two lines
    ("On Mon, 1 Jun 2026, Ada Jones <" / "ada@example.org> wrote:")."""
    low = line.lower()
    if low in _SEPARATORS or (len(low) >= 10 and not low.strip("_")):
        return True
    if low.startswith(">") or not low.replace(" :", ":").endswith(_ATTRIBUTION_ENDS):
        return False
    return low.startswith(_ATTRIBUTION_PREFIXES) or previous.lower().startswith(
        _ATTRIBUTION_PREFIXES
    )


def _names(rest: str) -> list[str]:
    """`Ada Jones, Bryn and Cai` → ["Ada Jones", "Bryn", "Cai"]; Welsh `a`/`ac` join too.

    The joining words count only in lower case, so an initial ("A Jones") stays a name."""
    names: list[str] = []
    for chunk in rest.replace(";", ",").split(","):
        current: list[str] = []
        for word in chunk.split():
            if word in _JOINERS:
                names.append(" ".join(current))
                current = []
            else:
                current.append(word)
        names.append(" ".join(current))
    out = []
    for name in names:
        name = name.strip(_QUOTES + ": \t")
        if name and len(name) <= MAX_NAME:
            out.append(name)
    return out
