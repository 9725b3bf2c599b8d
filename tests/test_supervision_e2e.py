"""The workers survive a database they cannot write to, and say so.

Another connection holds SQLite's write lock (`BEGIN IMMEDIATE`, as a backup or a CLI
command would) for longer than `busy_timeout` (1 s here) while mail arrives and while the
processor and delivery work. Everything accepted is processed and delivered exactly once,
the workers log their errors and their recovery, and `mailhub queue` (another process's
view: the CLI over the same file) shows each worker and the oldest queued mail.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from pathlib import Path

import aiosmtplib
import pytest

from mailhub.apps import load_config
from mailhub.cli import main
from mailhub.clock import ManualClock
from mailhub.service import Service
from tests.support.hub import BASE_CONFIG, DOMAIN, Hub
from tests.support.sink import Sink

HOLD_SECONDS = 2.5  # longer than busy_timeout: every write meanwhile fails


@asynccontextmanager
async def supervised_hub(
    tmp_path: Path, sink: Sink | None = None, *, scheduler: bool = False
) -> AsyncIterator[Hub]:
    """The test hub's config with `[storage] busy_timeout = "1s"`, a `health` line every
    half second and, with `scheduler`, the scheduler ticking every 0.2 s."""
    if sink is None:
        sink = Sink()
    await sink.start()
    db = tmp_path / "mailhub.db"
    text = BASE_CONFIG.format(
        db=db,
        sink_port=sink.port,
        lmtp="false",
        language="en",
        max_connections=50,
        max_message_bytes=200000,
    ).replace(f'path = "{db}"\n', f'path = "{db}"\nbusy_timeout = "1s"\n')
    path = tmp_path / "mailhub.toml"
    path.write_text(text)
    config = load_config(path)
    assert config.storage.busy_timeout == 1.0
    clock = ManualClock()
    service = Service(
        config, clock, run_scheduler=scheduler, scheduler_tick=0.2, health_seconds=0.5
    )
    await service.start()
    try:
        yield Hub(service, sink, clock, path)
    finally:
        await service.stop()
        await sink.stop()


class WriteLock:
    """SQLite's write lock on the hub's file, held from another connection."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.conn: sqlite3.Connection | None = None
        self.released = asyncio.Event()

    async def take(self) -> None:
        def begin() -> sqlite3.Connection:
            conn = sqlite3.connect(self.db, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=5000")  # the service may be mid-commit
            conn.execute("BEGIN IMMEDIATE")
            return conn

        self.conn = await asyncio.to_thread(begin)

    async def hold(
        self, seconds: float = HOLD_SECONDS, until: Awaitable[None] | None = None
    ) -> None:
        """Hold the lock for `seconds` (the point is a lock held for a while, so this wait
        is a duration, not an event) and until `until` has happened, then release it."""
        try:
            await asyncio.gather(asyncio.sleep(seconds), *([until] if until else []))
        finally:
            self.release()

    def release(self) -> None:
        if self.conn is not None:
            self.conn.rollback()
            self.conn.close()
            self.conn = None
        self.released.set()


def numbered(n: int, sender: str = "sam@example.net") -> bytes:
    return (
        f"From: {sender}\r\nTo: enquiries@{DOMAIN}\r\nSubject: enquiry {n}\r\n"
        f"Message-ID: <enq-{n}@example.net>\r\n\r\nenquiry {n}\r\n"
    ).encode()


async def send_until_accepted(hub: Hub, n: int, accepted: set[int]) -> None:
    """Send message n the way an MTA would: a 4xx is tried again (after a pause)."""
    sender = f"sender{n}@example.net"
    for _ in range(40):
        code, _ = await hub.send(sender, [f"enquiries@{DOMAIN}"], numbered(n, sender))
        if code == 250:
            accepted.add(n)
            return
        assert 400 <= code < 500, code
        await asyncio.sleep(0.1)  # an MTA's retry interval: there is no event to wait on
    raise AssertionError(f"message {n} was never accepted")


_ENQUIRY = re.compile(rb"^Subject: (?:Fwd: |Re: )?.*enquiry (\d+)", re.MULTILINE)


def forwards(sink: Sink) -> Counter[int]:
    """How many copies of each numbered enquiry reached the handler."""
    seen: Counter[int] = Counter()
    for r in sink.to("helper@example.net"):
        m = _ENQUIRY.search(r.raw)
        if m:
            seen[int(m.group(1))] += 1
    return seen


def copies(sink: Sink) -> Counter[tuple[str, str]]:
    """(recipient, Message-ID) of everything the sink received, counted."""
    return Counter((r.rcpt, str(r.message["Message-ID"])) for r in sink.received)


async def open_transaction(hub: Hub) -> aiosmtplib.SMTP:
    """A sender in the middle of a transaction (MAIL and RCPT given, no DATA yet): the
    workers defer to intake meanwhile (up to MAX_DEFER_SECONDS), which leaves the test the
    moment it needs to take the lock before they write."""
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=hub.port, timeout=10)
    await client.connect()
    await client.ehlo()
    await client.execute_command(b"MAIL FROM:<slow@example.net>")
    await client.execute_command(f"RCPT TO:<enquiries@{DOMAIN}>".encode())
    return client


