"""The web archive, end to end: the real Service on both backends (a real SQLite file, a
real PostgreSQL database) and a real SMTP sink, posts sent by SMTP through the whole path
(intake, processing, distribution, archive), pages asked for over loopback HTTP by
aiohttp's real client, and a member signed in by the link mailed to them.

Each page type of a public list; who may read what (public, members, off); stored XSS
inert on every page; no member's address in any page, feed or mbox; held and rejected
posts never shown; attachments served as downloads of safe types; another list's ids not
found; private feed tokens; the month's mbox.
"""

from __future__ import annotations

import html
import re
import time
import tracemalloc
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import pytest_asyncio

from mailhub.lists.archive_pages import feed_token
from mailhub.store import lists as store
from mailhub.store import secrets
from tests.support.hub import DOMAIN, start_hub
from tests.support.lists import stop_hub
from tests.support.web_client import CSRF, token_of

WEB = """
[web]
listen = "127.0.0.1:0"
base_url = "http://lists.example.org"  # http: the test client sends cookies back over plain HTTP
"""
LISTS = """
[[lists]]
name = "open"
display_name = "Open Forum"
display_name_cy = "Fforwm Agored"
description = "Talk in the open."
description_cy = "Sgwrs agored."
archive = "public"

[[lists]]
name = "club"
display_name = "Club"
archive = "members"
addresses = "shown"
non_member_posts = "reject"

[[lists]]
name = "quiet"
display_name = "Quiet"
archive = "off"
"""
MEMBERS = {
    "open": [("ann@example.net", "Ann Jones"), ("bob@example.net", "Bob Bryn")],
    "club": [("ann@example.net", "Ann Jones"), ("cai@example.org", "Cai Coch")],
    "quiet": [("ann@example.net", "Ann Jones")],
}
ADDRESSES = sorted({a for people in MEMBERS.values() for a, _ in people} | {"dora@example.com"})
SECURITY = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}


def mail(
    sender: str,
    to: str,
    subject: str,
    body: str,
    *,
    subtype: str = "plain",
    mid: str,
    reply_to: str = "",
) -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{mid}@example.net>"
    if reply_to:
        msg["In-Reply-To"] = f"<{reply_to}@example.net>"
        msg["References"] = f"<{reply_to}@example.net>"
    msg.set_content(body, subtype=subtype)
    return msg.as_bytes()


def with_attachments() -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = "Ann Jones <ann@example.net>"
    msg["To"] = f"open@{DOMAIN}"
    msg["Subject"] = "Budget report"
    msg["Message-ID"] = "<budget@example.net>"
    msg.set_content("The report is attached.\n")
    msg.add_attachment(
        b"%PDF-1.4 report", maintype="application", subtype="pdf", filename="adroddiad ŵ.pdf"
    )
    msg.add_attachment(
        b"<script>alert(1)</script>", maintype="text", subtype="html", filename="page.html"
    )
    msg.add_attachment(
        b"\x89PNG\r\n\x1a\nnot really", maintype="image", subtype="svg+xml", filename="x.svg"
    )
    return msg.as_bytes()


HOSTILE_HTML = [
    "<p>one</p><script>alert('s1')</script>",
    '<p><img src=x onerror="alert(2)">two</p>',
    '<p><a href="javascript:alert(3)">three</a></p>',
    "<svg onload=alert(4)><circle r=1 /></svg><p>four</p>",
    '<iframe src="https://evil.example/"></iframe><p>five</p>',
    '<p><a href="data:text/html;base64,PHNjcmlwdD5hbGVydCg2KTwvc2NyaXB0Pg==">six</a>'
    '<img src="data:image/png;base64,AAAA" alt="six"></p>',
    '<p style="x:expression(alert(7))" onclick="alert(7)">seven <a href="https://ok.example/">ok</a></p>'
    '<img src="https://tracker.example/pixel.gif" alt="logo">',
]


