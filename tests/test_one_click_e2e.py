"""RFC 8058 one-click unsubscribe, end to end: the real Service (a real SQLite file, a real
SMTP sink) serving HTTP on loopback, asked by aiohttp's real client.

A GET (or HEAD) shows a page and changes nothing; a POST of `List-Unsubscribe=One-Click`
leaves at once and the goodbye reaches the sink; a token that is not a member's own gets
one 404 page, whatever is wrong with it.
"""

from __future__ import annotations

import html
import logging
import shutil
import socket
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from mailhub.config import default_templates_dir
from mailhub.lists.leaving import one_click_token
from mailhub.lists.verp import LEAVE, member_token
from mailhub.processing import POLL_SECONDS
from mailhub.service import StartError
from mailhub.store import lists as store
from mailhub.store import secrets
from mailhub.web.server import MAX_BODY
from tests.support.hub import start_hub
from tests.support.lists import stop_hub

# Every test here runs on SQLite and on PostgreSQL (tests/conftest.py: backend).
pytestmark = pytest.mark.usefixtures("backend")

WEB = """
[web]
listen = "127.0.0.1:{port}"
base_url = "https://lists.example.org"
"""
LISTS = """
[[lists]]
name = "green"
display_name = "Green Team"
language = "en"  # English only, as this test reads it (the default is Welsh first)

[[lists]]
name = "gwyrdd"
display_name = "Green Group"
display_name_cy = "Tîm Gwyrdd"
language = "cy+en"

[[lists]]
name = "tea.room"
display_name = "Tea <Room>"
"""
MEMBERS = {
    "green": ["ann@example.net", "bob@example.net"],
    "gwyrdd": ["bob@example.net", "cai@example.org"],
    "tea.room": ["ann@example.net"],
}
ONE_CLICK = {"List-Unsubscribe": "One-Click"}
SECURITY = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


async def make_hub(tmp_path: Path, *, port: int = 0, top: str = ""):
    hub = await start_hub(tmp_path, extra=WEB.format(port=port) + LISTS, top=top)
    async with hub.service.store.transaction() as tx:
        for name, addresses in MEMBERS.items():
            for addr in addresses:
                await store.add_member(tx, name, addr, "", hub.clock.now())
    return hub


@pytest_asyncio.fixture
async def hub(tmp_path):
    h = await make_hub(tmp_path)
    yield h
    await stop_hub(h)


@pytest_asyncio.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


def url(hub, token: str) -> str:
    return f"http://127.0.0.1:{hub.service.web.port}/u/{token}"


async def token(hub, list_name: str, address: str) -> str:
    """The member's one-click token, made as the list mail's link makes it (in a write
    transaction, as list mail does: the service secret is created on first use)."""
    async with hub.service.store.transaction() as tx:
        secret = await secrets.get_or_create(tx, "lists")
    return one_click_token(secret, list_name, address)


async def is_member(hub, list_name: str, address: str) -> bool:
    async with hub.service.store.read() as tx:
        return await store.get_member(tx, list_name, address) is not None


async def members(hub) -> dict[str, list[str]]:
    async with hub.service.store.read() as tx:
        return {n: [m.address for m in await store.list_members(tx, n)] for n in MEMBERS}


async def test_a_one_click_post_leaves_at_once_and_the_goodbye_is_bilingual(hub, http, caplog):
    caplog.set_level(logging.INFO, logger="mailhub")
    t = await token(hub, "gwyrdd", "cai@example.org")
    async with http.post(url(hub, t), data=ONE_CLICK) as r:
        assert r.status == 200
        page = await r.text()
    assert "Rydych wedi gadael" in page and "You have left" in page
    assert not await is_member(hub, "gwyrdd", "cai@example.org")
    # Promptly: the delivery worker is woken, not left to its next poll (POLL_SECONDS).
    [goodbye] = await hub.sink.wait_count("cai@example.org", timeout=POLL_SECONDS / 2)
    msg = goodbye.message
    assert goodbye.mail_from == ""
    assert msg["Subject"] == "Rydych wedi gadael y rhestr Tîm Gwyrdd / You have left Green Group"
    body = msg.get_content()
    assert body.index("Rydych wedi gadael y rhestr") < body.index("You have left the")
    # Logged with the list and the member, never the token.
    assert "web.unsubscribe list=gwyrdd member=cai@example.org outcome=left" in caplog.text
    assert t.split(".")[1] not in caplog.text
    # Only cai left, only gwyrdd.
    assert await members(hub) == {**MEMBERS, "gwyrdd": ["bob@example.net"]}


