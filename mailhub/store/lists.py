"""List members, held posts, the archive, thread mutes and bounce records.

Addresses are stored lower-cased, so a member is one row however their mail client
spells their address. The archive keeps each accepted post's raw bytes exactly as
received, so an mbox export is what the members were sent (before list headers).
"""

from __future__ import annotations

from dataclasses import dataclass

from mailhub.store import Tx

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS list_members (
        list_name TEXT NOT NULL,
        address TEXT NOT NULL,
        display_name TEXT NOT NULL DEFAULT '',
        delivery TEXT NOT NULL DEFAULT 'each',
        own_posts INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL DEFAULT 'active',
        bounce_score REAL NOT NULL DEFAULT 0,
        bounce_at REAL,
        joined_at REAL NOT NULL,
        posts INTEGER NOT NULL DEFAULT 0,
        disabled_at REAL,
        digest_after INTEGER NOT NULL DEFAULT 0,
        digest_sent_at REAL,
        language TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (list_name, address)
    )""",
    """CREATE TABLE IF NOT EXISTS list_held_posts (
        id INTEGER PRIMARY KEY,
        list_name TEXT NOT NULL,
        sender TEXT NOT NULL,
        mail_from TEXT NOT NULL DEFAULT '',
        subject TEXT NOT NULL DEFAULT '',
        reason TEXT NOT NULL,
        held_at REAL NOT NULL,
        state TEXT NOT NULL DEFAULT 'held',
        handled_by TEXT NOT NULL DEFAULT '',
        handled_at REAL,
        raw BLOB NOT NULL,
        authenticity TEXT NOT NULL DEFAULT ''
    )""",
    # A member's own page (/me) and web sign-in look members up by address.
    "CREATE INDEX IF NOT EXISTS list_members_address ON list_members (address)",
    "CREATE INDEX IF NOT EXISTS list_held_posts_state ON list_held_posts (list_name, state)",
    """CREATE TABLE IF NOT EXISTS list_archive (
        id INTEGER PRIMARY KEY,
        list_name TEXT NOT NULL,
        message_id TEXT NOT NULL,
        thread_id TEXT NOT NULL,
        sender TEXT NOT NULL,
        subject TEXT NOT NULL DEFAULT '',
        archived_at REAL NOT NULL,
        raw BLOB NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS list_archive_list ON list_archive (list_name, id)",
    "CREATE INDEX IF NOT EXISTS list_archive_message ON list_archive (list_name, message_id)",
    """CREATE TABLE IF NOT EXISTS list_thread_mutes (
        list_name TEXT NOT NULL,
        address TEXT NOT NULL,
        thread_id TEXT NOT NULL,
        muted_at REAL NOT NULL,
        PRIMARY KEY (list_name, address, thread_id)
    )""",
    """CREATE TABLE IF NOT EXISTS list_bounces (
        id INTEGER PRIMARY KEY,
        list_name TEXT NOT NULL,
        address TEXT NOT NULL,
        received_at REAL NOT NULL,
        kind TEXT NOT NULL,
        score_after REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS list_bounces_member ON list_bounces (list_name, address)",
]

# Columns added since the first release (migrate adds them to an older file).
# authenticity: what the lists.post preparer found when the post was held (its copies'
# Authentication-Results and the poster's DMARC policy), for when it is released.
ADDED_COLUMNS = [
    ("list_held_posts", "authenticity", "TEXT NOT NULL DEFAULT ''"),
    # The language a member's notices come in (set on their web page): '' the list's own,
    # 'cy', 'en', or 'both' (both, in the list's order).
    ("list_members", "language", "TEXT NOT NULL DEFAULT ''"),
]
MEMBER_LANGUAGES = ("", "cy", "en", "both")

DELIVERY_MODES = ("each", "digest", "nomail")


@dataclass(frozen=True)
class Member:
    list_name: str
    address: str
    display_name: str
    delivery: str  # 'each' | 'digest' | 'nomail'
    own_posts: bool
    status: str  # 'active' | 'disabled'
    bounce_score: float
    joined_at: float
    posts: int
    disabled_at: float | None
    language: str = ""  # MEMBER_LANGUAGES: '' is the list's own


_MEMBER = (
    "list_name, address, display_name, delivery, own_posts, status, bounce_score, joined_at,"
    " posts, disabled_at, language"
)


def _member(row: tuple) -> Member:
    return Member(
        row[0],
        row[1],
        row[2],
        row[3],
        bool(row[4]),
        row[5],
        row[6],
        row[7],
        row[8],
        row[9],
        row[10],
    )


async def get_member(tx: Tx, list_name: str, address: str) -> Member | None:
    cur = await tx.execute(
        f"SELECT {_MEMBER} FROM list_members WHERE list_name = ? AND address = ?",
        (list_name.lower(), address.lower()),
    )
    row = await cur.fetchone()
    return _member(row) if row else None


async def add_member(tx: Tx, list_name: str, address: str, display_name: str, now: float) -> bool:
    """Add a member; False (and nothing changed) if they already are one."""
    if await get_member(tx, list_name, address):
        return False
    # ON CONFLICT: on PostgreSQL another node's transaction may add the same member between
    # the look and the insert (on SQLite no one can: one writer at a time).
    cur = await tx.execute(
        "INSERT INTO list_members (list_name, address, display_name, joined_at, digest_after)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (list_name, address) DO NOTHING",
        (
            list_name.lower(),
            address.lower(),
            display_name,
            now,
            await last_archive_id(tx, list_name),
        ),
    )
    return cur.rowcount > 0


async def remove_member(tx: Tx, list_name: str, address: str) -> bool:
    cur = await tx.execute(
        "DELETE FROM list_members WHERE list_name = ? AND address = ?",
        (list_name.lower(), address.lower()),
    )
    await tx.execute(
        "DELETE FROM list_thread_mutes WHERE list_name = ? AND address = ?",
        (list_name.lower(), address.lower()),
    )
    return cur.rowcount > 0


async def list_members(tx: Tx, list_name: str) -> list[Member]:
    cur = await tx.execute(
        f"SELECT {_MEMBER} FROM list_members WHERE list_name = ? ORDER BY address",
        (list_name.lower(),),
    )
    return [_member(r) for r in await cur.fetchall()]


async def count_members(tx: Tx, list_name: str) -> int:
    cur = await tx.execute(
        "SELECT COUNT(*) FROM list_members WHERE list_name = ?", (list_name.lower(),)
    )
    (n,) = await cur.fetchone()
    return int(n)


async def member_counts(tx: Tx) -> dict[str, int]:
    """Members per list name, for every list that has any (configured or not)."""
    cur = await tx.execute("SELECT list_name, COUNT(*) FROM list_members GROUP BY list_name")
    return {name: int(n) for name, n in await cur.fetchall()}


async def set_delivery(
    tx: Tx, list_name: str, address: str, delivery: str, now: float | None = None
) -> None:
    if delivery not in DELIVERY_MODES:
        raise ValueError(f"unknown delivery mode {delivery!r}")
    # Entering digest mode starts the digest from now, not from the start of the archive,
    # and the first digest comes one interval after `now`.
    await tx.execute(
        "UPDATE list_members SET delivery = ?,"
        " digest_after = CASE WHEN delivery = 'digest' THEN digest_after ELSE ? END,"
        " digest_sent_at = CASE WHEN delivery = 'digest' THEN digest_sent_at ELSE ? END"
        " WHERE list_name = ? AND address = ?",
        (
            delivery,
            await last_archive_id(tx, list_name),
            now,
            list_name.lower(),
            address.lower(),
        ),
    )


async def set_own_posts(tx: Tx, list_name: str, address: str, own: bool) -> None:
    await tx.execute(
        "UPDATE list_members SET own_posts = ? WHERE list_name = ? AND address = ?",
        (int(own), list_name.lower(), address.lower()),
    )


async def set_language(tx: Tx, list_name: str, address: str, language: str) -> None:
    if language not in MEMBER_LANGUAGES:
        raise ValueError(f"unknown member language {language!r}")
    await tx.execute(
        "UPDATE list_members SET language = ? WHERE list_name = ? AND address = ?",
        (language, list_name.lower(), address.lower()),
    )


async def member_language(tx: Tx, list_name: str, address: str) -> str:
    """The member's own language for notices ('' when none, or not a member)."""
    cur = await tx.execute(
        "SELECT language FROM list_members WHERE list_name = ? AND address = ?",
        (list_name.lower(), address.lower()),
    )
    row = await cur.fetchone()
    return str(row[0]) if row else ""


async def memberships(tx: Tx, address: str) -> list[Member]:
    """Every list `address` is a member of (any status), by list name."""
    cur = await tx.execute(
        f"SELECT {_MEMBER} FROM list_members WHERE address = ? ORDER BY list_name",
        (address.lower(),),
    )
    return [_member(r) for r in await cur.fetchall()]


async def count_post(tx: Tx, list_name: str, address: str) -> None:
    await tx.execute(
        "UPDATE list_members SET posts = posts + 1 WHERE list_name = ? AND address = ?",
        (list_name.lower(), address.lower()),
    )


async def each_recipients(tx: Tx, list_name: str) -> list[tuple[str, bool]]:
    """(address, own_posts) of active members who get each post as it is sent."""
    cur = await tx.execute(
        "SELECT address, own_posts FROM list_members WHERE list_name = ? AND delivery = 'each'"
        " AND status = 'active' ORDER BY address",
        (list_name.lower(),),
    )
    return [(r[0], bool(r[1])) for r in await cur.fetchall()]


# --- bounces ---------------------------------------------------------------------------


async def bounce_state(tx: Tx, list_name: str, address: str) -> tuple[float, float | None]:
    """(score, time of the last bounce) of a member; (0, None) when not a member."""
    cur = await tx.execute(
        "SELECT bounce_score, bounce_at FROM list_members WHERE list_name = ? AND address = ?",
        (list_name.lower(), address.lower()),
    )
    row = await cur.fetchone()
    return (row[0], row[1]) if row else (0.0, None)


async def record_bounce(
    tx: Tx,
    list_name: str,
    address: str,
    kind: str,
    score: float,
    now: float,
    counted: bool = True,
) -> None:
    """Log a bounce; when it `counted`, it also sets the score and the time it counted."""
    if counted:
        await tx.execute(
            "UPDATE list_members SET bounce_score = ?, bounce_at = ? WHERE list_name = ?"
            " AND address = ?",
            (score, now, list_name.lower(), address.lower()),
        )
    await tx.execute(
        "INSERT INTO list_bounces (list_name, address, received_at, kind, score_after)"
        " VALUES (?, ?, ?, ?, ?)",
        (list_name.lower(), address.lower(), now, kind, score),
    )


async def disable_member(tx: Tx, list_name: str, address: str, now: float) -> bool:
    cur = await tx.execute(
        "UPDATE list_members SET status = 'disabled', disabled_at = ? WHERE list_name = ?"
        " AND address = ? AND status = 'active'",
        (now, list_name.lower(), address.lower()),
    )
    return cur.rowcount > 0


async def enable_member(tx: Tx, list_name: str, address: str) -> bool:
    cur = await tx.execute(
        "UPDATE list_members SET status = 'active', disabled_at = NULL, bounce_score = 0"
        " WHERE list_name = ? AND address = ? AND status = 'disabled'",
        (list_name.lower(), address.lower()),
    )
    return cur.rowcount > 0


async def disabled_since(tx: Tx, list_name: str, since: float) -> list[Member]:
    """Members disabled (by bounces) at or after `since`: for the facilitators' review."""
    cur = await tx.execute(
        f"SELECT {_MEMBER} FROM list_members WHERE list_name = ? AND status = 'disabled'"
        " AND disabled_at >= ? ORDER BY disabled_at",
        (list_name.lower(), since),
    )
    return [_member(r) for r in await cur.fetchall()]


# --- held posts ------------------------------------------------------------------------


@dataclass(frozen=True)
class HeldPost:
    id: int
    list_name: str
    sender: str
    subject: str
    reason: str
    held_at: float
    state: str  # 'held' | 'accepted' | 'discarded' | 'expired'
    handled_by: str
    handled_at: float | None


_HELD = "id, list_name, sender, subject, reason, held_at, state, handled_by, handled_at"


async def hold_post(
    tx: Tx,
    *,
    list_name: str,
    sender: str,
    mail_from: str,
    subject: str,
    reason: str,
    raw: bytes,
    now: float,
    authenticity: str = "",
) -> int:
    cur = await tx.execute(
        "INSERT INTO list_held_posts (list_name, sender, mail_from, subject, reason, held_at,"
        " raw, authenticity) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (list_name.lower(), sender.lower(), mail_from, subject, reason, now, raw, authenticity),
    )
    return int((await cur.fetchone())[0])


async def held_authenticity(tx: Tx, held_id: int) -> str:
    cur = await tx.execute("SELECT authenticity FROM list_held_posts WHERE id = ?", (held_id,))
    row = await cur.fetchone()
    return str(row[0]) if row else ""


async def held_posts(tx: Tx, list_name: str, state: str = "held") -> list[HeldPost]:
    cur = await tx.execute(
        f"SELECT {_HELD} FROM list_held_posts WHERE list_name = ? AND state = ? ORDER BY id",
        (list_name.lower(), state),
    )
    return [HeldPost(*r) for r in await cur.fetchall()]


async def get_held(tx: Tx, held_id: int) -> HeldPost | None:
    cur = await tx.execute(f"SELECT {_HELD} FROM list_held_posts WHERE id = ?", (held_id,))
    row = await cur.fetchone()
    return HeldPost(*row) if row else None


async def held_raw(tx: Tx, held_id: int) -> tuple[bytes, str]:
    """The held post's raw bytes and envelope sender."""
    cur = await tx.execute("SELECT raw, mail_from FROM list_held_posts WHERE id = ?", (held_id,))
    row = await cur.fetchone()
    return (bytes(row[0]), row[1]) if row else (b"", "")


async def settle_held(tx: Tx, held_id: int, state: str, by: str, now: float) -> bool:
    """Move a held post to `state`; False if it was no longer held (someone else acted).
    The raw bytes are dropped: an accepted post lives on in the archive."""
    cur = await tx.execute(
        "UPDATE list_held_posts SET state = ?, handled_by = ?, handled_at = ?, raw = X''"
        " WHERE id = ? AND state = 'held'",
        (state, by, now, held_id),
    )
    return cur.rowcount > 0


# --- archive ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchivedPost:
    id: int
    list_name: str
    message_id: str
    thread_id: str
    sender: str
    subject: str
    archived_at: float
    raw: bytes


_ARCHIVE = "id, list_name, message_id, thread_id, sender, subject, archived_at, raw"


async def archive_post(
    tx: Tx,
    *,
    list_name: str,
    message_id: str,
    thread_id: str,
    sender: str,
    subject: str,
    raw: bytes,
    now: float,
) -> int:
    cur = await tx.execute(
        "INSERT INTO list_archive (list_name, message_id, thread_id, sender, subject,"
        " archived_at, raw) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (list_name.lower(), message_id, thread_id, sender.lower(), subject, now, raw),
    )
    return int((await cur.fetchone())[0])


async def last_archive_id(tx: Tx, list_name: str) -> int:
    cur = await tx.execute(
        "SELECT MAX(id) FROM list_archive WHERE list_name = ?", (list_name.lower(),)
    )
    (n,) = await cur.fetchone()
    return int(n or 0)


async def archived_since(
    tx: Tx, list_name: str, after_id: int, limit: int = -1
) -> list[ArchivedPost]:
    """Archived posts after `after_id`, oldest first (at most `limit`; -1: all)."""
    # No LIMIT clause for "all": PostgreSQL refuses SQLite's LIMIT -1.
    sql = f"SELECT {_ARCHIVE} FROM list_archive WHERE list_name = ? AND id > ? ORDER BY id"
    params: tuple[object, ...] = (list_name.lower(), after_id)
    if limit >= 0:
        sql += " LIMIT ?"
        params += (limit,)
    cur = await tx.execute(sql, params)
    return [ArchivedPost(*r[:7], bytes(r[7])) for r in await cur.fetchall()]


async def thread_of(tx: Tx, list_name: str, message_ids: list[str]) -> str | None:
    """The thread of the first of `message_ids` found in the archive."""
    for mid in message_ids:
        cur = await tx.execute(
            "SELECT thread_id FROM list_archive WHERE list_name = ? AND message_id = ? LIMIT 1",
            (list_name.lower(), mid),
        )
        row = await cur.fetchone()
        if row:
            return str(row[0])
    return None


# --- member digests --------------------------------------------------------------------


async def digest_members(tx: Tx, list_name: str) -> list[tuple[str, int, float | None]]:
    """(address, last archive id sent, when the last digest went) of active digest members."""
    cur = await tx.execute(
        "SELECT address, digest_after, digest_sent_at FROM list_members WHERE list_name = ?"
        " AND delivery = 'digest' AND status = 'active' ORDER BY address",
        (list_name.lower(),),
    )
    return [(r[0], int(r[1]), r[2]) for r in await cur.fetchall()]


async def digest_sent(tx: Tx, list_name: str, address: str, upto_id: int, now: float) -> None:
    await tx.execute(
        "UPDATE list_members SET digest_after = ?, digest_sent_at = ? WHERE list_name = ?"
        " AND address = ?",
        (upto_id, now, list_name.lower(), address.lower()),
    )


# --- thread mutes ----------------------------------------------------------------------


async def mute_thread(tx: Tx, list_name: str, address: str, thread_id: str, now: float) -> bool:
    cur = await tx.execute(
        "INSERT INTO list_thread_mutes (list_name, address, thread_id, muted_at)"
        " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (list_name.lower(), address.lower(), thread_id, now),
    )
    return cur.rowcount > 0


async def mutes_of(tx: Tx, list_name: str, address: str) -> set[str]:
    cur = await tx.execute(
        "SELECT thread_id FROM list_thread_mutes WHERE list_name = ? AND address = ?",
        (list_name.lower(), address.lower()),
    )
    return {r[0] for r in await cur.fetchall()}


async def muted_by(tx: Tx, list_name: str, thread_id: str) -> set[str]:
    cur = await tx.execute(
        "SELECT address FROM list_thread_mutes WHERE list_name = ? AND thread_id = ?",
        (list_name.lower(), thread_id),
    )
    return {r[0] for r in await cur.fetchall()}
