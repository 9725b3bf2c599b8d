"""Code-of-conduct cases: the case, its messages, its recusals and its audit trail.

Message content is kept as opaque bytes (encrypted by the conduct app when a key is
configured): nothing here reads it. The audit trail is append-only: this module
offers no way to change or delete an entry, and retention deletes only content.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailhub.store import Tx

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS conduct_cases (
        ref TEXT PRIMARY KEY,
        opened_at REAL NOT NULL,
        state TEXT NOT NULL DEFAULT 'open',
        reporter TEXT NOT NULL,
        direct_member TEXT NOT NULL DEFAULT '',
        shared INTEGER NOT NULL DEFAULT 0,
        flags TEXT NOT NULL DEFAULT '',
        answered_at REAL,
        reminded_at REAL,
        escalated_at REAL,
        closed_at REAL,
        outcome TEXT NOT NULL DEFAULT '',
        content_deleted_at REAL,
        release_at REAL,
        released_at REAL
    )""",
    """CREATE TABLE IF NOT EXISTS conduct_messages (
        id INTEGER PRIMARY KEY,
        case_ref TEXT NOT NULL REFERENCES conduct_cases (ref),
        received_at REAL NOT NULL,
        kind TEXT NOT NULL,
        author TEXT NOT NULL,
        encrypted INTEGER NOT NULL,
        raw BLOB NOT NULL,
        held INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX IF NOT EXISTS conduct_messages_case ON conduct_messages (case_ref, id)",
    """CREATE TABLE IF NOT EXISTS conduct_recusals (
        id INTEGER PRIMARY KEY,
        case_ref TEXT NOT NULL REFERENCES conduct_cases (ref),
        member TEXT NOT NULL,
        reason TEXT NOT NULL,
        possible INTEGER NOT NULL,
        recused_at REAL NOT NULL,
        lifted_at REAL,
        lifted_by TEXT NOT NULL DEFAULT ''
    )""",
    "CREATE INDEX IF NOT EXISTS conduct_recusals_case ON conduct_recusals (case_ref)",
    """CREATE TABLE IF NOT EXISTS conduct_audit (
        id INTEGER PRIMARY KEY,
        case_ref TEXT NOT NULL,
        at REAL NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    )""",
    "CREATE INDEX IF NOT EXISTS conduct_audit_case ON conduct_audit (case_ref, id)",
    # Reply-address tokens: one per copy of case mail, bound to one case and one owner (a
    # member key, 'fallback' or 'reporter'); only the SHA-256 of the token is kept.
    """CREATE TABLE IF NOT EXISTS conduct_tokens (
        hash TEXT PRIMARY KEY,
        case_ref TEXT NOT NULL,
        owner TEXT NOT NULL,
        created_at REAL NOT NULL,
        revoked_at REAL
    )""",
    "CREATE INDEX IF NOT EXISTS conduct_tokens_owner ON conduct_tokens (case_ref, owner)",
    # Messages that acted on a case, by Message-ID: a replayed message acts only once.
    """CREATE TABLE IF NOT EXISTS conduct_openings (
        sender_key TEXT NOT NULL,
        opened_at REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS conduct_openings_key ON conduct_openings (sender_key, opened_at)",
    """CREATE TABLE IF NOT EXISTS conduct_seen (
        case_ref TEXT NOT NULL,
        message_id TEXT NOT NULL,
        PRIMARY KEY (case_ref, message_id)
    )""",
]

# Columns added after the first release: (table, column, definition) for older files.
ADDED_COLUMNS = [
    ("conduct_cases", "release_at", "REAL"),
    ("conduct_cases", "released_at", "REAL"),
    ("conduct_messages", "held", "INTEGER NOT NULL DEFAULT 0"),
]


@dataclass(frozen=True)
class Case:
    ref: str
    opened_at: float
    state: str  # open | closed
    reporter: str
    direct_member: str  # the member key of a report sent to conduct-MEMBER@D, else ''
    shared: bool  # a direct report shared with the committee
    flags: tuple[str, ...]  # e.g. 'unscannable', 'direct'
    answered_at: float | None  # when the committee first answered the reporter
    reminded_at: float | None
    escalated_at: float | None
    closed_at: float | None
    outcome: str
    content_deleted_at: float | None
    release_at: float | None = None  # when the report goes to the committee
    released_at: float | None = None  # when it went (None: still in the reporter's window)

    @property
    def is_open(self) -> bool:
        return self.state == "open"

    @property
    def released(self) -> bool:
        return self.released_at is not None


