"""A log of automatic replies sent, for the rate limits (RFC 3834 §2).

Each row is keyed by the normalised mailbox (mailhub.mailbox.mailbox_key) and its domain,
so `victim+1@` and `Victim+2@` share one allowance.
"""

from __future__ import annotations

from mailhub.store import Tx

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS autoreplies (
        sender TEXT NOT NULL,
        sent_at REAL NOT NULL,
        domain TEXT NOT NULL DEFAULT ''
    )""",
    "CREATE INDEX IF NOT EXISTS autoreplies_sender ON autoreplies (sender, sent_at)",
]
ADDED_COLUMNS = [("autoreplies", "domain", "TEXT NOT NULL DEFAULT ''")]
ADDED_INDEXES = [
    "CREATE INDEX IF NOT EXISTS autoreplies_domain ON autoreplies (domain, sent_at)",
    "CREATE INDEX IF NOT EXISTS autoreplies_time ON autoreplies (sent_at)",
]


async def count_since(tx: Tx, sender: str, since: float) -> int:
    """Replies to the mailbox `sender` (a mailbox key) since `since`."""
    cur = await tx.execute(
        "SELECT COUNT(*) FROM autoreplies WHERE sender = ? AND sent_at >= ?", (sender, since)
    )
    (n,) = await cur.fetchone()
    return int(n)


async def count_domain_since(tx: Tx, domain: str, since: float) -> int:
    cur = await tx.execute(
        "SELECT COUNT(*) FROM autoreplies WHERE domain = ? AND sent_at >= ?", (domain, since)
    )
    (n,) = await cur.fetchone()
    return int(n)


async def count_all_since(tx: Tx, since: float) -> int:
    cur = await tx.execute("SELECT COUNT(*) FROM autoreplies WHERE sent_at >= ?", (since,))
    (n,) = await cur.fetchone()
    return int(n)


async def record(tx: Tx, sender: str, now: float, domain: str = "") -> None:
    await tx.execute(
        "INSERT INTO autoreplies (sender, sent_at, domain) VALUES (?, ?, ?)", (sender, now, domain)
    )
    # Keep the table small: nothing older than a day matters to the limits.
    await tx.execute("DELETE FROM autoreplies WHERE sent_at < ?", (now - 86400,))
