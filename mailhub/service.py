"""The running service: intake, the inbound worker, delivery and the scheduler in one
asyncio process, started and stopped together."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from mailhub import logs
from mailhub.clock import Clock, SystemClock
from mailhub.config import Config
from mailhub.context import Runtime
from mailhub.delivery import DRAIN_SECONDS, Delivery
from mailhub.processing import Processor
from mailhub.scheduler import Scheduler
from mailhub.smtp import Intake, IntakeLoad, protocol_factory
from mailhub.store import Store, inbound, outbound
from mailhub.store.batching import GroupCommit


class Service:
    def __init__(
        self,
        config: Config,
        clock: Clock | None = None,
        *,
        scheduler_tick: float = 30.0,
        run_scheduler: bool = True,
    ) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.runtime = Runtime.create(config, self.clock)
        self.templates = self.runtime.templates
        self.scheduler_tick = scheduler_tick
        self.run_scheduler = run_scheduler
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self.server: asyncio.Server | None = None
        self.port = config.server.port

    async def start(self) -> None:
        self.store = await Store.open(self.config.storage.path)
        self.load = IntakeLoad()
        self.delivery = Delivery(self.store, self.config, self.clock, self._notify, self.load)
        self.processor = Processor(self.store, self.runtime, self._wake_delivery, self.load)
        self.scheduler = Scheduler(
            self.store, self.runtime, self._wake_delivery, self.scheduler_tick
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
        self.server = await loop.create_server(
            protocol_factory(self.config, self.intake),
            host=self.config.server.host,
            port=self.config.server.port,
        )
        self.port = self.server.sockets[0].getsockname()[1]
        self._tasks = [
            asyncio.create_task(self.processor.run(), name="processor"),
            asyncio.create_task(self.delivery.run(), name="delivery"),
        ]
        if self.run_scheduler:
            self._tasks.append(asyncio.create_task(self.scheduler.run(), name="scheduler"))
        logs.event(
            "started",
            listen=f"{self.config.server.host}:{self.port}",
            protocol="LMTP" if self.config.server.lmtp else "SMTP",
            domains=self.config.server.domains,
        )

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
                await self._changed.wait()

        await asyncio.wait_for(wait(), timeout)

    async def idle(self, timeout: float = 10.0) -> None:
        """Wait until nothing is queued, processing or due for delivery (for tests and drains).

        Waits on the workers' change events, not on a timer.
        """

        async def settled() -> bool:
            async with self.store.read() as tx:
                cur = await tx.execute("SELECT COUNT(*) FROM inbound WHERE state = 'queued'")
                (queued,) = await cur.fetchone()
                cur = await tx.execute(
                    "SELECT COUNT(*) FROM outbound WHERE state = 'queued' AND next_attempt_at <= ?",
                    (self.clock.now(),),
                )
                (due,) = await cur.fetchone()
            return (
                not queued and not due and not self.delivery.in_flight and not self.processor.busy
            )

        await self.wait_until(settled, timeout)

    async def stop(self, grace: float = DRAIN_SECONDS) -> None:
        """Stop accepting, finish what is in flight, close the store (SIGTERM)."""
        if self.server is not None:
            self.server.close()
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
        await self.store.close()
        logs.event("stopped")


__all__ = ["Service", "inbound", "outbound"]