@dataclass(frozen=True)
class CaseMessage:
    id: int
    case_ref: str
    received_at: float
    kind: str  # report | reporter | committee | to-reporter
    author: str
    encrypted: bool
    raw: bytes
    held: bool = False  # parts could not be read: the committee got it without them


@dataclass(frozen=True)
class Recusal:
    id: int
    case_ref: str
    member: str
    reason: str
    possible: bool
    recused_at: float
    lifted_at: float | None
    lifted_by: str

    @property
    def active(self) -> bool:
        return self.lifted_at is None


@dataclass(frozen=True)
class AuditEntry:
    id: int
    case_ref: str
    at: float
    actor: str
    action: str
    detail: str


_CASE = (
    "ref, opened_at, state, reporter, direct_member, shared, flags, answered_at, reminded_at,"
    " escalated_at, closed_at, outcome, content_deleted_at, release_at, released_at"
)


def _case(row: tuple) -> Case:
    r = list(row)
    r[5] = bool(r[5])
    r[6] = tuple(f for f in r[6].split(",") if f)
    return Case(*r)


async def ref_exists(tx: Tx, ref: str) -> bool:
    cur = await tx.execute("SELECT 1 FROM conduct_cases WHERE ref = ?", (ref.upper(),))
    return await cur.fetchone() is not None


async def create_case(
    tx: Tx,
    *,
    ref: str,
    opened_at: float,
    reporter: str,
    direct_member: str = "",
    flags: tuple[str, ...] = (),
    release_at: float | None = None,
) -> None:
    await tx.execute(
        "INSERT INTO conduct_cases (ref, opened_at, reporter, direct_member, flags, release_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (ref.upper(), opened_at, reporter.lower(), direct_member, ",".join(flags), release_at),
    )


async def get_case(tx: Tx, ref: str) -> Case | None:
    cur = await tx.execute(f"SELECT {_CASE} FROM conduct_cases WHERE ref = ?", (ref.upper(),))
    row = await cur.fetchone()
    return _case(row) if row else None


async def all_cases(tx: Tx) -> list[Case]:
    cur = await tx.execute(f"SELECT {_CASE} FROM conduct_cases ORDER BY opened_at")
    return [_case(r) for r in await cur.fetchall()]


async def open_cases(tx: Tx) -> list[Case]:
    cur = await tx.execute(
        f"SELECT {_CASE} FROM conduct_cases WHERE state = 'open' ORDER BY opened_at"
    )
    return [_case(r) for r in await cur.fetchall()]


async def add_flag(tx: Tx, ref: str, flag: str) -> None:
    case = await get_case(tx, ref)
    if case is not None and flag not in case.flags:
        flags = ",".join((*case.flags, flag))
        await tx.execute("UPDATE conduct_cases SET flags = ? WHERE ref = ?", (flags, case.ref))


async def remove_flag(tx: Tx, ref: str, flag: str) -> None:
    case = await get_case(tx, ref)
    if case is not None and flag in case.flags:
        flags = ",".join(f for f in case.flags if f != flag)
        await tx.execute("UPDATE conduct_cases SET flags = ? WHERE ref = ?", (flags, case.ref))


async def mark_released(tx: Tx, ref: str, at: float) -> bool:
    """Mark the report released to the committee; False if it already was."""
    cur = await tx.execute(
        "UPDATE conduct_cases SET released_at = ? WHERE ref = ? AND released_at IS NULL",
        (at, ref.upper()),
    )
    return cur.rowcount == 1


async def due_for_release(tx: Tx, now: float) -> list[Case]:
    cur = await tx.execute(
        f"SELECT {_CASE} FROM conduct_cases WHERE released_at IS NULL AND release_at <= ?"
        " ORDER BY release_at",
        (now,),
    )
    return [_case(r) for r in await cur.fetchall()]


async def openings_since(tx: Tx, sender_key: str, since: float) -> int:
    """Cases opened since `since` by the normalised mailbox `sender_key` (the rate limit)."""
    cur = await tx.execute(
        "SELECT COUNT(*) FROM conduct_openings WHERE sender_key = ? AND opened_at >= ?",
        (sender_key, since),
    )
    (n,) = await cur.fetchone()
    return int(n)


