"""The facilitators' digest of pending join requests and held posts, and acting on it by reply.

Each facilitator gets numbered entries; the reply address carries a token bound to
that facilitator and that digest, and the numbers in a reply mean the entries of that
digest only, so two facilitators acting at once can never approve the wrong person.
A digest token is single use: after one reply has acted, the answer itself is the
next digest (with fresh numbers and a fresh token) when entries remain. Champions
get held posts only, and may only accept or discard them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mailhub import logs
from mailhub.context import Context, Incoming
from mailhub.lists import membership, tokens
from mailhub.lists.config import ListConfig
from mailhub.lists.digest_reply import (
    ACCEPT,
    APPROVE,
    DISCARD,
    REJECT,
    Command,
    parse_reply,
    reply_text,
)
from mailhub.lists.reasons import held_reason_cy
from mailhub.parsing import sender_address
from mailhub.scheduler import Job
from mailhub.store import bans
from mailhub.store import lists as list_store
from mailhub.store import membership as store

DAY = 86400.0
FACILITATOR = "facilitator"
CHAMPION = "champion"
REQUEST = "request"
HELD = "held"
# A digest works a day longer than its entries can wait, so a late reply is told that an
# entry expired rather than that the digest did.
DIGEST_TOKEN_GRACE = DAY


@dataclass(frozen=True)
class Item:
    """One thing a digest shows. `kind` 'request' and 'held' are numbered (they can be
    acted on); 'disabled' (a member whose mail bounces) is for information."""

    kind: str
    ref_id: int
    key: str
    name: str = ""
    address: str = ""
    at: float = 0.0
    note: str = ""
    subject: str = ""
    reason: str = ""


def digest_due(
    keys: frozenset[str], last: store.Digest | None, now: float, interval: float
) -> bool:
    """Send a digest now? Pure. New entries: at most one per `interval` (0: at once);
    nothing new: a reminder at most once a day while entries remain."""
    if not keys:
        return False
    if last is None:
        return True
    new = keys - frozenset(last.signature.split())
    elapsed = now - last.sent_at
    return elapsed >= interval if new else elapsed >= DAY


def role_of(lst: ListConfig, address: str) -> str | None:
    address = address.lower()
    if address in (a.lower() for a in lst.facilitators):
        return FACILITATOR
    if address in (a.lower() for a in lst.champions):
        return CHAMPION
    return None


def moderators(lst: ListConfig) -> list[tuple[str, str]]:
    """Each facilitator and champion once, with the role that gives them most."""
    out: dict[str, str] = {}
    for a in lst.facilitators:
        out.setdefault(a.lower(), FACILITATOR)
    for a in lst.champions:
        out.setdefault(a.lower(), CHAMPION)
    return list(out.items())


def normalise(verb: str, kind: str) -> str:
    """What a verb means for an entry: `approve 4` on a held post accepts it, and so on."""
    positive = verb in (APPROVE, ACCEPT)
    if kind == REQUEST:
        return APPROVE if positive else REJECT
    return ACCEPT if positive else DISCARD


async def pending_items(ctx: Context, lst: ListConfig, role: str) -> list[Item]:
    tx = ctx.tx
    items: list[Item] = []
    if role == FACILITATOR:
        for r in await store.requests_in_state(tx, lst.name, store.PENDING):
            items.append(
                Item(
                    REQUEST,
                    r.id,
                    f"r:{r.id}",
                    r.display_name,
                    r.address,
                    r.confirmed_at or 0,
                    note=r.note,
                )
            )
    for h in await list_store.held_posts(tx, lst.name, "held"):
        items.append(
            Item(
                HELD,
                h.id,
                f"h:{h.id}",
                address=h.sender,
                at=h.held_at,
                subject=h.subject,
                reason=h.reason,
            )
        )
    if role == FACILITATOR:
        since = ctx.now() - lst.request_expiry
        for m in await list_store.disabled_since(tx, lst.name, since):
            items.append(
                Item(
                    "disabled",
                    0,
                    f"d:{m.address}:{m.disabled_at}",
                    m.display_name,
                    m.address,
                    m.disabled_at or 0,
                )
            )
    return items


def _entry_vars(number: int, item: Item) -> dict[str, Any]:
    return {
        "number": number,
        "kind": item.kind,
        "name": item.name,
        "address": item.address,
        "when": membership.when(item.at),
        "note": item.note,
        "subject": item.subject or "(no subject)",
        "reason": item.reason,
        "reason_cy": held_reason_cy(item.reason),
    }


async def send_digest(
    ctx: Context,
    lst: ListConfig,
    recipient: str,
    role: str,
    items: list[Item],
    result: dict[str, Any] | None = None,
) -> int | None:
    """Send one digest (or, with `result`, the answer to a reply, carrying the next digest
    when entries remain). Returns the digest id, or None when no entry was left."""
    numbered = [i for i in items if i.kind in (REQUEST, HELD)]
    info = [i for i in items if i.kind == "disabled"]
    digest_id = None
    reply_to = ""
    if items:
        digest_id = await store.add_digest(
            ctx.tx,
            list_name=lst.name,
            recipient=recipient,
            role=role,
            now=ctx.now(),
            signature=" ".join(sorted(i.key for i in items)),
            entries=[(i.kind, i.ref_id) for i in numbered],
        )
        if numbered:
            token = await membership.issue_token(
                ctx,
                lst,
                tokens.DIGEST,
                recipient,
                lst.request_expiry + DIGEST_TOKEN_GRACE,
                digest_id=digest_id,
            )
            reply_to = membership.confirm_address(ctx, lst, token)
    await membership.tell(
        ctx,
        lst,
        recipient,
        "membership_digest",
        reply_to=reply_to,
        role=role,
        entries=[_entry_vars(n, i) for n, i in enumerate(numbered, start=1)],
        disabled=[_entry_vars(0, i) for i in info],
        has_requests=any(i.kind == REQUEST for i in numbered),
        has_held=any(i.kind == HELD for i in numbered),
        result=result,
    )
    logs.event(
        "moderation_digest",
        list=lst.name,
        to=recipient,
        role=role,
        digest=digest_id,
        entries=len(numbered),
        answer=result is not None,
    )
    return digest_id


async def send_due(ctx: Context, lst: ListConfig, *, force: bool = False) -> int:
    """Send every digest of `lst` that is due (or, with force, every one with entries)."""
    sent = 0
    for recipient, role in moderators(lst):
        items = await pending_items(ctx, lst, role)
        keys = frozenset(i.key for i in items)
        last = await store.last_digest(ctx.tx, lst.name, recipient)
        if (force and keys) or digest_due(keys, last, ctx.now(), lst.digest_interval):
            await send_digest(ctx, lst, recipient, role, items)
            sent += 1
    return sent


async def on_new_item(ctx: Context, lst: ListConfig) -> None:
    """A request became pending or a post was held: with `digest_interval = 0` the
    facilitators hear at once, in the same transaction."""
    if lst.digest_interval <= 0:
        await send_due(ctx, lst)


# --- a reply to a digest ----------------------------------------------------------------


@dataclass
class Outcome:
    approved: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    discarded: list[str] = field(default_factory=list)
    already: list[dict[str, Any]] = field(default_factory=list)
    not_found: list[int] = field(default_factory=list)
    not_allowed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

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


def sender_matches(mail: Incoming, expected: str) -> bool:
    """The From: address is the facilitator, and so is the envelope sender when there is one."""
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
    """One `moderation_reply` line per reply to a digest, whatever became of it; the fields
    keep one order so that the lines can be read (and grepped) side by side."""
    fields: dict[str, object] = {"list": lst.name, "digest": token.digest_id, "outcome": outcome}
    if reason is not None:
        fields["reason"] = reason
    logs.event("moderation_reply", **fields, sender=sender, **counts, queue_id=mail.queue_id)


async def handle_digest_reply(
    ctx: Context, mail: Incoming, lst: ListConfig, token: store.Token
) -> None:
    tx, now = ctx.tx, ctx.now()
    who = token.address
    if not sender_matches(mail, who):
        # Someone holding a facilitator's token is not that facilitator: nothing changes.
        _log_reply(lst, token, mail, "refused", mail.mail_from, reason="sender")
        await membership.answer(ctx, mail, lst, "membership_digest_refused", reason="sender")
        return
    role = role_of(lst, who)
    problem = tokens.token_problem(token, lst.name, now)
    if role is None:
        problem = "not-moderator"
    if problem is not None:
        _log_reply(lst, token, mail, "refused", who, reason=problem)
        await membership.tell(ctx, lst, who, "membership_digest_refused", reason=problem)
        if role is not None:
            items = await pending_items(ctx, lst, role)
            if any(i.kind in (REQUEST, HELD) for i in items):
                await send_digest(ctx, lst, who, role, items)
        return
    assert role is not None
    parsed = parse_reply(reply_text(mail.message))
    if not parsed.commands:
        # Nothing to do: the token stays good, so the facilitator can simply try again.
        _log_reply(lst, token, mail, "no commands", who)
        await membership.tell(
            ctx,
            lst,
            who,
            "membership_digest_refused",
            reason="no-commands",
            problems=list(parsed.problems),
        )
        return
    if not await store.use_token(tx, token.id, now):
        await membership.tell(ctx, lst, who, "membership_digest_refused", reason=tokens.USED)
        return
    entries = await store.digest_entries(tx, token.digest_id or 0)
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
    await send_digest(ctx, lst, who, role, items, result=outcome.as_vars())


def _targets(command: Command, entries: list[store.DigestEntry], role: str) -> list[int]:
    if not command.all:
        return list(command.numbers)
    # `approve all` / `reject all` mean the join requests, `accept all` / `discard all` the
    # held posts: nobody releases every held post by saying "approve all" to the people.
    # A champion's digest holds posts only, so for them all four mean the posts.
    wants_requests = role != CHAMPION and command.verb in (APPROVE, REJECT)
    kind = REQUEST if wants_requests else HELD
    return [e.number for e in entries if e.kind == kind]


async def _apply(
    ctx: Context,
    lst: ListConfig,
    who: str,
    role: str,
    command: Command,
    entries: list[store.DigestEntry],
    outcome: Outcome,
) -> None:
    by_number = {e.number: e for e in entries}
    for number in _targets(command, entries, role):
        entry = by_number.get(number)
        if entry is None:
            outcome.not_found.append(number)
            continue
        action = normalise(command.verb, entry.kind)
        if entry.kind == REQUEST:
            if role != FACILITATOR:
                outcome.not_allowed.append(f"{number}")
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
    who_asked = (
        f"{request.display_name} <{request.address}>" if request.display_name else request.address
    )
    label = f"{number}. {who_asked}"
    if action == APPROVE:
        ban = await bans.active(tx, request.address, lst.name, now)
        if ban is not None and request.state == store.PENDING:
            outcome.not_allowed.append(
                f"{label} (banned until {membership.when(ban.ends_at)})"
                if ban.ends_at
                else f"{label} (banned)"
            )
            return
    state = store.APPROVED if action == APPROVE else store.REJECTED
    if not await store.settle_request(tx, request_id, state=state, by=who, now=now, reason=reason):
        outcome.already.append(
            _already(number, request.state, request.handled_by, request.handled_at)
        )
        return
    await membership.log(
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
            await membership.welcome(ctx, lst, request.address, approved_by=who)
        outcome.approved.append(label)
    else:
        await membership.tell(
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
        "when": membership.when(at),
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
    from mailhub.lists import posting  # the posting side owns held posts

    held = await list_store.get_held(ctx.tx, held_id)
    if held is None:
        outcome.not_found.append(number)
        return
    label = f'{number}. {held.sender} "{held.subject}"'
    if action == ACCEPT:
        done = await posting.release_held(ctx, lst, held_id, who)
    else:
        done = await posting.discard_held(ctx, lst, held_id, who, reason)
    if not done:
        after = await list_store.get_held(ctx.tx, held_id) or held
        outcome.already.append(_already(number, after.state, after.handled_by, after.handled_at))
        return
    await membership.log(
        ctx, lst, who, action, HELD, ref_id=held_id, subject_address=held.sender, detail=reason
    )
    (outcome.accepted if action == ACCEPT else outcome.discarded).append(label)


# --- scheduled: expiry and digests ------------------------------------------------------


async def expire(ctx: Context, lst: ListConfig) -> None:
    tx, now = ctx.tx, ctx.now()
    for request in await store.requests_in_state(tx, lst.name, store.UNCONFIRMED):
        if request.created_at + lst.confirm_expiry <= now:
            # Never confirmed: perhaps never asked by this mailbox. Say nothing.
            await store.settle_request(tx, request.id, state=store.EXPIRED, by="", now=now)
    for request in await store.requests_in_state(tx, lst.name, store.PENDING):
        if (request.confirmed_at or request.created_at) + lst.request_expiry <= now:
            await store.settle_request(tx, request.id, state=store.EXPIRED, by="", now=now)
            await membership.log(
                ctx, lst, "", "expired", REQUEST, ref_id=request.id, subject_address=request.address
            )
            await membership.tell(
                ctx, lst, request.address, "membership_status", situation="expired"
            )
    held = [
        h
        for h in await list_store.held_posts(tx, lst.name, "held")
        if h.held_at + lst.request_expiry <= now
    ]
    if held:
        from mailhub.lists import posting  # the posting side tells the poster

        for h in held:
            if await posting.expire_held(ctx, lst, h.id):
                await membership.log(
                    ctx, lst, "", "expired", HELD, ref_id=h.id, subject_address=h.sender
                )


async def run_digests(ctx: Context) -> None:
    for lst in ctx.config.lists:
        await expire(ctx, lst)
        await send_due(ctx, lst)
    # Tokens are kept a month past expiry, to tell late repliers what happened.
    await store.purge_tokens(ctx.tx, ctx.now() - 30 * DAY)


JOBS: list[Job] = [Job("lists.moderation", run_digests)]
