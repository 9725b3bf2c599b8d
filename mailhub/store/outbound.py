"""The outbound queue (transactional outbox) and per-recipient delivery status.

Apps enqueue here inside the same transaction as their state change; the delivery
worker reads due messages and records each recipient's answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailhub.store import Tx

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS outbound (
        id INTEGER PRIMARY KEY,
        message_id TEXT NOT NULL,
        mail_from TEXT NOT NULL,
        raw BLOB NOT NULL,
        kind TEXT NOT NULL,
        source TEXT NOT NULL DEFAULT '',
        personalise TEXT,
        created_at REAL NOT NULL,
        next_attempt_at REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        state TEXT NOT NULL DEFAULT 'queued',
        sealed INTEGER NOT NULL DEFAULT 0,
        case_ref TEXT NOT NULL DEFAULT ''
    )""",
    "CREATE INDEX IF NOT EXISTS outbound_due ON outbound (state, next_attempt_at)",
    """CREATE TABLE IF NOT EXISTS outbound_rcpt (
        outbound_id INTEGER NOT NULL REFERENCES outbound (id) ON DELETE CASCADE,
        rcpt TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        reply TEXT,
        updated_at REAL,
        PRIMARY KEY (outbound_id, rcpt)
    )""",
]

# Columns added after the table's first release: schema.migrate adds them to older files,
# then creates ADDED_INDEXES. `sealed`: raw is encrypted with the conduct key
# (mailhub.sealing); `case_ref`: the conduct case the message belongs to ('' for none).
ADDED_COLUMNS = [
    ("outbound", "sealed", "INTEGER NOT NULL DEFAULT 0"),
    ("outbound", "case_ref", "TEXT NOT NULL DEFAULT ''"),
]
ADDED_INDEXES = [
    "CREATE INDEX IF NOT EXISTS outbound_case ON outbound (case_ref) WHERE case_ref <> ''",
]


@dataclass(frozen=True)
class OutboundItem:
    id: int
    message_id: str
    mail_from: str
    raw: bytes
    kind: str
    source: str
    created_at: float
    attempts: int
    pending: tuple[str, ...]
    personalise: str | None = None
    sealed: bool = False
    case_ref: str = ""


@dataclass(frozen=True)
class RecipientResult:
    rcpt: str
    state: str  # 'sent' | 'pending' (try again) | 'bounced' | 'expired'
    reply: str


async def insert(
    tx: Tx,
    *,
    message_id: str,
    mail_from: str,
    rcpts: list[str],
    raw: bytes,
    kind: str,
    source: str,
    now: float,
    personalise: str | None = None,
    sealed: bool = False,
    case_ref: str = "",
    order_key: str = "",
) -> int:
    """`raw` as stored: already sealed when `sealed`. `order_key`: messages of one key are
    sent one after another, in order (a list's posts; see `due`)."""
    cur = await tx.execute(
        "INSERT INTO outbound (message_id, mail_from, raw, kind, source, personalise, created_at,"
        " next_attempt_at, sealed, case_ref, order_key)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (
            message_id, mail_from, raw, kind, source, personalise, now, now, int(sealed),
            case_ref, order_key,
        ),
    )  # fmt: skip
    outbound_id = int((await cur.fetchone())[0])
    await tx.executemany(
        "INSERT INTO outbound_rcpt (outbound_id, rcpt) VALUES (?, ?)",
        [(outbound_id, r) for r in dict.fromkeys(rcpts)],
    )
    return int(outbound_id)


_DUE = (
    "SELECT id, message_id, mail_from, raw, kind, source, created_at, attempts, personalise,"
    " sealed, case_ref, order_key FROM outbound WHERE state = 'queued' AND next_attempt_at <= ?"
)


async def _in_order(tx: Tx, rows: list, now: float) -> list:
    """Of the due rows, those that may be sent now without overtaking: per ordering key (a
    list's posts), only the earliest message due, and only when no earlier one of the key
    is due or in flight elsewhere (in flight = still queued and due). So members get a
    list's posts in the order they were processed, from any node; a message waiting for a
    retry later does not hold back the rest. Rows without a key go as they are."""
    keys = sorted({r[11] for r in rows if r[11]})
    if not keys:
        return rows
    cur = await tx.execute(
        "SELECT order_key, MIN(id) FROM outbound WHERE state = 'queued'"
        f" AND next_attempt_at <= ? AND order_key IN ({', '.join('?' * len(keys))})"
        " GROUP BY order_key",
        [now, *keys],
    )
    first = dict(await cur.fetchall())
    return [r for r in rows if not r[11] or first.get(r[11]) == r[0]]


