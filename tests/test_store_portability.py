"""Store functions whose SQL had to change for PostgreSQL, each run on both backends (the
`backend` fixture: a real SQLite file, then a real PostgreSQL database)."""

from __future__ import annotations

import asyncio

import psycopg
import pytest_asyncio

from mailhub.store import lists, membership, relay, secrets
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


async def at_once(db, backend: str, write):
    """`write(tx)` in two transactions at once: the second starts while the first is still
    open (not committed) and, on PostgreSQL, is seen waiting for the first's row lock
    before the first commits. On SQLite the second simply waits for the first (one
    writer at a time). Returns both answers."""

    async def second():
        async with db.transaction() as tx:
            return await write(tx)

    async with db.transaction() as tx:
        first = await write(tx)
        other = asyncio.create_task(second())
        if backend == "postgresql":
            await asyncio.wait_for(waiting_on_a_lock(storage_url()), 10)
    return first, await asyncio.wait_for(other, 10)


async def test_two_transactions_creating_a_secret_at_once_get_the_same_key(db, backend):
    # On PostgreSQL the second transaction finds no key (the first has not committed),
    # then its insert waits for the first's commit. Before the fix that insert failed
    # with a unique violation.
    first, other = await at_once(db, backend, lambda tx: secrets.get_or_create(tx, "lists"))
    assert other == first
    async with db.transaction() as tx:
        assert await secrets.get_or_create(tx, "lists") == first
    assert len(first) == 32


async def test_a_member_added_by_two_transactions_at_once_is_added_once(db, backend):
    answers = await at_once(
        db, backend, lambda tx: lists.add_member(tx, "green", "Bob@example.net", "Bob", 1.0)
    )
    assert answers == (True, False)
    async with db.read() as tx:
        assert [m.address for m in await lists.list_members(tx, "green")] == ["bob@example.net"]


async def test_a_relay_token_put_again_replaces_the_old_one_also_at_once(db, backend):
    async with db.transaction() as tx:
        await relay.put(tx, "green", "Bob@example.net", "salt1", "hash1", 1.0)
        await relay.put(tx, "green", "bob@example.net", "salt2", "hash2", 2.0)
        assert await relay.find(tx, "hash1") is None
        token = await relay.find(tx, "hash2")
    assert token is not None and (token.salt, token.created_at, token.used_at) == (
        "salt2",
        2.0,
        2.0,
    )

    turns = iter(range(3, 5))

    async def put(tx):
        k = next(turns)
        await relay.put(tx, "green", "bob@example.net", f"salt{k}", f"hash{k}", float(k))

    await at_once(db, backend, put)
    async with db.read() as tx:
        assert (await relay.token_of(tx, "green", "bob@example.net")).salt == "salt4"


async def test_an_invitation_is_refused_while_unused_and_renewed_once_used(db, backend):
    async with db.transaction() as tx:
        assert await membership.invite(tx, "green", "Bob@example.net", "ann@example.net", 1.0)
        assert not await membership.invite(tx, "green", "bob@example.net", "cat@example.net", 2.0)
        await membership.use_invitation(tx, "green", "bob@example.net", 3.0)
        assert await membership.invite(tx, "green", "bob@example.net", "cat@example.net", 4.0)
        renewed = await membership.get_invitation(tx, "green", "bob@example.net")
    assert (renewed.invited_by, renewed.invited_at, renewed.used_at) == (
        "cat@example.net",
        4.0,
        None,
    )
    answers = await at_once(
        db,
        backend,
        lambda tx: membership.invite(tx, "green", "dan@example.net", "ann@example.net", 5.0),
    )
    assert answers == (True, False)
