"""Scheduled jobs of the lists app: members' digests, and the facilitators' reviews with
the expiry of what waited for them too long."""

from __future__ import annotations

from mailhub.context import Context
from mailhub.jobs import Job
from mailhub.lists import archive_index, held, subscription
from mailhub.lists.config import ListConfig
from mailhub.lists.digest import JOBS as MEMBER_DIGESTS
from mailhub.lists.review import DAY, send_due_reviews
from mailhub.store import membership as store


async def expire(ctx: Context, lst: ListConfig) -> None:
    """What waited too long for its person or for the facilitators: requests, held posts."""
    await subscription.expire_requests(ctx, lst)
    await held.expire_held_posts(ctx, lst)


async def run_reviews(ctx: Context) -> None:
    for lst in ctx.config.lists:
        await expire(ctx, lst)
        await send_due_reviews(ctx, lst)
    # Tokens are kept a month past expiry, to tell late repliers what happened.
    await store.purge_tokens(ctx.tx, ctx.now() - 30 * DAY)


JOBS: list[Job] = [
    *MEMBER_DIGESTS,
    Job("lists.review", run_reviews),
    Job("lists.archive_index", prepare=archive_index.backfill),
]