async def post_all(hub) -> None:
    """The posts every test reads: sent by SMTP as members (and a non-member) send them."""
    o, c = f"open@{DOMAIN}", f"club@{DOMAIN}"
    posts = [
        ("ann@example.net", o, mail("Ann Jones <ann@example.net>", o, "Cyfarfod yn Llandudno",
         "Bydd y cyfarfod nesaf yn Llandudno ddydd Iau.\nCroeso i bawb.\n", mid="c1")),
        ("bob@example.net", o, mail("Bob Bryn <bob@example.net>", o, "Re: Cyfarfod yn Llandudno",
         "On Monday, Ann Jones <ann@example.net> wrote:\n> Bydd y cyfarfod nesaf\n\n"
         "Thanks! I will bring the maps. Write to me at bob@example.net.\n",
         mid="c2", reply_to="c1")),
        ("ann@example.net", o, with_attachments()),
        ("ann@example.net", o, mail('"<img src=x onerror=alert(9)>" <ann@example.net>', o,
         "<script>alert(10)</script> plans", "Text with </pre><script>alert(11)</script> inside.\n",
         mid="x-text")),
        *[
            ("bob@example.net", o, mail("Bob Bryn <bob@example.net>", o, f"Hostile {i}", h,
             subtype="html", mid=f"x-html-{i}"))
            for i, h in enumerate(HOSTILE_HTML)
        ],
        # Held (a non-member of open) and rejected (a non-member of club): never archived.
        ("dora@example.com", o, mail("Dora <dora@example.com>", o, "Heldsecret subject",
         "heldsecret body\n", mid="held")),
        ("dora@example.com", c, mail("Dora <dora@example.com>", c, "Rejectedsecret subject",
         "rejectedsecret body\n", mid="rejected")),
        ("cai@example.org", c, mail("Cai Coch <cai@example.org>", c, "Club news",
         "Members only: the club meets on Friday.\n", mid="club1")),
        ("ann@example.net", "quiet@" + DOMAIN, mail("Ann Jones <ann@example.net>",
         "quiet@" + DOMAIN, "Quiet words", "Nobody reads this on the web.\n", mid="q1")),
    ]  # fmt: skip
    for sender, rcpt, raw in posts:
        code, text = await hub.send(sender, [rcpt], raw)
        assert code == 250, text
    await hub.idle()


@pytest_asyncio.fixture
async def hub(tmp_path, backend):
    h = await start_hub(tmp_path, extra=WEB + LISTS)
    async with h.service.store.transaction() as tx:
        for name, people in MEMBERS.items():
            for address, display in people:
                await store.add_member(tx, name, address, display, h.clock.now())
    await post_all(h)
    yield h
    await stop_hub(h)


def client() -> aiohttp.ClientSession:
    # unsafe=True: keep cookies for 127.0.0.1 (aiohttp drops cookies of IP hosts otherwise).
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


@pytest_asyncio.fixture
async def http():
    async with client() as session:
        yield session


def base(hub) -> str:
    return f"http://127.0.0.1:{hub.service.web.port}"


async def get(http, hub, path: str, **kw) -> tuple[int, str, aiohttp.typedefs.LooseHeaders]:
    async with http.get(base(hub) + path, allow_redirects=False, **kw) as r:
        return r.status, await r.text(), r.headers


async def get_bytes(http, hub, path: str) -> tuple[int, bytes, aiohttp.typedefs.LooseHeaders]:
    async with http.get(base(hub) + path, allow_redirects=False) as r:
        return r.status, await r.read(), r.headers


async def sign_in(hub, http, address: str) -> None:
    """Sign in as a person does: the form, the link mailed to them, its page's button."""
    status, page, _ = await get(http, hub, "/signin")
    assert status == 200
    before = len(hub.sink.to(address))
    form = {"csrf": CSRF.search(page).group(1), "address": address}
    async with http.post(base(hub) + "/signin", data=form, allow_redirects=False) as r:
        assert r.status == 200
    token, query = token_of((await hub.sink.wait_count(address, before + 1))[before])
    status, page, _ = await get(http, hub, f"/signin/{token}{query}")
    assert status == 200
    form = {"csrf": CSRF.search(page).group(1)}
    async with http.post(f"{base(hub)}/signin/{token}", data=form, allow_redirects=False) as r:
        assert r.status == 303


