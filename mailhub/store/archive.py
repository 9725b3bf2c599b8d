"""The archive's index for the web: one row per archived post, its thread, its month, and
a full-text index for search.

`list_archive` (mailhub.store.lists) keeps each accepted post's raw bytes; these tables
keep what the pages show of it (author's name, text, thread), filled in the same
transaction that archives the post (mailhub.lists.archive_index), so a post is never
archived without being indexed. Posts archived before the index existed are indexed by
a scheduled backfill, oldest first; `archive_index_progress` remembers how far it got.

Search on SQLite is FTS5 with the unicode61 tokenizer folding case and diacritics
("ŵ" finds "w", "Llandudno" finds "llandudno"). The full-text table uses `archive_posts`
as its external content (the text is stored once), and carries the list's name as a token
of its own column, so a search of one list intersects the index with that token instead
of looking up every matching row's list. On PostgreSQL it is a tsvector made here from the
same words, folded the same way, in a GIN index (see "search on PostgreSQL" below): the
same query syntax, matches, ranking window and snippets.

Every read filters by list name: a post of another list is "not found".
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from mailhub.store import Tx
from mailhub.store.lists import ArchivedPost

if TYPE_CHECKING:
    from mailhub.lists.search_query import SearchQuery

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS archive_posts (
        id INTEGER PRIMARY KEY,
        list_name TEXT NOT NULL,
        list_key TEXT NOT NULL,
        message_id TEXT NOT NULL,
        thread INTEGER NOT NULL,
        parent INTEGER,
        author TEXT NOT NULL DEFAULT '',
        subject TEXT NOT NULL DEFAULT '',
        posted_at REAL NOT NULL,
        text TEXT NOT NULL DEFAULT '',
        has_html INTEGER NOT NULL DEFAULT 0,
        attachments INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX IF NOT EXISTS archive_posts_time ON archive_posts (list_name, posted_at)",
    "CREATE INDEX IF NOT EXISTS archive_posts_thread ON archive_posts (list_name, thread, id)",
    # authors: the first few distinct names, one a line (names are one line: parsing.clean).
    """CREATE TABLE IF NOT EXISTS archive_threads (
        id INTEGER PRIMARY KEY,
        list_name TEXT NOT NULL,
        subject TEXT NOT NULL DEFAULT '',
        started_at REAL NOT NULL,
        last_at REAL NOT NULL,
        messages INTEGER NOT NULL,
        authors TEXT NOT NULL DEFAULT ''
    )""",
    "CREATE INDEX IF NOT EXISTS archive_threads_last ON archive_threads (list_name, last_at)",
    # The backfill's mark: every post of the list with an id up to `through` is indexed.
    """CREATE TABLE IF NOT EXISTS archive_index_progress (
        list_name TEXT PRIMARY KEY,
        through INTEGER NOT NULL
    )""",
    # The month's mbox reads the raw archive by date, whether or not a post is indexed yet.
    "CREATE INDEX IF NOT EXISTS list_archive_time ON list_archive (list_name, archived_at)",
]

_MONTHS = """CREATE TABLE IF NOT EXISTS archive_months (
        list_name TEXT NOT NULL,
        year {integer} NOT NULL,
        month {integer} NOT NULL,
        messages {integer} NOT NULL,
        PRIMARY KEY (list_name, year, month)
    )"""

SCHEMA_SQLITE = [
    _MONTHS.format(integer="INTEGER") + " WITHOUT ROWID",
    """CREATE VIRTUAL TABLE IF NOT EXISTS archive_search USING fts5(
        list_key, subject, author, text,
        content = 'archive_posts', content_rowid = 'id',
        tokenize = 'unicode61 remove_diacritics 2'
    )""",
]

# PostgreSQL has no FTS5: a post's words are a tsvector made here in Python (`document`),
# folded as the snippets fold them, in a GIN index; see "search on PostgreSQL" below.
SCHEMA_POSTGRESQL = [
    _MONTHS.format(integer="BIGINT"),
    """CREATE TABLE IF NOT EXISTS archive_search (
        id BIGINT PRIMARY KEY,
        list_key TEXT NOT NULL,
        doc TSVECTOR NOT NULL
    )""",
    # No index on list_key: a plan that intersects the GIN index with it reads every row
    # of the list (PostgreSQL's generic plan did, 4 ms at 20,000 posts); filtering the
    # GIN index's matches by list reads only those.
    "CREATE INDEX IF NOT EXISTS archive_search_doc ON archive_search USING gin (doc)",
]

MAX_AUTHORS = 5  # names a thread summary lists
# Matches of a search ranked by relevance: the newest RANK_WINDOW of them; after those,
# older matches follow newest first. Why: bm25 over every match of a common word (most of
# a large archive) would take longer than the page may; the newest matches are what a
# reader of a discussion list looks for first, and the count stays exact.
RANK_WINDOW = 1000
SNIPPET_WORDS = 24
SNIPPET_SCAN_CHARS = 20_000  # a snippet is looked for in the start of a long post only
MARK_START, MARK_END = "\x02", "\x03"
# bm25 weights of the columns (list_key, subject, author, text): the list's token is in
# every row of the list, so it must not count.
_BM25 = "bm25(archive_search, 0.0, 4.0, 2.0, 1.0)"


@dataclass(frozen=True)
class ArchiveEntry:
    id: int
    list_name: str
    thread: int
    message_id: str
    author: str
    subject: str
    posted_at: float
    parent: int | None
    text: str
    has_html: bool
    attachments: int


@dataclass(frozen=True)
class Month:
    year: int
    month: int
    messages: int


@dataclass(frozen=True)
class ThreadSummary:
    id: int
    subject: str
    started_at: float
    last_at: float
    messages: int
    authors: tuple[str, ...]


@dataclass(frozen=True)
class Hit:
    id: int
    thread: int
    subject: str
    author: str
    posted_at: float
    snippet: str  # matched words between MARK_START and MARK_END


def list_key(list_name: str) -> str:
    """The list's name as one token of the full-text index (any name: hex of its bytes)."""
    return "l" + list_name.lower().encode().hex()


