"""The web archive of the lists: `/` (the lists a visitor may read), `/lists/LIST/` (its
months), `/lists/LIST/YYYY/MM/` (a month's threads), `/lists/LIST/thread/ID`,
`/lists/LIST/message/ID` (and its attachments), `/lists/LIST/search?q=…`,
`/lists/LIST/feed.atom` and `/lists/LIST/YYYY/MM.mbox`.

Who may read is one pure decision (`access`): `archive = "off"` is not found, `public` is
anyone's, `members` is its signed-in members' (an anonymous visitor is sent to sign in; a
signed-in non-member gets the very page a list that does not exist gets, so nobody learns
which members-only lists there are). Every page is read in one read transaction behind the
gate; the mbox is streamed in batches, each its own transaction, so neither a month of
thousands of posts nor a slow reader holds memory or the database.

What a page shows of a post (no script, no remote image, no address) is decided in
archive_render; the pages only lay it out.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any
from urllib.parse import quote

from aiohttp import web
from markupsafe import Markup

from mailhub import dates, logs
from mailhub.content import needs_bounded_read, run_bounded
from mailhub.lists import archive_render as show
from mailhub.lists import feed as atom
from mailhub.lists.config import ListConfig, find_list
from mailhub.lists.headers import leading_language
from mailhub.lists.search_query import MAX_QUERY_CHARS, parse_query
from mailhub.lists.verp import find_member, member_token
from mailhub.store import archive as archived
from mailhub.store import lists as list_store
from mailhub.store import secrets
from mailhub.store.leaving import member_addresses
from mailhub.web.clients import client_id
from mailhub.web.layout import render, signin_redirect, url
from mailhub.web.site import Site
from mailhub.web.visitor import Visitor, visitor

FEED = "feed"  # the purpose of a member's private feed token (verp.member_token)
PAGE_SIZE = 20  # search results a page
MAX_QUERY = MAX_QUERY_CHARS  # characters in a search; past that, a polite refusal
MAX_PAGE = 50  # search pages one can go to (1,000 results: past that, refine the query)
FEED_ENTRIES = 20
MBOX_BATCH = 50  # posts read per transaction while streaming a month
MBOX_TYPE = "application/mbox"
# Path parts as the routes take them: ids that fit a 64-bit integer, a four-digit year.
ID = r"{id:\d{1,18}}"
YEAR_MONTH = r"{year:\d{4}}/{month:\d{2}}"


class Access(Enum):
    READ = "read"
    SIGN_IN = "sign in"  # a members-only archive and nobody signed in: 303 to /signin
    NOT_FOUND = "not found"


def access(archive: str, signed_in: bool, member: bool) -> Access:
    """Who may read a list's archive (pure). A signed-in visitor who is not a member of a
    members-only list is told it is not found, as for a list that does not exist."""
    if archive == "public":
        return Access.READ
    if archive == "members":
        if not signed_in:
            return Access.SIGN_IN
        return Access.READ if member else Access.NOT_FOUND
    return Access.NOT_FOUND


def feed_token(secret: bytes, list_name: str, address: str) -> str:
    """A member's private feed token for `list_name` (`feed.atom?token=…`): an HMAC over
    (list, address) with the lists secret, so it needs no row, names no address, and is
    good for exactly as long as the address is a member."""
    return member_token(secret, FEED, list_name, address)


@dataclass(frozen=True)
class Reader:
    """A visitor allowed to read one list's archive."""

    visitor: Visitor
    cfg: ListConfig
    member: bool  # a member of this list (may download its months whatever it is)
    # A page names the same few authors over and over (a month's threads: thousands of
    # names), and naming one (`via`) costs ~8 µs: each is worked out once a page.
    names: dict[str, str] = field(default_factory=dict)

    def author(self, name: str) -> str:
        shown = self.names.get(name)
        if shown is None:
            shown = self.names[name] = show.shown_author(name, self.cfg, self.visitor.lang)
        return shown


