"""`LIST-digest@D`, a member's digest on demand (end to end over loopback): a member in
digest mode gets their digest at once, and the scheduled one starts again from there;
anyone else is told politely why not, through the RFC 3834 rules."""

from __future__ import annotations

import pytest

from mailhub.store import lists as store
from tests.support.hub import DOMAIN, message
from tests.support.lists import stop_hub
from tests.test_lists_posting_e2e import LIST, make_hub, post

# Every test here runs on SQLite and on PostgreSQL (tests/conftest.py: backend).
pytestmark = pytest.mark.usefixtures("backend")

DIGEST = f"green-digest@{DOMAIN}"
DAY = 86400.0
EXTRA = """
[autoreply]
per_hour = 100
per_day = 100
"""


async def ask(hub, envelope: str, **kw) -> None:
    code, _ = await hub.send(envelope, [DIGEST], message(sender=envelope, to=DIGEST, **kw))
    assert code == 250
    await hub.idle()


async def test_a_digest_member_gets_their_digest_now_and_others_a_polite_answer(tmp_path):
    hub = await make_hub(tmp_path, extra=EXTRA)
    try:
        async with hub.service.store.transaction() as tx:
            await store.set_delivery(tx, "green", "bob@example.net", "digest", hub.clock.now())
            await store.mute_thread(tx, "green", "bob@example.net", "muted-thread", 0.0)
        await ask(hub, "bob@example.net", subject="digest please")
        (nothing,) = await hub.sink.wait_count("bob@example.net")
        assert nothing.mail_from == "" and nothing.message["Auto-Submitted"] == "auto-replied"
        assert "No new messages" in nothing.message["Subject"]

        await hub.send("ann@example.net", [LIST], post(subject="First", body="One\n"))
        await hub.send("ann@example.net", [LIST], post(subject="Second", body="Two\n"))
        await hub.sink.wait_count("cat@example.org", 2)
        await hub.idle()
        await ask(hub, "bob@example.net")
        got = (await hub.sink.wait_count("bob@example.net", 2))[1]
        m = got.message
        # An automatic answer (RFC 3834): from a null return path, to the envelope sender.
        assert got.mail_from == "" and m["Auto-Submitted"] == "auto-replied"
        assert m["Subject"] == "[Green Team] Digest: 2 messages"
        assert m["List-Id"] == f'"Green Team" <green.{DOMAIN}>'
        intro, digest = m.iter_parts()
        assert "1. First" in intro.get_content() and "2. Second" in intro.get_content()
        assert digest.get_content_type() == "multipart/digest"
        assert [p.get_content()["Subject"] for p in digest.iter_parts()] == ["First", "Second"]

        # The interval restarted: the schedule has nothing for Bob a day later.
        hub.clock.advance(DAY)
        await hub.service.scheduler.run_once()
        await hub.idle()
        assert len(hub.sink.to("bob@example.net")) == 2

        # A member who gets each message, and a stranger: told why not, never sent posts.
        await ask(hub, "cat@example.org")
        (each,) = [r for r in hub.sink.to("cat@example.org") if r.mail_from == ""]
        assert "digest on" in each.message.get_content()
        await ask(hub, "eve@attacker.example")
        (stranger,) = await hub.sink.wait_count("eve@attacker.example")
        assert "not a member" in stranger.message.get_content()
        assert stranger.message.get_content_type() == "text/plain"
        # Automatic mail (RFC 3834) is never answered.
        await ask(hub, "dan@example.net", headers="Auto-Submitted: auto-replied\n")
        assert hub.sink.to("dan@example.net") == []
    finally:
        await stop_hub(hub)