def _month_of(ts: float) -> tuple[int, int]:
    when = datetime.fromtimestamp(ts, UTC)
    return when.year, when.month


def month_span(year: int, month: int) -> tuple[float, float]:
    """[start, end) of a month in UTC epoch seconds (the archive's months are UTC's)."""
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return start.timestamp(), end.timestamp()


# --- writing ----------------------------------------------------------------------------


async def find_parent(tx: Tx, list_name: str, message_ids: Sequence[str]) -> tuple[int, int] | None:
    """(archive id, thread) of the first of `message_ids` that is an indexed post of the list."""
    for mid in message_ids:
        # Through list_archive's (list_name, message_id) index: archive_posts needs none.
        cur = await tx.execute(
            "SELECT p.id, p.thread FROM list_archive a JOIN archive_posts p ON p.id = a.id"
            " WHERE a.list_name = ? AND a.message_id = ? ORDER BY a.id LIMIT 1",
            (list_name.lower(), mid),
        )
        row = await cur.fetchone()
        if row:
            return int(row[0]), int(row[1])
    return None


async def index_post(
    tx: Tx,
    *,
    archive_id: int,
    list_name: str,
    message_id: str,
    thread: int,
    parent: int | None,
    author: str,
    subject: str,
    posted_at: float,
    text: str,
    has_html: bool,
    attachments: int,
) -> None:
    """Index one archived post (`archive_id`: its list_archive id) as part of `thread` (the
    archive id of the thread's first post; its own id when it starts one)."""
    name = list_name.lower()
    key = list_key(name)
    await tx.execute(
        "INSERT INTO archive_posts (id, list_name, list_key, message_id, thread, parent,"
        " author, subject, posted_at, text, has_html, attachments)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (archive_id, name, key, message_id, thread, parent, author, subject, posted_at, text,
         int(has_html), attachments),
    )  # fmt: skip
    if tx.dialect == "postgresql":
        if len(text) < INLINE_DOCUMENT_CHARS:
            doc = document(subject, author, text)
        else:  # the event loop goes on meanwhile, a slice at a time
            doc = await asyncio.to_thread(document, subject, author, text)
        await tx.execute(
            "INSERT INTO archive_search (id, list_key, doc) VALUES (?, ?, CAST(? AS tsvector))",
            (archive_id, key, doc),
        )
    else:
        await tx.execute(
            "INSERT INTO archive_search (rowid, list_key, subject, author, text)"
            " VALUES (?, ?, ?, ?, ?)",
            (archive_id, key, subject, author, text),
        )
    cur = await tx.execute(
        "SELECT authors FROM archive_threads WHERE id = ? AND list_name = ?", (thread, name)
    )
    row = await cur.fetchone()
    if row is None:
        await tx.execute(
            "INSERT INTO archive_threads (id, list_name, subject, started_at, last_at, messages,"
            " authors) VALUES (?, ?, ?, ?, ?, 1, ?)",
            (thread, name, subject, posted_at, posted_at, author),
        )
    else:
        authors = row[0].split("\n") if row[0] else []
        if author and author not in authors and len(authors) < MAX_AUTHORS:
            authors.append(author)
        await tx.execute(
            f"UPDATE archive_threads SET last_at = {_greatest(tx)}(last_at, ?),"
            " messages = messages + 1, authors = ? WHERE id = ?",
            (posted_at, "\n".join(authors), thread),
        )
    year, month = _month_of(posted_at)
    await tx.execute(
        "INSERT INTO archive_months (list_name, year, month, messages) VALUES (?, ?, ?, 1)"
        " ON CONFLICT (list_name, year, month) DO UPDATE SET messages = archive_months.messages + 1",
        (name, year, month),
    )


