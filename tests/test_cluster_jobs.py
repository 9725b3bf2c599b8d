"""Scheduled jobs with several nodes on one PostgreSQL database: each runs once per due time.

Two real services (two nodes: each its own connection pool, workers and scheduler) in this
process, on one database, sharing a clock and a sink. Both run their scheduler's round at
the same moment, as two nodes whose ticks coincide: the facilitators get one review, not
two (cluster.take_job). Run again, or one after the other: still one.
"""

from __future__ import annotations

import asyncio

from tests.support.hub import Hub, start_hub, storage_backend
from tests.test_lists_review_e2e import GWEN, LISTS, request_to_join, text

FRAN = "fran@example.net"


async def both_rounds(a: Hub, b: Hub) -> None:
    """Both nodes' scheduler rounds at once, then everything they queued delivered."""
    await asyncio.gather(a.service.scheduler.run_once(), b.service.scheduler.run_once())
    await a.idle()
    await b.idle()


async def test_a_due_review_is_sent_once_by_two_nodes(tmp_path, pg_url):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with storage_backend(pg_url):
        a = await start_hub(tmp_path / "a", extra=LISTS)
        b = await start_hub(tmp_path / "b", extra=LISTS, sink=a.sink, clock=a.clock)
    try:
        await request_to_join(a, "sam@example.net", "Sam Sender")
        await both_rounds(a, b)
        reviews = a.sink.to(GWEN)
        assert len(reviews) == 1 and len(a.sink.to(FRAN)) == 1
        assert "Sam Sender" in text(reviews[0].message)

        # Nothing new is due: neither node sends it again, together or one after the other.
        await both_rounds(a, b)
        await b.service.scheduler.run_once()
        await a.service.scheduler.run_once()
        await a.idle()
        await b.idle()
        assert len(a.sink.to(GWEN)) == 1

        # The next one, due an hour later with a new request, once too.
        a.clock.advance(600)
        await request_to_join(b, "tom@example.net", "Tom Tester")
        a.clock.advance(3600)
        await both_rounds(a, b)
        assert len(a.sink.to(GWEN)) == 2
        assert "Tom Tester" in text(a.sink.to(GWEN)[1].message)
    finally:
        await a.service.stop()
        await b.service.stop()
        await a.sink.stop()
