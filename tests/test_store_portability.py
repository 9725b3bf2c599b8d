"""Store functions whose SQL had to change for PostgreSQL, each run on both backends (the
`backend` fixture: a real SQLite file, then a real PostgreSQL database)."""

from __future__ import annotations

import asyncio

import psycopg
import pytest_asyncio

from mailhub.store import lists, secrets
from tests.support.hub import open_test_store, storage_url


@pytest_asyncio.fixture
async def db(tmp_path, backend):
    st = await open_test_store(tmp_path)
    yield st
    await st.close()


async def test_archived_since_gives_all_posts_without_a_limit_and_the_first_n_with_one(db):
    # "All" was LIMIT -1, which PostgreSQL refuses.
    async with db.transaction() as tx:
        ids = [
            await lists.archive_post(
                tx,
                list_name="Green",
                message_id=f"<{n}@example.net>",
                thread_id=f"<{n}@example.net>",
                sender="Ann@example.net",
                subject=f"post {n}",
                raw=f"Subject: post {n}\r\n\r\nbody\r\n".encode(),
                now=1000.0 + n,
            )
            for n in range(5)
        ]
    async with db.read() as tx:
        everything = await lists.archived_since(tx, "green", 0)
        after_two = await lists.archived_since(tx, "green", ids[1])
        first_two = await lists.archived_since(tx, "green", 0, limit=2)
        none = await lists.archived_since(tx, "green", 0, limit=0)
    assert [p.id for p in everything] == ids
    assert [p.id for p in after_two] == ids[2:]
    assert [p.id for p in first_two] == ids[:2]
    assert none == []
    assert everything[0].raw == b"Subject: post 0\r\n\r\nbody\r\n"
    assert isinstance(everything[0].raw, bytes)


async def waiting_on_a_lock(url: str) -> None:
    """Until a session of the test's database waits for a row lock (the second insert of
    the same key, waiting for the first transaction's end)."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        while True:
            cur = await conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock'"
            )
            if (await cur.fetchone())[0]:
                return
            await asyncio.sleep(0.01)  # polling another server's state: no event to await


async def test_two_transactions_creating_a_secret_at_once_get_the_same_key(db, backend):
    # On SQLite one writer at a time; on PostgreSQL the second transaction finds no key
    # (the first has not committed), then its insert waits for the first's commit. Before
    # the fix that insert failed with a unique violation.
    async def second() -> bytes:
        async with db.transaction() as tx:
            return await secrets.get_or_create(tx, "lists")

    async with db.transaction() as tx:
        first = await secrets.get_or_create(tx, "lists")
        other = asyncio.create_task(second())
        if backend == "postgresql":
            await asyncio.wait_for(waiting_on_a_lock(storage_url()), 10)
    assert await asyncio.wait_for(other, 10) == first
    async with db.transaction() as tx:
        assert await secrets.get_or_create(tx, "lists") == first
    assert len(first) == 32
