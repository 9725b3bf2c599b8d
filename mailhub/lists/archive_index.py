"""Indexing archived posts for the web archive: what a page and a search need of a post
(author's name, text, thread), taken out of the message once, when it is archived.

`index_post` runs in `distribute`'s transaction, right after the post is archived, so an
archived post is never left unindexed by a crash. Posts archived before this index
existed are indexed by the `lists.archive_index` job, a batch a tick, oldest first; a new
post of a list whose backfill is not done waits for the job too, so every post is indexed
after the posts it may reply to (its thread is found through them).

`extract` is pure and bounded: it looks at a limited number of MIME parts, decodes one
text part (or strips one HTML part with nh3) and caps the text it keeps, so its cost does
not grow with what a sender crafts beyond the message size limit.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from email.message import EmailMessage, Message
from html import unescape

import nh3

from mailhub import content, logs
from mailhub.context import Context, Runtime
from mailhub.jobs import Step
from mailhub.lists import post_parts
from mailhub.lists.archive_render import redact
from mailhub.lists.config import ListConfig
from mailhub.parsing import addresses, clean, header, parse
from mailhub.store import Store
from mailhub.store import archive as store
from mailhub.store.lists import ArchivedPost

MAX_TEXT_CHARS = 200_000  # text kept of a post (for its page and its search)
MAX_HTML_CHARS = 1_000_000  # HTML read of an HTML-only post before stripping it
INLINE_HTML_BYTES = 6_000  # an HTML-only post past this is indexed by the backfill
MAX_REFERENCES = 50  # References ids looked up for a parent (newest first)

BACKFILL_BATCH = 500  # posts the backfill indexes a tick, at most (~1 ms each)
BACKFILL_SECONDS = 0.5  # and reads for about this long, at most (outside any transaction)
BACKFILL_READ_TIMEOUT = 5.0  # a large post's bounded read


@dataclass(frozen=True)
class Extract:
    author: str  # the From: display name ('' when none, or when it holds an address)
    subject: str
    text: str
    has_html: bool
    attachments: int
    parents: tuple[str, ...]  # Message-IDs it replies to, nearest first


EMPTY = Extract("", "", "", False, 0, ())

# Control characters other than tab and newline: the search snippets mark matches with
# \x02 and \x03, so the text must hold none of its own.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_BLANK_LINES = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")


def extract(msg: Message, message_id: str = "") -> Extract:
    """What the archive keeps of a post for its pages and its search. Pure, bounded."""
    parts = post_parts.split(msg)
    text_part, html_part = parts.text, parts.html
    if text_part is not None:
        text = _decoded(text_part, MAX_TEXT_CHARS * 2)  # some goes in _tidy
    elif html_part is not None:
        text = html_text(_decoded(html_part, MAX_HTML_CHARS))
    else:
        text = ""
    # Addresses are cut to their local part ("ann@…") as the pages show them, so that a
    # search cannot tell which posts hold an address the pages never show.
    return Extract(
        author=author_name(msg),
        subject=redact(header(msg, "subject")),
        text=redact(_tidy(text)[:MAX_TEXT_CHARS]),
        has_html=html_part is not None,
        attachments=len(parts.attachments),
        parents=parent_ids(msg, message_id),
    )


def strips_large_html(msg: Message) -> bool:
    """Whether `extract` would strip an HTML part of more than INLINE_HTML_BYTES (an
    HTML-only post): nh3 takes ~0.15 ms a KB, too long for distribute's transaction on
    the event loop, so such a post is left to the backfill, which reads it in the content
    worker."""
    html = None
    for part in post_parts.leaves(msg):
        if post_parts.is_body(part, "text/plain"):
            return False
        if html is None and post_parts.is_body(part, "text/html"):
            html = part
    payload = html.get_payload() if html is not None else ""
    return isinstance(payload, str) and len(payload) > INLINE_HTML_BYTES


def author_name(msg: Message) -> str:
    """The From: display name, never an address ('' for `ann@x` or `"ann@x" <ann@x>`)."""
    senders = addresses(msg, "from")
    name = clean(senders[0][0]) if senders else ""
    return "" if "@" in name else name


def parent_ids(msg: Message, own: str = "") -> tuple[str, ...]:
    """The ids a post replies to, nearest first: In-Reply-To, then References from the
    last (its parent) back to the first (the thread's root)."""
    replies = _MESSAGE_ID.findall(header(msg, "in-reply-to"))[:1]
    refs = _MESSAGE_ID.findall(header(msg, "references"))
    # The root and the newest ones: a References list is trimmed in the middle by clients.
    refs = refs[:1] + refs[1:][-(MAX_REFERENCES - 1) :] if len(refs) > MAX_REFERENCES else refs
    ids = dict.fromkeys([*replies, *reversed(refs)])
    ids.pop(own, None)
    return tuple(ids)


# Tags that end a line of text: dropping them would join the words either side
# ("<p>one</p><p>two</p>" is not "onetwo").
_BREAKS = re.compile(
    r"<(/?(?:p|div|br|li|tr|td|th|h[1-6]|blockquote|pre|table|ul|ol|dl|dt|dd|hr|section"
    r"|article|header|footer)\b)",
    re.IGNORECASE,
)


def html_text(html: str) -> str:
    """The text of an HTML part: every tag dropped (script and style with their content),
    a line break where a block ended, entities undone."""
    return unescape(nh3.clean(_BREAKS.sub(r"\n<\1", html), tags=set()))


def _decoded(part: Message, max_chars: int) -> str:
    """A text part's content as text: bytes its charset cannot decode (or a charset
    Python does not know) become replacement characters."""
    try:
        data = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001 - a malformed part is a part without text
        return ""
    if not isinstance(data, bytes):
        return ""
    data = data[: max_chars * 4]
    charset = post_parts.charset(part)
    try:
        return data.decode(charset, "replace")[:max_chars]
    except (LookupError, ValueError):
        return data.decode("utf-8", "replace")[:max_chars]


def _tidy(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROLS.sub("", text)
    return _BLANK_LINES.sub("\n\n", text).strip()


def read_and_extract(raw: bytes, message_id: str) -> Extract | None:
    """Parse and extract a raw post (in the content worker, for a large one); None when it
    cannot be read within the content limits. Top-level: it runs in another process."""
    msg, problem = content.read_message(raw)
    if problem:
        return None
    return extract(msg, message_id)


# --- indexing ---------------------------------------------------------------------------


async def index_post(
    ctx: Context,
    cfg: ListConfig,
    archive_id: int,
    msg: EmailMessage,
    message_id: str,
    thread_message_id: str,
) -> bool:
    """Index a post `distribute` has just archived, in its transaction. False when it is
    left to the backfill: older posts of the list are not indexed yet, or it is an
    HTML-only post too large to strip here (`strips_large_html`); the backfill's next
    tick indexes it, and the posts after it, in order."""
    if await store.unindexed_before(ctx.tx, cfg.name, archive_id) or strips_large_html(msg):
        return False
    found = extract(msg, message_id)
    await _index(ctx, cfg.name, archive_id, message_id, thread_message_id, found, ctx.now())
    # Every post of the list up to this one is indexed now: the next post's check above
    # starts here (a few µs), whether or not the backfill job has run since.
    await store.set_backfill_mark(ctx.tx, cfg.name, archive_id)
    return True


async def _index(
    ctx: Context,
    list_name: str,
    archive_id: int,
    message_id: str,
    thread_message_id: str,
    found: Extract,
    posted_at: float,
) -> None:
    # A reply joins the thread of the nearest post it names that is archived; failing
    # those, the thread's root as distribute named it (References' first id); a post
    # whose parents are all unknown starts a thread of its own.
    candidates = list(found.parents)
    if thread_message_id and thread_message_id != message_id:
        candidates.append(thread_message_id)
    parent = await store.find_parent(ctx.tx, list_name, list(dict.fromkeys(candidates)))
    await store.index_post(
        ctx.tx,
        archive_id=archive_id,
        list_name=list_name,
        message_id=message_id,
        thread=parent[1] if parent else archive_id,
        parent=parent[0] if parent else None,
        author=found.author,
        subject=found.subject,
        posted_at=posted_at,
        text=found.text,
        has_html=found.has_html,
        attachments=found.attachments,
    )


# --- the backfill -----------------------------------------------------------------------


@dataclass(frozen=True)
class Batch:
    """What the backfill read of one list, outside any transaction, for its step to write."""

    list_name: str
    mark: int  # the list's mark when it was read: if it has moved since, the batch is stale
    found: tuple[tuple[ArchivedPost, Extract], ...]
    complete: bool  # every unindexed post of the list was in it


async def backfill(db: Store, runtime: Runtime) -> Step:
    """The `lists.archive_index` job's reading: posts archived before the index existed (or
    left to it by `index_post`), oldest first, a bounded batch a tick for all lists, read
    (a large one in the content worker) outside any transaction, so intake never waits on
    it. Returns the step that writes them, in the job's transaction."""
    batches = await read_batches(db, [lst.name for lst in runtime.config.lists])

    async def write(ctx: Context) -> None:
        for batch in batches:
            await write_batch(ctx, batch)

    return write


async def read_batches(db: Store, list_names: list[str]) -> list[Batch]:
    budget = BACKFILL_BATCH
    deadline = time.monotonic() + BACKFILL_SECONDS
    batches = []
    for name in list_names:
        if budget <= 0 or time.monotonic() >= deadline:
            break
        async with db.read() as tx:
            mark = await store.backfill_mark(tx, name)
            posts = await store.unindexed(tx, name, mark, budget)
        found = []
        for post in posts:
            if found and time.monotonic() >= deadline:
                break
            found.append((post, await _read(post)))
        budget -= len(found)
        batches.append(Batch(name, mark, tuple(found), len(found) == len(posts) < BACKFILL_BATCH))
    return batches


async def write_batch(ctx: Context, batch: Batch) -> int:
    """Index what `batch` read; returns how many. A batch whose list's mark has moved since
    it was read (a reindex, or another backfill) is dropped: the next tick reads again."""
    name = batch.list_name
    if await store.backfill_mark(ctx.tx, name) != batch.mark:
        return 0
    for post, found in batch.found:
        await _index(ctx, name, post.id, post.message_id, post.thread_id, found, post.archived_at)
    if batch.complete:  # all there was: every post of the list is indexed
        last = await store.last_archived(ctx.tx, name)
        if last > batch.mark:
            await store.set_backfill_mark(ctx.tx, name, last)
    elif batch.found:
        await store.set_backfill_mark(ctx.tx, name, batch.found[-1][0].id)
    if batch.found:
        logs.event("list.archive_index", list=name, outcome="backfilled", posts=len(batch.found))
    return len(batch.found)


async def reindex(db: Store, runtime: Runtime, list_name: str) -> int:
    """`mailhub archive LIST --reindex`: forget the list's index and build it again, a
    batch a transaction, each read outside it (a running service goes on meanwhile; its
    pages show what is indexed so far). Returns how many posts were indexed."""
    async with db.transaction() as tx:
        await store.clear_index(tx, list_name)
    count = 0
    while True:
        [batch] = await read_batches(db, [list_name])
        async with db.transaction() as tx:
            done = await write_batch(runtime.context(tx, "cli:archive-reindex"), batch)
        if not batch.found:
            return count
        count += done


async def _read(post: ArchivedPost) -> Extract:
    """What the index keeps of an archived post: a large or complex one read in the
    content worker, with a time budget; one that cannot be read is indexed without text
    (with its subject), and never tried again."""
    if not content.needs_bounded_read(post.raw):
        msg = parse(post.raw)
        if not strips_large_html(msg):
            return extract(msg, post.message_id)
    found = await content.run_bounded(
        read_and_extract, post.raw, post.message_id, timeout=BACKFILL_READ_TIMEOUT,
        what="archive index",
    )  # fmt: skip
    if found is None:
        logs.event(
            "list.archive_index", logging.WARNING, list=post.list_name, archive_id=post.id,
            outcome="unreadable: indexed without text",
        )  # fmt: skip
        return Extract("", post.subject, "", False, 0, ())
    return found
