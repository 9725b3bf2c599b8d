"""Schema, in plain portable SQL, collected from each table group's module.

Each module under mailhub/store/ that owns tables exposes `SCHEMA`, a list of
CREATE statements using IF NOT EXISTS, so starting on an existing file is safe.
"""

from __future__ import annotations

import importlib

import aiosqlite

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
)


async def migrate(tx: aiosqlite.Connection) -> None:
    for name in TABLE_GROUPS:
        module = importlib.import_module(name)
        for statement in module.SCHEMA:
            await tx.execute(statement)
