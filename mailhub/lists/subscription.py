"""Joining and leaving a list: `LIST-join@D`, `LIST-leave@D` (and `subscribe` or
`unsubscribe` sent to `LIST-request@D`), and the replies that confirm them.

What a join or its confirmation leads to is decided in one place, the pure `next_step`:
confirm first, then (per the list's policy) ask the facilitators or add the member, or
refuse with a reason. The handlers read the facts, ask it, and do what it says.

The address that joins is the envelope sender, as ezmlm does: it is where the
confirmation goes (RFC 3834 answers go to the return path), so the double opt-in
proves that this very mailbox asked. Every email join is confirmed so, whatever the
policy (`open` included, as GNU Mailman does): only then does the policy decide
(member at once, or a request for the facilitators). Facilitators' `--add`, `--import`
and invitations are the paths that need no confirmation. Confirmations for requests
nobody has proved yet are limited per mailbox (mailhub.lists.membership).

Anything sent in answer to a request goes through `ctx.auto_reply`; mail caused by a
person acting on a token (a confirmation) is sent straight to the person concerned,
still from a null return path, because that person is clearly waiting for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailhub import logs
from mailhub.context import Context, Incoming
from mailhub.lists import action_log, membership, notices, review, tokens
from mailhub.lists.config import ListConfig, find_list
from mailhub.lists.replies import new_lines, reply_text
from mailhub.parsing import addresses, clean
from mailhub.routing import Route
from mailhub.store import Tx, bans
from mailhub.store import lists as list_store
from mailhub.store import membership as store
from mailhub.store.bans import Ban
from mailhub.store.lists import Member
from mailhub.store.membership import Invitation, MembershipRequest

NOTE_LENGTH = 1000  # an introduction of a few paragraphs; the rest is a letter
# Words people write when the address itself is the command (or a greeting on its own):
# not an introduction for the facilitators.
_COMMAND_WORDS = {
    "subscribe",
    "join",
    "yes",
    "ok",
    "confirm",
    "hello",
    "hi",
    "thanks",
    "thank you",
    "ymuno",
    "ie",
    "iawn",
    "cadarnhau",
    "helo",
    "shwmae",
    "diolch",
}
REQUEST = "request"
MEMBER = "member"


# --- the decision (pure) ---------------------------------------------------------------


@dataclass(frozen=True)
class Confirm:
    """Mail the address a confirmation (the double opt-in), whatever the policy."""

    again: bool  # an earlier one is still unanswered: the fresh token replaces it
    needs_approval: bool  # the facilitators decide once it is confirmed


@dataclass(frozen=True)
class AskFacilitators:
    """Confirmed: the request now waits for the facilitators (their review)."""


@dataclass(frozen=True)
class Add:
    """Confirmed: a member from now on."""


@dataclass(frozen=True)
class Refuse:
    """Nothing joins; the person is told the `membership_status` situation.

    `closes`: the state a confirmed request is closed in ("" when the request is left as it
    is, e.g. a confirmation that had already done its work)."""

    situation: str  # already_member | already_pending | banned | invite_only | token_invalid
    reason: str = ""  # kept on a closed request; for token_invalid, why
    until: float | None = None  # the end of a ban (None: permanent, or no ban)
    since: float | None = None  # when an already pending request was confirmed
    closes: str = ""


Step = Confirm | AskFacilitators | Add | Refuse


def standing(request: MembershipRequest | None, member: Member | None) -> Refuse:
    """Where things stand for a confirmation that has already done its work."""
    if member is not None:
        return Refuse("already_member")
    if request is not None and request.state == store.PENDING:
        return Refuse("already_pending", since=request.confirmed_at)
    return Refuse("token_invalid", reason=tokens.USED)


def next_step(
    policy: str,
    request: MembershipRequest | None,
    member: Member | None,
    ban: Ban | None,
    invite: Invitation | None,
    *,
    confirming: bool = False,
) -> Step:
    """What a join leads to. `policy`: the list's subscription (open | confirm | approve |
    invite). `request`: the address's open request (asking), or the one its token is for
    (`confirming`). `member`, `ban`, `invite`: the address's membership, active ban and
    invitation on this list. Asked when a join arrives and again when it is confirmed:
    things change between the two."""
    if confirming and (request is None or request.state != store.UNCONFIRMED):
        return standing(request, member)
    invited = invite is not None and invite.used_at is None
    if member is not None:
        return Refuse("already_member", closes=store.JOINED if confirming else "")
    if ban is not None:
        return Refuse(
            "banned", "banned", until=ban.ends_at, closes=store.REJECTED if confirming else ""
        )
    if policy == "invite" and not invited:
        return Refuse("invite_only", "not invited", closes=store.REJECTED if confirming else "")
    needs_approval = policy == "approve" and not invited
    if confirming:
        return AskFacilitators() if needs_approval else Add()
    if request is not None and request.state == store.PENDING:
        return Refuse("already_pending", since=request.confirmed_at)
    return Confirm(again=request is not None, needs_approval=needs_approval)


# --- reading a join --------------------------------------------------------------------


def note_from(mail: Incoming) -> str:
    """What the requester wrote for the facilitators (their introduction): the new lines
    of their mail, each cleaned, without the words people write when the address itself
    is the command ("yes", "subscribe"), at most NOTE_LENGTH characters."""
    lines = [
        clean(ln)
        for ln in new_lines(reply_text(mail.message))
        if ln.lower().strip(" .!,") not in _COMMAND_WORDS
    ]
    return "\n".join(ln for ln in lines if ln)[:NOTE_LENGTH].strip()


def introduction(first: str, reply: str) -> str:
    """What the review shows as a would-be member's own words: their confirmation reply
    (the confirmation asks them to say who they are), after what their first mail said
    when that was something else. Pure."""
    if not first or first in reply:
        return reply[:NOTE_LENGTH] or first
    if not reply or reply in first:
        return first
    return f"{first}\n\n{reply}"[:NOTE_LENGTH].strip()


def display_name_of(mail: Incoming, addr: str) -> str:
    """The From: display name, when From: names the address that asks."""
    for name, from_addr in addresses(mail.message, "from"):
        if from_addr.lower() == addr:
            return name[:100]
    return ""


def _asker(mail: Incoming, lst: ListConfig, action: str) -> str:
    """The address asking to join or leave, or "" for a null sender: a bounce or other
    automatic mail never joins or leaves anyone, and answering it could start a loop."""
    who = mail.mail_from.lower()
    if not who:
        logs.event("membership", list=lst.name, action=action, outcome="ignored null sender")
    return who


def _status(step: Refuse) -> dict[str, str]:
    """The `membership_status` variables a refusal gives (each situation uses its own)."""
    return {
        "until": notices.when(step.until) if step.until is not None else "",
        "since": notices.when(step.since),
        "reason": step.reason,
    }


async def _facts(
    ctx: Context, lst: ListConfig, who: str
) -> tuple[Member | None, Ban | None, Invitation | None]:
    tx = ctx.tx
    return (
        await list_store.get_member(tx, lst.name, who),
        await bans.active(tx, who, lst.name, ctx.now()),
        await store.get_invitation(tx, lst.name, who),
    )


async def unconfirmed_request(
    tx: Tx,
    lst: ListConfig,
    address_: str,
    earlier: MembershipRequest | None,
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


# --- the handlers ----------------------------------------------------------------------


async def handle_join(ctx: Context, mail: Incoming, route: Route) -> None:
    """`LIST-join@D`, and `subscribe` sent to `LIST-request@D`."""
    lst = find_list(ctx.config.lists, route.get("list"))
    who = _asker(mail, lst, "join") if lst is not None else ""
    if lst is None or not who:
        return
    tx, now = ctx.tx, ctx.now()
    pending = await store.open_request(tx, lst.name, who)
    step = next_step(lst.subscription, pending, *await _facts(ctx, lst, who))
    if isinstance(step, Refuse):
        await notices.answer(
            ctx, mail, lst, "membership_status", situation=step.situation, **_status(step)
        )
        if step.situation == "invite_only":
            await action_log.record(ctx, lst, who, "join-refused", REQUEST, detail=step.reason)
        return
    assert isinstance(step, Confirm)
    if not await membership.may_confirm(ctx, mail, lst, who, "join"):
        return
    request_id = await unconfirmed_request(
        tx, lst, who, pending, name=display_name_of(mail, who), note=note_from(mail), now=now
    )
    token = await tokens.issue(
        ctx, lst, tokens.CONFIRM_JOIN, who, lst.confirm_expiry, request_id=request_id
    )
    await action_log.record(
        ctx, lst, who, "join-asked", REQUEST, ref_id=request_id, subject_address=who
    )
    if await notices.answer(
        ctx,
        mail,
        lst,
        "membership_confirm",
        reply_token=token,
        action="join",
        again=step.again,
        needs_approval=step.needs_approval,
        expires=notices.when(now + lst.confirm_expiry),
    ):
        await membership.confirmation_sent(ctx, lst, who, tokens.CONFIRM_JOIN)


async def confirm_join(ctx: Context, mail: Incoming, lst: ListConfig, token: store.Token) -> None:
    """A reply to a join confirmation whose token may be used now."""
    tx, now, who = ctx.tx, ctx.now(), token.address
    request = await store.get_request(tx, token.request_id) if token.request_id else None
    member, ban, invite = await _facts(ctx, lst, who)
    step = next_step(lst.subscription, request, member, ban, invite, confirming=True)
    if isinstance(step, Refuse) and not step.closes:
        # The confirmation had already done its work: say where things stand.
        await notices.tell(
            ctx, lst, who, "membership_status", situation=step.situation, **_status(step)
        )
        return
    assert request is not None
    await store.use_token(tx, token.id, now)
    if isinstance(step, Refuse):
        if step.closes == store.JOINED:
            await store.confirm_request(tx, request.id, store.JOINED, "", now)
        else:
            await store.settle_request(
                tx, request.id, state=step.closes, by="", now=now, reason=step.reason
            )
        await notices.tell(
            ctx, lst, who, "membership_status", situation=step.situation, **_status(step)
        )
    elif isinstance(step, AskFacilitators):
        intro = introduction(request.note, note_from(mail))
        await store.confirm_request(tx, request.id, store.PENDING, intro, now)
        await action_log.record(
            ctx, lst, who, "join-confirmed", REQUEST, ref_id=request.id, subject_address=who
        )
        await notices.tell(ctx, lst, who, "membership_status", situation="pending")
        await review.on_new_item(ctx, lst)
    else:
        await store.confirm_request(tx, request.id, store.JOINED, "", now)
        await store.use_invitation(tx, lst.name, who, now)
        await list_store.add_member(tx, lst.name, who, request.display_name, now)
        await action_log.record(
            ctx, lst, who, "joined", MEMBER, ref_id=request.id, subject_address=who
        )
        await notices.tell(ctx, lst, who, "membership_welcome", approved=False)


async def tell_standing(
    ctx: Context, lst: ListConfig, who: str, request: MembershipRequest | None
) -> None:
    """A join confirmation used a second time: say where things stand."""
    step = standing(request, await list_store.get_member(ctx.tx, lst.name, who))
    await notices.tell(
        ctx, lst, who, "membership_status", situation=step.situation, **_status(step)
    )


async def handle_leave(ctx: Context, mail: Incoming, route: Route) -> None:
    """`LIST-leave@D`, and `unsubscribe` sent to `LIST-request@D`."""
    lst = find_list(ctx.config.lists, route.get("list"))
    who = _asker(mail, lst, "leave") if lst is not None else ""
    if lst is None or not who:
        return
    tx, now = ctx.tx, ctx.now()
    if await list_store.get_member(tx, lst.name, who) is None:
        request = await store.open_request(tx, lst.name, who)
        if request is not None:
            await store.settle_request(tx, request.id, state=store.WITHDRAWN, by=who, now=now)
            await store.void_tokens(tx, lst.name, who, tokens.CONFIRM_JOIN, now)
            await action_log.record(
                ctx, lst, who, "withdrawn", REQUEST, ref_id=request.id, subject_address=who
            )
            await notices.answer(ctx, mail, lst, "membership_status", situation="withdrawn")
        else:
            await notices.answer(ctx, mail, lst, "membership_status", situation="not_member")
        return
    if not await membership.may_confirm(ctx, mail, lst, who, "leave"):
        return
    await store.void_tokens(tx, lst.name, who, tokens.CONFIRM_LEAVE, now)
    token = await tokens.issue(ctx, lst, tokens.CONFIRM_LEAVE, who, lst.confirm_expiry)
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
        await membership.confirmation_sent(ctx, lst, who, tokens.CONFIRM_LEAVE)


async def confirm_leave(ctx: Context, lst: ListConfig, token: store.Token) -> None:
    """A reply to a leave confirmation whose token may be used now."""
    who = token.address
    await store.use_token(ctx.tx, token.id, ctx.now())
    if await list_store.remove_member(ctx.tx, lst.name, who):
        await action_log.record(ctx, lst, who, "left", MEMBER, subject_address=who)
        await notices.tell(ctx, lst, who, "membership_status", situation="left")
    else:
        await notices.tell(ctx, lst, who, "membership_status", situation="not_member")


async def expire_requests(ctx: Context, lst: ListConfig) -> None:
    """Requests nobody confirmed, or the facilitators did not decide, in time."""
    tx, now = ctx.tx, ctx.now()
    for request in await store.requests_in_state(tx, lst.name, store.UNCONFIRMED):
        if request.created_at + lst.confirm_expiry <= now:
            # Never confirmed: perhaps never asked by this mailbox. Say nothing.
            await store.settle_request(tx, request.id, state=store.EXPIRED, by="", now=now)
    for request in await store.requests_in_state(tx, lst.name, store.PENDING):
        if (request.confirmed_at or request.created_at) + lst.request_expiry <= now:
            await store.settle_request(tx, request.id, state=store.EXPIRED, by="", now=now)
            await action_log.record(
                ctx, lst, "", "expired", REQUEST, ref_id=request.id, subject_address=request.address
            )
            await notices.tell(ctx, lst, request.address, "membership_status", situation="expired")
