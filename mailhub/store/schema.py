"""The schema, versioned, for SQLite and PostgreSQL alike.

Each module under mailhub/store/ that owns tables exposes `SCHEMA`, a list of portable
CREATE statements (IF NOT EXISTS; SQLite's types written in capitals: INTEGER, REAL, TEXT,
BLOB, `INTEGER PRIMARY KEY`), and optionally `SCHEMA_SQLITE` / `SCHEMA_POSTGRESQL` for the
statements of one engine only (the archive's full-text index). `postgresql_ddl` turns the
portable statements into PostgreSQL's.

The database records what it has in `schema_migrations`, one row per applied migration.
`MIGRATIONS` is the ordered history; a database is at the version of its last row (0 when
it has none). Version 1, "baseline", is what every release before versioning did at each
start (renames, the modules' SCHEMA, their ADDED_COLUMNS and ADDED_INDEXES; all idempotent),
so a file made by such a release, with its tables but without `schema_migrations`, is
brought up to version 1 safely. A schema change from now on is a NEW migration at the end
of MIGRATIONS (and, for a new table, the module's SCHEMA may hold it only if that migration
creates it): a database past the baseline never runs the baseline again, so a column put
into a module's CREATE TABLE and ADDED_COLUMNS alone would never reach it.

SQLite migrates itself when the store opens (one process owns the file); PostgreSQL is
migrated by `mailhub migrate`, and a node checks the version at start (`check`).
"""

from __future__ import annotations

import importlib
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

from mailhub.errors import SchemaMismatch

if TYPE_CHECKING:  # mailhub.store imports this module
    from mailhub.store import Tx

# Order matters only for foreign keys: a module after the ones it references.
TABLE_GROUPS = (
    "mailhub.store.inbound",
    "mailhub.store.outbound",
    "mailhub.store.autoreplies",
    "mailhub.store.secrets",
    "mailhub.store.bans",
    "mailhub.store.lists",
    "mailhub.store.archive",
    "mailhub.store.membership",
    "mailhub.store.relay",
    "mailhub.store.conduct",
    "mailhub.store.enquiries",
    "mailhub.store.workers",
    "mailhub.store.web",
)

SQLITE = "sqlite"
POSTGRESQL = "postgresql"

# The version table itself is outside the migrations (they are recorded in it). Written
# for each engine: `version` is a plain key on both (on SQLite an INTEGER PRIMARY KEY is
# the rowid, which takes the value given), and `applied_at` needs PostgreSQL's 8-byte float.
MIGRATIONS_TABLE = {
    SQLITE: "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)",
    POSTGRESQL: "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)",
}

# The key of the transaction-level advisory lock that `migrate` takes on PostgreSQL, so two
# nodes running `mailhub migrate` at once apply each migration once: the second waits for
# the first to commit, then finds nothing pending. ("mailhub" in ASCII, as a number.)
MIGRATION_LOCK = int.from_bytes(b"mailhub", "big")

# Version 2, "leases": what several nodes on one database need to share the queues. A node
# claims an inbound or outbound item by writing its name and the lease's end; another node
# takes the item over when the lease has run out. `order_key` (the list or the case a
# message is for) keeps one key's messages in arrival order across nodes.
LEASE_COLUMNS = (
    ("inbound", "order_key", "TEXT NOT NULL DEFAULT ''"),
    ("inbound", "lease_owner", "TEXT"),
    ("inbound", "lease_until", "REAL"),
    ("outbound", "order_key", "TEXT NOT NULL DEFAULT ''"),
    ("outbound", "lease_owner", "TEXT"),
    ("outbound", "lease_until", "REAL"),
)
LEASE_INDEXES = (
    "CREATE INDEX IF NOT EXISTS inbound_order ON inbound (order_key, seq) WHERE state = 'queued'",
    "CREATE INDEX IF NOT EXISTS outbound_order ON outbound (order_key, id) WHERE state = 'queued'",
)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[Tx], Awaitable[None]]

    @property
    def label(self) -> str:
        return f"{self.version} {self.name}"


def _modules() -> list[ModuleType]:
    return [importlib.import_module(name) for name in TABLE_GROUPS]


