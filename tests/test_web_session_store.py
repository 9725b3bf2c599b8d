"""The web tables on a real SQLite file: a sign-in token is used once and only in time,
only hashes are kept, sessions go on sign-out, and purge drops what has expired."""

from __future__ import annotations

import pytest_asyncio

from mailhub.store import Store
from mailhub.store import web as web_store


@pytest_asyncio.fixture
async def db(tmp_path):
    s = await Store.open(tmp_path / "web.db")
    yield s
    await s.close()


async def test_a_token_is_used_once_and_only_before_it_expires(db):
    async with db.transaction() as tx:
        await web_store.add_signin_token(tx, "tok-a", "ann@example.net", 100.0, 200.0)
        await web_store.add_signin_token(tx, "tok-b", "bob@example.net", 100.0, 200.0)
    async with db.transaction() as tx:
        assert await web_store.signin_token_usable(tx, "tok-a", 150.0)
        assert await web_store.use_signin_token(tx, "tok-a", 150.0) == "ann@example.net"
        assert await web_store.use_signin_token(tx, "tok-a", 151.0) is None  # used
        assert not await web_store.signin_token_usable(tx, "tok-a", 151.0)
        assert await web_store.use_signin_token(tx, "tok-b", 200.0) is None  # expired
        assert await web_store.use_signin_token(tx, "nope", 150.0) is None
        cur = await tx.execute("SELECT token_hash FROM web_signin_tokens")
        assert all("tok" not in r[0] for r in await cur.fetchall())


async def test_sessions_and_purge(db):
    async with db.transaction() as tx:
        await web_store.add_session(tx, "s1", "ann@example.net", 0.0, 100.0)
        await web_store.add_session(tx, "s2", "bob@example.net", 0.0, 1000.0)
        await web_store.add_event(tx, "k", "ann", 10.0)
        await web_store.add_event(tx, "k", "ann", 500.0)
        await web_store.add_signin_token(tx, "t", "ann@example.net", 0.0, 50.0)
    async with db.transaction() as tx:
        found = await web_store.get_session(tx, "s1")
        assert found is not None and found.address == "ann@example.net"
        await web_store.delete_session(tx, "s2")
        assert await web_store.get_session(tx, "s2") is None
        assert await web_store.count_events(tx, "k", "ann", 0.0) == 2
        assert await web_store.count_events(tx, "k", "ann", 10.0) == 1  # after, not at
        gone = await web_store.purge(tx, now=150.0, events_before=100.0)
        assert gone == 3  # the expired session, the expired token, the old event
        assert await web_store.get_session(tx, "s1") is None
        assert await web_store.count_events(tx, "k", "ann", 0.0) == 1
