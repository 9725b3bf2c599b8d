"""`LIST@D`: a post to a list. Decide (pure), then distribute, hold, reject or discard.

Everything a post causes (the archive entry, the copies to members, a held entry, a
notice to the poster) is written in the handler's one transaction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import EmailMessage

from mailhub import logs
from mailhub.context import Context, Incoming
from mailhub.lists import moderation, notices
from mailhub.lists.config import ListConfig, find_list
from mailhub.lists.headers import ListAddresses, distribution_copy, extract_list_ids, list_id
from mailhub.messages import (
    MAX_HOPS,
    head_fields,
    hops,
    new_message_id,
)
from mailhub.parsing import addresses, header, header_values, sender_address
from mailhub.routing import Route
from mailhub.store import bans
from mailhub.store import lists as store
from mailhub.store.lists import Member

# --- the decision (pure) ---------------------------------------------------------------


@dataclass(frozen=True)
class PostFacts:
    """What decide_post needs to know about one incoming post."""

    sender: str  # the From: address, lower-cased ('' if none)
    size: int  # bytes
    recipients: int  # addresses in To: and Cc:
    list_ids: tuple[str, ...] = ()  # identifiers in its List-Id headers
    x_loops: tuple[str, ...] = ()  # its X-Loop values
    banned: bool = False
    domain: str = ""
    loop_id: str = ""


@dataclass(frozen=True)
class Accept:
    pass


@dataclass(frozen=True)
class Hold:
    reason: str
    code: str = ""  # non-member | first-posts | size | recipients


@dataclass(frozen=True)
class Reject:
    reason: str
    code: str = ""  # banned | non-member


@dataclass(frozen=True)
class Discard:
    reason: str


Decision = Accept | Hold | Reject | Discard


def decide_post(cfg: ListConfig, member: Member | None, facts: PostFacts) -> Decision:
    """Mail loops first (never answered), then bans, membership, and the size rules."""
    if list_id(cfg.name, facts.domain) in facts.list_ids:
        return Discard("mail loop: our own List-Id came back")
    if facts.loop_id and facts.loop_id.lower() in (v.lower() for v in facts.x_loops):
        return Discard("mail loop: our own X-Loop came back")
    if facts.banned:
        return Reject("sender is banned from this list", "banned")
    if member is None:
        if cfg.non_member_posts == "reject":
            return Reject("sender is not a member", "non-member")
        if cfg.non_member_posts == "hold":
            return Hold("non-member", "non-member")
    if facts.size > cfg.max_post_bytes:
        return Hold(f"too large ({facts.size} bytes; limit {cfg.max_post_bytes})", "size")
    if facts.recipients > cfg.max_post_recipients:
        return Hold(
            f"too many recipients ({facts.recipients}; limit {cfg.max_post_recipients})",
            "recipients",
        )
    if member is not None and member.posts < cfg.hold_first_posts:
        return Hold(f"new member's first posts (post {member.posts + 1})", "first-posts")
    return Accept()


def post_facts(mail: Incoming, *, banned: bool, domain: str, loop_id: str) -> PostFacts:
    msg = mail.message
    return PostFacts(
        sender=sender_address(msg) or mail.mail_from.lower(),
        size=len(mail.raw),
        recipients=len({a.lower() for _, a in addresses(msg, "to", "cc")}),
        list_ids=extract_list_ids(header_values(msg, "list-id")),
        x_loops=tuple(header_values(msg, "x-loop")),
        banned=banned,
        domain=domain,
        loop_id=loop_id,
    )


# --- the handler -----------------------------------------------------------------------


async def handle_post(ctx: Context, mail: Incoming, route: Route) -> None:
    cfg = find_list(ctx.config.lists, route.get("list"))
    if cfg is None:
        return
    sender = sender_address(mail.message) or mail.mail_from.lower()
    member = await store.get_member(ctx.tx, cfg.name, sender) if sender else None
    ban = await bans.active(ctx.tx, sender, cfg.name, ctx.now()) if sender else None
    facts = post_facts(mail, banned=ban is not None, domain=ctx.domain, loop_id=ctx.loop_id)
    decision = decide_post(cfg, member, facts)
    fields = {"queue_id": mail.queue_id, "list": cfg.name, "sender": sender}
    if isinstance(decision, Accept):
        recipients = await distribute(ctx, cfg, mail.raw)
        if member is not None:
            await store.count_post(ctx.tx, cfg.name, sender)
        logs.event("list.post", **fields, outcome="accepted", recipients=recipients)
    elif isinstance(decision, Hold):
        held_id = await store.hold_post(
            ctx.tx,
            list_name=cfg.name,
            sender=sender,
            mail_from=mail.mail_from,
            subject=header(mail.message, "subject"),
            reason=decision.reason,
            raw=mail.raw,
            now=ctx.now(),
        )
        await notices.answer(
            ctx, mail, cfg, "posting_held", code=decision.code, days=wait_days(cfg)
        )
        await moderation.on_new_item(ctx, cfg)
        logs.event("list.post", **fields, outcome="held", held_id=held_id, code=decision.code)
    elif isinstance(decision, Reject):
        await notices.answer(ctx, mail, cfg, "posting_rejected", code=decision.code)
        logs.event("list.post", **fields, outcome="rejected", code=decision.code)
    else:
        logs.event("list.post", **fields, outcome="discarded", reason=decision.reason)


async def distribute(ctx: Context, cfg: ListConfig, raw: bytes) -> int:
    """Archive the post and queue it for every member who takes each post. Returns the
    number of recipients. A post past the hop limit is a loop (two lists, or a list and a
    forwarder, sending to each other with something between them that drops X-Loop and
    List-Id): it is neither archived nor sent, with one log line."""
    fields = head_fields(raw)
    if hops(fields) + 1 > MAX_HOPS:
        logs.event("list.post", list=cfg.name, outcome="loop discarded", hops=hops(fields))
        return 0
    msg = Incoming("", "", (), raw, ctx.now()).message
    sender = sender_address(msg)
    message_id = header(msg, "message-id") or new_message_id(ctx.domain)
    thread = thread_id(msg) or message_id
    await store.archive_post(
        ctx.tx,
        list_name=cfg.name,
        message_id=message_id,
        thread_id=thread,
        sender=sender,
        subject=header(msg, "subject"),
        raw=raw,
        now=ctx.now(),
    )
    muted = await store.muted_by(ctx.tx, cfg.name, thread)
    rcpts = [
        addr
        for addr, own in await store.each_recipients(ctx.tx, cfg.name)
        if (own or addr != sender) and addr not in muted
    ]
    if not rcpts:
        return 0
    footer = notices.render(ctx, cfg, "posting_footer").body
    copy = distribution_copy(
        raw,
        cfg=cfg,
        domain=ctx.domain,
        loop_id=ctx.loop_id,
        footer=footer,
        dmarc=ctx.config.dmarc,
        message_id=message_id,
    )
    personalised = cfg.delivery == "personalised"
    await ctx.send(
        copy,
        rcpts,
        kind="list.post",
        mail_from=ListAddresses.of(cfg.name, ctx.domain).bounces,
        message_id=message_id,
        personalise=f"list:{cfg.name}" if personalised else None,
    )
    return len(rcpts)


def message_ids(value: str) -> list[str]:
    return re.findall(r"<[^<>\s]+>", value)


def thread_id(msg: EmailMessage) -> str:
    """The first message of the thread, as far as the headers tell (References' first id,
    else In-Reply-To); '' for a message that starts a thread."""
    refs = message_ids(header(msg, "references"))
    if refs:
        return refs[0]
    replies = message_ids(header(msg, "in-reply-to"))
    return replies[0] if replies else ""


def wait_days(cfg: ListConfig) -> int:
    """How many days a held post waits for the facilitators, as its notices say it."""
    return max(1, round(cfg.request_expiry / 86400))


# --- acting on held posts (used by the facilitators' digest and the expiry job) --------


async def _held_mail(ctx: Context, held_id: int) -> Incoming:
    raw, mail_from = await store.held_raw(ctx.tx, held_id)
    return Incoming(f"held:{held_id}", mail_from, (), raw, ctx.now())


async def release_held(ctx: Context, list_cfg: ListConfig, held_id: int, by: str) -> bool:
    """Distribute a held post now and mark it accepted; False if it is no longer held."""
    held = await store.get_held(ctx.tx, held_id)
    if held is None or held.state != "held" or held.list_name != list_cfg.name:
        return False
    mail = await _held_mail(ctx, held_id)
    if not await store.settle_held(ctx.tx, held_id, "accepted", by, ctx.now()):
        return False
    recipients = await distribute(ctx, list_cfg, mail.raw)
    if await store.get_member(ctx.tx, list_cfg.name, held.sender):
        await store.count_post(ctx.tx, list_cfg.name, held.sender)
    logs.event(
        "list.held",
        list=list_cfg.name,
        held_id=held_id,
        by=by,
        outcome="accepted",
        recipients=recipients,
    )
    return True


async def discard_held(
    ctx: Context, list_cfg: ListConfig, held_id: int, by: str, reason: str = ""
) -> bool:
    """Mark a held post discarded and tell the poster (with the reason, if one was given)."""
    return await _close_held(ctx, list_cfg, held_id, "discarded", by, "posting_discarded", reason)


async def expire_held(ctx: Context, list_cfg: ListConfig, held_id: int) -> bool:
    """Mark a held post expired (nobody acted in time) and tell the poster."""
    return await _close_held(ctx, list_cfg, held_id, "expired", "", "posting_expired", "")


async def _close_held(
    ctx: Context,
    cfg: ListConfig,
    held_id: int,
    state: str,
    by: str,
    template: str,
    reason: str,
) -> bool:
    held = await store.get_held(ctx.tx, held_id)
    if held is None or held.state != "held" or held.list_name != cfg.name:
        return False
    mail = await _held_mail(ctx, held_id)
    if not await store.settle_held(ctx.tx, held_id, state, by, ctx.now()):
        return False
    await notices.answer(
        ctx, mail, cfg, template, reason=reason, held_subject=held.subject, days=wait_days(cfg)
    )
    logs.event("list.held", list=cfg.name, held_id=held_id, by=by, outcome=state)
    return True
