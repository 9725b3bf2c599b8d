"""The long-running workers' state, for people and monitoring in other processes.

Each worker (processing, delivery, scheduler) keeps its state in memory and writes it
here now and then (`WorkerStatus.flush`: at most once a second when it changes between
working and backing off, otherwise once every HEARTBEAT_SECONDS), never per message.
`mailhub queue` reads it, with the age of the oldest unprocessed and undelivered mail.

A worker that cannot write (the database is locked or the disk is full) cannot record
that either: its heartbeat then grows old, which `mailhub queue` shows as stale.

One row per (node, worker): several nodes may share one database (PostgreSQL).
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from mailhub import logs
from mailhub.clock import Clock
from mailhub.store import Store, Tx

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS workers (
        node TEXT NOT NULL,
        name TEXT NOT NULL,
        state TEXT NOT NULL,
        since REAL NOT NULL,
        heartbeat REAL NOT NULL,
        last_error TEXT,
        last_error_at REAL,
        note TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (node, name)
    )""",
]

RUNNING = "running"
IDLE = "idle"
BACKING_OFF = "backing-off"
STOPPED = "stopped"

# How often a worker writes its heartbeat, and so how old a live worker's can get (plus
# one poll); a heartbeat older than STALE_SECONDS means the worker is stuck or cannot
# write (`mailhub queue` says so).
HEARTBEAT_SECONDS = 5.0
STALE_SECONDS = 30.0
# A change between working and backing off is written at most this often.
MIN_WRITE_SECONDS = 1.0

# Back-off after a database or disk error: doubling from FIRST to at most LAST seconds.
BACKOFF_FIRST = 0.5
BACKOFF_LAST = 30.0


def node_name() -> str:
    return socket.gethostname() or "-"


@dataclass(frozen=True)
class WorkerRow:
    node: str
    name: str
    state: str
    since: float
    heartbeat: float
    last_error: str | None
    last_error_at: float | None
    note: str


async def record(tx: Tx, row: WorkerRow) -> None:
    await tx.execute(
        "INSERT INTO workers (node, name, state, since, heartbeat, last_error, last_error_at,"
        " note) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (node, name) DO UPDATE SET state = excluded.state,"
        " since = excluded.since, heartbeat = excluded.heartbeat,"
        " last_error = excluded.last_error, last_error_at = excluded.last_error_at,"
        " note = excluded.note",
        (
            row.node,
            row.name,
            row.state,
            row.since,
            row.heartbeat,
            row.last_error,
            row.last_error_at,
            row.note,
        ),
    )


async def all_workers(tx: Tx) -> list[WorkerRow]:
    cur = await tx.execute(
        "SELECT node, name, state, since, heartbeat, last_error, last_error_at, note"
        " FROM workers ORDER BY node, name"
    )
    return [WorkerRow(*r) for r in await cur.fetchall()]


async def oldest_queued(tx: Tx) -> tuple[float | None, float | None]:
    """(received_at of the oldest unprocessed inbound message, created_at of the oldest
    outbound message not yet settled), or None where there is none. Both use the
    queues' state indexes, so they stay cheap however much history the tables hold."""
    cur = await tx.execute("SELECT MIN(received_at) FROM inbound WHERE state = 'queued'")
    (inbound,) = await cur.fetchone()
    cur = await tx.execute("SELECT MIN(created_at) FROM outbound WHERE state = 'queued'")
    (outbound,) = await cur.fetchone()
    return inbound, outbound


class Backoff:
    """Bounded exponential back-off: FIRST, 2×FIRST, … at most LAST; reset on success."""

    def __init__(self, first: float = BACKOFF_FIRST, last: float = BACKOFF_LAST) -> None:
        self.first = first
        self.last = last
        self.failures = 0
        self.failing_since: float | None = None

    def failed(self) -> float:
        """Record a failure; the delay before the next try."""
        if self.failures == 0:
            self.failing_since = time.monotonic()
        delay = min(self.first * 2 ** min(self.failures, 16), self.last)
        self.failures += 1
        return delay

    def succeeded(self) -> tuple[int, float] | None:
        """Record a success; (failures, seconds failing) when it ends a run of failures."""
        if not self.failures:
            return None
        ended = (self.failures, time.monotonic() - (self.failing_since or time.monotonic()))
        self.failures = 0
        self.failing_since = None
        return ended


class WorkerStatus:
    """One worker's state: kept in memory, logged on errors, written to the store cheaply.

    Timestamps come from the injected clock (they are compared with the queues' times);
    how often to write is measured on the monotonic clock.
    """

    def __init__(
        self,
        store: Store,
        clock: Clock,
        name: str,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.name = name
        self.on_change = on_change  # told of every change of state (Service.wait_until)
        self.node = node_name()
        self.state = IDLE
        self.since = clock.now()
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.note = ""
        self.backoff = Backoff()
        self._written_at: float | None = None  # monotonic time of the last write attempt
        self._urgent = True  # a change between working and backing off, not yet written

    def set(self, state: str, note: str | None = None) -> None:
        if note is not None and note != self.note:
            self.note = note
            self._urgent = True
        if state == self.state:
            return
        if BACKING_OFF in (state, self.state) or STOPPED in (state, self.state):
            self._urgent = True
        self.state = state
        self.since = self.clock.now()
        self.on_change()

    def noted(self, exc: BaseException) -> None:
        """Remember an error (shown by `mailhub queue`) that the caller logs itself."""
        self.last_error = type(exc).__name__
        self.last_error_at = self.clock.now()

    def failed(self, exc: BaseException, what: str = "") -> float:
        """A database or disk error (or a bug) outside any one message: one log line, the
        state `backing-off`; returns how long to wait before trying again."""
        delay = self.backoff.failed()
        self.noted(exc)
        self.set(BACKING_OFF)
        logs.event(
            "worker",
            logging.ERROR,
            worker=self.name,
            outcome="error",
            error=self.last_error,
            **({"during": what} if what else {}),
            retry_in=f"{delay:g}s",
        )
        logging.getLogger("mailhub").debug("worker error", exc_info=exc)
        return delay

    def succeeded(self, state: str = RUNNING) -> None:
        """Work went through: the end of a back-off is logged once."""
        ended = self.backoff.succeeded()
        if ended is not None:
            failures, seconds = ended
            logs.event(
                "worker",
                worker=self.name,
                outcome="recovered",
                errors=failures,
                after=f"{seconds:.1f}s",
            )
        self.set(state)

    def due(self) -> bool:
        if self._written_at is None:
            return True
        elapsed = time.monotonic() - self._written_at
        return elapsed >= HEARTBEAT_SECONDS or (self._urgent and elapsed >= MIN_WRITE_SECONDS)

    async def flush(self, force: bool = False) -> None:
        """Write the state if it is time (never raises: a failed write is tried again later,
        and a heartbeat that stops is itself the signal)."""
        if not force and not self.due():
            return
        self._written_at = time.monotonic()
        row = WorkerRow(
            self.node,
            self.name,
            self.state,
            self.since,
            self.clock.now(),
            self.last_error,
            self.last_error_at,
            self.note,
        )
        try:
            async with self.store.transaction() as tx:
                await record(tx, row)
        except Exception:  # noqa: BLE001 - the worker's own error handling reports the cause
            logging.getLogger("mailhub").debug("worker state not written", exc_info=True)
            return
        self._urgent = False
