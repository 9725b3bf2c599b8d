"""The running service: intake, the inbound worker, delivery and the scheduler in one
asyncio process, started and stopped together. It is given the apps (mailhub.apps) and
hands their handlers, jobs and personalisers to the workers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

from mailhub import app, logs
from mailhub.app import App
from mailhub.apps import APPS
from mailhub.clock import Clock, SystemClock
from mailhub.config import Config, StorageConfig
from mailhub.context import Runtime
from mailhub.delivery import DRAIN_SECONDS, Delivery
from mailhub.errors import SchemaMismatch
from mailhub.leases import LeaseKeeper
from mailhub.processing import Processor
from mailhub.scheduler import Scheduler
from mailhub.smtp import Intake, IntakeLoad, protocol_factory
from mailhub.store import (
    Store,
    check_readable,
    inbound,
    is_storage_error,
    outbound,
    schema,
)
from mailhub.store.batching import GroupCommit
from mailhub.store.opening import open_store
from mailhub.store.workers import STOPPED, Backoff, WorkerStatus, node_name, oldest_queued
from mailhub.web.server import WebServer, WebStartError
from mailhub.web.site import Site

# How often the log carries a `health` line (oldest queued mail, each worker's state).
HEALTH_SECONDS = 60.0
# Several nodes: how often `wait_until` looks again when no worker of its own reports.
SHARED_RECHECK_SECONDS = 0.05
# A worker that ran this long before it ended starts again without waiting.
STEADY_SECONDS = 60.0


class StartError(Exception):
    """The service cannot start: one line a person can act on (the CLI prints it)."""


def _reason(exc: OSError | sqlite3.Error) -> str:
    """What went wrong, in the operating system's or SQLite's own words."""
    if isinstance(exc, OSError) and isinstance(exc.errno, int) and exc.errno > 0:
        return os.strerror(exc.errno)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def check_database(path: Path) -> None:
    """Refuse, before the store starts its connection thread, a database file that cannot
    be read: not a file, unreadable, or not an SQLite database (a file that is not yet
    there is fine: the store creates it)."""
    if not path.exists():
        return
    try:
        check_readable(path)
    except sqlite3.Error as exc:
        raise StartError(
            f"cannot open the database {path} ({_reason(exc)}); check storage.path"
        ) from None


async def open_service_store(storage: StorageConfig) -> Store:
    """The store a node serves from, or a StartError of one line.

    SQLite: the file is this process's own, so an older schema is brought up to date at
    start (as always); PostgreSQL: several nodes share the database, so a node never
    migrates it by itself (another node may still run the older release): it checks the
    version and refuses an older or newer schema (`mailhub migrate` upgrades it)."""
    if storage.url is None:
        path = storage.path
        await asyncio.to_thread(check_database, path)
        try:
            return await Store.open(path, storage.busy_timeout)
        except (OSError, sqlite3.Error) as exc:
            raise StartError(
                f"cannot open the database {path} ({_reason(exc)}); check storage.path"
            ) from None
        except SchemaMismatch as exc:
            raise StartError(str(exc)) from None
    try:
        store = await open_store(storage, migrate=False)
    except OSError as exc:
        raise StartError(
            f"cannot read storage.password_file {storage.password_file} ({_reason(exc)})"
        ) from None
    except Exception as exc:  # noqa: BLE001 - psycopg's errors, said in one line
        if not is_storage_error(exc):
            raise
        raise StartError(
            f"cannot reach the PostgreSQL database {safe_url(storage.url)} ({exc});"
            " check storage.url and that the server is running"
        ) from None
    try:
        async with store.read() as tx:
            await schema.check(tx)
    except BaseException as exc:
        await store.close()
        if isinstance(exc, SchemaMismatch):
            raise StartError(str(exc)) from None
        raise
    return store


def safe_url(url: str) -> str:
    """The URL without a password, should one have been written into it."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":…@")
    return parts._replace(netloc=netloc).geturl()


