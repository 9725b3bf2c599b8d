"""The PostgreSQL store: several mailhub nodes on one database.

Same methods as the SQLite `Store` and the same `Tx` shape, so every store function serves
both. What differs is kept here:

- SQL is written once with SQLite's placeholders (`?`, `:name`); `_translate` rewrites them
  for psycopg (`%s`, `%(name)s`) once per distinct statement (cached).
- A pool of connections (psycopg_pool), not one connection behind a lock: transactions of
  one node run side by side, like those of several nodes. Writes that must not interleave
  are ordered by the database (row locks, `FOR UPDATE SKIP LOCKED` claims, advisory locks
  for scheduled jobs: see inbound.claim, outbound.claim, cluster.py).
- Transactions are READ COMMITTED (PostgreSQL's default: each statement sees what others
  committed before it, which the claims rely on); `read()` is one REPEATABLE READ snapshot,
  like a read on SQLite.
- Durability: a COMMIT returns once PostgreSQL has flushed its WAL (synchronous_commit on,
  the default), so `250` after commit holds as on SQLite.

Why psycopg 3 rather than asyncpg: its cursors are the DB-API shape the store functions
already speak (`fetchone`, `fetchall`, `rowcount`), so one set of functions serves both
backends through a placeholder rewrite; asyncpg's own API (`$1`, records, no rowcount on
executemany) would have meant a second set of store functions or a thicker shim. psycopg's
pipeline mode makes `executemany` one round trip, and psycopg_pool comes from the same
project.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from mailhub.store import Store, Tx
from mailhub.store.schema import migrate as _migrate

# SQLite's blob literal X'…', a literal, a quoted name, a `:name` placeholder (not
# PostgreSQL's `::` cast), `?`, or `%`.
_TOKENS = re.compile(
    r"\bX'([0-9A-Fa-f]*)'|'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|::|(?<![\w:]):([A-Za-z_]\w*)|\?|%"
)


@functools.lru_cache(maxsize=2048)
def _translate(sql: str) -> str:
    """SQLite placeholders → psycopg's: `?` → `%s`, `:name` → `%(name)s`, `%` → `%%`
    (also inside literals); `?` and `:name` inside string literals and quoted names are
    left as they are."""

    def swap(m: re.Match[str]) -> str:
        text = m.group(0)
        if text == "?":
            return "%s"
        if text == "%":
            return "%%"
        if m.group(1) is not None:
            return f"'\\x{m.group(1)}'::bytea"
        if m.group(2):
            return f"%({m.group(2)})s"
        # A literal or a quoted name (psycopg reads `%` everywhere, quotes or not), or `::`.
        return text.replace("%", "%%")

    return _TOKENS.sub(swap, sql)


class _Rows:
    """A statement's answer: the cursor's rows (fetched at once, so the connection is free
    for the next statement) with the awaitable fetches the store functions use."""

    __slots__ = ("_rows", "_at", "rowcount", "lastrowid")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self._at = 0
        self.rowcount = rowcount
        self.lastrowid = None  # none on PostgreSQL: the store uses RETURNING

    async def fetchone(self) -> Any:
        if self._at >= len(self._rows):
            return None
        self._at += 1
        return self._rows[self._at - 1]

    async def fetchall(self) -> list[Any]:
        rows, self._at = self._rows[self._at :], len(self._rows)
        return rows

    async def close(self) -> None:
        return None


class PgTx(Tx):
    """The open transaction on one pooled connection."""

    __slots__ = ()

    dialect = "postgresql"

    def __init__(self, conn: psycopg.AsyncConnection) -> None:
        async def execute(sql: str, parameters: Any = None) -> _Rows:
            cur = conn.cursor()
            try:
                await cur.execute(_translate(sql), _params(parameters))
                rows = await cur.fetchall() if cur.description is not None else []
                return _Rows(rows, cur.rowcount)
            finally:
                await cur.close()

        async def executemany(sql: str, parameters: Any) -> _Rows:
            seq = [_params(p) for p in parameters]
            if not seq:
                return _Rows([], 0)
            cur = conn.cursor()
            try:
                await cur.executemany(_translate(sql), seq)
                return _Rows([], cur.rowcount)
            finally:
                await cur.close()

        self.execute = execute
        self.executemany = executemany


def _params(parameters: Any) -> Any:
    if parameters is None:
        return ()  # not None: psycopg reads `%%` only when given parameters
    if isinstance(parameters, dict):
        return parameters
    return list(parameters)


class PostgresStore(Store):
    dialect = "postgresql"
    shared = True

    def __init__(self, pool: AsyncConnectionPool, url: str) -> None:  # noqa: D107
        # Not Store.__init__: there is no SQLite connection.
        self.pool = pool
        self.url = url
        self.path = None  # type: ignore[assignment]

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        password: str | None = None,
        migrate: bool = True,
        pool_size: int = 10,
        timeout: float = 10.0,
    ) -> PostgresStore:
        """Open a pool on `url` (and create or migrate the schema unless `migrate=False`).
        psycopg.OperationalError if the server cannot be reached within `timeout`."""
        kwargs: dict[str, Any] = {"autocommit": True}
        if password is not None:
            kwargs["password"] = password
        # One direct connection first: an unreachable server or a refused login is then one
        # line from the server or libpq within `timeout`, not the pool's retries and warnings.
        try:
            probe = await psycopg.AsyncConnection.connect(
                url, connect_timeout=max(1, int(timeout)), **kwargs
            )
        except psycopg.Error as reason:
            lines = str(reason).strip().splitlines() or [type(reason).__name__]
            raise psycopg.OperationalError(lines[0]) from None
        await probe.close()
        pool = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=max(2, pool_size),
            kwargs=kwargs,
            open=False,
            timeout=timeout,
            name="mailhub",
        )
        await pool.open(wait=True, timeout=timeout)
        store = cls(pool, url)
        if migrate:
            try:
                async with store.transaction() as tx:
                    await _migrate(tx)
            except BaseException:
                await pool.close()
                raise
        return store

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection]:
        """A pooled connection. A task cancelled while the pool hands it a connection must
        still end: psycopg-pool 3.3 can swallow that cancellation (psycopg#1345: its wait
        returns the connection and drops the cancel), and a worker would then never stop
        (Service.stop() waited forever). Such a task still shows `cancelling()`: the
        connection goes back and the cancellation is raised here."""
        async with self.pool.connection() as conn:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise asyncio.CancelledError
            yield conn

    async def checkpoint(self) -> None:
        """Nothing to do: PostgreSQL recycles its WAL itself (deleted case content is gone
        from the tables at COMMIT; VACUUM reclaims the space)."""

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def transaction(self, *, inline: bool = False) -> AsyncIterator[Tx]:
        """A write transaction on one pooled connection: committed on normal exit, rolled
        back on an exception (or a cancellation). `inline` means nothing here."""
        async with self._connection() as conn:
            try:
                await conn.execute("BEGIN")
                yield PgTx(conn)
                await asyncio.shield(conn.execute("COMMIT"))
            except BaseException:
                await _rollback(conn)
                raise

    async def execute_atomic(self, sql: str, params: tuple | list = ()) -> None:
        """One statement as its own transaction (autocommit): intake's group commit."""
        async with self._connection() as conn:
            await conn.execute(_translate(sql), list(params))

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Tx]:
        """One consistent snapshot (REPEATABLE READ), read only."""
        async with self._connection() as conn:
            try:
                await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                yield PgTx(conn)
            finally:
                await _rollback(conn)


async def _rollback(conn: psycopg.AsyncConnection) -> None:
    # Shielded from cancellation, like the SQLite store's: the connection goes back to the
    # pool outside any transaction (the pool also checks, and discards a broken one).
    try:
        await asyncio.shield(conn.execute("ROLLBACK"))
    except psycopg.Error:
        pass
