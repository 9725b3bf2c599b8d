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


@pytest.mark.parametrize("inline", [False, True])
async def test_a_savepoint_undoes_only_its_own_block(tmp_path, inline) -> None:
    store = await Store.open(tmp_path / "db")
    try:
        async with store.transaction(inline=inline) as tx:
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
            async with store.transaction(inline=inline) as tx:
                async with tx.savepoint():
                    await tx.execute("INSERT INTO t VALUES (8)")
                raise RuntimeError
        assert await values(store) == [1, 4, 6, 7]
    finally:
        await store.close()


@pytest.mark.parametrize("inline", [False, True])
async def test_a_cancelled_block_leaves_the_rollback_to_the_transaction(tmp_path, inline) -> None:
    store = await Store.open(tmp_path / "db")
    try:
        async with store.transaction() as tx:
            await tx.execute("CREATE TABLE t (x INTEGER)")
        started = asyncio.Event()

        async def write() -> None:
            async with store.transaction(inline=inline) as tx:
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


async def test_inline_statements_answer_as_the_threads_do(tmp_path) -> None:
    """What the store's functions read of a statement's answer, in both kinds of Tx."""
    store = await Store.open(tmp_path / "db")
    try:
        async with store.transaction() as tx:
            await tx.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, x BLOB)")
        answers = []
        for inline in (False, True):
            async with store.transaction(inline=inline) as tx:
                cur = await tx.execute("INSERT INTO t (x) VALUES (?)", (b"a",))
                many = await tx.executemany("UPDATE t SET x = ? WHERE id = ?", [(b"b", 1)])
                one = await (await tx.execute("SELECT x FROM t WHERE id = 1")).fetchone()
                rows = await (await tx.execute("SELECT id FROM t ORDER BY id")).fetchall()
                none = await (await tx.execute("SELECT 1 FROM t WHERE id < 0")).fetchone()
                answers.append((cur.lastrowid, cur.rowcount, many.rowcount, one, rows, none))
        assert answers == [
            (1, 1, 1, (b"b",), [(1,)], None),
            (2, 1, 1, (b"b",), [(1,), (2,)], None),
        ]
    finally:
        await store.close()
