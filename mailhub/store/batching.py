"""Group commit: many concurrent writers share one transaction and one fsync.

Whoever submits while a commit is running waits for the next one, which takes
everything queued meanwhile. Each submitter resumes only once its own write is on
disk, so durability is per item while the disk sees one flush per batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

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
        async with self.store.transaction() as tx:
            await self.apply(tx, items)

    async def _flush(self) -> None:
        while self._pending:
            batch = self._pending[: self.max_batch]
            del self._pending[: self.max_batch]
            try:
                await self._write([item for item, _ in batch])
            except Exception as exc:  # noqa: BLE001 - every waiter gets the error
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for _, future in batch:
                if not future.done():
                    future.set_result(None)
            self.on_commit()