def month_path(hub, list_name: str) -> str:
    when = datetime.fromtimestamp(hub.clock.now(), UTC)
    return f"/lists/{list_name}/{when.year:04d}/{when.month:02d}/"


def links(page: str, kind: str) -> list[str]:
    """The paths of the page's links to `kind` pages (thread, message), in order, once each."""
    return list(dict.fromkeys(re.findall(rf'href="(/lists/[^/"]+/{kind}/\d+)"', page)))


async def every_page(http, hub, list_name: str) -> dict[str, str]:
    """Every HTML page of a list's archive, by path: months, the month, each thread, each
    message (both views), a search with hits, in both languages."""
    pages: dict[str, str] = {}
    todo = ["/", f"/lists/{list_name}/", month_path(hub, list_name)]
    for lang in ("cy", "en"):
        for path in list(todo):
            status, page, _ = await get(http, hub, path, params={"lang": lang})
            assert status == 200, path
            pages[f"{path}?lang={lang}"] = page
    month = pages[f"{month_path(hub, list_name)}?lang=cy"]
    for thread in links(month, "thread"):
        status, page, _ = await get(http, hub, thread)
        assert status == 200
        pages[thread] = page
        for message in links(page, "message"):
            for view in ("", "?view=text"):
                status, page, _ = await get(http, hub, message + view)
                assert status == 200, message
                pages[message + view] = page
    for q in ("alert", "Llandudno", "maps", "script"):
        status, page, _ = await get(http, hub, f"/lists/{list_name}/search", params={"q": q})
        assert status == 200
        pages[f"search {q}"] = page
    return pages


def same_page(a: str, b: str) -> bool:
    """The same page but for the links back to where it was asked for (the language switch,
    sign-in's way back): its title and its main part."""

    def seen(page: str) -> tuple[str, str]:
        title = re.search(r"<title>.*?</title>", page, re.DOTALL)
        main = re.search(r"<main.*?</main>", page, re.DOTALL)
        assert title and main
        return title.group(), main.group()

    return seen(a) == seen(b)


def inert(page: str) -> None:
    low = page.lower()
    assert "<script" not in low
    assert not re.search(r"<[a-z][^>]*\son[a-z]+\s*=", low)
    assert "javascript:" not in low
    assert not re.search(r"<(iframe|svg|object|embed|img|math|form action=\"http)", low)
    assert "data:text" not in low and "data:image" not in low


# --- each page type of a public list --------------------------------------------------------


