"""`LIST-confirm+TOKEN@D`: a reply that confirms a join, a leave or a setting, a reply to a
review (the facilitators' digest), or a command to a member's own command address. It
dispatches to the membership, request and review sides, so it sits above all three."""

from __future__ import annotations

from mailhub import logs
from mailhub.autoreply import may_auto_reply
from mailhub.context import Context, Incoming
from mailhub.lists import notices, requests, review, review_reply, tokens
from mailhub.lists.config import ListConfig
from mailhub.lists.membership import (
    _list,
    join_bar,
    log,
    note_from,
    welcome,
)
from mailhub.routing import Route
from mailhub.store import lists as list_store
from mailhub.store import membership as store


async def _confirm_join(ctx: Context, mail: Incoming, lst: ListConfig, token: store.Token) -> None:
    tx, now, who = ctx.tx, ctx.now(), token.address
    request = await store.get_request(tx, token.request_id) if token.request_id else None
    if request is None or request.state != store.UNCONFIRMED:
        await _already(ctx, lst, who, request)
        return
    await store.use_token(tx, token.id, now)
    bar, invited = await join_bar(ctx, lst, who)
    if bar is not None:
        if bar.situation == "already_member":
            await store.confirm_request(tx, request.id, store.JOINED, "", now)
        else:
            await store.settle_request(
                tx, request.id, state=store.REJECTED, by="", now=now, reason=bar.reason
            )
        extra = {"until": bar.until} if bar.situation == "banned" else {}
        await notices.tell(ctx, lst, who, "membership_status", situation=bar.situation, **extra)
        return
    if lst.subscription == "approve" and not invited:
        await store.confirm_request(tx, request.id, store.PENDING, note_from(mail), now)
        await log(
            ctx, lst, who, "join-confirmed", "request", ref_id=request.id, subject_address=who
        )
        await notices.tell(ctx, lst, who, "membership_status", situation="pending")
        await review.on_new_item(ctx, lst)
        return
    await store.confirm_request(tx, request.id, store.JOINED, "", now)
    await store.use_invitation(tx, lst.name, who, now)
    await list_store.add_member(tx, lst.name, who, request.display_name, now)
    await log(ctx, lst, who, "joined", "member", ref_id=request.id, subject_address=who)
    await welcome(ctx, lst, who)


async def _already(
    ctx: Context, lst: ListConfig, who: str, request: store.MembershipRequest | None
) -> None:
    """A confirmation that has already done its work: say where things stand."""
    if await list_store.get_member(ctx.tx, lst.name, who):
        await notices.tell(ctx, lst, who, "membership_status", situation="already_member")
    elif request is not None and request.state == store.PENDING:
        await notices.tell(
            ctx,
            lst,
            who,
            "membership_status",
            situation="already_pending",
            since=notices.when(request.confirmed_at),
        )
    else:
        await notices.tell(
            ctx, lst, who, "membership_status", situation="token_invalid", reason=tokens.USED
        )


async def _confirm_leave(ctx: Context, lst: ListConfig, token: store.Token) -> None:
    who = token.address
    await store.use_token(ctx.tx, token.id, ctx.now())
    if await list_store.remove_member(ctx.tx, lst.name, who):
        await log(ctx, lst, who, "left", "member", subject_address=who)
        await notices.tell(ctx, lst, who, "membership_status", situation="left")
    else:
        await notices.tell(ctx, lst, who, "membership_status", situation="not_member")


# --- LIST-confirm+TOKEN@D ---------------------------------------------------------------


async def handle_confirm(ctx: Context, mail: Incoming, route: Route) -> None:
    """A reply to a confirmation (join, leave or a setting), to a review, or a
    command to a member's own command address (the same form, with a member token)."""
    lst = _list(ctx, route)
    verdict = may_auto_reply(mail.message, mail.mail_from, ctx.loop_id)
    if not verdict:
        # An out-of-office or a bounce must never confirm anything, nor be answered.
        logs.event(
            "membership",
            list=lst.name,
            action="confirm",
            outcome="ignored",
            reason=verdict.reason,
            queue_id=mail.queue_id,
        )
        return
    token = await store.find_token(ctx.tx, tokens.token_hash(route.get("token")))
    # Not a stored token: perhaps a member's own command address (List-Help).
    if token is None and await requests.handle_member_address(
        ctx, mail, lst, route.get("token"), route
    ):
        return
    if token is not None and token.purpose == tokens.REVIEW and token.list_name == lst.name:
        await review_reply.handle_reply(ctx, mail, lst, token)
        return
    problem = tokens.token_problem(token, lst.name, ctx.now())
    if problem == tokens.USED and token is not None and token.purpose == tokens.CONFIRM_JOIN:
        request = await store.get_request(ctx.tx, token.request_id) if token.request_id else None
        await _already(ctx, lst, token.address, request)
        return
    if (
        problem == tokens.USED
        and token is not None
        and token.purpose == tokens.CONFIRM_LEAVE
        and await list_store.get_member(ctx.tx, lst.name, token.address) is None
    ):
        await notices.tell(ctx, lst, token.address, "membership_status", situation="not_member")
        return
    if problem is not None or token is None:
        logs.event(
            "membership",
            list=lst.name,
            action="confirm",
            outcome="refused",
            reason=problem,
            queue_id=mail.queue_id,
        )
        settings = token is not None and token.purpose == tokens.CONFIRM_SETTINGS
        situation = "settings_invalid" if settings else "token_invalid"
        await notices.answer(
            ctx, mail, lst, "membership_status", situation=situation, reason=problem
        )
        return
    if token.purpose == tokens.CONFIRM_JOIN:
        await _confirm_join(ctx, mail, lst, token)
    elif token.purpose == tokens.CONFIRM_LEAVE:
        await _confirm_leave(ctx, lst, token)
    elif token.purpose == tokens.CONFIRM_SETTINGS:
        await requests.confirm_settings(ctx, lst, token)