def register(app: web.Application, site: Site) -> None:
    def route(path: str, handler: Any) -> None:
        async def run(request: web.Request) -> web.StreamResponse:
            return await handler(site, request)

        app.router.add_get(path, run)

    route("/", lists_page)
    route("/lists/{list}", to_list_page)
    route("/lists/{list}/", months_page)
    route(f"/lists/{{list}}/{YEAR_MONTH}/", month_page)
    route(f"/lists/{{list}}/{YEAR_MONTH}.mbox", month_mbox)
    route(f"/lists/{{list}}/thread/{ID}", thread_page)
    route(f"/lists/{{list}}/message/{ID}", message_page)
    route(f"/lists/{{list}}/message/{ID}/attachment/{{n:\\d{{1,4}}}}", attachment_file)
    route("/lists/{list}/search", search_page)
    route("/lists/{list}/feed.atom", feed)


# --- who reads -----------------------------------------------------------------------------


def _base(site: Site) -> str:
    web_config = site.runtime.config.web
    return web_config.base_url if web_config is not None else ""


async def _is_member(site: Site, list_name: str, address: str | None) -> bool:
    if address is None:
        return False
    async with site.gate(), site.store.read() as tx:
        return await list_store.get_member(tx, list_name, address) is not None


async def reader(site: Site, request: web.Request) -> Reader:
    """The visitor, if they may read the list the path names; else the answer they get."""
    who = await visitor(site, request)
    cfg = find_list(site.runtime.config.lists, request.match_info["list"])
    if cfg is None or cfg.archive == "off":
        raise web.HTTPNotFound()
    member = await _is_member(site, cfg.name, who.address)
    decision = access(cfg.archive, who.address is not None, member)
    if decision is Access.SIGN_IN:
        raise signin_redirect(site, request)
    if decision is Access.NOT_FOUND:
        raise web.HTTPNotFound()
    return Reader(who, cfg, member)


def _page(
    site: Site, request: web.Request, r: Reader, template: str, **variables: Any
) -> web.Response:
    lang = r.visitor.lang
    return render(
        site,
        request,
        r.visitor,
        f"archive/{template}",
        list=_list_names(r.cfg, lang),
        list_path=f"/lists/{r.cfg.name}/",
        **variables,
    )


def _list_names(cfg: ListConfig, lang: str) -> dict[str, str]:
    return {
        "name": cfg.name,
        "title": show.list_title(cfg, lang),
        "description": show.list_description(cfg, lang),
        "archive": cfg.archive,
    }


def month_name(year: int, month: int, lang: str) -> str:
    return f"{dates.MONTHS[lang][month - 1]} {year}"


def _month(request: web.Request) -> tuple[int, int]:
    year, month = int(request.match_info["year"]), int(request.match_info["month"])
    if not 1 <= month <= 12 or year < 1970:
        raise web.HTTPNotFound()
    return year, month


def _number(request: web.Request, key: str = "id") -> int:
    return int(request.match_info[key])


# --- pages ---------------------------------------------------------------------------------


async def lists_page(site: Site, request: web.Request) -> web.Response:
    who = await visitor(site, request)
    shown = []
    for cfg in site.runtime.config.lists:
        if cfg.archive == "public" or (
            cfg.archive == "members" and await _is_member(site, cfg.name, who.address)
        ):
            shown.append(_list_names(cfg, who.lang))
    has_members_only = any(c.archive == "members" for c in site.runtime.config.lists)
    return render(
        site,
        request,
        who,
        "archive/lists",
        lists=shown,
        sign_in_hint=who.address is None and has_members_only,
    )


async def to_list_page(site: Site, request: web.Request) -> web.Response:
    raise web.HTTPMovedPermanently(url(site, request.path + "/"))