async def due(
    tx: Tx,
    now: float,
    limit: int,
    exclude: set[int],
    owner: str = "",
    until: float | None = None,
) -> list[OutboundItem]:
    """Messages due for an attempt, claimed for this node (`owner`) until `until`.

    SQLite: one process owns the file; `exclude` are the messages it is sending already.
    PostgreSQL, several nodes: rows no other node holds a live lease on, locked with
    `FOR UPDATE SKIP LOCKED` so two nodes claiming at once get different messages, then
    leased to this node. A node that dies mid-send loses its leases at `lease_until`, and
    another node sends to the recipients whose answer was not yet recorded (the in-flight
    window: at most the SMTP transactions that were in progress are sent twice)."""
    if tx.dialect == "sqlite":
        cur = await tx.execute(
            _DUE + " ORDER BY next_attempt_at, id LIMIT ?", (now, limit + len(exclude))
        )
        rows = await _in_order(tx, [r for r in await cur.fetchall() if r[0] not in exclude], now)
        rows = rows[:limit]
    else:
        cur = await tx.execute(
            _DUE + " AND (lease_until IS NULL OR lease_until < ?) AND NOT (id = ANY(?))"
            " ORDER BY next_attempt_at, id LIMIT ? FOR UPDATE SKIP LOCKED",
            (now, now, sorted(exclude), limit),
        )
        rows = await _in_order(tx, list(await cur.fetchall()), now)
        if rows:
            await tx.execute(
                "UPDATE outbound SET lease_owner = ?, lease_until = ? WHERE id = ANY(?)",
                (owner, until if until is not None else now, [r[0] for r in rows]),
            )
    if not rows:
        return []
    # Every row's pending recipients in one statement (not one per row: each statement is a
    # trip to SQLite's thread, and the delivery worker asks after every message it sends).
    rc = await tx.execute(
        "SELECT outbound_id, rcpt FROM outbound_rcpt WHERE state = 'pending' AND outbound_id IN"
        f" ({', '.join('?' * len(rows))}) ORDER BY outbound_id, rcpt",
        [r[0] for r in rows],
    )
    pending: dict[int, list[str]] = {}
    for outbound_id, rcpt in await rc.fetchall():
        pending.setdefault(outbound_id, []).append(rcpt)
    return [
        OutboundItem(
            r[0],
            r[1],
            r[2],
            bytes(r[3]),
            r[4],
            r[5],
            r[6],
            r[7],
            tuple(pending.get(r[0], ())),
            r[8],
            bool(r[9]),
            r[10],
        )
        for r in rows
    ]


async def renew(tx: Tx, owner: str, ids: list[int], until: float) -> None:
    """Keep this node's claim on the messages it is still sending (PostgreSQL)."""
    if tx.dialect == "sqlite" or not ids:
        return
    await tx.execute(
        "UPDATE outbound SET lease_until = ? WHERE id = ANY(?) AND lease_owner = ?",
        (until, ids, owner),
    )


async def next_due_at(tx: Tx) -> float | None:
    cur = await tx.execute("SELECT MIN(next_attempt_at) FROM outbound WHERE state = 'queued'")
    (t,) = await cur.fetchone()
    return t


async def count_due(tx: Tx, now: float) -> int:
    """How many queued messages are due for a delivery attempt at `now`."""
    cur = await tx.execute(
        "SELECT COUNT(*) FROM outbound WHERE state = 'queued' AND next_attempt_at <= ?", (now,)
    )
    (count,) = await cur.fetchone()
    return int(count)


async def record_recipients(tx: Tx, results: list[tuple[int, RecipientResult]], now: float) -> None:
    """Record the relay's answer for each (outbound id, recipient) of SMTP transactions."""
    await tx.executemany(
        "UPDATE outbound_rcpt SET state = ?, reply = ?, updated_at = ?"
        " WHERE outbound_id = ? AND rcpt = ?",
        [(r.state, r.reply[:500], now, outbound_id, r.rcpt) for outbound_id, r in results],
    )


async def settle(tx: Tx, outbound_id: int, retry_at: float | None) -> None:
    """After an attempt: try again at `retry_at` if anyone is still pending, else done (the
    body is no longer needed then: case mail must not linger in the queue). One statement:
    it runs after every message sent."""
    await tx.execute(
        "UPDATE outbound SET attempts = attempts + 1,"
        " next_attempt_at = CASE WHEN " + _RETRY + " THEN :retry ELSE next_attempt_at END,"
        " state = CASE WHEN " + _RETRY + " THEN state ELSE 'done' END,"
        " raw = CASE WHEN " + _RETRY + " THEN raw ELSE X'' END" + _UNLEASED + " WHERE id = :id",
        {"retry": retry_at, "id": outbound_id},
    )


# The node's claim ends with its attempt: the next one may be any node's. (Only PostgreSQL
# writes leases; on SQLite the columns stay NULL and this costs nothing.)
_UNLEASED = ", lease_owner = NULL, lease_until = NULL"

# Is the message to be tried again: a retry time given, and a recipient still pending?
_RETRY = (
    "(CAST(:retry AS DOUBLE PRECISION) IS NOT NULL AND EXISTS (SELECT 1 FROM outbound_rcpt"
    " WHERE outbound_id = :id AND state = 'pending'))"
)


async def postpone(tx: Tx, outbound_id: int, retry_at: float) -> None:
    """Leave a message queued, untouched but for its next attempt (one that cannot be sent
    yet, e.g. sealed with a key that is not configured)."""
    await tx.execute(
        "UPDATE outbound SET attempts = attempts + 1, next_attempt_at = ?"
        + _UNLEASED
        + " WHERE id = ?",
        (retry_at, outbound_id),
    )


async def delete_case(tx: Tx, case_ref: str) -> int:
    """Delete every message of a conduct case and its recipients (retention: who was sent
    what reveals who was recused). Returns how many messages."""
    await tx.execute(
        "DELETE FROM outbound_rcpt WHERE outbound_id IN"
        " (SELECT id FROM outbound WHERE case_ref = ?)",
        (case_ref,),
    )
    cur = await tx.execute("DELETE FROM outbound WHERE case_ref = ?", (case_ref,))
    return cur.rowcount


async def summary(tx: Tx) -> list[tuple[str, int, float | None]]:
    cur = await tx.execute(
        "SELECT r.state, COUNT(*), MIN(o.created_at) FROM outbound_rcpt r"
        " JOIN outbound o ON o.id = r.outbound_id GROUP BY r.state ORDER BY r.state"
    )
    return [tuple(r) for r in await cur.fetchall()]


async def recipients(tx: Tx, outbound_id: int) -> list[tuple[str, str, str | None]]:
    cur = await tx.execute(
        "SELECT rcpt, state, reply FROM outbound_rcpt WHERE outbound_id = ? ORDER BY rcpt",
        (outbound_id,),
    )
    return [tuple(r) for r in await cur.fetchall()]
