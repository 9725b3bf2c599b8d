"""Member digests: members in digest mode get the posts since their last digest as one
MIME digest (RFC 2046 §5.1.5), every `member_digest_interval`, or at once when they write
to `LIST-digest@D` (the digest on demand: it goes to the envelope sender, which must be a
member in digest mode, through the RFC 3834 rules, and restarts the interval).

The message is a multipart/mixed: a text/plain contents page, then a multipart/digest
holding each archived post as message/rfc822: its body verbatim, under the header block a
list copy gets (the same stripping, every kept field cleaned and re-folded: see
`headers.stripped_copy`), never the archived raw headers. It is built from bytes, so a
malformed post in the archive can never stop a digest from being written.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import format_datetime

from mailhub import logs
from mailhub.clock import as_datetime
from mailhub.context import Context, Incoming
from mailhub.jobs import Job
from mailhub.lists import notices, reply_relay
from mailhub.lists.config import ListConfig, find_list
from mailhub.lists.headers import ListAddresses, display_name_of, list_headers, stripped_copy
from mailhub.messages import address, new_message_id, to_bytes
from mailhub.routing import Route
from mailhub.store import lists as store
from mailhub.store.lists import ArchivedPost


@dataclass(frozen=True)
class DigestEntry:
    number: int
    sender: str  # the address; on a hidden list the poster's name ('': the template's "a member")
    subject: str
    date: str


def digest_due(sent_at: float | None, interval: float, now: float) -> bool:
    """Is a member's digest due? (pure) Never sent: at once; else one interval later."""
    return sent_at is None or now - sent_at >= interval


def build_digest(
    cfg: ListConfig,
    posts: list[ArchivedPost],
    *,
    intro_subject: str,
    intro_body: str,
    domain: str,
    loop_id: str,
    now: float,
    reply_addresses: dict[str, str] | None = None,
) -> tuple[str, bytes]:
    """(Message-ID, bytes) of one digest holding `posts`. On a hidden list each post's
    poster is hidden as in a list copy, replies to their relay address (`reply_addresses`,
    by sender)."""
    replies = reply_addresses or {}
    a = ListAddresses.of(cfg.name, domain)
    envelope = EmailMessage(policy=policy.SMTP)
    envelope["From"] = address(cfg.shown_name, a.post)
    envelope["To"] = address(cfg.shown_name, a.post)
    envelope["Subject"] = intro_subject
    envelope["Date"] = format_datetime(as_datetime(now))
    envelope["Message-ID"] = message_id = new_message_id(domain)
    for name, value in list_headers(cfg, domain).items():
        envelope[name] = value
    envelope["X-Loop"] = loop_id
    head = to_bytes(envelope).split(b"\r\n\r\n", 1)[0]
    outer, inner = secrets.token_hex(16), secrets.token_hex(16)

    intro = EmailMessage(policy=policy.SMTP)
    intro.set_content(intro_body, charset="utf-8", cte="quoted-printable")
    del intro["MIME-Version"]
    parts = [
        head,
        b"MIME-Version: 1.0",
        f'Content-Type: multipart/mixed; boundary="{outer}"'.encode(),
        b"",
        f"--{outer}".encode(),
        to_bytes(intro).rstrip(b"\r\n"),
        f"--{outer}".encode(),
        f'Content-Type: multipart/digest; boundary="{inner}"'.encode(),
        b"",
    ]
    for post in posts:
        # In a multipart/digest each part is message/rfc822 by default (RFC 2046 §5.1.5).
        embedded = stripped_copy(
            post.raw, cfg=cfg, domain=domain, reply_address=replies.get(post.sender, "")
        )
        parts += [f"--{inner}".encode(), b"", embedded.rstrip(b"\r\n")]
    parts += [f"--{inner}--".encode(), f"--{outer}--".encode(), b""]
    return message_id, b"\r\n".join(parts)


async def send_member_digests(ctx: Context) -> None:
    for cfg in ctx.config.lists:
        await _list_digests(ctx, cfg)


async def _list_digests(ctx: Context, cfg: ListConfig) -> None:
    now = ctx.now()
    a = ListAddresses.of(cfg.name, ctx.domain)
    archive: dict[int, list[ArchivedPost]] = {}
    # One digest per set of posts and language choice (most members share both).
    groups: dict[tuple[tuple[int, ...], str], list[str]] = {}
    latest = await store.last_archive_id(ctx.tx, cfg.name)
    for addr, after, sent_at in await store.digest_members(ctx.tx, cfg.name):
        if not digest_due(sent_at, cfg.member_digest_interval, now):
            continue
        if after not in archive:
            archive[after] = await store.archived_since(ctx.tx, cfg.name, after)
        muted = await store.mutes_of(ctx.tx, cfg.name, addr)
        ids = tuple(p.id for p in archive[after] if p.thread_id not in muted)
        # Nothing new still restarts the interval, so the next digest is a full one.
        await store.digest_sent(ctx.tx, cfg.name, addr, latest, now)
        if ids:
            languages = await notices.languages_for(ctx, cfg, addr)
            groups.setdefault((ids, languages), []).append(addr)
    by_id = {p.id: p for posts in archive.values() for p in posts}
    for (ids, languages), rcpts in groups.items():
        message_id, raw = await _compose(ctx, cfg, [by_id[i] for i in ids], languages)
        await ctx.send(
            raw,
            rcpts,
            kind="list.digest",
            mail_from=a.bounces,
            message_id=message_id,
            personalise=f"list:{cfg.name}" if cfg.delivery == "personalised" else None,
        )
        logs.event("list.digest", list=cfg.name, posts=len(ids), recipients=len(rcpts))


