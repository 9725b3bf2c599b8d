"""A member's own page, end to end: signed in by the mailed link (the real Service, real
SQLite, real SMTP sink), the member changes how they get each list, the language of its
notices, and leaves with a confirm step; each change is in the store, in the action log,
and said on the page; a notice afterwards comes in the language chosen."""

from __future__ import annotations

import html
from pathlib import Path

import pytest
import pytest_asyncio

from mailhub.lists.archive_pages import feed_token
from mailhub.store import lists as store
from mailhub.store import membership as mstore
from mailhub.store import secrets
from tests.support.lists import start_list_hub, stop_hub
from tests.support.web_client import CSRF, Browser, sign_in

# Every test here runs on SQLite and on PostgreSQL (tests/conftest.py: backend).
pytestmark = pytest.mark.usefixtures("backend")

WEB = """
[web]
listen = "127.0.0.1:0"
base_url = "http://lists.example.org"
"""
LISTS = """
[[lists]]
name = "green"
display_name = "Green Team"
display_name_cy = "Tîm Gwyrdd"
language = "cy+en"

[[lists]]
name = "quiet"
display_name = "Quiet Room"
language = "en"
archive = "off"
"""
ANN = "ann@example.net"


async def make_hub(tmp_path: Path):
    members = {"green": [(ANN, "Ann"), ("bob@example.net", "Bob")], "quiet": [(ANN, "Ann")]}
    return await start_list_hub(tmp_path, members, extra=WEB + LISTS)


@pytest_asyncio.fixture
async def hub(tmp_path):
    h = await make_hub(tmp_path)
    yield h
    await stop_hub(h)


@pytest_asyncio.fixture
async def ann(hub):
    b = Browser(hub)
    await b.get("/me?lang=en")  # she reads English (the page; her mail is her own choice)
    await sign_in(hub, b, ANN)
    yield b
    await b.close()


async def member(hub, name: str = "green"):  # noqa: ANN001
    async with hub.service.store.read() as tx:
        return await store.get_member(tx, name, ANN)


async def save(b: Browser, name: str, **fields: str) -> tuple[int, str]:
    status, page, _ = await b.get("/me")
    form = {"csrf": CSRF.search(page).group(1), **fields}
    status, page, _ = await b.post(f"/me/{name}", form)
    return status, html.unescape(page)


async def test_anyone_not_signed_in_is_sent_to_sign_in(hub):
    b = Browser(hub)
    try:
        for path in ("/me", "/me/green/leave"):
            status, _, r = await b.get(path)
            assert status == 303 and r.headers["Location"] == "/signin?next=/me"
        status, _, r = await b.post("/me/green", {"delivery": "nomail"})
        assert status == 303
    finally:
        await b.close()
    assert (await member(hub)).delivery == "each"


async def test_the_page_lists_her_lists_with_their_forms(hub, ann):
    status, page, _ = await ann.get("/me")
    assert status == 200 and '<html lang="en">' in page
    assert "Green Team" in page and "Quiet Room" in page
    assert page.count('name="delivery" value="each" checked') == 2
    assert '<label for="own-green">' in page  # every control has its label
    async with hub.service.store.transaction() as tx:
        secret = await secrets.get_or_create(tx, "lists")
    token = feed_token(secret, "green", ANN)
    assert f"http://lists.example.org/lists/green/feed.atom?token={token}" in page
    assert "/lists/quiet/feed.atom" not in page  # no archive, no feed
    # The link works (the archive checks the token B's way: one rule, one place).
    async with ann.session.get(ann.url(f"/lists/green/feed.atom?token={token}")) as r:
        assert r.status == 200 and "atom" in r.headers["Content-Type"]
    # In Welsh, the Welsh name.
    _, page, _ = await ann.get("/me?lang=cy")
    assert "Tîm Gwyrdd" in page and "Fy rhestrau" in page


async def test_delivery_digest_then_each_then_nomail(hub, ann):
    status, page = await save(ann, "green", delivery="digest", language="")
    assert status == 200 and "Saved for Green Team:" in page
    assert "you will get a daily digest" in page
    assert (await member(hub)).delivery == "digest"
    _, page = await save(ann, "green", delivery="each", language="")
    assert "you will get every message" in page and (await member(hub)).delivery == "each"
    _, page = await save(ann, "green", delivery="nomail", language="")
    assert "you will get no messages" in page and (await member(hub)).delivery == "nomail"
    assert (await member(hub, "quiet")).delivery == "each"  # the other list untouched
    _, page = await save(ann, "green", delivery="nomail", language="")
    assert "There was nothing to change for Green Team." in page
    async with hub.service.store.read() as tx:
        log = [e for e in await mstore.action_log(tx, "green") if e.action == "settings"]
    assert [(e.actor, e.subject_address, e.detail) for e in log] == [
        (ANN, ANN, "web: digest"),
        (ANN, ANN, "web: each"),
        (ANN, ANN, "web: nomail"),
    ]


