"""Enquiry threads: each enquiry's reference, the hash of its reply token, who wrote it, and
the Message-IDs that belong to it (the sender's messages, our forwards, the
acknowledgement), so that a reply can be threaded under the forward of the original.

The reply token (in `enquiries+TOKEN@D`, the acknowledgement's Reply-To) is stored only as
its hash; a reply joins a thread only from the mailbox that opened it (mailhub.enquiries).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mailhub.store import Tx

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS enquiries (
        ref TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        sender TEXT NOT NULL,
        subject TEXT NOT NULL,
        first_forward TEXT NOT NULL,
        last_forward TEXT NOT NULL,
        opened_at REAL NOT NULL,
        updated_at REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS enquiry_messages (
        message_id TEXT NOT NULL,
        ref TEXT NOT NULL REFERENCES enquiries (ref),
        added_at REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS enquiry_messages_id ON enquiry_messages (message_id)",
]


@dataclass(frozen=True)
class Enquiry:
    ref: str
    sender: str  # the mailbox key of who opened it (mailhub.mailbox.mailbox_key)
    subject: str  # the subject its forwards carry, with the reference
    first_forward: str  # Message-ID of the forward of the original
    last_forward: str  # Message-ID of the latest forward in the thread
    opened_at: float
    updated_at: float


_COLUMNS = "ref, sender, subject, first_forward, last_forward, opened_at, updated_at"


async def open_enquiry(
    tx: Tx, enquiry: Enquiry, token_hash: str, message_ids: Iterable[str]
) -> None:
    await tx.execute(
        f"INSERT INTO enquiries ({_COLUMNS}, token_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            enquiry.ref,
            enquiry.sender,
            enquiry.subject,
            enquiry.first_forward,
            enquiry.last_forward,
            enquiry.opened_at,
            enquiry.updated_at,
            token_hash,
        ),
    )
    await add_messages(tx, enquiry.ref, message_ids, enquiry.opened_at)


async def add_messages(tx: Tx, ref: str, message_ids: Iterable[str], now: float) -> None:
    for message_id in dict.fromkeys(m for m in message_ids if m):
        await tx.execute(
            "INSERT INTO enquiry_messages (message_id, ref, added_at) VALUES (?, ?, ?)",
            (message_id, ref, now),
        )


async def by_token(tx: Tx, token_hash: str) -> Enquiry | None:
    cur = await tx.execute(f"SELECT {_COLUMNS} FROM enquiries WHERE token_hash = ?", (token_hash,))
    row = await cur.fetchone()
    return Enquiry(*row) if row else None


async def by_message_ids(tx: Tx, message_ids: list[str], senders: Iterable[str]) -> Enquiry | None:
    """The latest enquiry of one of `senders` that one of `message_ids` belongs to."""
    ids, who = list(dict.fromkeys(message_ids)), list(dict.fromkeys(senders))
    if not ids or not who:
        return None
    cur = await tx.execute(
        f"SELECT {', '.join('e.' + c.strip() for c in _COLUMNS.split(','))}"
        " FROM enquiries e JOIN enquiry_messages m ON m.ref = e.ref"
        f" WHERE m.message_id IN ({', '.join('?' * len(ids))})"
        f" AND e.sender IN ({', '.join('?' * len(who))})"
        " ORDER BY e.updated_at DESC LIMIT 1",
        (*ids, *who),
    )
    row = await cur.fetchone()
    return Enquiry(*row) if row else None


async def followed_up(
    tx: Tx, ref: str, forward_id: str, message_ids: Iterable[str], now: float
) -> None:
    """A reply joined the enquiry: its forward is now the thread's latest."""
    await tx.execute(
        "UPDATE enquiries SET last_forward = ?, updated_at = ? WHERE ref = ?",
        (forward_id, now, ref),
    )
    await add_messages(tx, ref, [*message_ids, forward_id], now)
