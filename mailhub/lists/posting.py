"""`LIST@D`: a post to a list. Decide (pure), then distribute, hold, reject or discard
(sending: mailhub.lists.distribution; held posts: mailhub.lists.held).

Everything a post causes (the archive entry, the copies to members, a held entry, a
notice to the poster) is written in the handler's one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailhub import logs
from mailhub.context import Context, Incoming
from mailhub.lists import authenticity, held, notices
from mailhub.lists.administrivia import member_command, own_text
from mailhub.lists.config import ListConfig, find_list
from mailhub.lists.distribution import distribute
from mailhub.lists.headers import extract_list_ids, list_id
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
    command: str = ""  # the member command the post is only (administrivia), else ""


@dataclass(frozen=True)
class Accept:
    pass


@dataclass(frozen=True)
class Hold:
    reason: str
    code: str = ""  # administrivia | non-member | first-posts | size | recipients


@dataclass(frozen=True)
class Reject:
    reason: str
    code: str = ""  # banned | non-member


@dataclass(frozen=True)
class Discard:
    reason: str


Decision = Accept | Hold | Reject | Discard


def decide_post(cfg: ListConfig, member: Member | None, facts: PostFacts) -> Decision:
    """Mail loops first (never answered), then bans, member commands sent to the list by
    mistake (held for members and non-members alike: nobody should get "unsubscribe"),
    membership, and the size rules."""
    if list_id(cfg.name, facts.domain) in facts.list_ids:
        return Discard("mail loop: our own List-Id came back")
    if facts.loop_id and facts.loop_id.lower() in (v.lower() for v in facts.x_loops):
        return Discard("mail loop: our own X-Loop came back")
    if facts.banned:
        return Reject("sender is banned from this list", "banned")
    if facts.command:
        return Hold(f"a member command ({facts.command})", "administrivia")
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
        command=member_command(header(msg, "subject"), own_text(msg)) or "",
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
        recipients = await distribute(ctx, cfg, mail.raw, authenticity.of(mail))
        if member is not None:
            await store.count_post(ctx.tx, cfg.name, sender)
        logs.event("list.post", **fields, outcome="accepted", recipients=recipients)
    elif isinstance(decision, Hold):
        held_id = await held.hold(
            ctx, mail, cfg, sender, decision.reason, decision.code, command=facts.command
        )
        logs.event("list.post", **fields, outcome="held", held_id=held_id, code=decision.code)
    elif isinstance(decision, Reject):
        await notices.answer(ctx, mail, cfg, "posting_rejected", code=decision.code)
        logs.event("list.post", **fields, outcome="rejected", code=decision.code)
    else:
        logs.event("list.post", **fields, outcome="discarded", reason=decision.reason)
