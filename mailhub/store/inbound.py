"""The inbound queue: every accepted message, committed before intake answers 250."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from mailhub.store import Tx

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS inbound (
        seq INTEGER PRIMARY KEY,
        queue_id TEXT NOT NULL UNIQUE,
        received_at REAL NOT NULL,
        mail_from TEXT NOT NULL,
        rcpt_tos TEXT NOT NULL,
        peer TEXT NOT NULL DEFAULT '',
        raw BLOB NOT NULL,
        size INTEGER NOT NULL,
        state TEXT NOT NULL DEFAULT 'queued',
        attempts INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        updated_at REAL NOT NULL,
        sealed INTEGER NOT NULL DEFAULT 0,
        conduct INTEGER NOT NULL DEFAULT 0,
        starts INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX IF NOT EXISTS inbound_state ON inbound (state, seq)",
]

# Columns added after the table's first release: schema.migrate adds them to older files.
# `sealed`: raw is encrypted with the conduct key (mailhub.sealing). `conduct`: the message
# has a recipient on a conduct route, so its raw is case content (sealed or not).
ADDED_COLUMNS = [
    ("inbound", "sealed", "INTEGER NOT NULL DEFAULT 0"),
    ("inbound", "conduct", "INTEGER NOT NULL DEFAULT 0"),
    # How many times processing began (committed before it begins): a message whose
    # processing was cut short twice (the process died on it) is set aside.
    ("inbound", "starts", "INTEGER NOT NULL DEFAULT 0"),
]

# The one error text of a conduct item that is more than an exception type: written by
# mailhub itself, it quotes nothing of the message.
UNSEALABLE = "sealed with a conduct key that is not configured"


_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def new_queue_id() -> str:
    """A short random id people can read out: 'Q' and 12 base32 characters (60 bits).
    (Encoded by hand: base64.b32encode is pure Python and this runs for every message.)"""
    n = secrets.randbits(60)
    return "Q" + "".join(_BASE32[(n >> shift) & 31] for shift in range(55, -1, -5))


@dataclass(frozen=True)
class InboundItem:
    seq: int
    queue_id: str
    received_at: float
    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    size: int
    state: str
    attempts: int
    error: str | None
    sealed: bool = False
    starts: int = 0


@dataclass(frozen=True)
class NewInbound:
    queue_id: str
    received_at: float
    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes  # as stored: sealed already when `sealed`
    peer: str = ""
    sealed: bool = False
    conduct: bool = False
    size: int | None = None  # of the message as received (default: len(raw))
    order_key: str = ""  # mail of one key is processed in arrival order (addresses.ordering_key)


def insert_statement(items: list[NewInbound]) -> tuple[str, list]:
    """One multi-row INSERT for a group commit (a single statement is atomic on its own)."""
    rows = ", ".join(["(?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?)"] * len(items))
    params: list = []
    for i in items:
        params += [
            i.queue_id,
            i.received_at,
            i.mail_from,
            json.dumps(i.rcpt_tos),
            i.peer,
            i.raw,
            len(i.raw) if i.size is None else i.size,
            i.received_at,
            int(i.sealed),
            int(i.conduct),
            i.order_key,
        ]
    sql = (
        "INSERT INTO inbound (queue_id, received_at, mail_from, rcpt_tos, peer, raw, size,"
        " state, updated_at, sealed, conduct, order_key) VALUES " + rows
    )
    return sql, params


# Rows per statement: well under SQLite's limit on bound parameters (32766).
MAX_BATCH = 500


_COLUMNS = (
    "seq, queue_id, received_at, mail_from, rcpt_tos, raw, size, state, attempts, error, sealed,"
    " starts"
)


def _item(row: tuple) -> InboundItem:
    return InboundItem(
        row[0],
        row[1],
        row[2],
        row[3],
        tuple(json.loads(row[4])),
        bytes(row[5]),
        row[6],
        row[7],
        row[8],
        row[9],
        bool(row[10]),
        row[11],
    )


async def next_queued(tx: Tx, limit: int = 1) -> list[InboundItem]:
    """The oldest queued messages, in the order they were accepted."""
    cur = await tx.execute(
        f"SELECT {_COLUMNS} FROM inbound WHERE state = 'queued' ORDER BY seq LIMIT ?", (limit,)
    )
    return [_item(row) for row in await cur.fetchall()]


async def claim(tx: Tx, owner: str, now: float, until: float, limit: int = 1) -> list[InboundItem]:
    """The oldest queued messages this node may process now, claimed for it until `until`.

    SQLite: one process owns the file, so this is `next_queued` (no lease to write).
    PostgreSQL, several nodes: rows no other node holds a live lease on, locked with
    `FOR UPDATE SKIP LOCKED` (a node claiming at the same moment gets other rows, never
    these). Arrival order per ordering key across the cluster: a message is taken only if
    no earlier message of its key is still queued outside this claim (held by another node,
    or being claimed by one right now), so a list's mail is processed in order whichever
    node takes it. A dead node's leases run out at `lease_until`; another node's claim
    then takes the work (in order: the earliest of each key first)."""
    if tx.dialect == "sqlite":
        return await next_queued(tx, limit)
    cur = await tx.execute(
        f"SELECT {_COLUMNS}, order_key FROM inbound WHERE state = 'queued'"
        " AND (lease_until IS NULL OR lease_until < ?) ORDER BY seq LIMIT ?"
        " FOR UPDATE SKIP LOCKED",
        (now, limit),
    )
    rows = await cur.fetchall()
    if not rows:
        return []
    seqs = [row[0] for row in rows]
    keys = sorted({row[-1] for row in rows if row[-1]})
    first_outside: dict[str, int] = {}
    if keys:
        cur = await tx.execute(
            "SELECT order_key, MIN(seq) FROM inbound WHERE state = 'queued'"
            " AND order_key = ANY(?) AND NOT (seq = ANY(?)) GROUP BY order_key",
            (keys, seqs),
        )
        first_outside = dict(await cur.fetchall())
    taken = [row for row in rows if not row[-1] or row[0] < first_outside.get(row[-1], row[0] + 1)]
    if not taken:
        return []
    await tx.execute(
        "UPDATE inbound SET lease_owner = ?, lease_until = ? WHERE seq = ANY(?)",
        (owner, until, [row[0] for row in taken]),
    )
    return [_item(row[:-1]) for row in taken]


async def still_held(tx: Tx, owner: str, seqs: list[int]) -> set[int]:
    """Of these claimed messages, those still queued and still this node's, locked until the
    transaction ends: a lease that ran out and was taken by another node (which may be
    processing them now) is not processed twice. SQLite: all of them."""
    if tx.dialect == "sqlite" or not seqs:
        return set(seqs)
    cur = await tx.execute(
        "SELECT seq FROM inbound WHERE seq = ANY(?) AND state = 'queued' AND lease_owner = ?"
        " FOR UPDATE",
        (seqs, owner),
    )
    return {row[0] for row in await cur.fetchall()}


async def release(tx: Tx, owner: str, seqs: list[int]) -> None:
    """Give back claimed messages not processed after all (a batch cut short for intake)."""
    if tx.dialect == "sqlite" or not seqs:
        return
    await tx.execute(
        "UPDATE inbound SET lease_owner = NULL, lease_until = NULL"
        " WHERE seq = ANY(?) AND lease_owner = ?",
        (seqs, owner),
    )


async def renew(tx: Tx, owner: str, seqs: list[int], until: float) -> None:
    """Keep this node's claim on messages it is still working on."""
    if tx.dialect == "sqlite" or not seqs:
        return
    await tx.execute(
        "UPDATE inbound SET lease_until = ? WHERE seq = ANY(?) AND lease_owner = ?"
        " AND state = 'queued'",
        (until, seqs, owner),
    )