async def test_each_page_type_of_a_public_list(hub, http):
    # The lists this visitor may see: the public one only (Welsh first by default).
    status, page, headers = await get(http, hub, "/")
    assert status == 200
    for name, value in SECURITY.items():
        assert headers[name] == value
    assert "Fforwm Agored" in page and "Sgwrs agored." in page
    assert 'href="/lists/open/"' in page
    assert "/lists/club/" not in page and "/lists/quiet/" not in page

    # The months, with counts, a search box, and the feed.
    status, page, _ = await get(http, hub, "/lists/open/", params={"lang": "en"})
    assert status == 200 and "<h1>Open Forum</h1>" in page
    month = month_path(hub, "open")
    assert f'href="{month}"' in page
    assert "11 messages" in page  # 2 + 1 + 1 + 7 accepted posts; the held one is not counted
    assert '<label for="q">Search the archive</label>' in page
    assert 'href="/lists/open/feed.atom"' in page
    assert '<th scope="col">' in page and '<th scope="row">' in page
    # Valid HTML: every style sheet in the head, none in the body.
    assert page.count("<style") == 2 and page.rindex("<style") < page.index("</head>")

    # The month: threads, newest activity first, with messages, authors and last activity.
    status, page, _ = await get(http, hub, month, params={"lang": "cy"})
    assert status == 200
    threads = links(page, "thread")
    assert len(threads) == 10  # the reply joined its thread
    subjects = re.findall(r'href="/lists/open/thread/\d+">([^<]*)</a>', page)
    assert subjects[0] == "Hostile 6" and subjects[-1] == "Cyfarfod yn Llandudno"
    assert "Ann Jones drwy Fforwm Agored, Bob Bryn drwy Fforwm Agored" in page
    assert re.search(r'<time datetime="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ">', page)
    assert f'href="{month[:-1]}.mbox"' in page

    # A thread: its messages in order, each with author, date, text and its own page.
    [meeting] = [t for t in threads if t == threads[-1]]
    status, page, _ = await get(http, hub, meeting)
    assert status == 200
    assert "<h1>Cyfarfod yn Llandudno</h1>" in page
    assert page.index("Bydd y cyfarfod nesaf yn Llandudno") < page.index("I will bring the maps")
    assert page.count('<article class="post"') == 2
    first, reply = links(page, "message")

    # One message: its text, its thread, what it answers.
    status, page, _ = await get(http, hub, reply, params={"lang": "en"})
    assert status == 200
    assert "Bob Bryn via Open Forum" in page
    assert f'href="{meeting}"' in page and f'href="{first}"' in page
    assert "Write to me at bob@…" in page

    # Search, ranked, with highlighted snippets; the query kept in the box.
    status, page, _ = await get(http, hub, "/lists/open/search", params={"q": "llandudno"})
    assert status == 200
    assert 'value="llandudno"' in page
    assert "<mark>Llandudno</mark>" in page
    assert set(links(page, "message")) == {first, reply}

    # The feed and the month's mbox.
    status, body, headers = await get_bytes(http, hub, "/lists/open/feed.atom")
    assert status == 200 and headers["Content-Type"].startswith("application/atom+xml")
    root = ET.fromstring(body)
    assert len(root.findall("{http://www.w3.org/2005/Atom}entry")) == 11
    status, body, headers = await get_bytes(http, hub, month[:-1] + ".mbox")
    assert status == 200
    assert headers["Content-Type"] == "application/mbox"
    year_month = month.split("/")[3] + "-" + month.split("/")[4]
    assert headers["Content-Disposition"] == f'attachment; filename="open-{year_month}.mbox"'
    assert body.count(b"\nFrom mailhub ") + body.startswith(b"From mailhub ") == 11


async def test_the_page_language_switches_and_is_remembered(hub, http):
    status, page, _ = await get(http, hub, "/lists/open/")
    assert '<html lang="cy"' in page and "Misoedd" in page
    status, page, _ = await get(http, hub, "/lists/open/", params={"lang": "en"})
    assert '<html lang="en"' in page and "Months" in page
    status, page, _ = await get(http, hub, "/lists/open/")
    assert '<html lang="en"' in page  # remembered


# --- search ---------------------------------------------------------------------------------


async def test_search_nothing_found_too_long_and_paging(hub, http):
    status, page, _ = await get(http, hub, "/lists/open/search", params={"q": "zzyzx"})
    assert status == 200 and "Dim canlyniadau" in page
    status, page, _ = await get(
        http, hub, "/lists/open/search", params={"q": "zzyzx", "lang": "en"}
    )
    assert "Nothing found" in page
    status, page, _ = await get(http, hub, "/lists/open/search", params={"q": "x" * 501})
    assert status == 400 and "That search is too long" in page
    assert 'value="' + "x" * 501 + '"' in page  # kept, to shorten
    # 7 posts say "Hostile": one page of 20; a query of hostile words is just words.
    status, page, _ = await get(
        http, hub, "/lists/open/search", params={"q": 'hostile OR "NEAR(" ^*'}
    )
    assert status == 200
    status, page, _ = await get(http, hub, "/lists/open/search", params={"q": "hostile"})
    assert len(links(page, "message")) == 7 and 'rel="next"' not in page


