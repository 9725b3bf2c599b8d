"""Held posts: holding one (the poster is told, the facilitators' review hears of it), and
releasing, discarding or expiring it (by a reply to the review, or by the expiry job).

A held post keeps its raw bytes until it is settled; releasing it distributes those
bytes as if it had been accepted when it arrived.
"""

from __future__ import annotations

from mailhub import logs
from mailhub.context import Context, Incoming
from mailhub.lists import action_log, authenticity, notices, review
from mailhub.lists.config import ListConfig
from mailhub.lists.distribution import distribute
from mailhub.parsing import header
from mailhub.store import lists as store

HELD = "held"


def wait_days(cfg: ListConfig) -> int:
    """How many days a held post waits for the facilitators, as its notices say it."""
    return max(1, round(cfg.request_expiry / 86400))


async def hold(
    ctx: Context,
    mail: Incoming,
    cfg: ListConfig,
    sender: str,
    reason: str,
    code: str,
    *,
    command: str = "",
) -> int:
    """Hold a post for the facilitators and tell the poster; returns the held post's id.
    `command`: the member command a post held as administrivia is (its notice says how to
    send it to the list's request address instead)."""
    held_id = await store.hold_post(
        ctx.tx,
        list_name=cfg.name,
        sender=sender,
        mail_from=mail.mail_from,
        subject=header(mail.message, "subject"),
        reason=reason,
        raw=mail.raw,
        now=ctx.now(),
        authenticity=authenticity.to_text(authenticity.of(mail)),
    )
    await notices.answer(
        ctx,
        mail,
        cfg,
        "posting_held",
        code=code,
        days=wait_days(cfg),
        expires=notices.when(ctx.now() + cfg.request_expiry),
        command=command,
    )
    await review.on_new_item(ctx, cfg)
    return held_id


async def expire_held_posts(ctx: Context, cfg: ListConfig) -> None:
    """Every post held longer than the list's `request_expiry`: expired, the poster told."""
    now = ctx.now()
    for h in await store.held_posts(ctx.tx, cfg.name, HELD):
        if h.held_at + cfg.request_expiry <= now and await expire_held(ctx, cfg, h.id):
            await action_log.record(
                ctx, cfg, "", "expired", HELD, ref_id=h.id, subject_address=h.sender
            )


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
    # Sealed and rewritten by what was found when the post came in (kept with it).
    found = authenticity.from_text(await store.held_authenticity(ctx.tx, held_id))
    recipients = await distribute(ctx, list_cfg, mail.raw, found)
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
