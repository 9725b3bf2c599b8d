"""Joining and leaving a list: `LIST-join@D`, `LIST-leave@D`, `LIST-confirm+TOKEN@D`,
and `LIST-owner@D` (the list's facilitators).

The address that joins is the envelope sender, as ezmlm does: it is where the
confirmation goes (RFC 3834 answers go to the return path), so the double opt-in
proves that this very mailbox asked. Every email join is confirmed so, whatever the
policy (`open` included, as GNU Mailman does): only then does the policy decide
(member at once, or a request for the facilitators). Facilitators' `--add`, `--import`
and invitations are the paths that need no confirmation.

Confirmations for requests nobody has proved yet (join, leave, a delivery setting) are
limited per mailbox (mailhub.mailbox.mailbox_key: `victim+1@` and `Victim+2@` are one
mailbox), so nobody can use a list to flood someone else's inbox.

Anything sent in answer to a request goes through `ctx.auto_reply`; mail caused by a
person acting on a token (a confirmation, a facilitator's decision) is sent straight to
the person concerned, still from a null return path, because that person is clearly
waiting for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mailhub import logs
from mailhub.context import Context, Incoming
from mailhub.forwarding import forward
from mailhub.lists import notices, tokens
from mailhub.lists.config import ListConfig, find_list
from mailhub.lists.replies import new_lines, reply_text
from mailhub.mailbox import mailbox_key
from mailhub.parsing import addresses, clean
from mailhub.routing import Route
from mailhub.store import Tx, bans
from mailhub.store import lists as list_store
from mailhub.store import membership as store

NOTE_LENGTH = 300
# Confirmation mails for unproved requests (join, leave, settings) one mailbox may get a
# day, all lists together; past that a request is logged and nothing is sent.
CONFIRMATIONS_PER_DAY = 3
# Words people write when the address itself is the command: not a note for facilitators.
_COMMAND_WORDS = {"subscribe", "join", "yes", "ok", "confirm", "ymuno", "ie", "iawn", "cadarnhau"}


# --- shared by the membership and moderation sides -------------------------------------


async def issue_token(
    ctx: Context,
    lst: ListConfig,
    purpose: str,
    address_: str,
    ttl: float,
    *,
    request_id: int | None = None,
    review_id: int | None = None,
    detail: str = "",
) -> str:
    token = tokens.new_token()
    await store.add_token(
        ctx.tx,
        token_hash=tokens.token_hash(token),
        purpose=purpose,
        list_name=lst.name,
        address=address_,
        now=ctx.now(),
        expires_at=ctx.now() + ttl,
        request_id=request_id,
        review_id=review_id,
        detail=detail,
    )
    return token


def note_from(mail: Incoming) -> str:
    """What the requester wrote for the facilitators: new lines only, one line, short."""
    lines = [
        ln
        for ln in new_lines(reply_text(mail.message))
        if ln.lower().strip(" .!") not in _COMMAND_WORDS
    ]
    return clean(" ".join(lines))[:NOTE_LENGTH]


def display_name_of(mail: Incoming, addr: str) -> str:
    """The From: display name, when From: names the address that asks."""
    for name, from_addr in addresses(mail.message, "from"):
        if from_addr.lower() == addr:
            return name[:100]
    return ""


def _list(ctx: Context, route: Route) -> ListConfig:
    lst = find_list(ctx.config.lists, route.get("list"))
    if lst is None:  # the router only routes to configured lists
        raise LookupError(f"no list {route.get('list')}")
    return lst


async def welcome(ctx: Context, lst: ListConfig, to: str, *, approved_by: str = "") -> None:
    await notices.tell(ctx, lst, to, "membership_welcome", approved=bool(approved_by))


async def log(ctx: Context, lst: ListConfig, actor: str, action: str, kind: str, **kw: Any) -> None:
    await store.log_action(
        ctx.tx, list_name=lst.name, actor=actor, action=action, kind=kind, now=ctx.now(), **kw
    )
    logs.event(
        "membership", list=lst.name, actor=actor, action=action, kind=kind, ref=kw.get("ref_id")
    )


# --- the per-mailbox limit on confirmations ---------------------------------------------


async def may_confirm(ctx: Context, mail: Incoming, lst: ListConfig, who: str, action: str) -> bool:
    """May one more confirmation for an unproved request go to `who` today? If not, one
    log line, and the caller sends nothing and changes nothing."""
    key = mailbox_key(who)
    sent = await store.confirmations_since(ctx.tx, key, ctx.now() - 86400)
    if sent < CONFIRMATIONS_PER_DAY:
        return True
    logs.event(
        "membership",
        list=lst.name,
        action=action,
        mailbox=key,
        outcome="rate limited",
        reason=f"{sent} confirmations to this mailbox today",
        queue_id=mail.queue_id,
    )
    return False


async def confirmation_sent(ctx: Context, lst: ListConfig, who: str, purpose: str) -> None:
    await store.record_confirmation(
        ctx.tx, mailbox=mailbox_key(who), list_name=lst.name, purpose=purpose, now=ctx.now()
    )


# --- joining ----------------------------------------------------------------------------


def _asker(mail: Incoming, lst: ListConfig, action: str) -> str:
    """The address asking to join or leave, or "" for a null sender: a bounce or other
    automatic mail never joins or leaves anyone, and answering it could start a loop."""
    who = mail.mail_from.lower()
    if not who:
        logs.event("membership", list=lst.name, action=action, outcome="ignored null sender")
    return who


async def unconfirmed_request(
    tx: Tx,
    lst: ListConfig,
    address_: str,
    earlier: store.MembershipRequest | None,
    *,
    name: str,
    note: str,
    now: float,
) -> int:
    """The join request a new confirmation token is for: `earlier` when it still waits for
    confirmation, else a new one."""
    if earlier is not None and earlier.state == store.UNCONFIRMED:
        # Asked again before confirming: a fresh token, and the old one stops working.
        await store.void_tokens(tx, lst.name, address_, tokens.CONFIRM_JOIN, now)
        return earlier.id
    return await store.add_request(
        tx,
        list_name=lst.name,
        address=address_,
        display_name=name,
        note=note,
        state=store.UNCONFIRMED,
        now=now,
    )


@dataclass(frozen=True)
class JoinBar:
    """Why an address cannot join a list now: a `membership_status` situation, the end of a
    ban (`until`), and the reason kept on a refused request."""

    situation: str  # already_member | banned | invite_only
    until: str = ""
    reason: str = ""


async def join_bar(ctx: Context, lst: ListConfig, who: str) -> tuple[JoinBar | None, bool]:
    """(what bars `who` from joining `lst`, or None; whether they hold an unused invitation).
    Asked when a request arrives and again when it is confirmed: things change between."""
    tx, now = ctx.tx, ctx.now()
    if await list_store.get_member(tx, lst.name, who):
        return JoinBar("already_member"), False
    ban = await bans.active(tx, who, lst.name, now)
    if ban is not None:
        return JoinBar("banned", _until(ban.ends_at), "banned"), False
    invitation = await store.get_invitation(tx, lst.name, who)
    invited = invitation is not None and invitation.used_at is None
    if lst.subscription == "invite" and not invited:
        return JoinBar("invite_only", reason="not invited"), False
    return None, invited


async def handle_join(ctx: Context, mail: Incoming, route: Route) -> None:
    """`LIST-join@D`, and `subscribe` sent to `LIST-request@D` (called by the posting side)."""
    lst = _list(ctx, route)
    who = _asker(mail, lst, "join")
    if not who:
        return
    tx, now = ctx.tx, ctx.now()
    bar, invited = await join_bar(ctx, lst, who)
    if bar is not None:
        extra = {"until": bar.until} if bar.situation == "banned" else {}
        await notices.answer(ctx, mail, lst, "membership_status", situation=bar.situation, **extra)
        if bar.situation == "invite_only":
            await log(ctx, lst, who, "join-refused", "request", detail="not invited")
        return
    name = display_name_of(mail, who)
    note = note_from(mail)
    # Whatever the policy, `open` too: the address confirms first, so nobody can join
    # someone else by sending mail in their name.
    pending = await store.open_request(tx, lst.name, who)
    if pending is not None and pending.state == store.PENDING:
        await notices.answer(
            ctx,
            mail,
            lst,
            "membership_status",
            situation="already_pending",
            since=notices.when(pending.confirmed_at),
        )
        return
    if not await may_confirm(ctx, mail, lst, who, "join"):
        return
    request_id = await unconfirmed_request(tx, lst, who, pending, name=name, note=note, now=now)
    token = await issue_token(
        ctx, lst, tokens.CONFIRM_JOIN, who, lst.confirm_expiry, request_id=request_id
    )
    await log(ctx, lst, who, "join-asked", "request", ref_id=request_id, subject_address=who)
    if await notices.answer(
        ctx,
        mail,
        lst,
        "membership_confirm",
        reply_token=token,
        action="join",
        again=pending is not None,
        needs_approval=lst.subscription == "approve" and not invited,
        expires=notices.when(now + lst.confirm_expiry),
    ):
        await confirmation_sent(ctx, lst, who, tokens.CONFIRM_JOIN)


def _until(ends_at: float | None) -> str:
    return notices.when(ends_at) if ends_at is not None else ""


# --- leaving ----------------------------------------------------------------------------


async def handle_leave(ctx: Context, mail: Incoming, route: Route) -> None:
    """`LIST-leave@D`, and `unsubscribe` sent to `LIST-request@D`."""
    lst = _list(ctx, route)
    who = _asker(mail, lst, "leave")
    if not who:
        return
    tx, now = ctx.tx, ctx.now()
    if await list_store.get_member(tx, lst.name, who) is None:
        request = await store.open_request(tx, lst.name, who)
        if request is not None:
            await store.settle_request(tx, request.id, state=store.WITHDRAWN, by=who, now=now)
            await store.void_tokens(tx, lst.name, who, tokens.CONFIRM_JOIN, now)
            await log(ctx, lst, who, "withdrawn", "request", ref_id=request.id, subject_address=who)
            await notices.answer(ctx, mail, lst, "membership_status", situation="withdrawn")
        else:
            await notices.answer(ctx, mail, lst, "membership_status", situation="not_member")
        return
    if not await may_confirm(ctx, mail, lst, who, "leave"):
        return
    await store.void_tokens(tx, lst.name, who, tokens.CONFIRM_LEAVE, now)
    token = await issue_token(ctx, lst, tokens.CONFIRM_LEAVE, who, lst.confirm_expiry)
    if await notices.answer(
        ctx,
        mail,
        lst,
        "membership_confirm",
        reply_token=token,
        action="leave",
        again=False,
        needs_approval=False,
        expires=notices.when(now + lst.confirm_expiry),
    ):
        await confirmation_sent(ctx, lst, who, tokens.CONFIRM_LEAVE)


# --- LIST-owner@D -----------------------------------------------------------------------


async def handle_owner(ctx: Context, mail: Incoming, route: Route) -> None:
    """Forward to the list's facilitators (the administrators if it has none)."""
    lst = _list(ctx, route)
    await forward(
        ctx,
        mail,
        via=route.address,
        to=list(lst.facilitators) or list(ctx.config.admins),
        label=f"{lst.display_name} facilitators",
        kind="lists.owner.forward",
    )