async def _baseline(tx: Tx) -> None:
    """Version 1: what `migrate` did at each start before the schema was versioned."""
    engine = tx.dialect
    modules = _modules()
    if engine == SQLITE:
        # Renamed tables and columns first (each module lists them in RENAMED_TABLES and
        # RENAMED_COLUMNS): otherwise SCHEMA would make an empty table of the new name
        # beside the old one, and an index on a renamed column would fail. (Only files of
        # older releases have them: PostgreSQL came after, so it has none.)
        for module in modules:
            for old, new in getattr(module, "RENAMED_TABLES", ()):
                await rename_table_if_old(tx, old, new)
            for table, old, new in getattr(module, "RENAMED_COLUMNS", ()):
                await rename_column_if_old(tx, table, old, new)
            for index in getattr(module, "DROPPED_INDEXES", ()):
                await tx.execute(f"DROP INDEX IF EXISTS {index}")
    for module in modules:
        for statement in module_statements(module, engine):
            await tx.execute(statement)
    # A file made by an older release has the tables without the columns added since
    # (each module lists them in ADDED_COLUMNS; its CREATE TABLE has them too), and
    # indexes on those columns can only be made after them.
    for module in modules:
        for table, column, definition in getattr(module, "ADDED_COLUMNS", ()):
            await add_column_if_missing(tx, table, column, definition)
        for statement in getattr(module, "ADDED_INDEXES", ()):
            await tx.execute(_for(engine, statement))


async def _leases(tx: Tx) -> None:
    """Version 2: the queues' lease columns (added, so version 1 stays what it was)."""
    for table, column, definition in LEASE_COLUMNS:
        await add_column_if_missing(tx, table, column, definition)
    for statement in LEASE_INDEXES:
        await tx.execute(_for(tx.dialect, statement))


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "baseline", _baseline),
    Migration(2, "leases", _leases),
)
CURRENT_VERSION = MIGRATIONS[-1].version


def module_statements(module: ModuleType, engine: str) -> list[str]:
    """The module's CREATE statements for one engine: its portable SCHEMA (translated for
    PostgreSQL), then its own statements for that engine."""
    if engine == POSTGRESQL:
        return [postgresql_ddl(s) for s in module.SCHEMA] + list(
            getattr(module, "SCHEMA_POSTGRESQL", ())
        )
    return list(module.SCHEMA) + list(getattr(module, "SCHEMA_SQLITE", ()))


def all_statements(engine: str) -> list[str]:
    """Every module's CREATE statements for one engine, in TABLE_GROUPS order."""
    return [s for module in _modules() for s in module_statements(module, engine)]


def _for(engine: str, statement: str) -> str:
    return postgresql_ddl(statement) if engine == POSTGRESQL else statement


# SQLite's type names as the modules write them (capitals), and PostgreSQL's for them.
# `INTEGER PRIMARY KEY` (a column's own key, not `PRIMARY KEY (a, b)`) is SQLite's rowid,
# numbered by the database when an insert leaves it out: an identity column does the same.
# INTEGER is SQLite's 8-byte integer, REAL its 8-byte float: PostgreSQL's INTEGER and REAL
# are 4 bytes, too small for ids and timestamps alike.
_TYPES = (
    (re.compile(r"\bINTEGER PRIMARY KEY\b"), "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
    (re.compile(r"\bBLOB\b"), "BYTEA"),
    # A table option of SQLite's storage alone; PostgreSQL's tables have no rowid anyway.
    (re.compile(r"\)\s*WITHOUT ROWID\s*$"), ")"),
)
# Quoted text ('…', with '' inside) is left as it is: a default or a partial index's value.
_QUOTED = re.compile(r"('(?:[^']|'')*')")


def postgresql_ddl(statement: str) -> str:
    """A portable CREATE/ALTER statement in SQLite's types, as PostgreSQL's. Partial
    indexes (`WHERE …`), IF NOT EXISTS, REFERENCES … ON DELETE CASCADE are the same in
    both. A statement only SQLite has (a virtual table) raises ValueError: it belongs in
    the module's SCHEMA_SQLITE."""
    if re.match(r"\s*CREATE\s+VIRTUAL\s+TABLE\b", statement, re.IGNORECASE):
        raise ValueError(
            "a virtual table is SQLite's own: put it in the module's SCHEMA_SQLITE "
            f"(and its PostgreSQL counterpart in SCHEMA_POSTGRESQL): {statement.strip()[:60]}…"
        )
    parts = _QUOTED.split(statement)
    for i in range(0, len(parts), 2):  # the even parts are outside quotes
        for pattern, replacement in _TYPES:
            parts[i] = pattern.sub(replacement, parts[i])
    return "".join(parts)


async def migrate(tx: Tx, target: int | None = None) -> list[Migration]:
    """Apply the migrations the database lacks, up to `target` (default CURRENT_VERSION),
    each recorded in schema_migrations, all in the caller's transaction; return those
    applied. A database newer than this code raises SchemaMismatch (it would be served
    with a schema the code does not know)."""
    engine = tx.dialect
    if target is None:
        target = CURRENT_VERSION
    if not 0 <= target <= CURRENT_VERSION:
        raise ValueError(f"no schema version {target}: this mailhub knows 0 to {CURRENT_VERSION}")
    if engine == POSTGRESQL:
        # Before anything else, even the version table's CREATE, which is not safe to run
        # twice at once in PostgreSQL.
        await tx.execute(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
    await tx.execute(MIGRATIONS_TABLE[engine])
    current = await version(tx)
    if current > CURRENT_VERSION:
        raise SchemaMismatch(mismatch(current))
    applied = []
    for migration in MIGRATIONS:
        if current < migration.version <= target:
            await migration.apply(tx)
            await tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, time.time()),
            )
            applied.append(migration)
    return applied


