"""Scheduled jobs of the lists app: members' digests, and the facilitators' reviews with
the expiry of what waited for them too long."""

from __future__ import annotations

from mailhub.context import Context
from mailhub.jobs import Job
from mailhub.lists import held, membership, notices
from mailhub.lists.config import ListConfig
from mailhub.lists.digest import JOBS as MEMBER_DIGESTS
from mailhub.lists.review import DAY, REQUEST, send_due_reviews
from mailhub.store import membership as store


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
            await notices.tell(ctx, lst, request.address, "membership_status", situation="expired")
    await held.expire_held_posts(ctx, lst)


async def run_reviews(ctx: Context) -> None:
    for lst in ctx.config.lists:
        await expire(ctx, lst)
        await send_due_reviews(ctx, lst)
    # Tokens are kept a month past expiry, to tell late repliers what happened.
    await store.purge_tokens(ctx.tx, ctx.now() - 30 * DAY)


JOBS: list[Job] = [*MEMBER_DIGESTS, Job("lists.review", run_reviews)]
