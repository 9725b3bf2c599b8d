"""`Tx`, the transaction handlers get: savepoints nest, an exception undoes only its own
block, and the store's lock and commit work as before."""

from __future__ import annotations

import asyncio

import pytest

from mailhub.store import Store, Tx


async def values(store: Store) -> list[int]:
    async with store.read() as tx:
        cur = await tx.execute("SELECT x FROM t ORDER BY x")
        return [x for (x,) in await cur.fetchall()]


async def test_a_savepoint_undoes_only_its_own_block(tmp_path) -> None:
    store = await Store.open(tmp_path / "db")
    try:
        async with store.transaction() as tx:
            assert isinstance(tx, Tx)
            await tx.execute("CREATE TABLE t (x INTEGER)")
            async with tx.savepoint():
                await tx.execute("INSERT INTO t VALUES (1)")
            with pytest.raises(ValueError):
                async with tx.savepoint():
                    await tx.execute("INSERT INTO t VALUES (2)")
                    async with tx.savepoint():
                        await tx.execute("INSERT INTO t VALUES (3)")
                    raise ValueError
            async with tx.savepoint():
                await tx.execute("INSERT INTO t VALUES (4)")
                with pytest.raises(KeyError):
                    async with tx.savepoint():
                        await tx.execute("INSERT INTO t VALUES (5)")
                        raise KeyError
                await tx.executemany("INSERT INTO t VALUES (?)", [(6,), (7,)])
        assert await values(store) == [1, 4, 6, 7]
        # A failure outside any savepoint still rolls back the whole transaction.
        with pytest.raises(RuntimeError):
            async with store.transaction() as tx:
                async with tx.savepoint():
                    await tx.execute("INSERT INTO t VALUES (8)")
                raise RuntimeError
        assert await values(store) == [1, 4, 6, 7]
    finally:
        await store.close()


async def test_a_cancelled_block_leaves_the_rollback_to_the_transaction(tmp_path) -> None:
    store = await Store.open(tmp_path / "db")
    try:
        async with store.transaction() as tx:
            await tx.execute("CREATE TABLE t (x INTEGER)")
        started = asyncio.Event()

        async def write() -> None:
            async with store.transaction() as tx:
                await tx.execute("INSERT INTO t VALUES (1)")
                async with tx.savepoint():
                    await tx.execute("INSERT INTO t VALUES (2)")
                    started.set()
                    await asyncio.sleep(60)

        task = asyncio.create_task(write())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await values(store) == []
        async with store.transaction() as tx:  # the connection is usable again
            await tx.execute("INSERT INTO t VALUES (3)")
        assert await values(store) == [3]
    finally:
        await store.close()
