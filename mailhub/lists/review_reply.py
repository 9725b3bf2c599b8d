"""A reply to a review (the facilitators' digest): who may act, and approving, rejecting,
accepting or discarding the numbered entries of that review (the review itself:
mailhub.lists.review; reading the reply's commands: mailhub.lists.review_commands).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mailhub import logs
from mailhub.context import Context, Incoming
from mailhub.lists import action_log, notices, tokens
from mailhub.lists.config import ListConfig
from mailhub.lists.held import discard_held, release_held
from mailhub.lists.replies import reply_text
from mailhub.lists.review import (
    CHAMPION,
    FACILITATOR,
    HELD,
    REQUEST,
    action_for,
    hides_addresses,
    pending_items,
    role_of,
    send_review,
    welsh_name,
)
from mailhub.lists.review_commands import ACCEPT, APPROVE, REJECT, Command, Problem, parse_reply
from mailhub.parsing import sender_address
from mailhub.store import bans
from mailhub.store import lists as list_store
from mailhub.store import membership as store


@dataclass
class Outcome:
    """What a reply did, entry by entry. Each acted-on entry is a dict the templates name
    in their own language: `number`, `name` (a person; "" when none was given),
    `address` ("" on a list whose addresses are hidden), `subject` (a held post)."""

    approved: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    accepted: list[dict[str, Any]] = field(default_factory=list)
    discarded: list[dict[str, Any]] = field(default_factory=list)
    already: list[dict[str, Any]] = field(default_factory=list)
    not_found: list[int] = field(default_factory=list)
    not_allowed: list[dict[str, Any]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def as_vars(self) -> dict[str, Any]:
        return {
            "approved": self.approved,
            "rejected": self.rejected,
            "accepted": self.accepted,
            "discarded": self.discarded,
            "already": self.already,
            "not_found": self.not_found,
            "not_allowed": self.not_allowed,
            "problems": self.problems,
            "acted": bool(self.approved or self.rejected or self.accepted or self.discarded),
        }


def sent_by(mail: Incoming, expected: str) -> bool:
    """The From: address is the reviewer, and so is the envelope sender when there is one."""
    expected = expected.lower()
    if sender_address(mail.message) != expected:
        return False
    return not mail.mail_from or mail.mail_from.lower() == expected


def _log_reply(
    lst: ListConfig,
    token: store.Token,
    mail: Incoming,
    outcome: str,
    sender: str,
    *,
    reason: str | None = None,
    **counts: int,
) -> None:
    """One `review_reply` line per reply to a review, whatever became of it; the fields
    keep one order so that the lines can be read (and grepped) side by side."""
    fields: dict[str, object] = {"list": lst.name, "review": token.review_id, "outcome": outcome}
    if reason is not None:
        fields["reason"] = reason
    logs.event("review_reply", **fields, sender=sender, **counts, queue_id=mail.queue_id)


async def handle_reply(ctx: Context, mail: Incoming, lst: ListConfig, token: store.Token) -> None:
    """A reply to `LIST-confirm+TOKEN@D` whose token is a review's."""
    tx, now = ctx.tx, ctx.now()
    who = token.address
    if not sent_by(mail, who):
        # Someone holding a facilitator's token is not that facilitator: nothing changes.
        _log_reply(lst, token, mail, "refused", mail.mail_from, reason="sender")
        await notices.answer(
            ctx, mail, lst, "review_refused", reason="sender", name_cy=welsh_name(lst)
        )
        return
    role = role_of(lst, who)
    problem = tokens.token_problem(token, lst.name, now)
    if role is None:
        problem = "not-moderator"
    if problem is not None:
        _log_reply(lst, token, mail, "refused", who, reason=problem)
        await notices.tell(ctx, lst, who, "review_refused", reason=problem, name_cy=welsh_name(lst))
        if role is not None:
            items = await pending_items(ctx, lst, role)
            if any(i.kind in (REQUEST, HELD) for i in items):
                await send_review(ctx, lst, who, role, items)
        return
    assert role is not None
    parsed = parse_reply(reply_text(mail.message))
    if not parsed.commands:
        # Nothing to do: the token stays good, so the facilitator can simply try again.
        _log_reply(lst, token, mail, "no commands", who)
        await notices.tell(
            ctx,
            lst,
            who,
            "review_refused",
            reason="no-commands",
            problems=list(parsed.problems),
            name_cy=welsh_name(lst),
        )
        return
    if not await store.use_token(tx, token.id, now):
        await notices.tell(
            ctx, lst, who, "review_refused", reason=tokens.USED, name_cy=welsh_name(lst)
        )
        return
    entries = await store.review_entries(tx, token.review_id or 0)
    outcome = Outcome(problems=list(parsed.problems))
    for command in parsed.commands:
        await _apply(ctx, lst, who, role, command, entries, outcome)
    _log_reply(
        lst,
        token,
        mail,
        "applied",
        who,
        approved=len(outcome.approved),
        rejected=len(outcome.rejected),
        accepted=len(outcome.accepted),
        discarded=len(outcome.discarded),
        already=len(outcome.already),
    )
    items = await pending_items(ctx, lst, role)
    await send_review(ctx, lst, who, role, items, result=outcome.as_vars())


