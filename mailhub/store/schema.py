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
    "mailhub.store.membership",
    "mailhub.store.conduct",
    "mailhub.store.workers",
)


async def migrate(tx: Tx) -> None:
    modules = [importlib.import_module(name) for name in TABLE_GROUPS]
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
    cur = await tx.execute(f"PRAGMA table_info({table})")
    if column in {row[1] for row in await cur.fetchall()}:
        return False
    await tx.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
    return True
