"""Lean reads for leaving by token (mailhub.lists.leaving): the addresses a one-click token
is compared with, and nothing else, because a forged token costs one such read.

No tables of its own: it reads `list_members` (mailhub.store.lists) and the membership
log (mailhub.store.membership).
"""

from __future__ import annotations

from mailhub.store import Tx

# Entries of the membership log that mean "was a member, is no more".
GONE_ACTIONS = ("left", "removed")


async def member_addresses(tx: Tx, list_name: str) -> list[str]:
    """Every member's address (one column of the primary key's index: no table read)."""
    cur = await tx.execute(
        "SELECT address FROM list_members WHERE list_name = ?", (list_name.lower(),)
    )
    return [r[0] for r in await cur.fetchall()]


async def former_members(tx: Tx, list_name: str) -> list[str]:
    """Addresses that left the list or were removed from it and are not members now."""
    cur = await tx.execute(
        "SELECT DISTINCT subject_address FROM moderation_log"
        " WHERE list_name = ? AND kind = 'member' AND action IN (?, ?) AND subject_address <> ''"
        " AND subject_address NOT IN (SELECT address FROM list_members WHERE list_name = ?)",
        (list_name.lower(), *GONE_ACTIONS, list_name.lower()),
    )
    return [r[0] for r in await cur.fetchall()]
