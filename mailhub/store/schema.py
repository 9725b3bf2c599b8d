"""Schema, in plain portable SQL, collected from each table group's module.

Each module under mailhub/store/ that owns tables exposes `SCHEMA`, a list of
CREATE statements using IF NOT EXISTS, so starting on an existing file is safe.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

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


async def migrate(tx: Tx) -> None:
    modules = [importlib.import_module(name) for name in TABLE_GROUPS]
    # Renamed tables and columns first (each module lists them in RENAMED_TABLES and
    # RENAMED_COLUMNS): otherwise SCHEMA would make an empty table of the new name beside
    # the old one, and an index on a renamed column would fail.
    for module in modules:
        for old, new in getattr(module, "RENAMED_TABLES", ()):
            await rename_table_if_old(tx, old, new)
        for table, old, new in getattr(module, "RENAMED_COLUMNS", ()):
            await rename_column_if_old(tx, table, old, new)
        for index in getattr(module, "DROPPED_INDEXES", ()):
            await tx.execute(f"DROP INDEX IF EXISTS {index}")
    for module in modules:
        for statement in module.SCHEMA:
            await tx.execute(statement)
    # A file made by an older release has the tables without the columns added since
    # (each module lists them in ADDED_COLUMNS; its CREATE TABLE has them too), and
    # indexes on those columns can only be made after them.
    for module in modules:
        for table, column, definition in getattr(module, "ADDED_COLUMNS", ()):
            await add_column_if_missing(tx, table, column, definition)
        for statement in getattr(module, "ADDED_INDEXES", ()):
            await tx.execute(statement)


async def add_column_if_missing(tx: Tx, table: str, column: str, definition: str) -> bool:
    """ALTER TABLE ... ADD COLUMN unless the table has it already; True if added.
    (Names come from the modules' own constants, never from input.)"""
    if column in await _columns(tx, table):
        return False
    await tx.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
    return True


async def _columns(tx: Tx, table: str) -> set[str]:
    """The table's columns; empty if there is no such table."""
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
