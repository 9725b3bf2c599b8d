"""Membership requests, their tokens, invitations, the facilitators' reviews and the action log.

Members themselves live in mailhub/store/lists.py (the posting side owns them); this
module holds everything about *becoming* or *stopping being* a member, and about
facilitators acting on pending items by replying to a numbered review (the facilitators'
digest of pending requests and held posts).

Tokens are capabilities: only their SHA-256 hash is stored, so a copy of the database
cannot be used to confirm anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailhub.store import Tx

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS membership_requests (
        id INTEGER PRIMARY KEY,
        list_name TEXT NOT NULL,
        address TEXT NOT NULL,
        display_name TEXT NOT NULL DEFAULT '',
        note TEXT NOT NULL DEFAULT '',
        state TEXT NOT NULL,
        created_at REAL NOT NULL,
        confirmed_at REAL,
        handled_by TEXT NOT NULL DEFAULT '',
        handled_at REAL,
        reason TEXT NOT NULL DEFAULT ''
    )""",
    "CREATE INDEX IF NOT EXISTS membership_requests_list ON membership_requests (list_name, state)",
    "CREATE INDEX IF NOT EXISTS membership_requests_address ON membership_requests"
    " (list_name, address)",
    """CREATE TABLE IF NOT EXISTS membership_tokens (
        id INTEGER PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        purpose TEXT NOT NULL,
        list_name TEXT NOT NULL,
        address TEXT NOT NULL,
        request_id INTEGER,
        review_id INTEGER,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        used_at REAL,
        detail TEXT NOT NULL DEFAULT ''
    )""",
    """CREATE TABLE IF NOT EXISTS membership_invitations (
        list_name TEXT NOT NULL,
        address TEXT NOT NULL,
        invited_by TEXT NOT NULL DEFAULT '',
        invited_at REAL NOT NULL,
        used_at REAL,
        PRIMARY KEY (list_name, address)
    )""",
    """CREATE TABLE IF NOT EXISTS reviews (
        id INTEGER PRIMARY KEY,
        list_name TEXT NOT NULL,
        recipient TEXT NOT NULL,
        role TEXT NOT NULL,
        sent_at REAL NOT NULL,
        signature TEXT NOT NULL DEFAULT ''
    )""",
    # One row per confirmation mailed for a request nobody has proved yet (join, leave, a
    # setting): the per-mailbox daily limit counts them, whatever list they are for.
    """CREATE TABLE IF NOT EXISTS membership_confirmations (
        mailbox TEXT NOT NULL,
        list_name TEXT NOT NULL,
        purpose TEXT NOT NULL,
        sent_at REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS membership_confirmations_mailbox ON membership_confirmations"
    " (mailbox, sent_at)",
    "CREATE INDEX IF NOT EXISTS reviews_recipient ON reviews (list_name, recipient, sent_at)",
    """CREATE TABLE IF NOT EXISTS review_entries (
        review_id INTEGER NOT NULL REFERENCES reviews (id),
        number INTEGER NOT NULL,
        kind TEXT NOT NULL,
        ref_id INTEGER NOT NULL,
        PRIMARY KEY (review_id, number)
    )""",
    """CREATE TABLE IF NOT EXISTS moderation_log (
        id INTEGER PRIMARY KEY,
        list_name TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        kind TEXT NOT NULL,
        ref_id INTEGER,
        subject_address TEXT NOT NULL DEFAULT '',
        detail TEXT NOT NULL DEFAULT '',
        at REAL NOT NULL
    )""",
]

# Columns added since the first release (migrate adds them to an older file).
ADDED_COLUMNS = [("membership_tokens", "detail", "TEXT NOT NULL DEFAULT ''")]
# The facilitators' digest is called the review now: an older file's tables and columns are
# renamed when it is opened (before SCHEMA runs, so that no empty new table is made).
RENAMED_TABLES = [
    ("moderation_digests", "reviews"),
    ("moderation_digest_entries", "review_entries"),
]
RENAMED_COLUMNS = [
    ("review_entries", "digest_id", "review_id"),
    ("membership_tokens", "digest_id", "review_id"),
]
# Indexes of the old names (SQLite cannot rename an index; SCHEMA makes the new one).
DROPPED_INDEXES = ["moderation_digests_recipient"]

# Request states. 'unconfirmed': waiting for the requester's reply (double opt-in);
# 'pending': confirmed, waiting for a facilitator; then one of the final states.
UNCONFIRMED = "unconfirmed"
PENDING = "pending"
APPROVED = "approved"
REJECTED = "rejected"
EXPIRED = "expired"
WITHDRAWN = "withdrawn"
JOINED = "joined"  # confirmed under a policy that needs no approval
OPEN_STATES = (UNCONFIRMED, PENDING)


@dataclass(frozen=True)
class MembershipRequest:
    id: int
    list_name: str
    address: str
    display_name: str
    note: str
    state: str
    created_at: float
    confirmed_at: float | None
    handled_by: str
    handled_at: float | None
    reason: str


@dataclass(frozen=True)
class Token:
    id: int
    purpose: str  # 'confirm-join' | 'confirm-leave' | 'confirm-settings' | 'digest' (a review)
    list_name: str
    address: str
    request_id: int | None
    review_id: int | None
    created_at: float
    expires_at: float
    used_at: float | None
    detail: str = ""  # what a 'confirm-settings' token would change (JSON)


@dataclass(frozen=True)
class Invitation:
    list_name: str
    address: str
    invited_by: str
    invited_at: float
    used_at: float | None


@dataclass(frozen=True)
class Review:
    """One review sent to one facilitator or champion."""

    id: int
    list_name: str
    recipient: str
    role: str  # 'facilitator' | 'champion'
    sent_at: float
    signature: str


@dataclass(frozen=True)
class ReviewEntry:
    """A numbered entry of a review: what `approve 3` in a reply to that review means."""

    review_id: int
    number: int
    kind: str  # 'request' | 'held'
    ref_id: int


@dataclass(frozen=True)
class LogEntry:
    id: int
    list_name: str
    actor: str
    action: str
    kind: str
    ref_id: int | None
    subject_address: str
    detail: str
    at: float


_REQ = (
    "id, list_name, address, display_name, note, state, created_at, confirmed_at,"
    " handled_by, handled_at, reason"
)
_TOK = (
    "id, purpose, list_name, address, request_id, review_id, created_at, expires_at, used_at,"
    " detail"
)


# --- requests ---------------------------------------------------------------------------


async def add_request(
    tx: Tx, *, list_name: str, address: str, display_name: str, note: str, state: str, now: float
) -> int:
    cur = await tx.execute(
        "INSERT INTO membership_requests (list_name, address, display_name, note, state,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        (list_name, address.lower(), display_name, note, state, now),
    )
    return int((await cur.fetchone())[0])


async def get_request(tx: Tx, request_id: int) -> MembershipRequest | None:
    cur = await tx.execute(f"SELECT {_REQ} FROM membership_requests WHERE id = ?", (request_id,))
    row = await cur.fetchone()
    return MembershipRequest(*row) if row else None


async def open_request(tx: Tx, list_name: str, address: str) -> MembershipRequest | None:
    """The newest unconfirmed or pending request of `address` for `list_name`."""
    cur = await tx.execute(
        f"SELECT {_REQ} FROM membership_requests WHERE list_name = ? AND address = ?"
        " AND state IN (?, ?) ORDER BY id DESC LIMIT 1",
        (list_name, address.lower(), *OPEN_STATES),
    )
    row = await cur.fetchone()
    return MembershipRequest(*row) if row else None


async def requests_in_state(tx: Tx, list_name: str, state: str) -> list[MembershipRequest]:
    cur = await tx.execute(
        f"SELECT {_REQ} FROM membership_requests WHERE list_name = ? AND state = ? ORDER BY id",
        (list_name, state),
    )
    return [MembershipRequest(*r) for r in await cur.fetchall()]


async def count_pending(tx: Tx, list_name: str) -> int:
    cur = await tx.execute(
        "SELECT COUNT(*) FROM membership_requests WHERE list_name = ? AND state = ?",
        (list_name, PENDING),
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def confirm_request(tx: Tx, request_id: int, state: str, note: str, now: float) -> bool:
    """unconfirmed → `state` (pending or joined), with the requester's introduction
    (`note`, "" to keep the one stored). False if it was not unconfirmed any more."""
    cur = await tx.execute(
        "UPDATE membership_requests SET state = ?, confirmed_at = ?,"
        " note = CASE WHEN ? = '' THEN note ELSE ? END WHERE id = ? AND state = ?",
        (state, now, note, note, request_id, UNCONFIRMED),
    )
    return cur.rowcount == 1


async def settle_request(
    tx: Tx, request_id: int, *, state: str, by: str, now: float, reason: str = ""
) -> bool:
    """An open request → a final state, once: False if someone else settled it first."""
    cur = await tx.execute(
        "UPDATE membership_requests SET state = ?, handled_by = ?, handled_at = ?, reason = ?"
        " WHERE id = ? AND state IN (?, ?)",
        (state, by, now, reason, request_id, *OPEN_STATES),
    )
    return cur.rowcount == 1


# --- tokens -----------------------------------------------------------------------------


async def add_token(
    tx: Tx,
    *,
    token_hash: str,
    purpose: str,
    list_name: str,
    address: str,
    now: float,
    expires_at: float,
    request_id: int | None = None,
    review_id: int | None = None,
    detail: str = "",
) -> int:
    cur = await tx.execute(
        "INSERT INTO membership_tokens (token_hash, purpose, list_name, address, request_id,"
        " review_id, created_at, expires_at, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (
            token_hash,
            purpose,
            list_name,
            address.lower(),
            request_id,
            review_id,
            now,
            expires_at,
            detail,
        ),
    )
    return int((await cur.fetchone())[0])


async def live_tokens(
    tx: Tx, list_name: str, address: str, purpose: str, now: float
) -> list[Token]:
    """The tokens of one purpose for one person that could still be used."""
    cur = await tx.execute(
        f"SELECT {_TOK} FROM membership_tokens WHERE list_name = ? AND address = ?"
        " AND purpose = ? AND used_at IS NULL AND expires_at > ? ORDER BY id",
        (list_name, address.lower(), purpose, now),
    )
    return [Token(*r) for r in await cur.fetchall()]


async def find_token(tx: Tx, token_hash: str) -> Token | None:
    cur = await tx.execute(
        f"SELECT {_TOK} FROM membership_tokens WHERE token_hash = ?", (token_hash,)
    )
    row = await cur.fetchone()
    return Token(*row) if row else None


async def use_token(tx: Tx, token_id: int, now: float) -> bool:
    """Mark a token used, once: False if it was already used (a concurrent reply won)."""
    cur = await tx.execute(
        "UPDATE membership_tokens SET used_at = ? WHERE id = ? AND used_at IS NULL",
        (now, token_id),
    )
    return cur.rowcount == 1


async def void_tokens(tx: Tx, list_name: str, address: str, purpose: str, now: float) -> None:
    """Use up every live token of one purpose for one person (a newer one replaces them)."""
    await tx.execute(
        "UPDATE membership_tokens SET used_at = ? WHERE list_name = ? AND address = ?"
        " AND purpose = ? AND used_at IS NULL",
        (now, list_name, address.lower(), purpose),
    )


async def purge_tokens(tx: Tx, before: float) -> int:
    """Forget tokens that expired before `before` (kept a while to answer late replies)."""
    cur = await tx.execute("DELETE FROM membership_tokens WHERE expires_at < ?", (before,))
    return cur.rowcount


# --- confirmations mailed, for the per-mailbox limit -------------------------------------


async def record_confirmation(
    tx: Tx, *, mailbox: str, list_name: str, purpose: str, now: float
) -> None:
    await tx.execute(
        "INSERT INTO membership_confirmations (mailbox, list_name, purpose, sent_at)"
        " VALUES (?, ?, ?, ?)",
        (mailbox, list_name, purpose, now),
    )
    # Keep the table small: nothing older than a day matters to the limit.
    await tx.execute("DELETE FROM membership_confirmations WHERE sent_at < ?", (now - 86400,))


async def confirmations_since(tx: Tx, mailbox: str, since: float) -> int:
    """Confirmations mailed to `mailbox` (a mailhub.mailbox key) since `since`, all lists."""
    cur = await tx.execute(
        "SELECT COUNT(*) FROM membership_confirmations WHERE mailbox = ? AND sent_at >= ?",
        (mailbox, since),
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


# --- invitations ------------------------------------------------------------------------


async def invite(tx: Tx, list_name: str, address: str, by: str, now: float) -> bool:
    """Record an invitation; False if one that is not used yet exists."""
    # One upsert that replaces only a used invitation: on PostgreSQL two transactions
    # inviting the same person at once would otherwise both find none and collide on the
    # key; here the second waits for the first and then finds its unused invitation.
    cur = await tx.execute(
        "INSERT INTO membership_invitations (list_name, address, invited_by, invited_at)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (list_name, address) DO UPDATE SET"
        " invited_by = excluded.invited_by, invited_at = excluded.invited_at, used_at = NULL"
        " WHERE membership_invitations.used_at IS NOT NULL",
        (list_name, address.lower(), by, now),
    )
    return cur.rowcount > 0


async def get_invitation(tx: Tx, list_name: str, address: str) -> Invitation | None:
    cur = await tx.execute(
        "SELECT list_name, address, invited_by, invited_at, used_at FROM membership_invitations"
        " WHERE list_name = ? AND address = ?",
        (list_name, address.lower()),
    )
    row = await cur.fetchone()
    return Invitation(*row) if row else None


async def use_invitation(tx: Tx, list_name: str, address: str, now: float) -> None:
    await tx.execute(
        "UPDATE membership_invitations SET used_at = ? WHERE list_name = ? AND address = ?"
        " AND used_at IS NULL",
        (now, list_name, address.lower()),
    )


# --- facilitators' reviews --------------------------------------------------------------


async def add_review(
    tx: Tx,
    *,
    list_name: str,
    recipient: str,
    role: str,
    now: float,
    signature: str,
    entries: list[tuple[str, int]],
) -> int:
    """Record a review and its entries, numbered from 1 in the order given."""
    cur = await tx.execute(
        "INSERT INTO reviews (list_name, recipient, role, sent_at, signature)"
        " VALUES (?, ?, ?, ?, ?) RETURNING id",
        (list_name, recipient.lower(), role, now, signature),
    )
    review_id = int((await cur.fetchone())[0])
    await tx.executemany(
        "INSERT INTO review_entries (review_id, number, kind, ref_id) VALUES (?, ?, ?, ?)",
        [(review_id, n, kind, ref) for n, (kind, ref) in enumerate(entries, start=1)],
    )
    return review_id


async def last_review(tx: Tx, list_name: str, recipient: str) -> Review | None:
    cur = await tx.execute(
        "SELECT id, list_name, recipient, role, sent_at, signature FROM reviews"
        " WHERE list_name = ? AND recipient = ? ORDER BY sent_at DESC, id DESC LIMIT 1",
        (list_name, recipient.lower()),
    )
    row = await cur.fetchone()
    return Review(*row) if row else None


async def review_entries(tx: Tx, review_id: int) -> list[ReviewEntry]:
    cur = await tx.execute(
        "SELECT review_id, number, kind, ref_id FROM review_entries"
        " WHERE review_id = ? ORDER BY number",
        (review_id,),
    )
    return [ReviewEntry(*r) for r in await cur.fetchall()]


# --- action log -------------------------------------------------------------------------


async def log_action(
    tx: Tx,
    *,
    list_name: str,
    actor: str,
    action: str,
    kind: str,
    now: float,
    ref_id: int | None = None,
    subject_address: str = "",
    detail: str = "",
) -> None:
    await tx.execute(
        "INSERT INTO moderation_log (list_name, actor, action, kind, ref_id, subject_address,"
        " detail, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (list_name, actor.lower(), action, kind, ref_id, subject_address.lower(), detail, now),
    )


async def action_log(tx: Tx, list_name: str) -> list[LogEntry]:
    cur = await tx.execute(
        "SELECT id, list_name, actor, action, kind, ref_id, subject_address, detail, at"
        " FROM moderation_log WHERE list_name = ? ORDER BY id",
        (list_name,),
    )
    return [LogEntry(*r) for r in await cur.fetchall()]
