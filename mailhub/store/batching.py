"""Group commit: many concurrent writers share one transaction and one fsync.

Whoever submits while a commit is running waits for the next one, which takes
everything queued meanwhile. Each submitter resumes only once its own write is on
disk, so durability is per item while the disk sees one flush per batch.

A batch that fails (the write lock held by another process past busy_timeout, a full
disk) fails for every submitter in it, each of which gets the exception (intake answers
451); the next batch tries again. No submitter is ever left waiting: if the flush itself
is cancelled (shutdown), its waiters get an error too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from mailhub.store import Store, Tx

T = TypeVar("T")


class GroupCommit(Generic[T]):
    def __init__(
        self,
        store: Store,
        apply: Callable[[Tx, list[T]], Awaitable[None]] | None = None,
        on_commit: Callable[[], None] = lambda: None,
        *,
        statement: Callable[[list[T]], tuple[str, list]] | None = None,
        max_batch: int = 500,
    ) -> None:
        """`apply(tx, items)` writes a batch inside a transaction; or `statement(items)` gives
        one SQL statement for the batch, run as its own transaction (one trip to SQLite)."""
        self.store = store
        self.apply = apply
        self.statement = statement
        self.on_commit = on_commit
        self.max_batch = max_batch
        self._pending: list[tuple[T, asyncio.Future[None]]] = []
        self._flushing: asyncio.Task | None = None

    async def submit(self, item: T) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # A submitter cancelled meanwhile never reads its future: read it here, so a
        # failed batch is not reported again as "exception was never retrieved".
        future.add_done_callback(_retrieve)
        self._pending.append((item, future))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())
        # shield: a cancelled session must not cancel a commit other sessions wait on.
        await asyncio.shield(future)

    async def drain(self) -> None:
        if self._flushing is not None:
            await asyncio.gather(self._flushing, return_exceptions=True)

    async def _write(self, items: list[T]) -> None:
        if self.statement is not None:
            await self.store.execute_atomic(*self.statement(items))
            return
        assert self.apply is not None
        # Inline (see store.InlineTx): a batch is many short writes (the delivery worker's
        # relay answers), and every connection waits for it before sending again.
        async with self.store.transaction(inline=True) as tx:
            await self.apply(tx, items)

    async def _flush(self) -> None:
        while self._pending:
            batch = self._pending[: self.max_batch]
            del self._pending[: self.max_batch]
            try:
                await self._write([item for item, _ in batch])
            except Exception as exc:  # noqa: BLE001 - every waiter gets the error
                _fail(batch, exc)
                continue
            except BaseException:
                # Cancelled mid-write: whether it reached the disk is unknown, so nobody
                # may be told it did; the rest are not written at all.
                rest, self._pending = self._pending, []
                _fail(batch + rest, ConnectionAbortedError("group commit cancelled"))
                raise
            for _, future in batch:
                if not future.done():
                    future.set_result(None)
            self.on_commit()


def _fail(batch: list[tuple[Any, asyncio.Future[None]]], exc: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