async def get(tx: Tx, queue_id: str) -> InboundItem | None:
    cur = await tx.execute(f"SELECT {_COLUMNS} FROM inbound WHERE queue_id = ?", (queue_id,))
    row = await cur.fetchone()
    return _item(row) if row else None


async def count_starts(tx: Tx, seqs: list[int]) -> None:
    """Note that processing of these messages begins (commit it before it does)."""
    await tx.executemany(
        "UPDATE inbound SET starts = starts + 1 WHERE seq = ?", [(s,) for s in seqs]
    )


async def uncount_starts(tx: Tx, seqs: list[int]) -> None:
    """Processing of these did not begin after all (a batch cut short for intake)."""
    if not seqs:  # nearly always: spare the trip to SQLite's thread
        return
    await tx.executemany(
        "UPDATE inbound SET starts = starts - 1 WHERE seq = ?", [(s,) for s in seqs]
    )


_DONE = (
    "UPDATE inbound SET state = 'done', raw = X'', attempts = attempts + 1, error = NULL,"
    " updated_at = ? WHERE seq = ?"
)


async def mark_done(tx: Tx, seq: int, now: float) -> None:
    # The raw bytes are kept only while needed: apps that keep mail (archives, cases)
    # store their own copy in the same transaction.
    await tx.execute(_DONE, (now, seq))