async def _compose(
    ctx: Context, cfg: ListConfig, posts: list[ArchivedPost], languages: str
) -> tuple[str, bytes]:
    """(Message-ID, bytes) of the digest of `posts`, its contents page in `languages` (the
    members' own choice, else the list's: notices.languages_for).
    On a hidden list the contents name posters, never their addresses."""
    hidden = cfg.addresses == "hidden"
    entries = [
        DigestEntry(
            n,
            display_name_of(p.raw) if hidden else p.sender,
            p.subject,
            notices.when(p.archived_at),  # in each half's language, through the filter
        )
        for n, p in enumerate(posts, 1)
    ]
    replies: dict[str, str] = {}
    for sender in dict.fromkeys(p.sender for p in posts):
        replies[sender] = await reply_relay.copy_reply_address(ctx, cfg, sender)
    text = notices.render(ctx, cfg, "posting_digest", languages=languages, entries=entries)
    return build_digest(
        cfg,
        posts,
        intro_subject=text.subject,
        intro_body=text.body,
        domain=ctx.domain,
        loop_id=ctx.loop_id,
        now=ctx.now(),
        reply_addresses=replies,
    )


async def handle_digest_now(ctx: Context, mail: Incoming, route: Route) -> None:
    """`LIST-digest@D`: a member's digest on demand, sent now to the envelope sender (where
    every automatic answer goes, RFC 3834) when that is a member in digest mode: the posts
    since their last digest, as the scheduled one would hold them, whose interval restarts.
    Anyone else is told why not (politely, and through the same rules and rate limit)."""
    cfg = find_list(ctx.config.lists, route.get("list"))
    if cfg is None:
        return
    who = mail.mail_from.lower()
    member = await store.get_member(ctx.tx, cfg.name, who) if who else None
    if member is None:
        outcome = "not-member"
    elif member.status != "active":
        outcome = "disabled"
    elif member.delivery != "digest":
        outcome = "not-digest"
    else:
        outcome = await _digest_now(ctx, mail, cfg, who)
    if outcome in NOT_SENT:
        await notices.answer(
            ctx, mail, cfg, "posting_digest_now", sender=notices.REQUEST, reason=outcome
        )
    logs.event(
        "list.digest_now", queue_id=mail.queue_id, list=cfg.name, sender=who, outcome=outcome
    )


# Why a digest on demand was not sent, each explained by the template posting_digest_now.
NOT_SENT = ("not-member", "disabled", "not-digest", "nothing-new")


async def _digest_now(ctx: Context, mail: Incoming, cfg: ListConfig, who: str) -> str:
    """Send `who` (a member in digest mode) their digest now; the outcome."""
    latest = await store.last_archive_id(ctx.tx, cfg.name)
    members = await store.digest_members(ctx.tx, cfg.name)
    after = next((after for addr, after, _ in members if addr == who), latest)
    muted = await store.mutes_of(ctx.tx, cfg.name, who)
    posts = await store.archived_since(ctx.tx, cfg.name, after)
    posts = [p for p in posts if p.thread_id not in muted]
    if not posts:
        return "nothing-new"
    _, raw = await _compose(ctx, cfg, posts, await notices.languages_for(ctx, cfg, who))
    # ctx.auto_reply takes a message: the digest's bytes, read back. One the email package
    # cannot write again is left for the schedule (which sends bytes), and nothing restarts.
    digest = message_from_bytes(raw, _class=EmailMessage, policy=policy.SMTP)
    try:
        to_bytes(digest)
    except Exception as exc:  # noqa: BLE001 - whatever the failure, the schedule sends it
        logs.event("list.digest_now", list=cfg.name, outcome="left", reason=type(exc).__name__)
        return "left for the schedule"
    if not await ctx.auto_reply(mail, digest, kind="list.digest"):
        return "suppressed"
    await store.digest_sent(ctx.tx, cfg.name, who, latest, ctx.now())
    return "sent"


JOBS: list[Job] = [Job("lists.member_digests", send_member_digests)]