async def test_results_come_in_pages_with_next_and_previous(hub, http):
    o = f"open@{DOMAIN}"
    for i in range(25):
        body = f"Cynllun {i}: y gyllideb eto.\n"
        raw = mail("Ann Jones <ann@example.net>", o, f"Cyllideb {i}", body, mid=f"page-{i}")
        code, text = await hub.send("ann@example.net", [o], raw)
        assert code == 250, text
    await hub.idle()
    q = {"q": "gyllideb", "lang": "en"}
    status, page, _ = await get(http, hub, "/lists/open/search", params=q)
    assert status == 200 and "25 results · Page 1 of 2" in page
    assert len(links(page, "message")) == 20
    nav = re.search(r'<nav aria-label="Result pages".*?</nav>', page, re.DOTALL).group()
    assert 'href="/lists/open/search?q=gyllideb&amp;form=1&amp;page=2" rel="next"' in nav
    assert 'rel="prev"' not in nav
    status, page, _ = await get(http, hub, "/lists/open/search", params={**q, "page": "2"})
    assert len(links(page, "message")) == 5 and '<ol class="results" start="21"' in page
    assert 'rel="prev"' in page and 'rel="next"' not in page
    # A page past the end (the last), or not a number (the first): never an error.
    for odd, shown in (("99", 5), ("-1", 20), ("x", 20), ("9" * 40, 5)):
        status, page, _ = await get(http, hub, "/lists/open/search", params={**q, "page": odd})
        assert status == 200 and len(links(page, "message")) == shown, odd


# --- who may read ---------------------------------------------------------------------------


PATHS = [
    "/lists/{l}/",
    "{month}",
    "{month_mbox}",
    "/lists/{l}/search?q=words",
    "/lists/{l}/thread/1",
    "/lists/{l}/message/1",
    "/lists/{l}/message/1/attachment/1",
]


def paths(hub, list_name: str) -> list[str]:
    month = month_path(hub, list_name)
    return [p.format(l=list_name, month=month, month_mbox=month[:-1] + ".mbox") for p in PATHS]


async def test_an_archive_that_is_off_is_not_found_for_anyone(hub, http):
    _, nowhere, _ = await get(http, hub, "/lists/nosuch/")
    for path in paths(hub, "quiet") + ["/lists/quiet/feed.atom"]:
        status, page, _ = await get(http, hub, path)
        assert status == 404, path
    await sign_in(hub, http, "ann@example.net")  # a member of quiet
    for path in paths(hub, "quiet"):
        status, page, _ = await get(http, hub, path)
        assert status == 404, path
        assert same_page(page, nowhere), path
    status, page, _ = await get(http, hub, "/")
    assert "/lists/quiet/" not in page


async def test_members_only_anonymous_goes_to_sign_in_a_non_member_sees_not_found(hub, http):
    for path in paths(hub, "club") + ["/lists/club/search?q=a%20b"]:
        status, _, headers = await get(http, hub, path)
        assert status == 303, path
        location = urlsplit(headers["Location"])
        assert location.path == "/signin"
        [back] = parse_qs(location.query)["next"]  # here again after signing in
        assert urlsplit(back).path == urlsplit(path).path
        assert parse_qs(urlsplit(back).query) == parse_qs(urlsplit(path).query)
    # Signed in, not a member of club: the very page a list that does not exist gets.
    await sign_in(hub, http, "bob@example.net")
    status, nowhere, _ = await get(http, hub, "/lists/nosuch/")
    assert status == 404
    for path in paths(hub, "club"):
        status, page, _ = await get(http, hub, path)
        assert status == 404, path
        assert same_page(page, nowhere), path
    status, page, _ = await get(http, hub, "/")
    assert "/lists/club/" not in page and "/lists/open/" in page


