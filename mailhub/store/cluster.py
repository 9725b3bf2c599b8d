"""What keeps several nodes on one database from doing the same scheduled work twice.

A scheduled job (reviews, digests, reminders, expiry, retention) asks what is due and does
it in one transaction. On SQLite one process owns the file and its transactions never
overlap. On PostgreSQL every node runs the scheduler: each job's transaction first takes
a transaction-level advisory lock named after the job; a node that cannot take it skips
the job this round (another node is running it), and a node that takes it after another
node committed sees what that node did (READ COMMITTED: each statement sees every commit
before it), so what was due is done once.
"""

from __future__ import annotations

import hashlib

from mailhub.store import Tx


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for an advisory lock (Python's hash() differs per process)."""
    return int.from_bytes(
        hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True
    )


async def take_job(tx: Tx, name: str) -> bool:
    """True if this transaction may run job `name` now: always on SQLite; on PostgreSQL when
    no other node's transaction holds the job (held until this transaction ends)."""
    if tx.dialect == "sqlite":
        return True
    cur = await tx.execute("SELECT pg_try_advisory_xact_lock(?)", (lock_key("job:" + name),))
    (taken,) = await cur.fetchone()
    return bool(taken)
