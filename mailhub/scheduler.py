"""Periodic jobs: digests, reminders, expiry. Each app lists its jobs (mailhub.jobs.Job) and
service.py hands them to the scheduler; each job asks the clock what is due, does it in one
transaction, and so is safe to run at any time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from mailhub import logs
from mailhub.context import Runtime
from mailhub.jobs import Job
from mailhub.store import Store, cluster, is_storage_error
from mailhub.store.workers import BACKING_OFF, HEARTBEAT_SECONDS, IDLE, RUNNING, WorkerStatus

__all__ = ["Job", "Scheduler"]  # Job: also importable from here, as before


class Scheduler:
    def __init__(
        self,
        store: Store,
        runtime: Runtime,
        on_sent: Callable[[], None],
        jobs: Iterable[Job],
        tick_seconds: float = 30.0,
    ) -> None:
        self.store = store
        self.runtime = runtime
        self.on_sent = on_sent
        self.jobs = list(jobs)
        self.tick_seconds = tick_seconds

    async def run_once(self) -> None:
        """Run every job once (each in its own transaction): what is due gets done.

        A job that fails is logged and the others still run. A database or disk error (the
        write lock held by another process past busy_timeout, a full disk) ends the round
        instead and is raised: every job would meet it, and `run` backs off and repeats the
        round (each job asks the clock what is due, so running one again is safe).
        """
        for job in self.jobs:
            sent: list[int] = []
            try:
                step = job.run
                if job.prepare is not None:
                    step = await job.prepare(self.store, self.runtime)
                assert step is not None  # a Job has one or the other
                async with self.store.transaction() as tx:
                    # Several nodes: one runs each job at a time; the others skip it this
                    # round and find it done (see store.cluster).
                    if not await cluster.take_job(tx, job.name):
                        continue
                    ctx = self.runtime.context(tx, f"job:{job.name}")
                    await step(ctx)
                    sent = ctx.sent
                if ctx.checkpoint_after:
                    # The job deleted content: take the old pages out of the WAL too.
                    await self.store.checkpoint()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - one failing job must not stop the others
                if is_storage_error(exc):
                    raise
                logs.event(
                    "job", logging.ERROR, job=job.name, outcome="failed", error=type(exc).__name__
                )
                logging.getLogger("mailhub").debug("job failure", exc_info=True)
                continue
            if sent:
                logs.event("job", job=job.name, outcome="sent", outbound=len(sent))
                self.on_sent()

    async def run(self, status: WorkerStatus | None = None) -> None:
        """Run the jobs every tick until cancelled; after a database or disk error, back off
        (bounded) and run the round again. It never ends by itself."""
        status = status or WorkerStatus(self.store, self.runtime.clock, "scheduler")
        loop = asyncio.get_running_loop()
        while True:
            try:
                await status.flush()
                if status.state != BACKING_OFF:
                    status.set(RUNNING)
                await self.run_once()
                status.succeeded(IDLE)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the round is run again after a pause
                await asyncio.sleep(status.failed(exc))
                continue
            # Sleep in steps, so the heartbeat stays fresh between ticks.
            wake_at = loop.time() + self.tick_seconds
            while True:
                await status.flush()
                left = wake_at - loop.time()
                if left <= 0:
                    break
                await asyncio.sleep(min(left, HEARTBEAT_SECONDS))
