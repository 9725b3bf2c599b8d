"""Structured log lines: `event key=value ...`, one per thing that happened.

Only ids, addresses, routes, outcomes and sizes are ever passed here: never a
subject or a body. Mail on a conduct route is logged with its queue id, case reference,
counts and outcome only: no sender and no recipients (they would tie the reporter to a
case, or show who was recused), and for a failed item only the exception type.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("mailhub")

# Libraries we use log message content at DEBUG: aiosqlite logs every statement with
# its parameters (raw mail), aiosmtpd every DATA line. Neither may ever reach a log,
# whatever level the root logger is set to, so they are capped here, at import.
for _name in ("aiosqlite", "mail.log", "mail.debug", "aiosmtplib"):
    logging.getLogger(_name).setLevel(logging.WARNING)

# What aiosmtpd's own lines are about, found by the library's constant format text (never
# by what the client sent); anything else is "message".
_LIBRARY_KINDS = (
    ("unrecognised", "unknown-command"),
    ("bogus", "too-many-unknown-commands"),
    ("over limit", "command-over-limit"),
    ("PROXY", "bad-proxy-header"),
    ("AUTH", "auth-aborted"),
    ("exception", "session-error"),
    ("Exception", "session-error"),
)
VERB_CHARS = 16
LIBRARY_LINES_PER_MINUTE = 10


class LibraryLines(logging.Filter):
    """Makes aiosmtpd's log lines safe to keep: no client text, and not too many.

    aiosmtpd logs every unknown command word at WARNING, so any client could write its
    own text into our log, thousands of lines a minute. Each line is replaced by a fixed
    one: what it is about, the client's address, and for a command at most the first
    `VERB_CHARS` printable ASCII characters of its verb (no traceback, no arguments). At
    most `per_minute` lines pass in a minute; the first line after a minute in which some
    were dropped is preceded by one `library suppressed=K` line.
    """

    def __init__(
        self,
        per_minute: int = LIBRARY_LINES_PER_MINUTE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.per_minute = per_minute
        self.clock = clock
        self.reset()

    def reset(self) -> None:
        self.window_ends = float("-inf")
        self.passed = 0
        self.suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "mailhub_summary", False):
            return True
        now = self.clock()
        if now >= self.window_ends:
            suppressed = self.suppressed
            self.window_ends, self.passed, self.suppressed = now + 60.0, 0, 0
            if suppressed:
                text = f"library suppressed={suppressed} per_minute={self.per_minute}"
                summary = logging.LogRecord(
                    record.name, logging.WARNING, __file__, 0, text, (), None
                )
                summary.mailhub_summary = True
                logging.getLogger(record.name).handle(summary)
        if self.passed >= self.per_minute:
            self.suppressed += 1
            return False
        self.passed += 1
        _sanitise(record)
        return True


def _sanitise(record: logging.LogRecord) -> None:
    template = record.msg if isinstance(record.msg, str) else ""
    kind = next((k for word, k in _LIBRARY_KINDS if word in template), "message")
    args = record.args if isinstance(record.args, tuple) else ()
    fields: dict[str, object] = {"about": kind}
    peer = next((a for a in args if isinstance(a, tuple) and a), None)
    if peer is not None:
        fields["peer"] = str(peer[0])
    if kind in ("unknown-command", "command-over-limit"):
        verb = next((a for a in args if isinstance(a, str | bytes)), "")
        if isinstance(verb, bytes):
            verb = verb.decode("ascii", "replace")
        fields["verb"] = "".join(c for c in verb if "!" <= c <= "~")[:VERB_CHARS]
    record.msg = "library " + " ".join(f"{k}={_format(v)}" for k, v in fields.items())
    record.args = ()
    record.exc_info = record.exc_text = record.stack_info = None


LIBRARY_LINES = LibraryLines()
for _name in ("mail.log", "mail.debug"):
    logging.getLogger(_name).addFilter(LIBRARY_LINES)


def _format(value: object) -> str:
    if isinstance(value, list | tuple | set | frozenset):
        value = ",".join(str(v) for v in value)
    text = str(value)
    # Keep one event on one line whatever a value holds.
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    if not text or any(c in text for c in ' "='):
        text = '"' + text.replace('"', "'") + '"'
    return text


def event(name: str, level: int = logging.INFO, **fields: object) -> None:
    if log.isEnabledFor(level):
        log.log(level, "%s %s", name, " ".join(f"{k}={_format(v)}" for k, v in fields.items()))


def setup(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s")
