"""Posting to a list, end to end over loopback: distribution, holding, loops, modes."""

from __future__ import annotations

import pytest
import pytest_asyncio

from mailhub.context import Context
from mailhub.lists.config import find_list
from mailhub.lists.held import release_held
from mailhub.lists.verp import token_matches
from mailhub.routing import AddressBook
from mailhub.store import lists as store
from mailhub.store import secrets
from tests.support.hub import DOMAIN, message, start_hub
from tests.support.lists import stop_hub

# Every test here runs on SQLite and on PostgreSQL (tests/conftest.py: backend).
pytestmark = pytest.mark.usefixtures("backend")

LIST = f"green@{DOMAIN}"
MEMBERS = ["ann@example.net", "bob@example.net", "cat@example.org"]

LISTS_TOML = """
[[lists]]
name = "green"
display_name = "Green Team"
language = "en"  # English only, as this test reads it (the default is Welsh first)
facilitators = ["fac@example.net"]
archive_url = "https://archive.example.org/green"
delivery = "{delivery}"
"""


async def make_hub(tmp_path, delivery="personalised", extra=""):
    hub = await start_hub(tmp_path, extra=LISTS_TOML.format(delivery=delivery) + extra)
    async with hub.service.store.transaction() as tx:
        for addr in MEMBERS:
            await store.add_member(tx, "green", addr, addr.split("@")[0].title(), hub.clock.now())
    return hub


@pytest_asyncio.fixture
async def hub(tmp_path):
    h = await make_hub(tmp_path)
    yield h
    await stop_hub(h)


@pytest_asyncio.fixture
async def bulk_hub(tmp_path):
    h = await make_hub(tmp_path, delivery="bulk")
    yield h
    await stop_hub(h)


def post(sender="Ann <ann@example.net>", subject="Tea on Friday", body="Who is in?\n", **kw):
    return message(sender=sender, to=LIST, subject=subject, body=body, **kw)


async def test_member_post_reaches_other_members_with_list_headers_and_footer(hub):
    code, _ = await hub.send("ann@example.net", [LIST], post())
    assert code == 250
    await hub.sink.wait_count("bob@example.net")
    await hub.sink.wait_count("cat@example.org")
    await hub.idle()
    got = hub.sink.to("bob@example.net")[0]
    m = got.message
    assert m["List-Id"] == '"Green Team" <green.cop.example.org>'
    assert m["List-Post"] == f"<mailto:{LIST}>"
    assert m["List-Archive"] == "<https://archive.example.org/green>"
    assert m["Precedence"] == "list"
    assert m["Subject"] == "[Green Team] Tea on Friday"
    assert m["To"] == LIST
    text = m.get_content()
    assert "Who is in?" in text and f"conduct@{DOMAIN}" in text
    # Personalised: VERP envelope naming this member, and a leave token for them only.
    async with hub.service.store.read() as tx:
        secret = await secrets.get_or_create(tx, "lists")
    token = got.mail_from.split("+", 1)[1].split("@")[0]
    assert got.mail_from.startswith("green-bounces+")
    assert token_matches(secret, "verp", "green", "bob@example.net", token)
    leave = m["List-Unsubscribe"]
    assert leave.startswith("<mailto:green-leave+")  # the member's own leave address
    assert leave != hub.sink.to("cat@example.org")[0].message["List-Unsubscribe"]
    # The poster does not get their own post; nobody else got anything; no member is named.
    assert hub.sink.to("ann@example.net") == []
    assert {r.rcpt for r in hub.sink.received} == {"bob@example.net", "cat@example.org"}
    assert b"cat@example.org" not in got.raw


async def test_bulk_mode_one_transaction_plain_bounces_envelope(bulk_hub):
    hub = bulk_hub
    await hub.send("ann@example.net", [LIST], post())
    await hub.sink.wait_count("bob@example.net")
    await hub.sink.wait_count("cat@example.org")
    await hub.idle()
    got = hub.sink.to("bob@example.net")[0]
    assert got.mail_from == f"green-bounces@{DOMAIN}"
    assert got.message["List-Unsubscribe"] == "<mailto:green-leave@cop.example.org>"
    assert got.raw == hub.sink.to("cat@example.org")[0].raw


async def test_own_posts_on_sends_the_poster_a_copy(hub):
    async with hub.service.store.transaction() as tx:
        await store.set_own_posts(tx, "green", "ann@example.net", True)
    await hub.send("ann@example.net", [LIST], post())
    await hub.sink.wait_count("ann@example.net")


async def test_non_member_post_held_then_released(hub):
    await hub.send("zed@example.com", [LIST], post(sender="Zed <zed@example.com>"))
    await hub.sink.wait_count("zed@example.com")
    await hub.idle()
    notice = hub.sink.to("zed@example.com")[0]
    assert notice.mail_from == "" and "waiting for" in notice.message["Subject"]
    assert not any(r.rcpt in MEMBERS for r in hub.sink.received)
    async with hub.service.store.read() as tx:
        (held,) = await store.held_posts(tx, "green")
    assert held.sender == "zed@example.com" and held.reason == "non-member"
    cfg = find_list(hub.service.config.lists, "green")
    async with hub.service.store.transaction() as tx:
        ctx = context(hub, tx)
        assert await release_held(ctx, cfg, held.id, "fac@example.net")
        assert not await release_held(ctx, cfg, held.id, "fac@example.net")
    hub.service.delivery.wake.set()
    for addr in MEMBERS:
        await hub.sink.wait_count(addr)
    async with hub.service.store.read() as tx:
        got = await store.get_held(tx, held.id)
        archive = await store.archived_since(tx, "green", 0)
    assert got.state == "accepted" and got.handled_by == "fac@example.net"
    assert len(archive) == 1


async def test_looping_post_discarded(hub):
    raw = post(headers=f'List-Id: "Green Team" <green.{DOMAIN}>')
    await hub.send("ann@example.net", [LIST], raw)
    await hub.send("ann@example.net", [LIST], post(body="x\n", headers=f"X-Loop: mailhub@{DOMAIN}"))
    await hub.idle()
    assert hub.sink.received == []
    async with hub.service.store.read() as tx:
        assert await store.held_posts(tx, "green") == []
        assert await store.archived_since(tx, "green", 0) == []


async def test_banned_member_rejected_and_told(hub):
    from mailhub.store import bans

    async with hub.service.store.transaction() as tx:
        await bans.add(tx, address="ann@example.net", scope="green", starts_at=0, ends_at=None)
    await hub.send("ann@example.net", [LIST], post())
    await hub.sink.wait_count("ann@example.net")
    await hub.idle()
    assert "not sent" in hub.sink.to("ann@example.net")[0].message["Subject"]
    assert len(hub.sink.received) == 1


def context(hub, tx):
    """A handler's context inside a transaction of the running service (as a job gets)."""
    s = hub.service
    return Context(tx, s.config, s.clock, s.templates, AddressBook.from_config(s.config), "test")