async def test_a_member_reads_a_members_only_archive(hub, http):
    await sign_in(hub, http, "ann@example.net")
    status, page, _ = await get(http, hub, "/")
    assert "/lists/club/" in page and "/lists/open/" in page and "/lists/quiet/" not in page
    status, page, _ = await get(http, hub, month_path(hub, "club"))
    assert status == 200 and "Club news" in page
    [thread] = links(page, "thread")
    status, page, _ = await get(http, hub, thread)
    assert "Cai Coch" in page and "the club meets on Friday" in page
    assert "cai@example.org" not in page  # a shown list: still names only on the web
    # No feed without a token (a feed reader cannot sign in).
    status, _, _ = await get(http, hub, "/lists/club/feed.atom")
    assert status == 404


async def test_an_id_of_another_list_is_not_found(hub, http):
    await sign_in(hub, http, "ann@example.net")
    status, page, _ = await get(http, hub, month_path(hub, "open"))
    open_threads = links(page, "thread")
    status, page, _ = await get(http, hub, open_threads[-1])
    open_message = links(page, "message")[0]
    status, page, _ = await get(http, hub, month_path(hub, "club"))
    [club_thread] = links(page, "thread")
    for path in (
        open_threads[-1].replace("/open/", "/club/"),
        open_message.replace("/open/", "/club/"),
        open_message.replace("/open/", "/club/") + "/attachment/1",
        club_thread.replace("/club/", "/open/"),
        "/lists/open/message/999999999999999999",
    ):
        status, _, _ = await get(http, hub, path)
        assert status == 404, path


# --- what is never shown --------------------------------------------------------------------


async def test_stored_xss_is_inert_on_every_page(hub, http):
    pages = await every_page(http, hub, "open")
    for path, page in pages.items():
        inert(page), path
    # The hostile subject and name are shown, as text.
    joined = "\n".join(pages.values())
    assert "&lt;script&gt;alert(10)&lt;/script&gt; plans" in joined
    assert "&lt;/pre&gt;&lt;script&gt;alert(11)&lt;/script&gt;" in joined
    # Remote images do not load: a link to follow, marked external.
    assert re.search(
        r'<a href="https://tracker.example/pixel.gif" rel="external nofollow noopener noreferrer">'
        r"(Dangos y ddelwedd|Show image): logo",
        joined,
    )


async def test_no_member_address_in_any_page_feed_or_mbox_of_a_hidden_list(hub, http):
    pages = await every_page(http, hub, "open")
    status, feed, _ = await get_bytes(http, hub, "/lists/open/feed.atom")
    month = month_path(hub, "open")
    status, mbox, _ = await get_bytes(http, hub, month[:-1] + ".mbox")
    everything = "\n".join(pages.values()).encode() + feed + mbox
    for address in ADDRESSES:
        for form in (address, address.replace("@", "%40"), html.escape(address)):
            assert form.encode() not in everything, form
    # Names, as the list's copies give them.
    assert b"Ann Jones drwy Fforwm Agored" in everything


async def test_a_member_of_a_hidden_list_gets_no_address_in_the_mbox_either(hub, http):
    await sign_in(hub, http, "bob@example.net")
    month = month_path(hub, "open")
    status, mbox, _ = await get_bytes(http, hub, month[:-1] + ".mbox")
    assert status == 200
    for address in ADDRESSES:
        assert address.encode() not in mbox


async def test_held_and_rejected_posts_never_appear(hub, http):
    # They were sent (the fixture's SMTP answers were 250) and held or refused.
    async with hub.service.store.read() as tx:
        assert len(await store.held_posts(tx, "open")) == 1
    pages = await every_page(http, hub, "open")
    await sign_in(hub, http, "ann@example.net")
    pages |= await every_page(http, hub, "club")
    feed = (await get_bytes(http, hub, "/lists/open/feed.atom"))[1]
    mboxes = b""
    for lst in ("open", "club"):
        mboxes += (await get_bytes(http, hub, month_path(hub, lst)[:-1] + ".mbox"))[1]
    everything = ("\n".join(pages.values())).lower().encode() + feed.lower() + mboxes.lower()
    for word in ("heldsecret", "rejectedsecret"):
        assert word.encode() not in everything, word
        for lst in ("open", "club"):
            status, page, _ = await get(http, hub, f"/lists/{lst}/search", params={"q": word})
            assert status == 200 and links(page, "message") == []
            assert "Dim canlyniadau" in page or "Nothing found" in page


