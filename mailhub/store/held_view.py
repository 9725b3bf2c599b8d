"""Lean reads of a held post for the facilitators' review (mailhub.lists.held_view): its
size and its first bytes, so that a 10 MB post costs the review no more than its start.

No tables of its own: it reads `list_held_posts` (mailhub.store.lists).
"""

from __future__ import annotations

from mailhub.store import Tx


async def held_size_and_head(tx: Tx, held_id: int, limit: int) -> tuple[int, bytes]:
    """(the held post's size in bytes, its first `limit` bytes); (0, b'') if it is gone."""
    cur = await tx.execute(
        "SELECT length(raw), substr(raw, 1, ?) FROM list_held_posts WHERE id = ?",
        (limit, held_id),
    )
    row = await cur.fetchone()
    return (int(row[0] or 0), bytes(row[1] or b"")) if row else (0, b"")
