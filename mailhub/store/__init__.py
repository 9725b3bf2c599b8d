"""The store: SQLite (the embedded default) or PostgreSQL (several nodes, one database).

`mailhub.store.opening.open_store(config.storage)` picks one: `[storage] url = "postgresql://…"` →
`mailhub.store.postgres.PostgresStore`, else the SQLite file at `path` (`Store.open`). Both
give the same `Tx` to the same store functions; SQL is written once, with SQLite's `?` and
`:name` placeholders, and the PostgreSQL Tx rewrites them for psycopg. Where the two must
differ, the store module branches on `tx.dialect` (never the apps).

SQLite: one connection per process, explicit transactions.

Why one connection guarded by a lock rather than one per task: SQLite allows one
writer at a time anyway, and its busy handler sleeps in steps of up to 100 ms when
two connections collide, which would wreck the latency of intake. With one
connection, writers queue on an asyncio lock instead and never sleep.

Durability: WAL with synchronous=FULL, so a COMMIT has reached the disk before it
returns; intake answers 250 only after that.

The store is the only place with SQL: the apps, the workers and the CLI get a `Tx` (the
open transaction) and pass it to the store's functions (`inbound.mark_done(tx, ...)`);
`tx.savepoint()` lets one part of a transaction fail alone. `Tx.execute`/`executemany`
are for the modules of this package only (tests/test_architecture_sql.py checks it).

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
from typing import Any

import aiosqlite
import psycopg

import mailhub.logs  # noqa: F401 - caps library loggers that would log mail content
from mailhub.store.schema import migrate as _migrate


class Tx:
    """The open transaction, as the store's functions see it: `execute` and `executemany`
    (the connection's own bound methods, so a statement costs no extra call), and
    `savepoint()`. Made once per `Store`; `Store.transaction()` and `Store.read()` yield it
    while they hold the connection's lock."""

    __slots__ = ("execute", "executemany")

    dialect = "sqlite"

    # The name is reused at every level: ROLLBACK TO / RELEASE act on the innermost
    # savepoint of that name, so savepoints nest (in SQLite and in PostgreSQL alike).
    SAVEPOINT = "sp"

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.execute = conn.execute
        self.executemany = conn.executemany

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """`async with tx.savepoint(): ...`: what the block writes stands or falls alone.
        An exception rolls back to the savepoint (and releases it) and propagates; the
        rest of the transaction is kept. A normal exit releases it. On a cancellation
        nothing is issued: the enclosing transaction rolls back as a whole."""
        execute = self.execute
        await execute("SAVEPOINT " + self.SAVEPOINT)
        try:
            yield
        except Exception:
            await execute("ROLLBACK TO SAVEPOINT " + self.SAVEPOINT)
            await execute("RELEASE SAVEPOINT " + self.SAVEPOINT)
            raise
        await execute("RELEASE SAVEPOINT " + self.SAVEPOINT)


class _Rows:
    """A statement's answer when it ran on the event loop (`InlineTx`): what the store's
    functions read of aiosqlite's cursor, with the same awaitable fetches."""

    __slots__ = ("_cursor", "rowcount", "lastrowid")

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor
        self.rowcount = cursor.rowcount
        self.lastrowid = cursor.lastrowid

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()


class InlineTx(Tx):
    """A `Tx` whose statements run on the event loop itself, not in aiosqlite's thread
    (`Store.transaction(inline=True)`). Why: inside a transaction that holds the write lock
    already, a statement waits for no lock and no disk (the flush is at COMMIT), and takes
    5-20 µs, while a trip to SQLite's thread and back takes 100-300 µs on a busy loop (its
    turn in the loop, the GIL): the processing worker's statements were most of its time,
    and it holds the store's one connection meanwhile. BEGIN, COMMIT and ROLLBACK still go
    through the thread (they can wait for another process's lock, or for the disk)."""

    __slots__ = ()

    def __init__(self, conn: sqlite3.Connection) -> None:
        async def execute(sql: str, parameters: Any = None) -> _Rows:
            return _Rows(conn.execute(sql, [] if parameters is None else parameters))

        async def executemany(sql: str, parameters: Any) -> _Rows:
            return _Rows(conn.executemany(sql, parameters))

        self.execute = execute
        self.executemany = executemany


# SQLite's primary result codes that mean "the database cannot be used right now", not "this
# statement is wrong": busy/locked (another process holds the write lock past busy_timeout),
# out of memory, read-only, I/O error, corrupt, full disk, cannot open, lock protocol.
_STORAGE_CODES = {5, 6, 7, 8, 10, 11, 13, 14, 15}


def check_readable(path: Path) -> None:
    """Raise sqlite3.Error if the file at `path` (which exists) is not a database this
    store can open: reads the header and the schema only, not the whole file (that could
    take minutes; damage deeper in is met, logged and retried by the workers). Synchronous,
    for a check before the store's connection thread starts."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    finally:
        conn.close()


def is_storage_error(exc: BaseException) -> bool:
    """True for a database or disk error that a later try may not meet (a lock held by
    another process, a full disk; on PostgreSQL also a lost connection, a deadlock or a
    serialisation failure), as opposed to a bug in a statement."""
    if _postgres_storage_error(exc):
        return True
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is None:
            return isinstance(exc, sqlite3.OperationalError)
        return (code & 0xFF) in _STORAGE_CODES
    return isinstance(exc, OSError)


# PostgreSQL's SQLSTATE classes that mean "try again later", not "this statement is
# wrong": connection lost (08), insufficient resources (53), operator intervention or
# shutdown (57), system error (58); and the transaction rollbacks a later try resolves:
# serialisation failure, deadlock (with another node), lock timeout.
_PG_RETRY_CLASSES = ("08", "53", "57", "58")
_PG_RETRY_STATES = {"40001", "40P01", "55P03"}


def _postgres_storage_error(exc: BaseException) -> bool:
    if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
        return True
    if isinstance(exc, psycopg.Error):
        state = exc.sqlstate or ""
        return state in _PG_RETRY_STATES or state[:2] in _PG_RETRY_CLASSES
    return False


class Store:
    """The SQLite store (`Store.open`); `PostgresStore` has the same methods."""

    dialect = "sqlite"
    # Several processes may share the database: work is claimed with leases (PostgreSQL).
    shared = False

    def __init__(
        self, conn: aiosqlite.Connection, path: Path, raw: sqlite3.Connection | None = None
    ) -> None:
        self.conn = conn
        self.path = path
        self._lock = asyncio.Lock()
        self._tx = Tx(conn)
        # `raw`: the same SQLite connection as `conn`, opened to be usable from the loop's
        # thread too; only ever used while this store's lock is held (see InlineTx).
        self._inline = InlineTx(raw) if raw is not None else self._tx

    @classmethod
    async def open(cls, path: Path, busy_timeout: float = 10.0, *, migrate: bool = True) -> Store:
        """Open (and create or migrate) the database. `busy_timeout`: how long a write waits
        for another process's write lock before it fails with OperationalError (the
        workers then back off and retry). `migrate=False` opens for reading only: it takes
        no write lock, so it works while another process holds one (`mailhub queue`)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a transaction is
        # exactly what the code says it is.
        # check_same_thread=False: InlineTx runs statements from the loop's thread, always
        # while holding the store's lock, never while the connection's own thread works
        # (the BEGIN before them went through that thread and has returned).
        opened: list[sqlite3.Connection] = []

        class Noted(sqlite3.Connection):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                opened.append(self)

        conn = await aiosqlite.connect(
            path, isolation_level=None, check_same_thread=False, factory=Noted
        )
        try:
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute("PRAGMA synchronous=FULL")
            await conn.execute("PRAGMA foreign_keys=ON")
            await conn.execute("PRAGMA secure_delete=ON")
            # Other processes (the CLI, a backup) may hold the write lock for a while.
            await conn.execute(f"PRAGMA busy_timeout={max(0, int(busy_timeout * 1000))}")
        except BaseException:
            # A file that is not a database fails here: close, or aiosqlite's thread would
            # keep the process alive after the error was reported.
            await conn.close()
            raise
        store = cls(conn, path, opened[0] if opened else None)
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
    async def transaction(self, *, inline: bool = False) -> AsyncIterator[Tx]:
        """A write transaction: committed on normal exit, rolled back on an exception.

        `inline=True`: its statements run on the event loop (InlineTx), for a transaction of
        many short statements (the processing worker's batch); it must not run long queries
        (they would hold up the loop)."""
        async with self._lock:
            try:
                await self.conn.execute("BEGIN IMMEDIATE")
                yield self._inline if inline else self._tx
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
                yield self._tx
            finally:
                await self._rollback()

    async def _rollback(self) -> None:
        # Always issued, and shielded from cancellation: if a task was cancelled while its
        # BEGIN was still queued in aiosqlite's thread, the BEGIN runs anyway, and this
        # ROLLBACK (queued after it) closes it. ROLLBACK outside a transaction is a no-op.
        await asyncio.shield(self.conn.rollback())