async def test_multipart_form_data_as_rfc_8058_prefers_it_leaves_too(hub, http):
    with aiohttp.MultipartWriter("form-data") as form:
        part = form.append("One-Click")
        part.set_content_disposition("form-data", name="List-Unsubscribe")
    t = await token(hub, "green", "bob@example.net")
    async with http.post(url(hub, t), data=form) as r:
        assert r.status == 200
    assert not await is_member(hub, "green", "bob@example.net")
    await hub.sink.wait_count("bob@example.net")


async def test_get_and_head_show_one_button_and_leave_nobody(hub, http):
    t = await token(hub, "green", "ann@example.net")
    async with http.get(url(hub, t)) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/html")
        for name, value in SECURITY.items():
            assert r.headers[name] == value
        page = await r.text()
    assert page.count("<form") == 1 and '<form method="post">' in page
    assert '<input type="hidden" name="List-Unsubscribe" value="One-Click">' in page
    assert page.count("<button") == 1
    assert "Green Team" in page and "green@cop.example.org" in page
    assert '<span lang="cy">Dad-danysgrifio</span>' in page
    assert '<span lang="en">Unsubscribe</span>' in page
    async with http.head(url(hub, t)) as r:
        assert r.status == 200
    # Link scanners follow GETs: the member is still one, and was sent nothing.
    assert await is_member(hub, "green", "ann@example.net")
    await hub.idle()
    assert hub.sink.to("ann@example.net") == []


async def test_the_welsh_half_comes_first_for_a_cy_en_list(hub, http):
    async with http.get(url(hub, await token(hub, "gwyrdd", "bob@example.net"))) as r:
        page = await r.text()
    assert '<html lang="cy">' in page
    assert 0 <= page.index('<section lang="cy">') < page.index('<section lang="en">')
    # Each half names the list in its own language.
    assert page.index("Gadael “Tîm Gwyrdd”?") < page.index("Leave “Green Group”?")
    assert "Dad-danysgrifio</span> / <span" in page
    # An English list's page is bilingual too, English first.
    async with http.get(url(hub, await token(hub, "green", "bob@example.net"))) as r:
        page = await r.text()
    assert page.index('<section lang="en">') < page.index('<section lang="cy">')


async def test_the_display_name_is_escaped_and_a_dotted_list_name_works(hub, http):
    async with http.get(url(hub, await token(hub, "tea.room", "ann@example.net"))) as r:
        assert r.status == 200
        page = await r.text()
    assert "Tea &lt;Room&gt;" in page and "<Room>" not in page


async def test_tokens_that_are_not_a_members_own_get_one_404_and_nobody_leaves(hub, http):
    bobs_gwyrdd_mac = (await token(hub, "gwyrdd", "bob@example.net")).split(".")[1]
    wrong = [
        "green." + "a" * 32,  # right list, a MAC nobody has
        "green." + bobs_gwyrdd_mac,  # a member's MAC for another list
        "nosuchlist." + bobs_gwyrdd_mac,  # a list that does not exist
        "green",  # no MAC
        "green." + "a" * 31,  # a MAC of the wrong length
        "x" * 201,  # too long to look at
        (await token(hub, "green", "zed@example.net")),  # a real MAC, of no member
    ]
    pages = set()
    for t in wrong:
        for method in ("GET", "POST"):
            async with http.request(method, url(hub, t), data=ONE_CLICK) as r:
                assert r.status == 404, (t, method)
                assert r.headers["Cache-Control"] == "no-store"
                pages.add(await r.text())
    # The same page whatever was wrong: it tells nobody which lists exist.
    [page] = pages
    assert '<section lang="cy">' in page and "not recognised" in page
    assert await members(hub) == MEMBERS
    await hub.idle()
    assert hub.sink.received == []


async def test_a_token_for_one_list_cannot_unsubscribe_from_another(hub, http):
    green = await token(hub, "green", "bob@example.net")
    async with http.post(url(hub, "gwyrdd." + green.split(".")[1]), data=ONE_CLICK) as r:
        assert r.status == 404
    assert await is_member(hub, "gwyrdd", "bob@example.net")
    async with http.post(url(hub, green), data=ONE_CLICK) as r:
        assert r.status == 200
    assert not await is_member(hub, "green", "bob@example.net")
    assert await is_member(hub, "gwyrdd", "bob@example.net")


async def test_a_replayed_post_shows_the_same_page_and_sends_no_second_goodbye(hub, http):
    t = await token(hub, "green", "ann@example.net")
    pages = []
    for _ in range(3):
        async with http.post(url(hub, t), data=ONE_CLICK) as r:
            assert r.status == 200
            pages.append(await r.text())
    assert pages[0] == pages[1] == pages[2]
    await hub.sink.wait_count("ann@example.net")
    await hub.idle()
    assert len(hub.sink.to("ann@example.net")) == 1
    # The link, opened again, says it is done and offers no button.
    async with http.get(url(hub, t)) as r:
        assert r.status == 200
        page = await r.text()
    assert "You have left" in page and "<form" not in page
    # Case does not matter (a token copied by hand, a client that upper-cases).
    async with http.post(url(hub, t.upper()), data=ONE_CLICK) as r:
        assert r.status == 200


