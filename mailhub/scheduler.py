"""Periodic jobs: digests, reminders, expiry. Each app lists its jobs; each job asks the
clock what is due, does it in one transaction, and so is safe to run at any time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mailhub import logs
from mailhub.context import Context, Runtime
from mailhub.store import Store


@dataclass(frozen=True)
class Job:
    name: str
    run: Callable[[Context], Awaitable[None]]


def all_jobs() -> list[Job]:
    from mailhub.conduct.jobs import JOBS as CONDUCT
    from mailhub.lists.jobs import JOBS as LISTS

    return [*LISTS, *CONDUCT]


class Scheduler:
    def __init__(
        self,
        store: Store,
        runtime: Runtime,
        on_sent: Callable[[], None],
        tick_seconds: float = 30.0,
    ) -> None:
        self.store = store
        self.runtime = runtime
        self.on_sent = on_sent
        self.tick_seconds = tick_seconds
        self.jobs = all_jobs()

    async def run_once(self) -> None:
        """Run every job once (each in its own transaction): what is due gets done."""
        for job in self.jobs:
            sent: list[int] = []
            try:
                async with self.store.transaction() as tx:
                    ctx = self.runtime.context(tx, f"job:{job.name}")
                    await job.run(ctx)
                    sent = ctx.sent
                if ctx.checkpoint_after:
                    # The job deleted content: take the old pages out of the WAL too.
                    await self.store.checkpoint()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - one failing job must not stop the others
                logs.event(
                    "job", logging.ERROR, job=job.name, outcome="failed", error=type(exc).__name__
                )
                logging.getLogger("mailhub").debug("job failure", exc_info=True)
                continue
            if sent:
                logs.event("job", job=job.name, outcome="sent", outbound=len(sent))
                self.on_sent()

    async def run(self) -> None:
        while True:
            await self.run_once()
            await asyncio.sleep(self.tick_seconds)
