"""`LIST-bounces[+TOKEN]@D`: the return path of list mail. Bounces raise a member's score;
at the list's threshold the member's mail is paused and they are told.

Personalised mode: the VERP token names the member, so even an unreadable bounce
counts (unless it reads as a mere delay warning). Every copy such a list sends has a
VERP return path, so a bounce to the bare `LIST-bounces@D` is not one of ours: anyone
can write one naming a member, so it is logged and ignored (it never counts).
Bulk mode: the failed addresses are read from the bounce itself (RFC 3464 and the many
non-standard formats that flufl.bounce knows). Bounces are never answered.
"""

from __future__ import annotations

import email
import logging
import re
from email.message import Message

from flufl.bounce import all_failures

from mailhub import logs
from mailhub.context import Context, Incoming
from mailhub.lists import notices
from mailhub.lists.config import ListConfig, find_list
from mailhub.lists.verp import find_member
from mailhub.routing import Route
from mailhub.store import lists as store
from mailhub.store import secrets

HALF_LIFE = 7 * 86400.0  # old bounces count for less: a week-old bounce is worth half
SAME_DAY = 86400.0  # several bounces within a day count once (one bad day is not a trend)


def next_score(previous: float, last_at: float | None, now: float) -> float:
    """The bounce score after one more hard bounce (pure)."""
    if last_at is None:
        return 1.0
    elapsed = max(0.0, now - last_at)
    if elapsed < SAME_DAY:
        return previous
    return previous * 0.5 ** (elapsed / HALF_LIFE) + 1.0


def failures(raw: bytes) -> tuple[set[str], set[str]]:
    """(temporary, permanent) failed addresses a bounce reports, lower-cased. Never raises."""
    try:
        msg: Message = email.message_from_bytes(raw)
        temporary, permanent = all_failures(msg)
    except Exception:  # noqa: BLE001 - an unreadable bounce reports nothing
        logging.getLogger("mailhub").debug("bounce scan failed", exc_info=True)
        return set(), set()

    def norm(found: frozenset) -> set[str]:
        out = set()
        for a in found:
            text = a.decode("utf-8", "replace") if isinstance(a, bytes) else str(a)
            out.add(text.strip().strip("<>").lower())
        return out

    return norm(temporary), norm(permanent)


_STATUS = re.compile(rb"(?im)^status:[ \t]*([245])\.(\d{1,3})\.\d{1,3}")


def content_only(raw: bytes) -> bool:
    """Does the report give only message-content (media) errors, status X.6.X (RFC 3463)?
    Then the mailbox is fine and the message was the problem (e.g. a relay that cannot
    carry SMTPUTF8 mail): it must not count against the member. Pure."""
    statuses = _STATUS.findall(raw[:200_000])
    return bool(statuses) and all(detail == b"6" for _, detail in statuses)


async def handle_bounce(ctx: Context, mail: Incoming, route: Route) -> None:
    cfg = find_list(ctx.config.lists, route.get("list"))
    if cfg is None:
        return
    captures = dict(route.captures)
    token = captures.get("token")
    if not token and cfg.delivery == "personalised":
        logs.event(
            "list.bounce",
            queue_id=mail.queue_id,
            list=cfg.name,
            outcome="ignored",
            reason="no VERP token on a personalised list",
        )
        return
    temporary, permanent = failures(mail.raw)
    members = [m.address for m in await store.list_members(ctx.tx, cfg.name)]
    if token:
        secret = await secrets.get_or_create(ctx.tx, "lists")
        who = find_member(secret, "verp", cfg.name, token, members)
        if who is None:
            logs.event("list.bounce", queue_id=mail.queue_id, list=cfg.name, outcome="bad token")
            return
        if temporary and not permanent:
            logs.event(
                "list.bounce",
                queue_id=mail.queue_id,
                list=cfg.name,
                member=who,
                outcome="delay ignored",
            )
            return
        if content_only(mail.raw):
            logs.event(
                "list.bounce",
                queue_id=mail.queue_id,
                list=cfg.name,
                member=who,
                outcome="content error ignored",
            )
            return
        bounced = [who]
    else:
        known = set(members)
        bounced = sorted(a for a in permanent if a in known)
    if not bounced:
        logs.event("list.bounce", queue_id=mail.queue_id, list=cfg.name, outcome="no member")
        return
    for who in bounced:
        await _count(ctx, cfg, who, mail.queue_id)


async def _count(ctx: Context, cfg: ListConfig, who: str, queue_id: str) -> None:
    now = ctx.now()
    previous, last_at = await store.bounce_state(ctx.tx, cfg.name, who)
    score = next_score(previous, last_at, now)
    # The day is measured from the bounce that last counted: a mailbox bouncing several
    # times a day must still reach the threshold, one count a day.
    counted = last_at is None or now - last_at >= SAME_DAY
    await store.record_bounce(ctx.tx, cfg.name, who, "hard", score, now, counted=counted)
    outcome = "counted"
    if score >= cfg.bounce_threshold and await store.disable_member(ctx.tx, cfg.name, who, now):
        # From a null return path: this notice must never bounce back to us.
        await notices.tell(ctx, cfg, who, "posting_disabled")
        outcome = "disabled"
    logs.event(
        "list.bounce", queue_id=queue_id, list=cfg.name, member=who, score=score, outcome=outcome
    )
