"""The private reply relay of lists whose addresses are hidden: one token per (list, poster),
and a log of what each sender relayed (for the rate limits).

A relay token is never stored: a row keeps a random salt, from which the token is made
again with the service secret (mailhub.lists.reply_relay), and the token's hash, by which
mail to `LIST-reply+TOKEN@D` finds its row. A copy of the database alone cannot write to
anyone. A new salt (after the token expired) kills the old token.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailhub.store import Tx

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS list_relay_tokens (
        list_name TEXT NOT NULL,
        address TEXT NOT NULL,
        salt TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        created_at REAL NOT NULL,
        used_at REAL NOT NULL,
        PRIMARY KEY (list_name, address)
    )""",
    """CREATE TABLE IF NOT EXISTS list_relay_sent (
        sender TEXT NOT NULL,
        list_name TEXT NOT NULL,
        sent_at REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS list_relay_sent_sender ON list_relay_sent (sender, sent_at)",
]


@dataclass(frozen=True)
class RelayToken:
    list_name: str
    address: str  # the person the token reaches, lower-cased
    salt: str
    created_at: float
    used_at: float


_COLUMNS = "list_name, address, salt, created_at, used_at"


async def token_of(tx: Tx, list_name: str, address: str) -> RelayToken | None:
    """The row of a (list, person), expired or not."""
    cur = await tx.execute(
        f"SELECT {_COLUMNS} FROM list_relay_tokens WHERE list_name = ? AND address = ?",
        (list_name.lower(), address.lower()),
    )
    row = await cur.fetchone()
    return RelayToken(*row) if row else None


async def find(tx: Tx, token_hash: str) -> RelayToken | None:
    """The row a token's hash names, expired or not."""
    cur = await tx.execute(
        f"SELECT {_COLUMNS} FROM list_relay_tokens WHERE token_hash = ?", (token_hash,)
    )
    row = await cur.fetchone()
    return RelayToken(*row) if row else None


async def put(tx: Tx, list_name: str, address: str, salt: str, token_hash: str, now: float) -> None:
    """A new token for (list, person), replacing any older one."""
    # One upsert, not DELETE then INSERT: on PostgreSQL two transactions putting a token
    # for the same person at once would both delete nothing and then collide on the key.
    await tx.execute(
        "INSERT INTO list_relay_tokens (list_name, address, salt, token_hash, created_at,"
        " used_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (list_name, address) DO UPDATE SET"
        " salt = excluded.salt, token_hash = excluded.token_hash,"
        " created_at = excluded.created_at, used_at = excluded.used_at",
        (list_name.lower(), address.lower(), salt, token_hash, now, now),
    )


async def touch(tx: Tx, list_name: str, address: str, now: float) -> None:
    """The token of (list, person) was given out or used now."""
    await tx.execute(
        "UPDATE list_relay_tokens SET used_at = ? WHERE list_name = ? AND address = ?",
        (now, list_name.lower(), address.lower()),
    )


async def sent_since(tx: Tx, sender: str, since: float) -> int:
    """Messages the mailbox `sender` (a mailbox key) relayed since `since`, on any list."""
    cur = await tx.execute(
        "SELECT COUNT(*) FROM list_relay_sent WHERE sender = ? AND sent_at >= ?",
        (sender, since),
    )
    (n,) = await cur.fetchone()
    return int(n)


async def record_sent(tx: Tx, sender: str, list_name: str, now: float) -> None:
    await tx.execute(
        "INSERT INTO list_relay_sent (sender, list_name, sent_at) VALUES (?, ?, ?)",
        (sender, list_name.lower(), now),
    )
    # Only the last day counts for the limits: the log stays small.
    await tx.execute("DELETE FROM list_relay_sent WHERE sent_at < ?", (now - 86400,))
