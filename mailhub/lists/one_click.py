"""`/u/TOKEN`: RFC 8058 one-click unsubscribe.

GET (and HEAD) shows a confirmation page with one button and changes nothing: link
scanners and mail clients' previews follow GETs. POST with the form field
`List-Unsubscribe=One-Click` (what RFC 8058 mail clients send, urlencoded or
multipart/form-data, and what the page's button sends) leaves at once, in one
transaction with the "you have left" notice. A token that is not a member's, however it
is wrong (unknown list, forged MAC, another list's member), gets the same 404 page; a
member who has already left gets the same "you have left" page again, and no second mail.
"""

from __future__ import annotations

from aiohttp import web

from mailhub import logs
from mailhub.lists.config import ListConfig, find_list
from mailhub.lists.headers import ListAddresses
from mailhub.lists.leaving import find_former, find_leaver, leave_now, read_one_click
from mailhub.store import secrets
from mailhub.web.pages import page_languages
from mailhub.web.site import Site

ONE_CLICK = {"List-Unsubscribe": "One-Click"}
# A member found, or someone who has already left, or nobody.
MEMBER, GONE = "member", "gone"


def register(app: web.Application, site: Site) -> None:
    async def show(request: web.Request) -> web.Response:
        return await _show(site, request)

    async def leave(request: web.Request) -> web.Response:
        return await _leave(site, request)

    app.router.add_get("/u/{token}", show)  # HEAD too (aiohttp answers it from GET)
    app.router.add_post("/u/{token}", leave)


def _page(site: Site, lst: ListConfig, name: str, **variables: object) -> web.Response:
    a = ListAddresses.of(lst.name, site.runtime.config.server.domain)
    names = {
        "display_name": lst.display_name,
        # The Welsh half's name for the list (its English name when it has no Welsh one).
        "display_name_cy": lst.display_name_cy or lst.display_name,
        "post": a.post,
        "join": a.join,
    }
    text = site.pages.render(name, page_languages(lst.language), list=names, **variables)
    return web.Response(text=text, content_type="text/html")


def _list_of(site: Site, request: web.Request) -> tuple[ListConfig, str]:
    """The list and MAC a well-formed token for a configured list names; else 404."""
    parsed = read_one_click(request.match_info["token"])
    lst = find_list(site.runtime.config.lists, parsed[0]) if parsed else None
    if parsed is None or lst is None:
        raise web.HTTPNotFound()
    return lst, parsed[1]


async def _who(site: Site, lst: ListConfig, mac: str) -> tuple[str, str]:
    """(MEMBER or GONE, address) for the token's owner; 404 when it is nobody's."""
    async with site.gate(), site.store.read() as tx:
        secret = await secrets.get_or_create(tx, "lists")
        who = await find_leaver(tx, secret, lst.name, mac)
        if who is not None:
            return MEMBER, who
        who = await find_former(tx, secret, lst.name, mac)
    if who is None:
        logs.event("web.unsubscribe", list=lst.name, outcome="refused", reason="unknown token")
        raise web.HTTPNotFound()
    return GONE, who


async def _show(site: Site, request: web.Request) -> web.Response:
    lst, mac = _list_of(site, request)
    state, _ = await _who(site, lst, mac)
    if state == GONE:
        return _page(site, lst, "left")
    return _page(site, lst, "confirm", form=ONE_CLICK)


async def _leave(site: Site, request: web.Request) -> web.Response:
    lst, mac = _list_of(site, request)
    form = await request.post()  # 413 past the body limit, as it is read
    if form.get("List-Unsubscribe") != "One-Click":
        raise web.HTTPBadRequest()
    # Rendered first: a page that cannot be made fails the request before anything changes.
    page = _page(site, lst, "left")
    state, who = await _who(site, lst, mac)
    if state == MEMBER:
        async with site.gate(), site.store.transaction() as tx:
            ctx = site.runtime.context(tx, "web:one-click")
            left = await leave_now(ctx, lst, who, "one-click")
        if left:
            site.wake_delivery()
        logs.event("web.unsubscribe", list=lst.name, member=who, outcome="left" if left else "gone")
    return page