async def queue_report(hub: Hub, capsys: pytest.CaptureFixture[str]) -> str:
    """`mailhub queue` over the same file, as another process would run it."""
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["queue", "--config", str(hub.path)]) == 0
    return capsys.readouterr().out


async def inbound_states(hub: Hub) -> Counter[str]:
    async with hub.service.store.read() as tx:
        cur = await tx.execute("SELECT state, COUNT(*) FROM inbound GROUP BY state")
        return Counter(dict(await cur.fetchall()))


def log_lines(caplog: pytest.LogCaptureFixture, *words: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if all(w in r.getMessage() for w in words)]


async def test_write_lock_held_while_mail_arrives_loses_and_duplicates_nothing(
    tmp_path, caplog, capsys
):
    caplog.set_level(logging.INFO, logger="mailhub")
    async with supervised_hub(tmp_path, scheduler=True) as hub:
        accepted: set[int] = set()
        await send_until_accepted(hub, 0, accepted)
        await hub.sink.wait_for(lambda rs: forwards(hub.sink)[0] == 1)

        slow = await open_transaction(hub)
        # A: accepted and processed; delivery, woken, defers to the open transaction.
        await asyncio.gather(*(send_until_accepted(hub, n, accepted) for n in range(1, 4)))

        async def a_processed() -> bool:
            return (await inbound_states(hub))["done"] == 4

        await hub.service.wait_until(a_processed)
        # B: accepted; the processor, woken, defers to the open transaction too.
        await asyncio.gather(*(send_until_accepted(hub, n, accepted) for n in range(4, 8)))
        lock = WriteLock(hub.service.store.path)
        await lock.take()
        statuses = hub.service.statuses

        async def backing_off(*names: str) -> None:
            async def check() -> bool:
                return all(statuses[n].state == "backing-off" for n in names)

            await hub.service.wait_until(check, timeout=8)

        # Held at least 2.5 s, and until the processor and the scheduler have met it (they
        # wait their turn for the store's one connection, so which writer meets the lock
        # first varies).
        holding = asyncio.create_task(lock.hold(until=backing_off("processing", "scheduler")))
        await backing_off("processing")
        # C: mail arriving while the lock is held gets 451 (intake cannot commit), and
        # is accepted once it is released.
        arriving = [asyncio.create_task(send_until_accepted(hub, n, accepted)) for n in (8, 9)]

        # Meanwhile `mailhub queue` (reads only) still works, and shows B waiting.
        report = await queue_report(hub, capsys)
        assert re.search(r"oldest unprocessed inbound: \d+s", report), report
        assert "workers:" in report and "processing" in report

        await holding
        await asyncio.gather(*arriving)
        await slow.execute_command(b"RSET")
        slow.close()

        assert accepted == set(range(10))
        await hub.sink.wait_for(lambda rs: set(forwards(hub.sink)) >= accepted, timeout=8)
        await hub.idle()

        # Exactly once: nothing lost, nothing sent twice (forwards and acknowledgements).
        assert forwards(hub.sink) == Counter({n: 1 for n in accepted})
        assert max(copies(hub.sink).values()) == 1
        assert len(hub.sink.to(f"sender{9}@example.net")) == 1
        assert (await inbound_states(hub)) == Counter({"done": 10})

        # Each worker logged its error with a retry time, and its recovery.
        for worker in ("processing", "scheduler"):
            errors = log_lines(caplog, f"worker={worker}", "outcome=error")
            assert errors, worker
            assert re.search(r"error=OperationalError retry_in=\d", errors[0]), errors[0]
            assert log_lines(caplog, f"worker={worker}", "outcome=recovered"), worker
        # Delivery (A's messages) may have had to park a connection: then it recorded later.
        parked = log_lines(caplog, "delivery", "outcome=parked")
        assert len(log_lines(caplog, "delivery", "outcome=recorded")) == len(parked)
        # Bounded back-off: a handful of lines for a 2.5 s outage, not one per poll.
        assert len(log_lines(caplog, "worker=processing", "outcome=error")) <= 4
        assert not log_lines(caplog, "outcome=ended")  # no task died
        health = log_lines(caplog, "health ")
        assert health and "oldest_inbound=" in health[-1] and "processing:" in health[-1]

        # Afterwards the store has each worker's state, and the error they met.
        for status in hub.service.statuses.values():
            await status.flush(force=True)
        report = await queue_report(hub, capsys)
        assert "oldest unprocessed inbound: -" in report
        workers = {
            line.split()[0]: line for line in report.split("workers:")[1].splitlines() if line
        }
        assert set(workers) >= {"processing", "delivery", "scheduler"}
        assert "last error OperationalError" in workers["processing"]
        assert re.search(r"heartbeat \d+s ago", workers["processing"])
        assert "STALE" not in report