def _targets(command: Command, entries: list[store.ReviewEntry], role: str) -> list[int]:
    if not command.all:
        return list(command.numbers)
    # `approve all` / `reject all` mean the join requests, `accept all` / `discard all` the
    # held posts: nobody releases every held post by saying "approve all" to the people.
    # A champion's review holds posts only, so for them all four mean the posts.
    wants_requests = role != CHAMPION and command.verb in (APPROVE, REJECT)
    kind = REQUEST if wants_requests else HELD
    return [e.number for e in entries if e.kind == kind]


async def _apply(
    ctx: Context,
    lst: ListConfig,
    who: str,
    role: str,
    command: Command,
    entries: list[store.ReviewEntry],
    outcome: Outcome,
) -> None:
    by_number = {e.number: e for e in entries}
    for number in _targets(command, entries, role):
        entry = by_number.get(number)
        if entry is None:
            outcome.not_found.append(number)
            continue
        action = action_for(command.verb, entry.kind)
        if entry.kind == REQUEST:
            if role != FACILITATOR:
                outcome.not_allowed.append({"number": number, "name": "", "address": ""})
                continue
            await _act_on_request(
                ctx, lst, who, number, entry.ref_id, action, command.reason, outcome
            )
        else:
            await _act_on_held(ctx, lst, who, number, entry.ref_id, action, command.reason, outcome)


async def _act_on_request(
    ctx: Context,
    lst: ListConfig,
    who: str,
    number: int,
    request_id: int,
    action: str,
    reason: str,
    outcome: Outcome,
) -> None:
    tx, now = ctx.tx, ctx.now()
    request = await store.get_request(tx, request_id)
    if request is None:
        outcome.not_found.append(number)
        return
    # On a list whose addresses are hidden the answer names people, never their address.
    label: dict[str, Any] = {
        "number": number,
        "name": request.display_name,
        "address": "" if hides_addresses(lst) else request.address,
    }
    if action == APPROVE:
        ban = await bans.active(tx, request.address, lst.name, now)
        if ban is not None and request.state == store.PENDING:
            outcome.not_allowed.append(
                {**label, "banned": True, "until": notices.when(ban.ends_at)}
            )
            return
    state = store.APPROVED if action == APPROVE else store.REJECTED
    if not await store.settle_request(tx, request_id, state=state, by=who, now=now, reason=reason):
        outcome.already.append(
            {**label, **_already(number, request.state, request.handled_by, request.handled_at)}
        )
        return
    await action_log.record(
        ctx,
        lst,
        who,
        action,
        REQUEST,
        ref_id=request_id,
        subject_address=request.address,
        detail=reason,
    )
    if action == APPROVE:
        # Added meanwhile (by an administrator, say): approved all the same, welcomed once.
        if await list_store.add_member(tx, lst.name, request.address, request.display_name, now):
            await notices.tell(ctx, lst, request.address, "membership_welcome", approved=True)
        outcome.approved.append(label)
    else:
        await notices.tell(
            ctx, lst, request.address, "membership_status", situation="rejected", reason=reason
        )
        outcome.rejected.append(label)


def _already(number: int, state: str, by: str, at: float | None) -> dict[str, Any]:
    """What the templates need to say "already approved by NAME on DATE" in each language."""
    known = ("approved", "rejected", "accepted", "discarded", "expired", "withdrawn")
    return {
        "number": number,
        "state": state if state in known else "handled",
        "by": by,
        "when": notices.when(at),
        "at": at,
    }


async def _act_on_held(
    ctx: Context,
    lst: ListConfig,
    who: str,
    number: int,
    held_id: int,
    action: str,
    reason: str,
    outcome: Outcome,
) -> None:
    held = await list_store.get_held(ctx.tx, held_id)
    if held is None:
        outcome.not_found.append(number)
        return
    # On a list whose addresses are hidden the answer names the post by its subject only.
    label: dict[str, Any] = {
        "number": number,
        "name": "",
        "address": "" if hides_addresses(lst) else held.sender,
        "subject": held.subject or "",
    }
    if action == ACCEPT:
        done = await release_held(ctx, lst, held_id, who)
    else:
        done = await discard_held(ctx, lst, held_id, who, reason)
    if not done:
        after = await list_store.get_held(ctx.tx, held_id) or held
        outcome.already.append(
            {**label, **_already(number, after.state, after.handled_by, after.handled_at)}
        )
        return
    await action_log.record(
        ctx, lst, who, action, HELD, ref_id=held_id, subject_address=held.sender, detail=reason
    )
    (outcome.accepted if action == ACCEPT else outcome.discarded).append(label)
