"""Members in digest mode get one MIME digest per interval from the scheduled job."""

from __future__ import annotations

import pytest

from mailhub.lists.digest import digest_due
from mailhub.store import lists as store
from tests.support.hub import DOMAIN
from tests.test_lists_posting_e2e import LIST, make_hub, post

# Every test here runs on SQLite and on PostgreSQL (tests/conftest.py: backend).
pytestmark = pytest.mark.usefixtures("backend")

DAY = 86400.0


def test_digest_due_first_time_and_after_interval():
    assert digest_due(None, DAY, 5.0) and digest_due(0.0, DAY, DAY)
    assert not digest_due(0.0, DAY, DAY - 1)


async def test_digest_member_gets_one_mime_digest_per_interval(tmp_path):
    hub = await make_hub(tmp_path)
    try:
        async with hub.service.store.transaction() as tx:
            await store.set_delivery(tx, "green", "bob@example.net", "digest", hub.clock.now())
        await hub.send("ann@example.net", [LIST], post(subject="First", body="One\n"))
        await hub.send(
            "cat@example.org",
            [LIST],
            post(sender="cat@example.org", subject="Second", body="Two\n"),
        )
        await hub.sink.wait_count("cat@example.org")
        await hub.idle()
        assert hub.sink.to("bob@example.net") == []
        await hub.service.scheduler.run_once()  # not due yet
        await hub.idle()
        assert hub.sink.to("bob@example.net") == []
        hub.clock.advance(DAY)
        await hub.service.scheduler.run_once()
        await hub.sink.wait_count("bob@example.net")
        got = hub.sink.to("bob@example.net")[0]
        assert got.mail_from.startswith("green-bounces+")
        m = got.message
        assert m["Subject"] == "[Green Team] Digest: 2 messages"
        assert m["List-Id"] == f'"Green Team" <green.{DOMAIN}>'
        intro, digest = m.iter_parts()
        assert "1. First" in intro.get_content() and "2. Second" in intro.get_content()
        assert digest.get_content_type() == "multipart/digest"
        inner = [p.get_content() for p in digest.iter_parts()]
        assert [p["Subject"] for p in inner] == ["First", "Second"]
        # Nothing new: nothing sent; the next post comes in the next interval's digest.
        hub.clock.advance(DAY)
        await hub.service.scheduler.run_once()
        await hub.send("ann@example.net", [LIST], post(subject="Third", body="Three\n"))
        await hub.idle()
        await hub.service.scheduler.run_once()
        await hub.idle()
        assert len(hub.sink.to("bob@example.net")) == 1
        hub.clock.advance(DAY)
        await hub.service.scheduler.run_once()
        await hub.sink.wait_count("bob@example.net", 2)
        assert "1 message" in hub.sink.to("bob@example.net")[1].message["Subject"]
    finally:
        await hub.service.stop()
        await hub.sink.stop()


async def test_digest_embeds_the_stripped_copy_not_the_archived_post(tmp_path):
    # Shown addresses: the poster's From: is kept (hidden: tests/test_hidden_addresses.py).
    hub = await make_hub(tmp_path, extra='addresses = "shown"\n')
    try:
        async with hub.service.store.transaction() as tx:
            await store.set_delivery(tx, "green", "bob@example.net", "digest", hub.clock.now())
        private = (
            "Return-Receipt-To: ann@example.net\nDelivered-To: ann-private@example.net\n"
            "Approved: hunter2\nX-Odd: one\x0btwo"
        )
        await hub.send("ann@example.net", [LIST], post(subject="Kept", headers=private))
        await hub.sink.wait_count("cat@example.org")
        hub.clock.advance(DAY)
        await hub.service.scheduler.run_once()
        got = (await hub.sink.wait_count("bob@example.net"))[0]
        (inner,) = [p.get_content() for p in list(got.message.iter_parts())[1].iter_parts()]
        assert inner["Subject"] == "Kept" and inner["From"] == "Ann <ann@example.net>"
        for field in ("Return-Receipt-To", "Delivered-To", "Approved"):
            assert field not in inner
        assert inner["X-Odd"] == "one two"
        assert b"hunter2" not in got.raw and b"ann-private" not in got.raw
    finally:
        await hub.service.stop()
        await hub.sink.stop()


async def test_each_member_gets_the_digest_in_the_language_they_chose(tmp_path):
    hub = await make_hub(tmp_path)
    try:
        async with hub.service.store.transaction() as tx:
            await store.add_member(tx, "green", "dan@example.net", "Dan", hub.clock.now())
            for who in ("bob@example.net", "dan@example.net"):
                await store.set_delivery(tx, "green", who, "digest", hub.clock.now())
            await store.set_language(tx, "green", "bob@example.net", "cy")
        await hub.send("ann@example.net", [LIST], post(subject="First", body="One\n"))
        await hub.sink.wait_count("cat@example.org")
        await hub.idle()
        hub.clock.advance(DAY)
        await hub.service.scheduler.run_once()
        [welsh] = await hub.sink.wait_count("bob@example.net")
        [english] = await hub.sink.wait_count("dan@example.net")
        assert english.message["Subject"] == "[Green Team] Digest: 1 message"
        assert welsh.message["Subject"] == "[Green Team] Crynodeb: 1 neges"  # Welsh, his choice
        intro = next(welsh.message.iter_parts()).get_content()
        assert "1. First" in intro and "Hello" not in intro
    finally:
        await hub.service.stop()
        await hub.sink.stop()