async def test_refusals_bounded_bodies_and_methods(hub, http):
    t = await token(hub, "green", "ann@example.net")
    async with http.post(
        url(hub, t), data={"List-Unsubscribe": "One-Click", "x": "y" * (MAX_BODY + 1)}
    ) as r:
        assert r.status == 413
        assert "Cais rhy fawr" in await r.text()
    async with http.post(url(hub, t), data={"unsubscribe": "yes"}) as r:
        assert r.status == 400
    async with http.post(url(hub, t)) as r:
        assert r.status == 400
    async with http.put(url(hub, t), data=ONE_CLICK) as r:
        assert r.status == 405
        assert r.headers["Allow"] == "GET, HEAD, POST"
    async with http.delete(url(hub, t)) as r:
        assert r.status == 405
    async with http.get(f"http://127.0.0.1:{hub.service.web.port}/elsewhere") as r:
        assert r.status == 404
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Server"] == "mailhub"
    assert await is_member(hub, "green", "ann@example.net")
    await hub.idle()
    assert hub.sink.received == []


async def test_an_internal_error_is_a_500_page_and_one_log_line(tmp_path, http, caplog):
    """Own templates (a real config feature) missing a page: the request fails inside."""
    templates = tmp_path / "templates"
    shutil.copytree(default_templates_dir(), templates)
    (templates / "en" / "web" / "left.html").unlink()
    hub = await make_hub(tmp_path, top=f'templates = "{templates}"\n')
    try:
        caplog.set_level(logging.INFO, logger="mailhub")
        t = await token(hub, "green", "ann@example.net")
        async with http.post(url(hub, t), data=ONE_CLICK) as r:
            assert r.status == 500
            page = html.unescape(await r.text())
        assert "Aeth rhywbeth o'i le" in page and "Something went wrong" in page
        assert "Traceback" not in page and "left.html" not in page
        [line] = [r for r in caplog.records if r.getMessage().startswith("web ")]
        assert line.getMessage() == (
            "web method=POST route=/u/{token} outcome=error error=TemplateNotFound"
        )
        assert line.exc_info is None
        # The page is made before anything changes: ann is still a member, mailed nothing.
        assert await is_member(hub, "green", "ann@example.net")
        await hub.idle()
        assert hub.sink.received == []
    finally:
        await stop_hub(hub)


async def test_without_even_the_error_page_a_fixed_page_and_still_no_traceback(
    tmp_path, http, caplog
):
    templates = tmp_path / "templates"
    shutil.copytree(default_templates_dir(), templates)
    for name in ("left.html", "problem.html"):
        (templates / "en" / "web" / name).unlink()
    hub = await make_hub(tmp_path, top=f'templates = "{templates}"\n')
    try:
        caplog.set_level(logging.INFO, logger="mailhub")
        t = await token(hub, "green", "ann@example.net")
        async with http.post(url(hub, t), data=ONE_CLICK) as r:
            assert r.status == 500
            assert r.headers["Cache-Control"] == "no-store"
            page = await r.text()
        assert '<p lang="cy">Ni allem ateb y cais hwn.</p>' in page
        assert "Traceback" not in page and "html" in page
        lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("web ")]
        assert lines == [
            "web method=POST route=/u/{token} outcome=error error=TemplateNotFound",
            "web page=problem outcome=error error=TemplateNotFound",
        ]
        assert all(r.exc_info is None for r in caplog.records)
        assert await is_member(hub, "green", "ann@example.net")
    finally:
        await stop_hub(hub)


async def test_a_taken_http_port_stops_the_start_with_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StartError) as caught:
            await make_hub(tmp_path, port=port)
    assert str(caught.value) == (
        f"cannot listen on 127.0.0.1:{port} for HTTP (Address already in use); "
        "change web.listen or stop what is using it"
    )


async def test_stopping_the_service_stops_the_web_side(tmp_path, http):
    hub = await make_hub(tmp_path)
    port = hub.service.web.port
    await stop_hub(hub)
    with pytest.raises(aiohttp.ClientConnectionError):
        async with http.get(f"http://127.0.0.1:{port}/u/x"):
            pass


async def test_no_web_table_no_http(tmp_path):
    hub = await start_hub(tmp_path, extra=LISTS)
    try:
        assert hub.service.web is None
    finally:
        await stop_hub(hub)


def test_the_token_is_the_members_leave_token_behind_the_list_name():
    secret = b"k" * 32
    t = one_click_token(secret, "Tea.Room", "Ann@Example.net")
    assert t == "tea.room." + member_token(secret, LEAVE, "tea.room", "ann@example.net")
