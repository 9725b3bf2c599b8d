"""The web side's tables: sign-in tokens, sessions, and rate-limit events.

Tokens and session ids are capabilities: only their SHA-256 is stored, so a copy of the
database signs nobody in. Rate-limit events are keyed by a hash too (the key is a
normalised address or a client's IP): an address someone typed into the sign-in form,
member or not, is not kept in the clear.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from mailhub.store import Tx

SCHEMA: list[str] = [
    """CREATE TABLE IF NOT EXISTS web_signin_tokens (
        token_hash TEXT PRIMARY KEY,
        address TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        used_at REAL
    )""",
    "CREATE INDEX IF NOT EXISTS web_signin_tokens_expiry ON web_signin_tokens (expires_at)",
    """CREATE TABLE IF NOT EXISTS web_sessions (
        session_hash TEXT PRIMARY KEY,
        address TEXT NOT NULL,
        created_at REAL NOT NULL,
        last_seen REAL NOT NULL,
        expires_at REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS web_sessions_expiry ON web_sessions (expires_at)",
    """CREATE TABLE IF NOT EXISTS web_rate_events (
        kind TEXT NOT NULL,
        key_hash TEXT NOT NULL,
        at REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS web_rate_events_key ON web_rate_events (kind, key_hash, at)",
]


def digest(value: str) -> str:
    """What is stored in place of a token, session id or rate-limit key."""
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class Session:
    address: str
    created_at: float
    last_seen: float
    expires_at: float


# --- sign-in tokens --------------------------------------------------------------------


async def add_signin_token(tx: Tx, token: str, address: str, now: float, expires_at: float) -> None:
    await tx.execute(
        "INSERT INTO web_signin_tokens (token_hash, address, created_at, expires_at) "
        "VALUES (?, ?, ?, ?)",
        (digest(token), address, now, expires_at),
    )


async def use_signin_token(tx: Tx, token: str, now: float) -> str | None:
    """The token's address, marking it used; None when unknown, used or expired. One
    UPDATE with the conditions in its WHERE: two requests racing use it at most once."""
    h = digest(token)
    cur = await tx.execute(
        "UPDATE web_signin_tokens SET used_at = ? "
        "WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?",
        (now, h, now),
    )
    if cur.rowcount != 1:
        return None
    cur = await tx.execute("SELECT address FROM web_signin_tokens WHERE token_hash = ?", (h,))
    row = await cur.fetchone()
    return str(row[0]) if row else None


async def signin_token_usable(tx: Tx, token: str, now: float) -> bool:
    cur = await tx.execute(
        "SELECT 1 FROM web_signin_tokens WHERE token_hash = ? AND used_at IS NULL"
        " AND expires_at > ?",
        (digest(token), now),
    )
    return await cur.fetchone() is not None


# --- sessions --------------------------------------------------------------------------


async def add_session(tx: Tx, session_id: str, address: str, now: float, expires_at: float) -> None:
    await tx.execute(
        "INSERT INTO web_sessions (session_hash, address, created_at, last_seen, expires_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (digest(session_id), address, now, now, expires_at),
    )


async def get_session(tx: Tx, session_id: str) -> Session | None:
    cur = await tx.execute(
        "SELECT address, created_at, last_seen, expires_at FROM web_sessions "
        "WHERE session_hash = ?",
        (digest(session_id),),
    )
    row = await cur.fetchone()
    return Session(str(row[0]), row[1], row[2], row[3]) if row else None


async def touch_session(tx: Tx, session_id: str, now: float) -> None:
    await tx.execute(
        "UPDATE web_sessions SET last_seen = ? WHERE session_hash = ?", (now, digest(session_id))
    )


async def delete_session(tx: Tx, session_id: str) -> None:
    await tx.execute("DELETE FROM web_sessions WHERE session_hash = ?", (digest(session_id),))


# --- rate limits -----------------------------------------------------------------------


async def count_events(tx: Tx, kind: str, key: str, since: float) -> int:
    cur = await tx.execute(
        "SELECT COUNT(*) FROM web_rate_events WHERE kind = ? AND key_hash = ? AND at > ?",
        (kind, digest(key), since),
    )
    row = await cur.fetchone()
    return int(row[0])


async def add_event(tx: Tx, kind: str, key: str, now: float) -> None:
    await tx.execute(
        "INSERT INTO web_rate_events (kind, key_hash, at) VALUES (?, ?, ?)",
        (kind, digest(key), now),
    )


# --- purge -----------------------------------------------------------------------------


async def purge(tx: Tx, now: float, events_before: float) -> int:
    """Drop expired tokens and sessions, and rate-limit events older than `events_before`.
    Returns how many rows went."""
    gone = 0
    for sql, args in (
        ("DELETE FROM web_signin_tokens WHERE expires_at <= ?", (now,)),
        ("DELETE FROM web_sessions WHERE expires_at <= ?", (now,)),
        ("DELETE FROM web_rate_events WHERE at <= ?", (events_before,)),
    ):
        cur = await tx.execute(sql, args)
        gone += max(cur.rowcount, 0)
    return gone