async def version(tx: Tx) -> int:
    """The database's schema version: its last applied migration, 0 when it has none (an
    empty database, or a file of a release before versioning)."""
    if not await _columns(tx, "schema_migrations"):
        return 0
    cur = await tx.execute("SELECT max(version) FROM schema_migrations")
    row = await cur.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def pending(current: int, target: int = CURRENT_VERSION) -> list[Migration]:
    """The migrations a database at `current` lacks, up to `target`."""
    return [m for m in MIGRATIONS if current < m.version <= target]


def mismatch(current: int) -> str:
    """The one line for a database at another version than this code's, or '' if none."""
    if current < CURRENT_VERSION:
        return (
            f"the database schema is at version {current}; this mailhub needs version "
            f"{CURRENT_VERSION}: run `mailhub migrate`"
        )
    if current > CURRENT_VERSION:
        return (
            f"the database schema is at version {current}, newer than this mailhub "
            f"({CURRENT_VERSION}): upgrade mailhub on this node"
        )
    return ""


async def check(tx: Tx) -> None:
    """Raise SchemaMismatch unless the database is at exactly CURRENT_VERSION (a node
    refuses to serve an older schema, which lacks what it writes, or a newer one, which
    an upgraded node may use in ways this one does not know)."""
    problem = mismatch(await version(tx))
    if problem:
        raise SchemaMismatch(problem)


def labels(migrations: Iterable[Migration]) -> str:
    """'1 baseline, 2 leases'"""
    return ", ".join(m.label for m in migrations)


async def add_column_if_missing(tx: Tx, table: str, column: str, definition: str) -> bool:
    """ALTER TABLE ... ADD COLUMN unless the table has it already; True if added.
    (Names come from the modules' own constants, never from input.)"""
    if column in await _columns(tx, table):
        return False
    statement = f"ALTER TABLE {table} ADD COLUMN {column} {definition}"
    await tx.execute(_for(tx.dialect, statement))
    return True


async def _columns(tx: Tx, table: str) -> set[str]:
    """The table's columns; empty if there is no such table."""
    if tx.dialect == POSTGRESQL:
        # The schema the connection creates tables in (search_path's first): another
        # schema's table of the same name is not ours.
        cur = await tx.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = ?",
            (table,),
        )
        return {row[0] for row in await cur.fetchall()}
    cur = await tx.execute(f"PRAGMA table_info({table})")
    return {row[1] for row in await cur.fetchall()}


async def rename_table_if_old(tx: Tx, old: str, new: str) -> bool:
    """ALTER TABLE old RENAME TO new when the file has `old` and not yet `new`; True if
    renamed. (SQLite rewrites the foreign keys that name it.)"""
    if not await _columns(tx, old) or await _columns(tx, new):
        return False
    await tx.execute(f"ALTER TABLE {old} RENAME TO {new}")
    return True


async def rename_column_if_old(tx: Tx, table: str, old: str, new: str) -> bool:
    """ALTER TABLE ... RENAME COLUMN when the table has `old` and not `new`; True if renamed."""
    columns = await _columns(tx, table)
    if old not in columns or new in columns:
        return False
    await tx.execute(f"ALTER TABLE {table} RENAME COLUMN {old} TO {new}")
    return True