async def mark_all_done(tx: Tx, seqs: list[int], now: float) -> None:
    """`mark_done` for a whole batch in one statement (one trip to SQLite's thread)."""
    if seqs:
        await tx.executemany(_DONE, [(now, seq) for seq in seqs])


def conduct_error(error: str) -> str:
    """What a conduct item's error may say: the exception type only (`error` is "Type:
    message", and a message can quote content), or mailhub's own UNSEALABLE text."""
    kind, _, text = error.partition(": ")
    return text if text == UNSEALABLE else kind


async def mark_failed(tx: Tx, seq: int, error: str, now: float) -> None:
    await tx.execute(
        "UPDATE inbound SET state = 'failed', attempts = attempts + 1,"
        " error = CASE WHEN conduct = 1 THEN ? ELSE ? END, updated_at = ? WHERE seq = ?",
        (conduct_error(error), error, now, seq),
    )


async def delete_failed_conduct(tx: Tx, before: float) -> int:
    """Delete failed conduct items untouched since `before` (retention: their raw is case
    content, sealed or not). Returns how many."""
    cur = await tx.execute(
        "DELETE FROM inbound WHERE state = 'failed' AND (conduct = 1 OR sealed = 1)"
        " AND updated_at < ?",
        (before,),
    )
    return cur.rowcount


async def count_queued(tx: Tx) -> int:
    """How many messages wait to be processed."""
    cur = await tx.execute("SELECT COUNT(*) FROM inbound WHERE state = 'queued'")
    (count,) = await cur.fetchone()
    return int(count)


async def requeue(tx: Tx, queue_id: str, now: float) -> bool:
    cur = await tx.execute(
        "UPDATE inbound SET state = 'queued', starts = 0, updated_at = ?"
        " WHERE queue_id = ? AND state = 'failed'",
        (now, queue_id),
    )
    return cur.rowcount == 1


async def summary(tx: Tx) -> list[tuple[str, int, float | None]]:
    """(state, count, oldest received_at) per state."""
    cur = await tx.execute(
        "SELECT state, COUNT(*), MIN(received_at) FROM inbound GROUP BY state ORDER BY state"
    )
    return [tuple(r) for r in await cur.fetchall()]


async def failed(tx: Tx, limit: int = 50) -> list[tuple[str, float, str, str, str]]:
    """(queue_id, received_at, mail_from, rcpt_tos, error) of failed items, oldest first."""
    cur = await tx.execute(
        "SELECT queue_id, received_at, mail_from, rcpt_tos, error FROM inbound"
        " WHERE state = 'failed' ORDER BY seq LIMIT ?",
        (limit,),
    )
    return [tuple(r) for r in await cur.fetchall()]