async def months_page(site: Site, request: web.Request) -> web.Response:
    r = await reader(site, request)
    async with site.gate(), site.store.read() as tx:
        months = await archived.months(tx, r.cfg.name)
    shown = [
        {
            "path": f"/lists/{r.cfg.name}/{m.year:04d}/{m.month:02d}/",
            "name": month_name(m.year, m.month, r.visitor.lang),
            "datetime": f"{m.year:04d}-{m.month:02d}",
            "messages": m.messages,
        }
        for m in months
    ]
    return _page(site, request, r, "months", months=shown, feed=r.cfg.archive == "public")


def _thread_row(t: archived.ThreadSummary, r: Reader) -> dict[str, Any]:
    lang = r.visitor.lang
    return {
        "path": f"/lists/{r.cfg.name}/thread/{t.id}",
        "subject": show.shown_subject(t.subject, lang),
        "messages": t.messages,
        "authors": [r.author(a) for a in t.authors],
        "last_at": t.last_at,
        "started_at": t.started_at,
    }


async def month_page(site: Site, request: web.Request) -> web.Response:
    r = await reader(site, request)
    year, month = _month(request)
    async with site.gate(), site.store.read() as tx:
        threads = await archived.month_threads(tx, r.cfg.name, year, month)
    if not threads:
        raise web.HTTPNotFound()
    return _page(
        site,
        request,
        r,
        "month",
        month_name=month_name(year, month, r.visitor.lang),
        threads=[_thread_row(t, r) for t in threads],
        mbox_path=f"/lists/{r.cfg.name}/{year:04d}/{month:02d}.mbox",
    )


def _entry_view(e: archived.ArchiveEntry, r: Reader) -> dict[str, Any]:
    lang = r.visitor.lang
    return {
        "id": e.id,
        "path": f"/lists/{r.cfg.name}/message/{e.id}",
        "thread_path": f"/lists/{r.cfg.name}/thread/{e.thread}",
        "parent_path": f"/lists/{r.cfg.name}/message/{e.parent}" if e.parent else "",
        "author": r.author(e.author),
        "subject": show.shown_subject(e.subject, lang),
        "posted_at": e.posted_at,
        "text": show.redact(e.text),
    }


async def thread_page(site: Site, request: web.Request) -> web.Response:
    r = await reader(site, request)
    async with site.gate(), site.store.read() as tx:
        found = await archived.thread(tx, r.cfg.name, _number(request))
    if found is None:
        raise web.HTTPNotFound()
    summary, entries = found
    return _page(
        site,
        request,
        r,
        "thread",
        thread=_thread_row(summary, r),
        messages=[_entry_view(e, r) for e in entries],
    )


async def _view(raw: bytes, lang: str) -> show.MessageView:
    """The post's HTML and attachments, read in the bounded worker when it is large."""
    if not needs_bounded_read(raw):
        return show.message_view(raw, lang)
    view = await run_bounded(show.message_view, raw, lang, what="archive message")
    return view if view is not None else show.MessageView("", (), "over budget")


async def message_page(site: Site, request: web.Request) -> web.Response:
    r = await reader(site, request)
    lang = r.visitor.lang
    async with site.gate(), site.store.read() as tx:
        entry = await archived.entry(tx, r.cfg.name, _number(request))
        raw = None
        if entry is not None and (entry.has_html or entry.attachments):
            raw = await archived.raw(tx, r.cfg.name, entry.id)
    if entry is None:
        raise web.HTTPNotFound()
    view = await _view(raw, lang) if raw else show.MessageView("", ())
    as_text = request.query.get("view") == "text"
    attachments = [
        {
            "path": f"/lists/{r.cfg.name}/message/{entry.id}/attachment/{a.number}",
            "filename": a.filename,
            "size": show.size_text(a.size, lang),
        }
        for a in view.attachments
    ]
    return _page(
        site,
        request,
        r,
        "message",
        message=_entry_view(entry, r),
        html=Markup(view.html) if view.html and not as_text else "",
        has_html=bool(view.html),
        as_text=as_text,
        unreadable=bool(view.problem),
        attachments=attachments,
    )


