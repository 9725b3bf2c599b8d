"""The SQLite store: one connection per process, explicit transactions.

Why one connection guarded by a lock rather than one per task: SQLite allows one
writer at a time anyway, and its busy handler sleeps in steps of up to 100 ms when
two connections collide, which would wreck the latency of intake. With one
connection, writers queue on an asyncio lock instead and never sleep.

Durability: WAL with synchronous=FULL, so a COMMIT has reached the disk before it
returns; intake answers 250 only after that.

Nothing left behind: secure_delete zeroes what is deleted or overwritten (a raw message
cleared from a queue, a case's deleted content), and `checkpoint()` copies the WAL into
the database and truncates it, so older page versions do not linger in the -wal file.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

import mailhub.logs  # noqa: F401 - caps library loggers that would log mail content
from mailhub.store.schema import migrate as _migrate

Tx = aiosqlite.Connection

# SQLite's primary result codes that mean "the database cannot be used right now", not "this
# statement is wrong": busy/locked (another process holds the write lock past busy_timeout),
# out of memory, read-only, I/O error, corrupt, full disk, cannot open, lock protocol.
_STORAGE_CODES = {5, 6, 7, 8, 10, 11, 13, 14, 15}


def is_storage_error(exc: BaseException) -> bool:
    """True for a database or disk error that a later try may not meet (a lock held by
    another process, a full disk), as opposed to a bug in a statement."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is None:
            return isinstance(exc, sqlite3.OperationalError)
        return (code & 0xFF) in _STORAGE_CODES
    return isinstance(exc, OSError)


class Store:
    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path, busy_timeout: float = 10.0, *, migrate: bool = True) -> Store:
        """Open (and create or migrate) the database. `busy_timeout`: how long a write waits
        for another process's write lock before it fails with OperationalError (the
        workers then back off and retry). `migrate=False` opens for reading only: it takes
        no write lock, so it works while another process holds one (`mailhub queue`)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a transaction is
        # exactly what the code says it is.
        conn = await aiosqlite.connect(path, isolation_level=None)
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=FULL")
        await conn.execute("PRAGMA foreign_keys=ON")
        await conn.execute("PRAGMA secure_delete=ON")
        # Other processes (the CLI, a backup) may hold the write lock for a while.
        await conn.execute(f"PRAGMA busy_timeout={max(0, int(busy_timeout * 1000))}")
        store = cls(conn, path)
        if migrate:
            try:
                async with store.transaction() as tx:
                    await _migrate(tx)
            except BaseException:
                await conn.close()
                raise
        return store

    async def checkpoint(self) -> None:
        """Write the WAL back into the database file and truncate it to zero bytes, so no
        old version of a page (e.g. deleted case content) is left in the -wal file. Runs
        outside any transaction; a reader in another process can keep frames for later
        (the next checkpoint takes them)."""
        async with self._lock:
            cur = await self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            await cur.fetchall()
            await cur.close()

    async def close(self) -> None:
        async with self._lock:
            await self.conn.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """A write transaction: committed on normal exit, rolled back on an exception."""
        async with self._lock:
            try:
                await self.conn.execute("BEGIN IMMEDIATE")
                yield self.conn
                # Shielded: a task cancelled at this point (shutdown) must still leave the
                # connection out of its transaction for the next user.
                await asyncio.shield(self.conn.commit())
            except BaseException:
                # Also when COMMIT itself fails (a full disk, an I/O error): the connection
                # must not stay inside the failed transaction, or every later BEGIN would
                # fail too. (After a COMMIT that went through, ROLLBACK is a no-op.)
                await self._rollback()
                raise

    async def execute_atomic(self, sql: str, params: tuple | list = ()) -> None:
        """Run ONE statement as its own transaction (autocommit): atomic and durable like
        BEGIN/COMMIT around it, in one trip to SQLite's thread instead of three. Intake's
        group commit uses it, where those trips are most of the latency."""
        async with self._lock:
            await self.conn.execute(sql, params)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Tx]:
        """Reads see a consistent snapshot and never interleave with a writer's statements."""
        async with self._lock:
            try:
                await self.conn.execute("BEGIN")
                yield self.conn
            finally:
                await self._rollback()

    async def _rollback(self) -> None:
        # Always issued, and shielded from cancellation: if a task was cancelled while its
        # BEGIN was still queued in aiosqlite's thread, the BEGIN runs anyway, and this
        # ROLLBACK (queued after it) closes it. ROLLBACK outside a transaction is a no-op.
        await asyncio.shield(self.conn.rollback())