async def record_opening(tx: Tx, sender_key: str, at: float) -> None:
    await tx.execute(
        "INSERT INTO conduct_openings (sender_key, opened_at) VALUES (?, ?)", (sender_key, at)
    )
    # Nothing older than a day matters to the limit.
    await tx.execute("DELETE FROM conduct_openings WHERE opened_at < ?", (at - 86400,))


async def mark_shared(tx: Tx, ref: str) -> None:
    await tx.execute("UPDATE conduct_cases SET shared = 1 WHERE ref = ?", (ref.upper(),))


async def mark_answered(tx: Tx, ref: str, at: float) -> None:
    await tx.execute(
        "UPDATE conduct_cases SET answered_at = ? WHERE ref = ? AND answered_at IS NULL",
        (at, ref.upper()),
    )


async def mark_reminded(tx: Tx, ref: str, at: float) -> None:
    await tx.execute("UPDATE conduct_cases SET reminded_at = ? WHERE ref = ?", (at, ref.upper()))


async def mark_escalated(tx: Tx, ref: str, at: float) -> None:
    await tx.execute("UPDATE conduct_cases SET escalated_at = ? WHERE ref = ?", (at, ref.upper()))


async def close_case(tx: Tx, ref: str, outcome: str, at: float) -> None:
    await tx.execute(
        "UPDATE conduct_cases SET state = 'closed', outcome = ?, closed_at = ? WHERE ref = ?",
        (outcome, at, ref.upper()),
    )


async def closed_before(tx: Tx, cutoff: float) -> list[Case]:
    """Closed cases whose content is still kept and that closed before `cutoff`."""
    cur = await tx.execute(
        f"SELECT {_CASE} FROM conduct_cases WHERE state = 'closed' AND closed_at < ?"
        " AND content_deleted_at IS NULL ORDER BY closed_at",
        (cutoff,),
    )
    return [_case(r) for r in await cur.fetchall()]


async def delete_content(tx: Tx, ref: str, at: float) -> int:
    """Delete a case's messages (its content); the case record and audit trail stay."""
    cur = await tx.execute("DELETE FROM conduct_messages WHERE case_ref = ?", (ref.upper(),))
    await tx.execute("DELETE FROM conduct_tokens WHERE case_ref = ?", (ref.upper(),))
    await tx.execute("DELETE FROM conduct_seen WHERE case_ref = ?", (ref.upper(),))
    await tx.execute(
        "UPDATE conduct_cases SET content_deleted_at = ? WHERE ref = ?", (at, ref.upper())
    )
    return cur.rowcount


# --- messages ----------------------------------------------------------------------------


_MESSAGE = "id, case_ref, received_at, kind, author, encrypted, raw, held"


def _message(r: tuple) -> CaseMessage:
    return CaseMessage(r[0], r[1], r[2], r[3], r[4], bool(r[5]), bytes(r[6]), bool(r[7]))


async def add_message(
    tx: Tx,
    *,
    ref: str,
    received_at: float,
    kind: str,
    author: str,
    raw: bytes,
    encrypted: bool,
    held: bool = False,
) -> int:
    cur = await tx.execute(
        "INSERT INTO conduct_messages (case_ref, received_at, kind, author, encrypted, raw, held)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (ref.upper(), received_at, kind, author.lower(), int(encrypted), raw, int(held)),
    )
    return int((await cur.fetchone())[0])


async def release_held(tx: Tx, ref: str) -> None:
    await tx.execute(
        "UPDATE conduct_messages SET held = 0 WHERE case_ref = ? AND held = 1", (ref.upper(),)
    )


async def messages(tx: Tx, ref: str) -> list[CaseMessage]:
    cur = await tx.execute(
        f"SELECT {_MESSAGE} FROM conduct_messages WHERE case_ref = ? ORDER BY id", (ref.upper(),)
    )
    return [_message(r) for r in await cur.fetchall()]


async def first_message(tx: Tx, ref: str, kind: str = "report") -> CaseMessage | None:
    cur = await tx.execute(
        f"SELECT {_MESSAGE} FROM conduct_messages WHERE case_ref = ? AND kind = ?"
        " ORDER BY id LIMIT 1",
        (ref.upper(), kind),
    )
    r = await cur.fetchone()
    return _message(r) if r else None