# --- attachments ----------------------------------------------------------------------------


async def test_attachments_are_downloads_of_safe_types(hub, http):
    status, page, _ = await get(http, hub, "/lists/open/search", params={"q": "report"})
    [message] = links(page, "message")
    status, page, _ = await get(http, hub, message, params={"lang": "en"})
    assert '<h2 id="attachments">Attachments</h2>' in page
    assert "adroddiad ŵ.pdf" in page
    answers = {}
    for n in (1, 2, 3):
        async with http.get(f"{base(hub)}{message}/attachment/{n}") as r:
            assert r.status == 200
            answers[n] = (
                r.headers["Content-Type"],
                r.headers["Content-Disposition"],
                await r.read(),
            )
            assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert answers[1] == (
        "application/pdf",
        "attachment; filename=\"adroddiad _.pdf\"; filename*=UTF-8''adroddiad%20%C5%B5.pdf",
        b"%PDF-1.4 report",
    )
    assert answers[2][0] == "application/octet-stream"  # text/html: never served as such
    assert answers[2][1].startswith('attachment; filename="page.html"')
    assert answers[3][0] == "application/octet-stream"  # svg: never
    status, _, _ = await get(http, hub, f"{message}/attachment/4")
    assert status == 404


# --- feed tokens ----------------------------------------------------------------------------


async def secret(hub) -> bytes:
    async with hub.service.store.transaction() as tx:
        return await secrets.get_or_create(tx, "lists")


async def test_a_members_private_feed_token_and_nothing_else(hub, http):
    key = await secret(hub)
    good = feed_token(key, "club", "ann@example.net")
    status, body, headers = await get_bytes(http, hub, f"/lists/club/feed.atom?token={good}")
    assert status == 200 and headers["Content-Type"].startswith("application/atom+xml")
    assert b"Club news" in body and b"cai@example.org" not in body
    for forged in (
        good[:-1] + ("a" if good[-1] != "a" else "b"),
        feed_token(key, "club", "bob@example.net"),  # not a member of club
        feed_token(key, "open", "ann@example.net"),  # another list's
        feed_token(b"x" * 32, "club", "ann@example.net"),  # another key
        "",
        "../../x",
    ):
        status, _, _ = await get_bytes(http, hub, f"/lists/club/feed.atom?token={forged}")
        assert status == 404, forged
    # Good only while they are a member.
    async with hub.service.store.transaction() as tx:
        await store.remove_member(tx, "club", "ann@example.net")
    status, _, _ = await get_bytes(http, hub, f"/lists/club/feed.atom?token={good}")
    assert status == 404


# --- the month as mbox, streamed ------------------------------------------------------------


@pytest.mark.parametrize("posts", [2000])
async def test_the_mbox_of_a_big_month_streams_in_bounded_memory(tmp_path, http, posts):
    h = await start_hub(tmp_path, extra=WEB + LISTS)
    try:
        body = ("Line of a long post, more words to fill it out.\n" * 100).encode()
        await seed(h, "open", posts, body)
        month = month_path(h, "open")
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            start = time.perf_counter()
            size = entries = 0
            async with http.get(base(h) + month[:-1] + ".mbox") as r:
                assert r.status == 200
                assert "Content-Length" not in r.headers  # streamed
                async for chunk in r.content.iter_chunked(65536):
                    size += len(chunk)
                    entries += chunk.count(b"\nFrom mailhub ")
            elapsed = time.perf_counter() - start
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert size > posts * len(body)
        # The whole month is > 10 MB; server and client together held far less at once.
        assert peak < size / 5, (peak, size)
        print(
            f"mbox of {posts} posts: {size / 1e6:.1f} MB in {elapsed:.2f} s, peak {peak / 1e6:.1f} MB"
        )
    finally:
        await stop_hub(h)


