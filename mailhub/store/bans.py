"""The bans register: who may not post to or join which lists, until when.

Written by the conduct app (a case closed with a ban), read by the lists app
(decide_post, joining), listed by `mailhub bans`. Records are kept after a ban
ends, so they can be reviewed later (the community's reporting process).
"""

from __future__ import annotations

from dataclasses import dataclass

from mailhub.store import Tx

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS bans (
        id INTEGER PRIMARY KEY,
        address TEXT NOT NULL,
        scope TEXT NOT NULL,
        starts_at REAL NOT NULL,
        ends_at REAL,
        case_ref TEXT NOT NULL DEFAULT '',
        reason TEXT NOT NULL DEFAULT '',
        created_by TEXT NOT NULL DEFAULT ''
    )""",
    "CREATE INDEX IF NOT EXISTS bans_address ON bans (address)",
]


@dataclass(frozen=True)
class Ban:
    id: int
    address: str
    scope: str  # a list name, or 'all'
    starts_at: float
    ends_at: float | None  # None: permanent
    case_ref: str
    reason: str
    created_by: str


_COLUMNS = "id, address, scope, starts_at, ends_at, case_ref, reason, created_by"


async def add(
    tx: Tx,
    *,
    address: str,
    scope: str,
    starts_at: float,
    ends_at: float | None,
    case_ref: str = "",
    reason: str = "",
    created_by: str = "",
) -> int:
    cur = await tx.execute(
        "INSERT INTO bans (address, scope, starts_at, ends_at, case_ref, reason, created_by)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (address.lower(), scope.lower(), starts_at, ends_at, case_ref, reason, created_by),
    )
    return int((await cur.fetchone())[0])


async def active(tx: Tx, address: str, list_name: str, now: float) -> Ban | None:
    """The ban in force for `address` on `list_name` at `now`, if any."""
    cur = await tx.execute(
        f"SELECT {_COLUMNS} FROM bans WHERE address = ? AND scope IN ('all', ?)"
        " AND starts_at <= ? AND (ends_at IS NULL OR ends_at > ?) ORDER BY ends_at IS NULL DESC,"
        " ends_at DESC LIMIT 1",
        (address.lower(), list_name.lower(), now, now),
    )
    row = await cur.fetchone()
    return Ban(*row) if row else None


async def all_bans(tx: Tx) -> list[Ban]:
    cur = await tx.execute(f"SELECT {_COLUMNS} FROM bans ORDER BY starts_at DESC")
    return [Ban(*r) for r in await cur.fetchall()]