async def test_own_posts_on_and_off(hub, ann):
    _, page = await save(ann, "green", delivery="each", own_posts="on", language="")
    assert "you will get a copy of your own posts" in page and (await member(hub)).own_posts
    _, page = await save(ann, "green", delivery="each", language="")
    assert "you will not get a copy of your own posts" in page
    assert not (await member(hub)).own_posts


async def test_a_notice_comes_in_the_language_she_chose(hub, ann):
    async def help_answer() -> str:
        n = len(hub.sink.to(ANN))
        raw = f"From: {ANN}\nTo: green-request@cop.example.org\nSubject: help\nMessage-ID: <h{n}@example.net>\n\nhelp\n"
        code, _ = await hub.send(ANN, ["green-request@cop.example.org"], raw)
        assert code == 250
        got = await hub.sink.wait_count(ANN, n + 1)
        return got[n].message.get_content()

    body = await help_answer()
    assert "Helo" in body and "Hello" in body  # the list's own: Welsh, then English
    _, page = await save(ann, "green", delivery="each", language="en")
    assert "the language of messages to you: English" in page
    assert (await member(hub)).language == "en"
    body = await help_answer()
    assert "Hello" in body and "Helo" not in body
    _, page = await save(ann, "green", delivery="each", language="both")
    body = await help_answer()
    assert body.index("Helo") < body.index("Hello")  # both, in the list's order


async def test_leaving_asks_first_then_leaves_as_the_email_command_does(hub, ann):
    status, page, _ = await ann.get("/me/green/leave")
    assert status == 200 and "Leave Green Team?" in page and "<button" in page
    assert await member(hub) is not None  # asking changed nothing
    status, page, _ = await ann.post("/me/green/leave", {"csrf": CSRF.search(page).group(1)})
    page = html.unescape(page)
    assert status == 200 and "You have left Green Team." in page
    assert await member(hub) is None
    assert 'action="/me/green"' not in page and "Quiet Room" in page
    [goodbye] = [
        r
        for r in await hub.sink.wait_count(ANN, 2)
        if "left" in str(r.message["Subject"]) or "gadael" in str(r.message["Subject"])
    ]
    assert goodbye.message["Auto-Submitted"] == "auto-generated"
    async with hub.service.store.read() as tx:
        log = await mstore.action_log(tx, "green")
    assert any(e.action == "left" and e.detail == "web" for e in log)
    # Again: no longer a member, nothing happens, no second goodbye.
    status, page, _ = await ann.get("/me/green/leave")
    assert status == 404
    _, me, _ = await ann.get("/me")
    status, page, _ = await ann.post("/me/green/leave", {"csrf": CSRF.search(me).group(1)})
    assert "no longer a member" in html.unescape(page)
    await hub.idle()
    assert len(hub.sink.to(ANN)) == 2  # the link and the one goodbye


async def test_what_no_form_sends_is_refused_and_other_lists_are_not_hers(hub, ann):
    status, _ = await save(ann, "green", delivery="weekly")
    assert status == 400
    status, _ = await save(ann, "green", delivery="each", language="fr")
    assert status == 400
    status, page = await save(ann, "nosuch", delivery="nomail")
    assert status == 404 and "Not found" in page
    assert (await member(hub)).delivery == "each"


async def test_a_member_disabled_by_bounces_asks_for_every_message_again(hub, ann):
    async with hub.service.store.transaction() as tx:
        await store.disable_member(tx, "green", ANN, hub.clock.now())
    _, page, _ = await ann.get("/me")
    assert "messages failed to reach your address" in html.unescape(page)
    _, page = await save(ann, "green", delivery="each", language="")
    assert "you will get every message" in page
    assert (await member(hub)).status == "active"


async def test_the_goodbye_comes_in_the_language_she_chose(hub, ann):
    _, page = await save(ann, "green", delivery="each", language="en")
    assert (await member(hub)).language == "en"
    _, page, _ = await ann.get("/me/green/leave")
    status, page, _ = await ann.post("/me/green/leave", {"csrf": CSRF.search(page).group(1)})
    assert status == 200 and await member(hub) is None
    got = await hub.sink.wait_count(ANN, 2)
    body = got[-1].message.get_content()
    assert "Hello" in body and "Helo" not in body  # her choice, though she is gone