class LockingSink(Sink):
    """A relay that holds its answers to DATA until `together` transactions are waiting for
    them (every delivery connection busy), then takes the hub's write lock and answers them
    all: none of those answers can be recorded until the lock is released."""

    def __init__(self, db: Path, together: int) -> None:
        super().__init__()
        self.lock = WriteLock(db)
        self.together = together
        self.waiting = 0
        self.answer = asyncio.Event()
        self.holding: asyncio.Task | None = None

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001
        if not self.answer.is_set():
            self.waiting += 1
            if self.waiting == self.together:
                await self.lock.take()
                self.holding = asyncio.create_task(self.lock.hold())
                self.answer.set()
            await self.answer.wait()
        return await super().handle_DATA(server, session, envelope)


async def test_relay_answers_that_cannot_be_recorded_park_the_connection(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="mailhub")
    connections = 8  # the default [outbound] connections
    sink = LockingSink(tmp_path / "mailhub.db", together=connections)
    async with supervised_hub(tmp_path, sink) as hub:
        assert hub.service.delivery.cfg.connections == connections
        accepted: set[int] = set()
        # 6 enquiries: 12 messages out (forward and acknowledgement), more than the 8
        # relay connections, so some wait for a connection that is parked.
        await asyncio.gather(*(send_until_accepted(hub, n, accepted) for n in range(6)))
        await sink.lock.released.wait()
        await sink.wait_for(lambda rs: len(copies(sink)) == 12, timeout=8)
        await hub.idle()

        # Each message reached the relay once, although its answer waited to be recorded.
        assert sum(copies(sink).values()) == 12
        assert forwards(sink) == Counter({n: 1 for n in range(6)})
        # The connections whose answers met the lock parked, each with one line, and
        # recorded them once it was gone. (How many met it depends on when each answer's
        # group commit ran against the lock: at least one, at most every connection.)
        parked = log_lines(caplog, "delivery", "outcome=parked")
        assert 1 <= len(parked) <= connections
        assert all("error=OperationalError" in line for line in parked)
        assert len(log_lines(caplog, "delivery", "outcome=recorded")) == len(parked)
        async with hub.service.store.read() as tx:
            cur = await tx.execute("SELECT DISTINCT state FROM outbound_rcpt")
            assert [r[0] for r in await cur.fetchall()] == ["sent"]
            cur = await tx.execute("SELECT MAX(attempts) FROM outbound")
            assert (await cur.fetchone())[0] == 1
        assert hub.service.delivery.parked == 0
        assert hub.service.statuses["delivery"].last_error == "OperationalError"


async def test_a_task_that_ends_is_logged_and_restarted_and_a_cancel_is_not_an_error(
    tmp_path, caplog
):
    caplog.set_level(logging.INFO, logger="mailhub")
    async with supervised_hub(tmp_path) as hub:
        runs: list[int] = []
        again = asyncio.Event()

        async def buggy() -> None:
            runs.append(len(runs))
            if len(runs) == 1:
                raise KeyError("a bug")
            again.set()
            await asyncio.Event().wait()  # runs until cancelled

        task = asyncio.create_task(hub.service.supervise("buggy", buggy))
        await asyncio.wait_for(again.wait(), 5)
        ended = log_lines(caplog, "worker=buggy", "outcome=ended")
        assert len(ended) == 1 and "error=KeyError" in ended[0] and "restart_in=" in ended[0]
        assert [r.levelno for r in caplog.records if "outcome=ended" in r.getMessage()] == [
            logging.ERROR
        ]
        assert log_lines(caplog, "worker=buggy", "outcome=restarted")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled()
        assert len(log_lines(caplog, "worker=buggy", "outcome=ended")) == 1  # not the cancel