async def seed(hub, list_name: str, posts: int, body: bytes) -> None:
    """`posts` posts in the raw archive (what the mbox reads), as distribution archives them."""
    now = hub.clock.now()
    async with hub.service.store.transaction() as tx:
        for i in range(posts):
            raw = (
                f"From: Poster {i} <poster{i}@example.net>\r\nTo: {list_name}@{DOMAIN}\r\n"
                f"Subject: post {i}\r\nMessage-ID: <seed-{i}@example.net>\r\n\r\n"
            ).encode() + body.replace(b"\n", b"\r\n")
            await store.archive_post(
                tx,
                list_name=list_name,
                message_id=f"<seed-{i}@example.net>",
                thread_id=f"<seed-{i}@example.net>",
                sender=f"poster{i}@example.net",
                subject=f"post {i}",
                raw=raw,
                now=now,
            )


async def test_head_answers_like_get_without_a_body(hub, http):
    month = month_path(hub, "open")
    for path in ("/lists/open/", month, month[:-1] + ".mbox", "/lists/open/feed.atom"):
        async with http.head(base(hub) + path, allow_redirects=False) as r:
            assert r.status == 200, path
            assert await r.read() == b""
    async with http.get(base(hub) + "/lists/open", allow_redirects=False) as r:
        assert r.status == 301 and r.headers["Location"] == "/lists/open/"


async def test_a_welsh_page_finds_mutated_forms_and_the_box_says_so(hub, http):
    o = f"open@{DOMAIN}"
    for n, body in enumerate(("Cyfarfod yng Nghaerdydd ddydd Iau.\n", "Caerdydd yw hi.\n")):
        raw = mail("Ann Jones <ann@example.net>", o, f"Dinas {n}", body, mid=f"mut-{n}")
        code, text = await hub.send("ann@example.net", [o], raw)
        assert code == 250, text
    await hub.idle()
    path = "/lists/open/search"
    # Welsh page: mutated forms by default, said on the page, the box ticked.
    _, page, _ = await get(http, hub, path, params={"q": "caerdydd", "lang": "cy"})
    assert len(links(page, "message")) == 2 and "<mark>Nghaerdydd</mark>" in page
    assert "Chwiliwyd hefyd am: " in page and "nghaerdydd" in page
    assert re.search(r'id="mutations" name="mutations" value="1" checked>', page)
    # English page: as written, unless the box is ticked.
    _, page, _ = await get(http, hub, path, params={"q": "caerdydd", "lang": "en"})
    assert len(links(page, "message")) == 1 and "Also searched for" not in page
    assert re.search(r'id="mutations" name="mutations" value="1">', page)
    ticked = {"q": "caerdydd", "lang": "en", "form": "1", "mutations": "1"}
    _, page, _ = await get(http, hub, path, params=ticked)
    assert len(links(page, "message")) == 2 and "Also searched for: " in page
    # Unticked on a Welsh page: as written.
    unticked = {"q": "caerdydd", "lang": "cy", "form": "1"}
    _, page, _ = await get(http, hub, path, params=unticked)
    assert len(links(page, "message")) == 1


async def test_one_client_searching_too_often_is_asked_to_wait(tmp_path, http):
    limited = WEB + "searches_per_minute = 3\n"
    h = await start_hub(tmp_path, extra=limited + LISTS)
    try:
        for _ in range(3):
            status, _, _ = await get(http, h, "/lists/open/search", params={"q": "caffi"})
            assert status == 200
        status, page, headers = await get(
            http, h, "/lists/open/search", params={"q": "caffi", "lang": "en"}
        )
        assert status == 429 and headers["Retry-After"] == "60"
        assert "Too many requests" in page
        # Other pages are not counted.
        status, _, _ = await get(http, h, "/lists/open/")
        assert status == 200
    finally:
        await stop_hub(h)
