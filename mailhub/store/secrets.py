"""Per-installation secret keys (random, created on first use, kept in the database).

Used for keyed tokens that need no per-token row, e.g. the VERP and
unsubscribe tokens of list mail: HMAC(key, purpose|list|address).
"""

from __future__ import annotations

import secrets as _secrets

from mailhub.store import Tx

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS service_secrets (
        name TEXT PRIMARY KEY,
        value BLOB NOT NULL
    )""",
]


async def get_or_create(tx: Tx, name: str) -> bytes:
    cur = await tx.execute("SELECT value FROM service_secrets WHERE name = ?", (name,))
    row = await cur.fetchone()
    if row:
        return bytes(row[0])
    # Two transactions may both find no key: on SQLite they cannot (one writer at a time),
    # on PostgreSQL they can, so the second one's insert does nothing and both then read
    # the one key that was stored (READ COMMITTED: the second SELECT sees the first's
    # commit, which the conflicting insert waited for).
    await tx.execute(
        "INSERT INTO service_secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
        (name, _secrets.token_bytes(32)),
    )
    cur = await tx.execute("SELECT value FROM service_secrets WHERE name = ?", (name,))
    (value,) = await cur.fetchone()
    return bytes(value)
