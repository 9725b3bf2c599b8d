"""Opening the store `[storage]` names: PostgreSQL or the SQLite file."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailhub.store import Store, schema
from mailhub.store.postgres import PostgresStore

if TYPE_CHECKING:  # the store sits below the config in the layers: for the hint only
    from mailhub.config import StorageConfig


async def open_store(storage: StorageConfig, *, migrate: bool = True) -> Store:
    """PostgreSQL when `[storage]` has a `url`, else the SQLite file at `path`.
    `migrate=False` opens without touching the schema (`mailhub queue`, `mailhub migrate`,
    and every PostgreSQL node at start, which only checks the version: schema.check).
    OSError if `password_file` cannot be read."""
    if storage.url:
        return await PostgresStore.connect(
            storage.url,
            password=storage.password(),
            migrate=migrate,
            pool_size=storage.pool_size,
        )
    return await Store.open(storage.path, storage.busy_timeout, migrate=migrate)


async def open_checked(storage: StorageConfig) -> Store:
    """The store for a command run beside the service (`mailhub members`, `cases`,
    `archive` …): an SQLite file is opened and brought up to date as the service does; a
    PostgreSQL database, shared with running nodes, is never migrated from here: its
    version is checked and a mismatch is one line (mailhub.errors.SchemaMismatch)."""
    store = await open_store(storage, migrate=not storage.url)
    if storage.url:
        try:
            async with store.read() as tx:
                await schema.check(tx)
        except BaseException:
            await store.close()
            raise
    return store