class Service:
    def __init__(
        self,
        config: Config,
        clock: Clock | None = None,
        *,
        scheduler_tick: float = 30.0,
        run_scheduler: bool = True,
        health_seconds: float = HEALTH_SECONDS,
        apps: tuple[App, ...] = APPS,
    ) -> None:
        self.config = config
        self.apps = apps
        # Every route of the address spec has a handler: checked here, before anything runs.
        self.handlers = app.route_handlers(apps)
        self.clock = clock or SystemClock()
        self.runtime = Runtime.create(config, self.clock)
        self.templates = self.runtime.templates
        self.scheduler_tick = scheduler_tick
        self.run_scheduler = run_scheduler
        self.health_seconds = health_seconds
        self.statuses: dict[str, WorkerStatus] = {}
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self.server: asyncio.Server | None = None
        self.port = config.server.port
        self.web: WebServer | None = None  # the HTTP side, when [web] is configured
        # This process's name on the leases it takes (several nodes on one database): the
        # host, the process and a random part, so a restarted node never takes a dead
        # one's leases for its own.
        self.owner = f"{node_name()}:{os.getpid()}:{secrets.token_hex(4)}"

    async def start(self) -> None:
        """Open the store, listen, start the workers. Whatever fails on the way (the
        database, the port: a `StartError`) leaves nothing open behind it: no store
        thread, no socket, no task, so the process can exit at once."""
        self.store = await open_service_store(self.config.storage)
        try:
            await self._start()
        except BaseException:
            await self._abandon()
            raise

    async def _abandon(self) -> None:
        """Undo a start that failed half way."""
        if self.server is not None:
            self.server.close()
            self.server = None
        if self.web is not None:
            await self.web.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self.store.close()

    async def _start(self) -> None:
        self.load = IntakeLoad()
        self.delivery = Delivery(
            self.store,
            self.config,
            self.clock,
            self._notify,
            self.load,
            personalisers=app.personalisers(self.apps),
            owner=self.owner,
        )
        self.processor = Processor(
            self.store,
            self.runtime,
            self._wake_delivery,
            self.load,
            handlers=self.handlers,
            preparers=app.route_preparers(self.apps),
            owner=self.owner,
            lease_seconds=self.config.storage.lease_seconds,
        )
        self.scheduler = Scheduler(
            self.store, self.runtime, self._wake_delivery, app.jobs(self.apps), self.scheduler_tick
        )
        self.committer = GroupCommit(
            self.store,
            None,
            self._wake_processor,
            statement=inbound.insert_statement,
            max_batch=inbound.MAX_BATCH,
        )
        self.intake = Intake(self.config, self.clock, self.committer, self.load)
        loop = asyncio.get_running_loop()
        host, port = self.config.server.host, self.config.server.port
        try:
            self.server = await loop.create_server(
                protocol_factory(self.config, self.intake), host=host, port=port
            )
        except OSError as exc:
            raise StartError(
                f"cannot listen on {host}:{port} ({_reason(exc)}); "
                "change server.listen or stop what is using it"
            ) from None
        self.port = self.server.sockets[0].getsockname()[1]
        if self.config.web is not None:
            self.web = WebServer(
                self.config.web,
                Site(self.store, self.runtime, self._wake_delivery),
                app.pages(self.apps),
            )
            try:
                await self.web.start()
            except WebStartError as exc:
                self.web = None
                raise StartError(str(exc)) from None
        self.statuses = {
            "processing": WorkerStatus(self.store, self.clock, "processing", self._notify),
            "delivery": self.delivery.status,
        }
        # (task name, worker name in the logs and the store, what runs)
        workers: list[tuple[str, str, Callable[[], Awaitable[None]]]] = [
            ("processor", "processing", lambda: self.processor.run(self.statuses["processing"])),
            ("delivery", "delivery", lambda: self.delivery.run(self.statuses["delivery"])),
        ]
        if self.run_scheduler:
            self.statuses["scheduler"] = WorkerStatus(
                self.store, self.clock, "scheduler", self._notify
            )
            workers.append(
                ("scheduler", "scheduler", lambda: self.scheduler.run(self.statuses["scheduler"]))
            )
        workers.append(("health", "health", self._health))
        if self.store.shared:
            # Several nodes: keep this node's claims alive while it works on them.
            lease = self.config.storage.lease_seconds
            processing = LeaseKeeper(
                self.store, self.clock, self.owner, lease, inbound.renew,
                lambda: self.processor.holding,
            )  # fmt: skip
            sending = LeaseKeeper(
                self.store, self.clock, self.owner, lease, outbound.renew,
                lambda: self.delivery.in_flight,
            )  # fmt: skip
            workers += [
                ("leases-processing", "leases", processing.run),
                ("leases-delivery", "leases", sending.run),
            ]
        self._tasks = [
            asyncio.create_task(self.supervise(worker, run), name=task)
            for task, worker, run in workers
        ]
        logs.event(
            "started",
            listen=f"{self.config.server.host}:{self.port}",
            protocol="LMTP" if self.config.server.lmtp else "SMTP",
            domains=self.config.server.domains,
        )

    async def supervise(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run a long-running task for as long as the service runs. The workers handle
        database and disk errors themselves (log, back off, retry); if one ends anyway
        (a bug), that is logged at ERROR and it is started again after a bounded pause.
        Cancelled at shutdown, it just ends."""
        backoff = Backoff()
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await run()
                error = "returned"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - logged, then started again
                error = type(exc).__name__
                logging.getLogger("mailhub").debug("worker ended", exc_info=True)
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise asyncio.CancelledError  # stopping: a worker that swallowed the cancel
            if loop.time() - started >= STEADY_SECONDS:
                backoff.succeeded()
            delay = backoff.failed()
            logs.event(
                "worker",
                logging.ERROR,
                worker=name,
                outcome="ended",
                error=error,
                restart_in=f"{delay:g}s",
            )
            await asyncio.sleep(delay)
            logs.event("worker", logging.WARNING, worker=name, outcome="restarted")

    async def health(self) -> dict[str, object]:
        """The oldest unprocessed and undelivered mail (seconds) and each worker's state.
        Reads only: it works while another process holds the write lock."""
        now = self.clock.now()
        async with self.store.read() as tx:
            inbound_at, outbound_at = await oldest_queued(tx)
        return {
            "oldest_inbound": "-" if inbound_at is None else f"{max(0.0, now - inbound_at):.0f}s",
            "oldest_outbound": "-"
            if outbound_at is None
            else f"{max(0.0, now - outbound_at):.0f}s",
            "workers": [f"{n}:{s.state}" for n, s in self.statuses.items()],
        }

    async def _health(self) -> None:
        """A `health` line every `health_seconds`, for alerting on a queue that stops."""
        while True:
            await asyncio.sleep(self.health_seconds)
            logs.event("health", **await self.health())

    def _wake_processor(self) -> None:
        self.processor.wake.set()
        self._notify()

    def _wake_delivery(self) -> None:
        self.delivery.wake.set()
        self._notify()

    def _notify(self) -> None:
        self._changed.set()

    async def wait_until(self, check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
        """Wait until `check()` holds, re-checking whenever a worker reports a change."""

        async def wait() -> None:
            while True:
                self._changed.clear()
                if await check():
                    return
                if not self.store.shared:
                    await self._changed.wait()
                    continue
                # Several nodes: another node's work changes what `check` sees and tells
                # this one nothing, so look again after a short while too.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(SHARED_RECHECK_SECONDS):
                        await self._changed.wait()

        await asyncio.wait_for(wait(), timeout)

    async def idle(self, timeout: float = 10.0) -> None:
        """Wait until nothing is queued, processing or due for delivery (for tests and drains).

        Waits on the workers' change events, not on a timer.
        """

        async def settled() -> bool:
            async with self.store.read() as tx:
                queued = await inbound.count_queued(tx)
                due = await outbound.count_due(tx, self.clock.now())
            return (
                not queued and not due and not self.delivery.in_flight and not self.processor.busy
            )

        await self.wait_until(settled, timeout)

    async def stop(self, grace: float = DRAIN_SECONDS) -> None:
        """Stop accepting, finish what is in flight, close the store (SIGTERM)."""
        if self.server is not None:
            self.server.close()
        if self.web is not None:
            await self.web.stop()  # requests in flight finish (bounded) before the store closes
        # Sessions waiting for a group commit finish it; new ones are not accepted.
        await self.committer.drain()
        for task in self._tasks:
            if task.get_name() != "delivery":
                task.cancel()
        await asyncio.gather(
            *[t for t in self._tasks if t.get_name() != "delivery"], return_exceptions=True
        )
        delivery = [t for t in self._tasks if t.get_name() == "delivery"]
        for task in delivery:
            task.cancel()
        await asyncio.gather(*delivery, return_exceptions=True)
        await self.delivery.drain(grace)
        for status in self.statuses.values():
            status.set(STOPPED, note="")
            await status.flush(force=True)
        await self.store.close()
        logs.event("stopped")


__all__ = ["Service", "StartError", "check_database", "inbound", "outbound"]
