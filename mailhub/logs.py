"""Structured log lines: `event key=value ...`, one per thing that happened.

Only ids, addresses, routes, outcomes and sizes are ever passed here: never a
subject or a body. Mail on a conduct route is logged with its queue id, case reference,
counts and outcome only: no sender and no recipients (they would tie the reporter to a
case, or show who was recused), and for a failed item only the exception type.
"""

from __future__ import annotations

import logging

log = logging.getLogger("mailhub")

# Libraries we use log message content at DEBUG: aiosqlite logs every statement with
# its parameters (raw mail), aiosmtpd every DATA line. Neither may ever reach a log,
# whatever level the root logger is set to, so they are capped here, at import.
for _name in ("aiosqlite", "mail.log", "aiosmtplib"):
    logging.getLogger(_name).setLevel(logging.WARNING)


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
