"""A log of automatic replies sent, for the per-sender rate limit (RFC 3834 §2)."""

from __future__ import annotations

from mailhub.store import Tx

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS autoreplies (
        sender TEXT NOT NULL,
        sent_at REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS autoreplies_sender ON autoreplies (sender, sent_at)",
]


async def count_since(tx: Tx, sender: str, since: float) -> int:
    cur = await tx.execute(
        "SELECT COUNT(*) FROM autoreplies WHERE sender = ? AND sent_at >= ?", (sender, since)
    )
    (n,) = await cur.fetchone()
    return int(n)


async def record(tx: Tx, sender: str, now: float) -> None:
    await tx.execute("INSERT INTO autoreplies (sender, sent_at) VALUES (?, ?)", (sender, now))
    # Keep the table small: nothing older than a day matters to the limit.
    await tx.execute("DELETE FROM autoreplies WHERE sent_at < ?", (now - 86400,))