async def backfill_mark(tx: Tx, list_name: str) -> int:
    """The id up to which every post of the list is known to be indexed (0: none yet)."""
    cur = await tx.execute(
        "SELECT through FROM archive_index_progress WHERE list_name = ?", (list_name.lower(),)
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def set_backfill_mark(tx: Tx, list_name: str, through: int) -> None:
    await tx.execute(
        "INSERT INTO archive_index_progress (list_name, through) VALUES (?, ?)"
        " ON CONFLICT (list_name) DO UPDATE"
        f" SET through = {_greatest(tx)}(archive_index_progress.through, excluded.through)",
        (list_name.lower(), through),
    )


def _greatest(tx: Tx) -> str:
    """The larger of two values: SQLite's MAX() with two arguments, PostgreSQL's GREATEST()."""
    return "GREATEST" if tx.dialect == "postgresql" else "MAX"


async def unindexed(tx: Tx, list_name: str, after_id: int, limit: int) -> list[ArchivedPost]:
    """Archived posts of the list after `after_id` that have no index row, oldest first."""
    cur = await tx.execute(
        "SELECT a.id, a.list_name, a.message_id, a.thread_id, a.sender, a.subject,"
        " a.archived_at, a.raw FROM list_archive a WHERE a.list_name = ? AND a.id > ?"
        " AND NOT EXISTS (SELECT 1 FROM archive_posts p WHERE p.id = a.id)"
        " ORDER BY a.id LIMIT ?",
        (list_name.lower(), after_id, limit),
    )
    return [ArchivedPost(*r[:7], bytes(r[7])) for r in await cur.fetchall()]


async def unindexed_before(tx: Tx, list_name: str, archive_id: int) -> bool:
    """Whether an older post of the list still waits for the backfill (then a new post
    waits too, so that every post is indexed after the posts it may reply to). Looks only
    past the backfill's mark: a few rows once the backfill has caught up."""
    cur = await tx.execute(
        "SELECT 1 FROM list_archive a WHERE a.list_name = ? AND a.id > ? AND a.id < ?"
        " AND NOT EXISTS (SELECT 1 FROM archive_posts p WHERE p.id = a.id) LIMIT 1",
        (list_name.lower(), await backfill_mark(tx, list_name), archive_id),
    )
    return await cur.fetchone() is not None


async def last_archived(tx: Tx, list_name: str) -> int:
    cur = await tx.execute(
        "SELECT MAX(id) FROM list_archive WHERE list_name = ?", (list_name.lower(),)
    )
    (n,) = await cur.fetchone()
    return int(n or 0)


async def clear_index(tx: Tx, list_name: str) -> None:
    """Forget the list's index (`mailhub archive LIST --reindex`): the backfill redoes it."""
    name = list_name.lower()
    if tx.dialect == "postgresql":
        await tx.execute(
            "DELETE FROM archive_search WHERE id IN"
            " (SELECT id FROM archive_posts WHERE list_name = ?)",
            (name,),
        )
    else:
        await tx.execute(
            "INSERT INTO archive_search (archive_search, rowid, list_key, subject, author, text)"
            " SELECT 'delete', id, list_key, subject, author, text FROM archive_posts"
            " WHERE list_name = ?",
            (name,),
        )
    for table in ("archive_posts", "archive_threads", "archive_months", "archive_index_progress"):
        await tx.execute(f"DELETE FROM {table} WHERE list_name = ?", (name,))


# --- reading ----------------------------------------------------------------------------

_ENTRY = (
    "id, list_name, thread, message_id, author, subject, posted_at, parent, text, has_html,"
    " attachments"
)
_THREAD = "id, subject, started_at, last_at, messages, authors"


def _entry(row: Sequence) -> ArchiveEntry:
    return ArchiveEntry(*row[:9], bool(row[9]), int(row[10]))


def _summary(row: Sequence) -> ThreadSummary:
    authors = tuple(row[5].split("\n")) if row[5] else ()
    return ThreadSummary(int(row[0]), row[1], row[2], row[3], int(row[4]), authors)


async def months(tx: Tx, list_name: str) -> list[Month]:
    """The months with posts, newest first."""
    cur = await tx.execute(
        "SELECT year, month, messages FROM archive_months WHERE list_name = ?"
        " ORDER BY year DESC, month DESC",
        (list_name.lower(),),
    )
    return [Month(*r) for r in await cur.fetchall()]


async def month_threads(tx: Tx, list_name: str, year: int, month: int) -> list[ThreadSummary]:
    """The threads with a post in that month (UTC), newest activity first."""
    if not (1 <= month <= 12 and 1970 <= year <= 9998):
        return []
    start, end = month_span(year, month)
    name = list_name.lower()
    cur = await tx.execute(
        f"SELECT {_THREAD} FROM archive_threads WHERE list_name = ? AND id IN"
        " (SELECT thread FROM archive_posts WHERE list_name = ? AND posted_at >= ?"
        " AND posted_at < ?) ORDER BY last_at DESC, id DESC",
        (name, name, start, end),
    )
    return [_summary(r) for r in await cur.fetchall()]


async def thread(
    tx: Tx, list_name: str, thread_id: int
) -> tuple[ThreadSummary, list[ArchiveEntry]] | None:
    """The thread and its posts, oldest first; None if the list has no such thread."""
    name = list_name.lower()
    cur = await tx.execute(
        f"SELECT {_THREAD} FROM archive_threads WHERE id = ? AND list_name = ?", (thread_id, name)
    )
    row = await cur.fetchone()
    if row is None:
        return None
    cur = await tx.execute(
        f"SELECT {_ENTRY} FROM archive_posts WHERE list_name = ? AND thread = ? ORDER BY id",
        (name, thread_id),
    )
    return _summary(row), [_entry(r) for r in await cur.fetchall()]


async def entry(tx: Tx, list_name: str, message_id: int) -> ArchiveEntry | None:
    cur = await tx.execute(
        f"SELECT {_ENTRY} FROM archive_posts WHERE id = ? AND list_name = ?",
        (message_id, list_name.lower()),
    )
    row = await cur.fetchone()
    return _entry(row) if row else None


async def raw(tx: Tx, list_name: str, message_id: int) -> bytes | None:
    """The archived raw bytes of a post of the list."""
    cur = await tx.execute(
        "SELECT raw FROM list_archive WHERE id = ? AND list_name = ?",
        (message_id, list_name.lower()),
    )
    row = await cur.fetchone()
    return bytes(row[0]) if row else None


async def latest(tx: Tx, list_name: str, limit: int) -> list[ArchiveEntry]:
    """The newest indexed posts, newest first."""
    cur = await tx.execute(
        f"SELECT {_ENTRY} FROM archive_posts WHERE list_name = ?"
        " ORDER BY posted_at DESC, id DESC LIMIT ?",
        (list_name.lower(), limit),
    )
    return [_entry(r) for r in await cur.fetchall()]


async def month_posts(
    tx: Tx, list_name: str, year: int, month: int, after_id: int, limit: int
) -> list[ArchivedPost]:
    """The raw posts archived in that month (UTC) after `after_id`, in archive order."""
    if not (1 <= month <= 12 and 1970 <= year <= 9998):
        return []
    start, end = month_span(year, month)
    cur = await tx.execute(
        "SELECT id, list_name, message_id, thread_id, sender, subject, archived_at, raw"
        " FROM list_archive WHERE list_name = ? AND archived_at >= ? AND archived_at < ?"
        " AND id > ? ORDER BY id LIMIT ?",
        (list_name.lower(), start, end, after_id, limit),
    )
    return [ArchivedPost(*r[:7], bytes(r[7])) for r in await cur.fetchall()]


# --- search -----------------------------------------------------------------------------


def _quoted(words: str) -> str:
    """A phrase of FTS5's query language holding `words` as plain text: inside double
    quotes every character is text (a quote is doubled), so no operator gets through."""
    return '"' + words.replace('"', '""') + '"'


def match_expression(list_name: str, query: SearchQuery) -> str:
    """The FTS5 MATCH expression of a query in one list: every word and phrase (any
    column) and the author's words (in the author column), all required."""
    parts = [f"list_key : {_quoted(list_key(list_name))}"]
    for n, term in enumerate(query.terms):
        prefix = term.endswith("*")
        word = _quoted(term.rstrip("*")) + (" *" if prefix else "")
        others = query.forms[n] if n < len(query.forms) else ()
        # A word with its Welsh mutated forms: any one of them will do.
        parts.append(f"({' OR '.join([word, *map(_quoted, others)])})" if others else word)
    parts.extend(_quoted(p) for p in query.phrases)
    if query.author:
        names = " AND ".join(_quoted(w) for w in query.author.split())
        parts.append(f"author : ({names})")
    return " AND ".join(parts)


async def search(
    tx: Tx, list_name: str, query: SearchQuery, limit: int, offset: int
) -> tuple[list[Hit], int]:
    """The posts of the list that match, best first (see RANK_WINDOW), and how many match."""
    if tx.dialect == "postgresql":
        ids, total = await _page_postgresql(tx, list_name, query, limit, offset)
    else:
        ids, total = await _page_sqlite(tx, list_name, query, limit, offset)
    if not ids:
        return [], total
    marks = [*query.terms, *(f for forms in query.forms for f in forms), *query.phrases]
    cur = await tx.execute(
        "SELECT id, thread, subject, author, posted_at, substr(text, 1, ?) FROM archive_posts"
        f" WHERE id IN ({', '.join('?' * len(ids))})",
        (SNIPPET_SCAN_CHARS, *ids),
    )
    rows = {row[0]: row for row in await cur.fetchall()}
    # The snippets are made here, not by FTS5's snippet(): that runs the whole MATCH again
    # for each hit, which for a prefix word costs milliseconds a hit.
    hits = [Hit(*rows[i][:5], snippet(rows[i][5], marks)) for i in ids if i in rows]
    return hits, int(total)


async def _page_sqlite(
    tx: Tx, list_name: str, query: SearchQuery, limit: int, offset: int
) -> tuple[list[int], int]:
    """The ids of the page's matches, in order, and how many match (FTS5)."""
    expr = match_expression(list_name, query)
    cur = await tx.execute(
        "SELECT count(*) FROM archive_search WHERE archive_search MATCH ?", (expr,)
    )
    (total,) = await cur.fetchone()
    if total == 0 or offset >= total or limit <= 0:
        return [], int(total)
    ids: list[int] = []
    floor = 0  # the lowest id the ranked window holds
    if total > RANK_WINDOW:
        cur = await tx.execute(
            "SELECT rowid FROM archive_search WHERE archive_search MATCH ?"
            " ORDER BY rowid DESC LIMIT 1 OFFSET ?",
            (expr, RANK_WINDOW - 1),
        )
        floor = int((await cur.fetchone())[0])
    if offset < RANK_WINDOW:
        cur = await tx.execute(
            f"SELECT rowid FROM archive_search WHERE archive_search MATCH ? AND rowid >= ?"
            f" ORDER BY {_BM25}, rowid DESC LIMIT ? OFFSET ?",
            (expr, floor, min(limit, RANK_WINDOW - offset), offset),
        )
        ids += [int(r[0]) for r in await cur.fetchall()]
    if len(ids) < limit and floor:
        cur = await tx.execute(
            "SELECT rowid FROM archive_search WHERE archive_search MATCH ? AND rowid < ?"
            " ORDER BY rowid DESC LIMIT ? OFFSET ?",
            (expr, floor, limit - len(ids), max(0, offset - RANK_WINDOW)),
        )
        ids += [int(r[0]) for r in await cur.fetchall()]
    return ids, int(total)


async def _page_postgresql(
    tx: Tx, list_name: str, query: SearchQuery, limit: int, offset: int
) -> tuple[list[int], int]:
    """The same page as `_page_sqlite`, in one statement: the matches are found once
    (`matches`: a phrase or an author's word is checked in each candidate's tsvector, the
    costly part), then counted, the newest RANK_WINDOW of them ranked by ts_rank, and the
    older ones taken newest first."""
    text = tsquery(query)
    if text is None:  # a word of the query holds nothing the index could hold
        return [], 0
    limit = max(0, limit)
    ranked = max(0, min(limit, RANK_WINDOW - offset))  # rows of the page from the window
    cur = await tx.execute(
        "WITH matches AS MATERIALIZED ("
        " SELECT id FROM archive_search WHERE list_key = ? AND doc @@ CAST(? AS tsquery)),"
        " newest AS MATERIALIZED (SELECT id FROM matches ORDER BY id DESC LIMIT ?),"
        " page AS ("
        f" (SELECT s.id, 1 AS part, ts_rank({_WEIGHTS}, s.doc, CAST(? AS tsquery), 1) AS rank"
        "  FROM archive_search s WHERE s.id IN (SELECT id FROM newest)"
        "  ORDER BY rank DESC, s.id DESC LIMIT ? OFFSET ?)"
        " UNION ALL"
        " (SELECT id, 2, 0 FROM matches WHERE id < (SELECT min(id) FROM newest)"
        "  ORDER BY id DESC LIMIT ? OFFSET ?))"
        " SELECT 0, 0, 0, count(*) FROM matches"
        " UNION ALL SELECT part, rank, id, 0 FROM page ORDER BY 1, 2 DESC, 3 DESC",
        (list_key(list_name), text, RANK_WINDOW, text, ranked, offset,
         limit - ranked, max(0, offset - RANK_WINDOW)),
    )  # fmt: skip
    rows = await cur.fetchall()
    return [int(r[2]) for r in rows[1:]], int(rows[0][3])


# --- search on PostgreSQL -------------------------------------------------------------------
#
# PostgreSQL has no FTS5. A post's words go into a tsvector made here, not by
# to_tsvector(): the words are the snippets' words (`_WORD`), folded by `fold` (case and
# diacritics: "Gŵyl" is "gwyl", as unicode61 remove_diacritics 2 folds it), so the index,
# the query and the snippet marks agree, and nothing depends on the server's locale, its
# text search parser or the `unaccent` extension. A query is a tsquery of the same folded
# words, each one quoted: what a visitor types is only ever a lexeme, never an operator,
# and it reaches the server as a bound parameter. Cast as text (CAST(? AS tsvector)),
# lexemes are taken as they are; to_tsvector/to_tsquery would parse them again.
#
# The columns are weights of one tsvector: subject A, author B, text D, as FTS5's bm25
# weighs them (4, 2, 1; see _BM25); `from:` searches the B words only. A gap of one
# position between the columns keeps a phrase within one of them, as in FTS5.
#
# PostgreSQL's limits, which FTS5 does not have: a word is indexed (and searched for) by
# its first _MAX_LEXEME_CHARS characters; a word's 256 first positions are kept, and a word
# first seen past position 16,383 (about the 16,000th word of a post) is indexed at that
# position, so a phrase far into a very long post, or of a word used more than 256 times
# before it, may not be found there (its words are); a post's document stops at
# _MAX_DOCUMENT_BYTES (only a crafted text of many distinct long words gets so far:
# 200,000 characters of ordinary text is a few hundred KB).

# ts_rank's weights of {D, C, B, A}: text, (unused), author, subject, in bm25's ratios.
_WEIGHTS = "'{0.25, 0, 0.5, 1}'"
_MAX_LEXEME_CHARS = 500  # at most 2,000 bytes of UTF-8: PostgreSQL takes 2,047
_MAX_POSITION = 16383
_MAX_POSITIONS = 256  # of one word
_MAX_DOCUMENT_BYTES = 1_000_000  # PostgreSQL takes 1 MB (1,048,575 bytes) of a tsvector
# A post's document is made in a thread past this much text (~1 ms of Python; the largest
# post, 200,000 characters, takes about 10 ms).
INLINE_DOCUMENT_CHARS = 20_000


def lexemes(text: str) -> list[str]:
    """The words of `text` as the PostgreSQL index holds them: as the snippets read and
    fold them (`_WORD`, `fold`), cut to _MAX_LEXEME_CHARS."""
    words = _WORD.findall(text)
    # Each distinct word folded once: a post's text repeats most of its words.
    folded = {w: fold(w)[:_MAX_LEXEME_CHARS] for w in set(words)}
    return [f for f in map(folded.__getitem__, words) if f]


def _lexeme(word: str) -> str:
    """A lexeme as tsvector and tsquery text: quoted, a quote doubled, a backslash escaped;
    whatever it holds is one word."""
    return "'" + word.replace("\\", "\\\\").replace("'", "''") + "'"


def document(subject: str, author: str, text: str) -> str:
    """A post's words as tsvector text: each word once, with its positions (weight A in
    the subject, B in the author's name, D in the text). Pure; bounded by PostgreSQL's
    limits (see above), and so in time: at most 16,383 positions are listed one by one
    (a 200,000-character post takes about 10 ms)."""
    positions: dict[str, list[int]] = {}
    ends = []  # the position after each column's last word
    pos = 1
    for column in (subject, author, text):
        found = lexemes(column)
        kept = found[: max(0, _MAX_POSITION - pos)]
        for n, word in enumerate(kept, pos):
            have = positions.get(word)
            if have is None:
                positions[word] = [n]
            else:
                have.append(n)
        pos += len(kept)
        ends.append(pos)
        # Past the last position a word is still indexed, at that position.
        for word in dict.fromkeys(found[len(kept) :]):
            positions.setdefault(word, [_MAX_POSITION])
        pos += 1  # the gap between columns
    in_subject, in_author = ends[0], ends[1]
    out = []
    size = 0  # bytes of the tsvector, at most: a word's UTF-8 and 10, and 2 a position
    for word, where in positions.items():
        where = where[:_MAX_POSITIONS]
        size += len(word.encode()) + 10 + 2 * len(where)
        if size > _MAX_DOCUMENT_BYTES:
            break
        if where[0] > in_author:  # in the text only: weight D, which is written as none
            listed = ",".join(map(str, where))
        else:
            listed = ",".join(
                f"{n}A" if n < in_subject else f"{n}B" if n < in_author else str(n) for n in where
            )
        out.append(f"{_lexeme(word)}:{listed}")
    return " ".join(out)


def _tsphrase(words: str, *, prefix: bool = False, weight: str = "") -> str | None:
    """`words` as a tsquery: one word, or a phrase of them next to each other in order;
    the last one a prefix if `prefix`. None when it holds no word."""
    found = lexemes(words)
    if not found:
        return None
    parts = [_lexeme(w) + (f":{weight}" if weight else "") for w in found]
    if prefix:
        parts[-1] = f"{_lexeme(found[-1])}:*{weight}"
    return parts[0] if len(parts) == 1 else "(" + " <-> ".join(parts) + ")"


def tsquery(query: SearchQuery) -> str | None:
    """The tsquery text of a query, as match_expression's FTS5 expression reads: every word
    (with its Welsh forms: any one of them) and phrase anywhere, the author's words in the
    author's name (weight B), all required. None when a part holds no word (then nothing
    matches). The list is a column, not a word: search() filters on it."""
    parts: list[str | None] = []
    for n, term in enumerate(query.terms):
        word = _tsphrase(term.rstrip("*"), prefix=term.endswith("*"))
        others = query.forms[n] if n < len(query.forms) else ()
        # A word with its Welsh mutated forms: any one of them will do.
        forms = [f for f in map(_tsphrase, others) if f]
        parts.append(f"({' | '.join([word, *forms])})" if word and forms else word)
    parts.extend(_tsphrase(p) for p in query.phrases)
    parts.extend(_tsphrase(w, weight="B") for w in query.author.split())
    if not parts or None in parts:
        return None
    return " & ".join(p for p in parts if p)


# --- snippets -----------------------------------------------------------------------------

# A word as FTS5's unicode61 tokenizer reads one: a run of letters and digits.
_WORD = re.compile(r"[^\W_]+")


def fold(word: str) -> str:
    """A word as the index holds it: lower case, diacritics removed (ŵ → w, î → i)."""
    word = word.casefold()
    if word.isascii():
        return word
    return "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))


def snippet(text: str, wanted: Sequence[str], words: int = SNIPPET_WORDS) -> str:
    """The stretch of `words` words of `text` holding the most of `wanted` (words,
    `prefix*` words, phrases), each match between MARK_START and MARK_END; "…" where the
    text goes on. Pure: the same folding of case and diacritics as the index."""
    found = [(m.start(), m.end(), fold(m.group())) for m in _WORD.finditer(text)]
    if not found:
        return ""
    exact: set[str] = set()
    prefixes: list[str] = []
    phrases: list[list[str]] = []
    for item in wanted:
        parts = [fold(w) for w in _WORD.findall(item)]
        if len(parts) > 1:
            phrases.append(parts)
        elif parts and item.endswith("*"):
            prefixes.append(parts[0])
        elif parts:
            exact.add(parts[0])
    hit = [0] * len(found)  # 1: the word is (in) a match
    for n, (_, _, w) in enumerate(found):
        if w in exact or any(w.startswith(p) for p in prefixes):
            hit[n] = 1
    for phrase in phrases:
        size = len(phrase)
        for n in range(len(found) - size + 1):
            if found[n][2] == phrase[0] and [f[2] for f in found[n : n + size]] == phrase:
                hit[n : n + size] = [1] * size
    # The window with the most matched words (the first such).
    best, score = 0, sum(hit[:words])
    window = score
    for n in range(1, len(found) - words + 1):
        window += hit[n + words - 1] - hit[n - 1]
        if window > score:
            best, score = n, window
    if score:  # a little of what comes before the first match, for context
        first = hit.index(1, best)
        best = max(0, min(first - words // 4, len(found) - words))
    out = []
    pos = found[best][0]
    for n in range(best, min(len(found), best + words)):
        start, end, _ = found[n]
        out.append(text[pos:start])
        out.append(f"{MARK_START}{text[start:end]}{MARK_END}" if hit[n] else text[start:end])
        pos = end
    if best + words >= len(found):
        out.append(text[pos:])  # the end of the text: its last full stop too
    # Adjacent marks (a phrase) become one: "\x02yn\x03 \x02Llandudno\x03" → one span.
    shown = re.sub(f"{MARK_END}(\\s+){MARK_START}", r"\1", "".join(out))
    shown = " ".join(shown.split())
    before = "…" if best > 0 else ""
    after = "…" if best + words < len(found) or len(text) >= SNIPPET_SCAN_CHARS else ""
    return before + shown + after