# --- recusals ----------------------------------------------------------------------------

_RECUSAL = "id, case_ref, member, reason, possible, recused_at, lifted_at, lifted_by"


def _recusal(r: tuple) -> Recusal:
    return Recusal(r[0], r[1], r[2], r[3], bool(r[4]), r[5], r[6], r[7])


async def add_recusal(
    tx: Tx, *, ref: str, member: str, reason: str, possible: bool, at: float
) -> int:
    cur = await tx.execute(
        "INSERT INTO conduct_recusals (case_ref, member, reason, possible, recused_at)"
        " VALUES (?, ?, ?, ?, ?) RETURNING id",
        (ref.upper(), member, reason, int(possible), at),
    )
    return int((await cur.fetchone())[0])


async def recusals(tx: Tx, ref: str) -> list[Recusal]:
    cur = await tx.execute(
        f"SELECT {_RECUSAL} FROM conduct_recusals WHERE case_ref = ? ORDER BY id", (ref.upper(),)
    )
    return [_recusal(r) for r in await cur.fetchall()]


async def lift_recusal(tx: Tx, recusal_id: int, by: str, at: float) -> None:
    await tx.execute(
        "UPDATE conduct_recusals SET lifted_at = ?, lifted_by = ? WHERE id = ? AND lifted_at IS NULL",
        (at, by.lower(), recusal_id),
    )


# --- the audit trail (append-only) -------------------------------------------------------


async def audit(tx: Tx, ref: str, at: float, actor: str, action: str, detail: str = "") -> None:
    await tx.execute(
        "INSERT INTO conduct_audit (case_ref, at, actor, action, detail) VALUES (?, ?, ?, ?, ?)",
        (ref.upper(), at, actor.lower(), action, detail),
    )


async def audit_trail(tx: Tx, ref: str) -> list[AuditEntry]:
    cur = await tx.execute(
        "SELECT id, case_ref, at, actor, action, detail FROM conduct_audit WHERE case_ref = ?"
        " ORDER BY id",
        (ref.upper(),),
    )
    return [AuditEntry(*r) for r in await cur.fetchall()]


async def last_action_at(tx: Tx, ref: str, action: str) -> float | None:
    """When the audit trail of case `ref` last recorded `action` (None: never)."""
    cur = await tx.execute(
        "SELECT MAX(at) FROM conduct_audit WHERE case_ref = ? AND action = ?",
        (ref.upper(), action),
    )
    row = await cur.fetchone()
    return None if row is None or row[0] is None else float(row[0])


# --- reply-address tokens and replays ------------------------------------------------------


async def add_token(tx: Tx, token_hash: str, ref: str, owner: str, at: float) -> None:
    await tx.execute(
        "INSERT INTO conduct_tokens (hash, case_ref, owner, created_at) VALUES (?, ?, ?, ?)",
        (token_hash, ref.upper(), owner, at),
    )


async def token_owner(tx: Tx, token_hash: str, ref: str) -> str | None:
    """The owner of a live token of case `ref` (None: unknown, another case's, or revoked)."""
    cur = await tx.execute(
        "SELECT owner FROM conduct_tokens WHERE hash = ? AND case_ref = ? AND revoked_at IS NULL",
        (token_hash, ref.upper()),
    )
    row = await cur.fetchone()
    return row[0] if row else None


async def revoke_tokens(tx: Tx, ref: str, owner: str, at: float) -> None:
    await tx.execute(
        "UPDATE conduct_tokens SET revoked_at = ? WHERE case_ref = ? AND owner = ?"
        " AND revoked_at IS NULL",
        (at, ref.upper(), owner),
    )


async def revoke_tokens_except(tx: Tx, ref: str, owner: str, at: float) -> None:
    """Revoke every live token of a case but `owner`'s."""
    await tx.execute(
        "UPDATE conduct_tokens SET revoked_at = ? WHERE case_ref = ? AND owner != ?"
        " AND revoked_at IS NULL",
        (at, ref.upper(), owner),
    )


async def first_time_seen(tx: Tx, ref: str, message_id: str) -> bool:
    """Record that a message acted on a case; False if this Message-ID already did."""
    cur = await tx.execute(
        "INSERT INTO conduct_seen (case_ref, message_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
        (ref.upper(), message_id),
    )
    return cur.rowcount == 1