async def attachment_file(site: Site, request: web.Request) -> web.Response:
    r = await reader(site, request)
    async with site.gate(), site.store.read() as tx:
        raw = await archived.raw(tx, r.cfg.name, _number(request))
    if raw is None:
        raise web.HTTPNotFound()
    number = _number(request, "n")
    if needs_bounded_read(raw):
        found = await run_bounded(show.attachment, raw, number, what="archive attachment")
    else:
        found = show.attachment(raw, number)
    if found is None:
        raise web.HTTPNotFound()
    return web.Response(
        body=found.data,
        headers={
            "Content-Type": found.content_type,
            "Content-Disposition": show.content_disposition(found.filename),
            "X-Content-Type-Options": "nosniff",
        },
    )


def _page_number(request: web.Request) -> int:
    text = request.query.get("page", "1")
    if not text.isascii() or not text.isdigit():
        return 1
    number = int(text) if len(text) < 10 else MAX_PAGE
    return min(max(number, 1), MAX_PAGE)


def finds_mutations(params: Mapping[str, str], lang: str) -> bool:
    """Whether a search finds the Welsh mutated forms of its words too (pure): as the
    form's box says when the search came from one of our forms, else on a Welsh page."""
    if params.get("form") == "1":
        return params.get("mutations") == "1"
    return lang == "cy"


