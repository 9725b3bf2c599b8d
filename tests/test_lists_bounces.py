"""Bounces: VERP names the member; bulk bounces are read; the threshold disables."""

from __future__ import annotations

import pytest
import pytest_asyncio

from mailhub.lists.bounces import content_only, failures, next_score
from mailhub.store import lists as store
from tests.support.hub import DOMAIN
from tests.support.lists import stop_hub
from tests.test_lists_posting_e2e import LIST, make_hub, post

# Every test here runs on SQLite and on PostgreSQL (tests/conftest.py: backend).
pytestmark = pytest.mark.usefixtures("backend")

DAY = 86400.0
THRESHOLD = "\nbounce_threshold = 1.5\n"


def test_first_bounce_scores_one():
    assert next_score(0.0, None, 100.0) == 1.0


def test_same_day_bounces_count_once():
    assert next_score(1.0, 100.0, 100.0 + 3600) == 1.0


def test_old_bounces_decay():
    assert next_score(1.0, 0.0, 7 * DAY) == 1.5


def test_rfc3464_report_read():
    assert failures(dsn("cat@example.org"))[1] == {"cat@example.org"}


def test_garbage_reports_nothing():
    assert failures(b"\xff\xfe garbage") == (set(), set())


def test_content_errors_are_not_mailbox_errors():
    assert content_only(dsn("cat@example.org", "5.6.7"))
    assert not content_only(dsn("cat@example.org", "5.1.1"))
    assert not content_only(b"no report at all")


def dsn(rcpt: str, status: str = "5.1.1") -> bytes:
    return (
        "From: MAILER-DAEMON@mx.example.org\r\nTo: green-bounces@cop.example.org\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n"
        f"\r\nFinal-Recipient: rfc822; {rcpt}\r\nAction: failed\r\nStatus: {status}\r\n"
        "--B--\r\n"
    ).encode()


def verp_dsns(received):
    return [r for r in received if r.rcpt.startswith("green-bounces+")]


async def _hub(tmp_path, delivery):
    return await make_hub(tmp_path, delivery=delivery, extra=THRESHOLD)


@pytest_asyncio.fixture
async def hub(tmp_path):
    h = await _hub(tmp_path, "personalised")
    yield h
    await stop_hub(h)


async def member(hub, addr):
    async with hub.service.store.read() as tx:
        return await store.get_member(tx, "green", addr)


async def test_verp_bounces_disable_member_at_threshold(hub):
    hub.sink.scripts["bob@example.net"] = ["550 5.1.1 no such user"]
    for day in range(2):
        await hub.send("ann@example.net", [LIST], post(body=f"Post {day}\n"))
        # Our delivery's DSN goes to bob's VERP address at the relay: hand it back to us.
        received = await hub.sink.wait_for(lambda rs, n=day: len(verp_dsns(rs)) > n)
        dsn_msg = verp_dsns(received)[day]
        if day == 1:
            hub.sink.scripts["bob@example.net"] = ["250 ok"]  # bob's mailbox is back
        code, _ = await hub.send("", [dsn_msg.rcpt], dsn_msg.raw)
        assert code == 250
        await hub.idle()
        bob = await member(hub, "bob@example.net")
        hub.clock.advance(DAY)
    assert bob.status == "disabled" and bob.bounce_score >= 1.5
    assert (await member(hub, "cat@example.org")).status == "active"
    # Told (from a null sender), and no longer sent posts.
    await hub.send("ann@example.net", [LIST], post(body="Post 3\n"))
    await hub.sink.wait_count("cat@example.org", 3)
    await hub.idle()
    to_bob = hub.sink.to("bob@example.net")
    assert len(to_bob) == 1 and to_bob[0].mail_from == ""
    assert "paused" in to_bob[0].message["Subject"]


async def test_forged_verp_token_counts_nothing(hub):
    code, _ = await hub.send(
        "", [f"green-bounces+aaaaaaaaaaaaaaaa@{DOMAIN}"], dsn("bob@example.net")
    )
    assert code == 250
    await hub.idle()
    assert (await member(hub, "bob@example.net")).bounce_score == 0


async def test_bulk_bounce_read_from_content(tmp_path):
    hub = await _hub(tmp_path, "bulk")
    try:
        await hub.send("", [f"green-bounces@{DOMAIN}"], dsn("Cat@example.org"))
        await hub.idle()
        cat = await member(hub, "cat@example.org")
        assert cat.bounce_score == 1.0 and cat.status == "active"
        hub.clock.advance(DAY)
        await hub.send("", [f"green-bounces@{DOMAIN}"], dsn("cat@example.org"))
        await hub.idle()
        assert (await member(hub, "cat@example.org")).status == "disabled"
        # Never an automatic reply to a bounce; only the notice to the member.
        assert [r.rcpt for r in hub.sink.received] == ["cat@example.org"]
    finally:
        await hub.service.stop()
        await hub.sink.stop()


async def test_several_bounces_a_day_still_reach_the_threshold(hub):
    """The day is measured from the bounce that last counted: a mailbox that bounces every
    12 hours is paused on the second day, not kept at a score of 1 for ever."""
    hub.sink.scripts["bob@example.net"] = ["550 5.1.1 no such user"]
    await hub.send("ann@example.net", [LIST], post(body="Post\n"))
    received = await hub.sink.wait_for(lambda rs: len(verp_dsns(rs)) > 0)
    dsn_msg = verp_dsns(received)[0]
    for _ in range(3):  # at 0 h, 12 h and 24 h
        code, _ = await hub.send("", [dsn_msg.rcpt], dsn_msg.raw)
        assert code == 250
        await hub.idle()
        hub.clock.advance(DAY / 2)
    assert (await member(hub, "bob@example.net")).status == "disabled"


async def test_a_content_error_through_verp_does_not_count(hub):
    """A relay refusing the copy itself (5.6.7: it cannot carry SMTPUTF8 mail) says nothing
    about the member's mailbox."""
    hub.sink.scripts["bob@example.net"] = ["550 5.1.1 no such user"]
    await hub.send("ann@example.net", [LIST], post(body="Post\n"))
    received = await hub.sink.wait_for(lambda rs: len(verp_dsns(rs)) > 0)
    verp = verp_dsns(received)[0].rcpt
    code, _ = await hub.send("", [verp], dsn("bob@example.net", "5.6.7"))
    assert code == 250
    await hub.idle()
    assert (await member(hub, "bob@example.net")).bounce_score == 0
