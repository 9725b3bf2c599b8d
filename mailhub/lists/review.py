"""The review: the facilitators' digest of pending join requests and held posts. Who gets
one, what it holds, when it is due, and sending it (acting on a reply to it:
mailhub.lists.review_reply; expiry of what waited too long: mailhub.lists.jobs).

Each facilitator gets numbered entries; the reply address carries a token bound to
that facilitator and that review, and the numbers in a reply mean the entries of that
review only, so two facilitators acting at once can never approve the wrong person.
A review token is single use: after one reply has acted, the answer itself is the
next review (with fresh numbers and a fresh token) when entries remain. Champions
get held posts only, and may only accept or discard them.

The review is read on phones: its lines are at most 72 characters, each entry is a block
with the person's name, their own words (the introduction from their confirmation reply)
and the exact line to reply with; its subject is short (`[List] 3 requests, 1 held post`).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Any

from mailhub import logs
from mailhub.context import Context
from mailhub.lists import notices, tokens
from mailhub.lists.config import ListConfig
from mailhub.lists.headers import ListAddresses
from mailhub.lists.held_view import HeldView, held_view, with_attachments
from mailhub.lists.reasons import held_reason_cy
from mailhub.lists.review_commands import ACCEPT, APPROVE, DISCARD, REJECT
from mailhub.store import lists as list_store
from mailhub.store import membership as store

DAY = 86400.0
# An introduction is quoted in the review as "   > text": 66 + 5 stays within 72.
INTRO_WIDTH = 66
FACILITATOR = "facilitator"
CHAMPION = "champion"
REQUEST = "request"
HELD = "held"
# A review's token works a day longer than its entries can wait, so a late reply is told
# that an entry expired rather than that the review did.
REVIEW_TOKEN_GRACE = DAY


@dataclass(frozen=True)
class ReviewItem:
    """One thing a review shows. `kind` 'request' and 'held' are numbered (they can be
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


def review_due(
    keys: frozenset[str], last: store.Review | None, now: float, interval: float
) -> bool:
    """Send a review now? Pure. New entries: at most one per `interval` (0: at once);
    nothing new: a reminder at most once a day while entries remain."""
    if not keys:
        return False
    if last is None:
        return True
    new = keys - frozenset(last.signature.split())
    elapsed = now - last.sent_at
    return elapsed >= interval if new else elapsed >= DAY


def next_due_at(
    keys: frozenset[str], last: store.Review | None, now: float, interval: float
) -> float | None:
    """When `review_due` will next say yes, as things stand (None: nothing waits). Pure."""
    if not keys:
        return None
    if last is None:
        return now
    new = keys - frozenset(last.signature.split())
    return last.sent_at + (interval if new else DAY)


@dataclass(frozen=True)
class Waiting:
    """What waits on a list, for `mailhub review send` to say when it sends nothing."""

    requests: int
    held: int
    next_due: float | None  # the soonest review due to any reviewer; None: none waits


async def waiting(ctx: Context, lst: ListConfig) -> Waiting:
    requests = held = 0
    due: list[float] = []
    for recipient, role in reviewers(lst):
        items = await pending_items(ctx, lst, role)
        # Every facilitator sees every request, champions none: the largest count is the list's.
        requests = max(requests, sum(1 for i in items if i.kind == REQUEST))
        held = max(held, sum(1 for i in items if i.kind == HELD))
        keys = frozenset(i.key for i in items)
        last = await store.last_review(ctx.tx, lst.name, recipient)
        at = next_due_at(keys, last, ctx.now(), lst.review_interval)
        if at is not None:
            due.append(at)
    return Waiting(requests, held, min(due) if due else None)


def role_of(lst: ListConfig, address: str) -> str | None:
    address = address.lower()
    if address in (a.lower() for a in lst.facilitators):
        return FACILITATOR
    if address in (a.lower() for a in lst.champions):
        return CHAMPION
    return None


def reviewers(lst: ListConfig) -> list[tuple[str, str]]:
    """Each facilitator and champion once, with the role that gives them most."""
    out: dict[str, str] = {}
    for a in lst.facilitators:
        out.setdefault(a.lower(), FACILITATOR)
    for a in lst.champions:
        out.setdefault(a.lower(), CHAMPION)
    return list(out.items())


def action_for(verb: str, kind: str) -> str:
    """What a verb means for an entry: `approve 4` on a held post accepts it, and so on."""
    positive = verb in (APPROVE, ACCEPT)
    if kind == REQUEST:
        return APPROVE if positive else REJECT
    return ACCEPT if positive else DISCARD


async def pending_items(ctx: Context, lst: ListConfig, role: str) -> list[ReviewItem]:
    tx = ctx.tx
    items: list[ReviewItem] = []
    if role == FACILITATOR:
        for r in await store.requests_in_state(tx, lst.name, store.PENDING):
            items.append(
                ReviewItem(
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
            ReviewItem(
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
                ReviewItem(
                    "disabled",
                    0,
                    f"d:{m.address}:{m.disabled_at}",
                    m.display_name,
                    m.address,
                    m.disabled_at or 0,
                )
            )
    return items


def intro_lines(note: str, width: int = INTRO_WIDTH) -> list[str]:
    """A would-be member's introduction as the review quotes it: their lines, each wrapped
    to `width`, blank lines between paragraphs kept (once). Pure."""
    out: list[str] = []
    for paragraph in note.split("\n"):
        paragraph = paragraph.strip()
        if not paragraph:
            if out and out[-1]:
                out.append("")
            continue
        out.extend(textwrap.wrap(paragraph, width, break_long_words=True) or [paragraph])
    while out and not out[-1]:
        out.pop()
    return out


def welsh_name(lst: ListConfig) -> str:
    """The list's name in Welsh, or its only name while it has none."""
    return getattr(lst, "display_name_cy", "") or lst.display_name


def _count_en(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def review_subjects(
    name_en: str, name_cy: str, requests: int, held: int, *, done: bool
) -> dict[str, str]:
    """The review's subject in each language: `[Bilingual services] 3 requests, 1 held
    post`, `[Gwasanaethau dwyieithog] 3 cais, 1 neges wedi'i dal`; the answer to a reply
    says "Done; 2 still waiting" / "Wedi'i wneud; 2 yn dal i aros". Short, so a phone shows all of it. Pure."""
    en = [_count_en(requests, "request", "requests")] if requests else []
    if held:
        en.append(_count_en(held, "held post", "held posts"))
    # Welsh counts take the singular noun: "3 cais", "2 neges wedi'u dal".
    cy = [f"{requests} cais"] if requests else []
    if held:
        cy.append(f"{held} neges wedi'{'i' if held == 1 else 'u'} dal")
    if done:
        # After a reply, how many remain is enough: the body lists them.
        left = requests + held
        what_en = f"Done; {left} still waiting" if left else "Done; nothing waiting"
        what_cy = f"Wedi'i wneud; {left} yn dal i aros" if left else "Wedi'i wneud; dim yn aros"
    else:
        what_en = ", ".join(en) or "Nothing waiting"
        what_cy = ", ".join(cy) or "Dim yn aros"
    return {"en": f"[{name_en}] {what_en}", "cy": f"[{name_cy}] {what_cy}"}


def hides_addresses(lst: ListConfig) -> bool:
    """Does the review show people by name only? (A list whose addresses are hidden: "digests
    and reviews show names, never member addresses".)"""
    return lst.addresses == "hidden"


def attachment_name(held_id: int) -> str:
    return f"held-{held_id}.eml"


def _entry_vars(
    number: int, item: ReviewItem, hidden: bool, view: HeldView | None = None
) -> dict[str, Any]:
    shown = view.excerpt if view is not None else None
    return {
        "number": number,
        "kind": item.kind,
        "hidden": hidden,
        "name": shown.name if shown is not None else item.name,
        "address": "" if hidden else item.address,
        "excerpt": list(shown.lines) if shown is not None else [],
        "more": shown.more if shown is not None else False,
        "readable": shown.readable if shown is not None else True,
        "attachment": attachment_name(item.ref_id) if view and view.attachment is not None else "",
        "size_kb": (view.size + 1023) // 1024 if view is not None else 0,
        "when": notices.when(item.at),
        "at": item.at,
        "note": item.note,
        "intro": intro_lines(item.note),
        "subject": item.subject or "(no subject)",
        "reason": item.reason,
        "reason_cy": held_reason_cy(item.reason),
    }


async def send_review(
    ctx: Context,
    lst: ListConfig,
    recipient: str,
    role: str,
    items: list[ReviewItem],
    result: dict[str, Any] | None = None,
) -> int | None:
    """Send one review (or, with `result`, the answer to a reply, carrying the next review
    when entries remain). Returns the review id, or None when no entry was left."""
    numbered = [i for i in items if i.kind in (REQUEST, HELD)]
    info = [i for i in items if i.kind == "disabled"]
    review_id = None
    reply_token = ""
    if items:
        review_id = await store.add_review(
            ctx.tx,
            list_name=lst.name,
            recipient=recipient,
            role=role,
            now=ctx.now(),
            signature=" ".join(sorted(i.key for i in items)),
            entries=[(i.kind, i.ref_id) for i in numbered],
        )
        if numbered:
            token = await tokens.issue(
                ctx,
                lst,
                tokens.REVIEW,
                recipient,
                lst.request_expiry + REVIEW_TOKEN_GRACE,
                review_id=review_id,
            )
            reply_token = token
    hidden = hides_addresses(lst)
    hide = (lst.display_name, ListAddresses.of(lst.name, ctx.domain).post) if hidden else None
    views = {i.ref_id: await held_view(ctx.tx, i.ref_id, hide) for i in numbered if i.kind == HELD}
    requests = sum(1 for i in numbered if i.kind == REQUEST)
    variables: dict[str, Any] = {
        "subjects": review_subjects(
            lst.display_name,
            welsh_name(lst),
            requests,
            len(numbered) - requests,
            done=result is not None,
        ),
        "name_cy": welsh_name(lst),
        "role": role,
        "entries": [
            _entry_vars(n, i, hidden, views.get(i.ref_id) if i.kind == HELD else None)
            for n, i in enumerate(numbered, start=1)
        ],
        "disabled": [_entry_vars(0, i, hidden) for i in info],
        "has_requests": any(i.kind == REQUEST for i in numbered),
        "has_held": any(i.kind == HELD for i in numbered),
        "result": result,
    }
    attachments = [
        (attachment_name(held_id), view.attachment)
        for held_id, view in views.items()
        if view.attachment is not None
    ]
    if attachments:
        await _send_with_attachments(ctx, lst, recipient, reply_token, variables, attachments)
    else:
        await notices.tell(ctx, lst, recipient, "review", reply_token=reply_token, **variables)
    logs.event(
        "review",
        list=lst.name,
        to=recipient,
        role=role,
        review=review_id,
        entries=len(numbered),
        answer=result is not None,
    )
    return review_id


async def _send_with_attachments(
    ctx: Context,
    lst: ListConfig,
    recipient: str,
    reply_token: str,
    variables: dict[str, Any],
    attachments: list[tuple[str, bytes]],
) -> None:
    """The review as notices.tell sends it, with each held post attached as it arrived."""
    msg = notices.compose(ctx, lst, "review", recipient, reply_token=reply_token, **variables)
    # As notices.tell: generated, not a reply, so out-of-office robots do not answer it.
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    msg["X-Loop"] = ctx.loop_id
    raw = with_attachments(msg, attachments)
    await ctx.send(
        raw,
        [recipient],
        kind=notices.kind("review"),
        mail_from="",
        message_id=str(msg["Message-ID"]),
    )


async def send_due_reviews(ctx: Context, lst: ListConfig, *, force: bool = False) -> int:
    """Send every review of `lst` that is due (or, with force, every one with entries)."""
    sent = 0
    for recipient, role in reviewers(lst):
        items = await pending_items(ctx, lst, role)
        keys = frozenset(i.key for i in items)
        last = await store.last_review(ctx.tx, lst.name, recipient)
        if (force and keys) or review_due(keys, last, ctx.now(), lst.review_interval):
            await send_review(ctx, lst, recipient, role, items)
            sent += 1
    return sent


async def on_new_item(ctx: Context, lst: ListConfig) -> None:
    """A request became pending or a post was held: with `review_interval = 0` the
    facilitators hear at once, in the same transaction."""
    if lst.review_interval <= 0:
        await send_due_reviews(ctx, lst)
