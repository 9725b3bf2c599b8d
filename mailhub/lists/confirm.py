"""`LIST-confirm+TOKEN@D`: a reply that confirms a join, a leave or a setting, a reply to a
review (the facilitators' digest), or a command to a member's own command address. It
dispatches to the subscription, request and review sides, so it sits above all three."""

from __future__ import annotations

from mailhub import logs
from mailhub.autoreply import may_auto_reply
from mailhub.context import Context, Incoming
from mailhub.lists import notices, requests, review_reply, subscription, tokens
from mailhub.lists.config import find_list
from mailhub.routing import Route
from mailhub.store import lists as list_store
from mailhub.store import membership as store


async def handle_confirm(ctx: Context, mail: Incoming, route: Route) -> None:
    """A reply to a confirmation (join, leave or a setting), to a review, or a
    command to a member's own command address (the same form, with a member token)."""
    lst = find_list(ctx.config.lists, route.get("list"))
    if lst is None:  # the router only routes to configured lists
        return
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
        await subscription.tell_standing(ctx, lst, token.address, request)
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
        await subscription.confirm_join(ctx, mail, lst, token)
    elif token.purpose == tokens.CONFIRM_LEAVE:
        await subscription.confirm_leave(ctx, lst, token)
    elif token.purpose == tokens.CONFIRM_SETTINGS:
        await requests.confirm_settings(ctx, lst, token)