async def search_page(site: Site, request: web.Request) -> web.Response:
    r = await reader(site, request)
    q = request.query.get("q", "")
    lang = r.visitor.lang
    mutations = finds_mutations(request.query, lang)
    common: dict[str, Any] = {
        "query": q,
        "max_query": MAX_QUERY,
        "results": None,
        "mutations": mutations,
        "forms": (),
    }
    if len(q) > MAX_QUERY:
        return _page(site, request, r, "search", status=400, problem="too long", **common)
    query = parse_query(q, mutations=mutations)
    if query is None:
        # Nothing to look for (an empty box, or only punctuation): the form, and a word.
        problem = "empty" if q.strip() else ""
        return _page(site, request, r, "search", problem=problem, **common)
    trust = site.runtime.config.web.trust_forwarded if site.runtime.config.web else False
    client = client_id(request.remote, request.headers.get("X-Forwarded-For"), trust)
    if not site.searches.allow(client, time.monotonic()):
        logs.event("web.search", list=r.cfg.name, client=client, outcome="rate limited")
        raise web.HTTPTooManyRequests(headers={"Retry-After": str(int(site.searches.seconds))})
    page = _page_number(request)
    async with site.gate(), site.store.read() as tx:
        hits, total = await archived.search(
            tx, r.cfg.name, query, PAGE_SIZE, (page - 1) * PAGE_SIZE
        )
        pages = min(max(1, -(-total // PAGE_SIZE)), MAX_PAGE)
        if not hits and page > pages:  # a page past the end (an old link): the last one
            page = pages
            hits, total = await archived.search(
                tx, r.cfg.name, query, PAGE_SIZE, (page - 1) * PAGE_SIZE
            )
    base = f"/lists/{r.cfg.name}/search?q={quote(q, safe='')}&form=1"
    base += "&mutations=1" if mutations else ""
    results = [
        {
            "path": f"/lists/{r.cfg.name}/message/{h.id}",
            "subject": show.shown_subject(h.subject, lang),
            "author": r.author(h.author),
            "posted_at": h.posted_at,
            "snippet": show.snippet(h.snippet),
        }
        for h in hits
    ]
    return _page(
        site,
        request,
        r,
        "search",
        **{
            **common,
            "problem": "",
            "results": results,
            "forms": tuple(dict.fromkeys(f for forms in query.forms for f in forms)),
            "total": total,
            "page": page,
            "pages": pages,
            "first": (page - 1) * PAGE_SIZE + 1,
            "previous_path": f"{base}&page={page - 1}" if page > 1 else "",
            "next_path": f"{base}&page={page + 1}" if page < pages else "",
        },
    )


# --- feed and mbox -------------------------------------------------------------------------


async def _token_member(site: Site, cfg: ListConfig, token: str) -> str | None:
    """The member whose private feed token this is (a scan of the members, an HMAC each:
    the cost of a forged one, bounded by the gate)."""
    if not re.fullmatch(r"[a-z2-7]{32}", token):
        return None
    async with site.gate(), site.store.read() as tx:
        secret = await secrets.get_or_create(tx, "lists")
        candidates = await member_addresses(tx, cfg.name)
    return find_member(secret, FEED, cfg.name, token, candidates)


async def feed(site: Site, request: web.Request) -> web.Response:
    token = request.query.get("token")
    cfg = find_list(site.runtime.config.lists, request.match_info["list"])
    if cfg is None or cfg.archive == "off":
        raise web.HTTPNotFound()
    if token is not None:
        # A member's private feed: good while they are a member; any other token, 404.
        if await _token_member(site, cfg, token) is None:
            raise web.HTTPNotFound()
    elif cfg.archive != "public":
        raise web.HTTPNotFound()  # a feed reader cannot sign in: nothing to redirect to
    lang = leading_language(cfg.language)
    async with site.gate(), site.store.read() as tx:
        entries = await archived.latest(tx, cfg.name, FEED_ENTRIES)
    base = _base(site)
    page_url = f"{base}/lists/{cfg.name}/"
    self_url = f"{page_url}feed.atom" + (f"?token={token}" if token else "")
    data = atom.atom_feed(
        feed_id=atom.entry_id(base, cfg.name, 0),
        title=show.list_title(cfg, lang),
        subtitle=show.list_description(cfg, lang),
        self_url=self_url,
        page_url=page_url,
        lang=lang,
        updated=entries[0].posted_at if entries else site.runtime.clock.now(),
        entries=[
            atom.FeedEntry(
                id=atom.entry_id(base, cfg.name, e.id),
                title=show.shown_subject(e.subject, lang),
                author=show.shown_author(e.author, cfg, lang),
                link=f"{base}/lists/{cfg.name}/message/{e.id}",
                published=e.posted_at,
                text=show.redact(e.text),
            )
            for e in entries
        ],
    )
    return web.Response(body=data, headers={"Content-Type": atom.CONTENT_TYPE})


async def month_mbox(site: Site, request: web.Request) -> web.StreamResponse:
    r = await reader(site, request)
    year, month = _month(request)
    domains = site.runtime.config.server.domains
    # A member gets the header block their own copies had; anyone else (a public list's
    # reader) no address at all, as on a hidden list.
    hide = r.cfg.addresses == "hidden" or not r.member
    async with site.gate(), site.store.read() as tx:
        posts = await archived.month_posts(tx, r.cfg.name, year, month, 0, MBOX_BATCH)
    if not posts:
        raise web.HTTPNotFound()
    response = web.StreamResponse(
        headers={
            "Content-Type": MBOX_TYPE,
            "Content-Disposition": f'attachment; filename="{r.cfg.name}-{year:04d}-{month:02d}.mbox"',
        }
    )
    await response.prepare(request)
    if request.method == "HEAD":  # the headers only: a streamed body would be sent anyway
        return response
    while posts:
        for post in posts:
            # Each write waits while the reader is slow: memory stays one batch. An entry
            # is ~0.5 ms of header work (stripped_copy); the loop is given back after each,
            # so intake never waits behind a whole month.
            await response.write(
                show.mbox_entry(post.raw, post.archived_at, r.cfg, domains, hide=hide)
            )
            await asyncio.sleep(0)
        if len(posts) < MBOX_BATCH:
            break
        async with site.gate(), site.store.read() as tx:
            posts = await archived.month_posts(
                tx, r.cfg.name, year, month, posts[-1].id, MBOX_BATCH
            )
    await response.write_eof()
    return response
