"""Who is asking, and in which language: the session cookie, the pre-session cookie (for
CSRF before sign-in), and `?lang=` / the `lang` cookie.

Cookies to set are collected on the request and written by the server as the response is
prepared (`apply_cookies`), redirects and refusal pages included. Call `visitor` outside
`site.gate()`: it may take the gate itself (a session lookup).
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from multidict import MultiDict, MultiDictProxy

from mailhub.store import Tx, secrets
from mailhub.store import web as store
from mailhub.web import session
from mailhub.web.csrf import csrf_ok, csrf_token
from mailhub.web.site import Site

LANGUAGES = ("cy", "en")
DEFAULT_LANG = "cy"  # Welsh first: the service's default


@dataclass(frozen=True)
class Visitor:
    lang: str  # "cy" | "en": the language this page is shown in
    address: str | None  # the signed-in person's address, lower-case; None: not signed in
    csrf: str  # every POST form carries it as hidden field "csrf"

    @property
    def other_lang(self) -> str:
        return "en" if self.lang == "cy" else "cy"


VISITOR_KEY = web.RequestKey("mailhub.visitor", Visitor)
_SESSION = web.RequestKey("mailhub.session_id", str | None)
_HOLDER = web.RequestKey("mailhub.csrf_holder", str)
_COOKIES = web.RequestKey("mailhub.cookies", dict[str, session.Cookie])


async def web_key(site: Site) -> bytes:
    """The installation's key for web cookies and CSRF tokens (made on first use)."""
    if site.web_key is None:
        async with site.gate(), site.store.transaction() as tx:
            site.web_key = await secrets.get_or_create(tx, "web")
    return site.web_key


def queue_cookie(request: web.Request, cookie: session.Cookie) -> None:
    request.setdefault(_COOKIES, {})[cookie.name] = cookie


def apply_cookies(
    request: web.Request, response: web.StreamResponse, secure: bool, path: str
) -> None:
    """Adds the request's queued cookies as Set-Cookie headers (run as the response is
    prepared: aiohttp has turned its own cookie jar into headers by then)."""
    for cookie in request.get(_COOKIES, {}).values():
        response.headers.add("Set-Cookie", session.set_cookie_header(cookie, secure, path))


def choose_lang(asked: str | None, remembered: str | None) -> tuple[str, bool]:
    """(the page's language, whether to remember it): `?lang=` wins and is remembered."""
    if asked in LANGUAGES:
        return str(asked), asked != remembered
    if remembered in LANGUAGES:
        return str(remembered), False
    return DEFAULT_LANG, False


async def _session_address(site: Site, session_id: str) -> str | None:
    now = site.runtime.clock.now()
    async with site.gate(), site.store.read() as tx:
        found = await store.get_session(tx, session_id)
    if found is None:
        return None
    life = session.Lifetime(found.created_at, found.last_seen, found.expires_at)
    if not session.alive(life, now):
        return None
    if session.needs_touch(life, now):
        async with site.gate(), site.store.transaction() as tx:
            await store.touch_session(tx, session_id, now)
    return found.address


async def visitor(site: Site, request: web.Request) -> Visitor:
    """This request's visitor (worked out once per request)."""
    known = request.get(VISITOR_KEY)
    if known is not None:
        return known
    key = await web_key(site)
    lang, remember = choose_lang(
        request.query.get("lang"), request.cookies.get(session.LANG_COOKIE)
    )
    if remember:
        queue_cookie(
            request,
            session.Cookie(session.LANG_COOKIE, lang, session.LANG_COOKIE_SECONDS, http_only=False),
        )
    address = None
    session_id = session.unsign(key, "session", request.cookies.get(session.SESSION_COOKIE))
    if session_id is not None:
        address = await _session_address(site, session_id)
        if address is None:
            session_id = None
            queue_cookie(request, session.Cookie(session.SESSION_COOKIE, "", 0))
    if session_id is not None:
        holder = "session:" + session_id
    else:
        pre = session.unsign(key, "pre", request.cookies.get(session.PRE_SESSION_COOKIE))
        if pre is None:
            pre = session.new_id()
            signed = session.sign(key, "pre", pre)
            queue_cookie(
                request,
                session.Cookie(session.PRE_SESSION_COOKIE, signed, session.SESSION_SECONDS),
            )
        holder = "pre:" + pre
    found = Visitor(lang, address, csrf_token(key, holder))
    request[VISITOR_KEY] = found
    request[_SESSION] = session_id
    request[_HOLDER] = holder
    return found


async def checked_form(site: Site, request: web.Request, visitor: Visitor) -> MultiDictProxy[str]:
    """The POSTed form; web.HTTPForbidden when its "csrf" field is missing or wrong."""
    form = await request.post()  # 413 past the body limit, as it is read
    key = await web_key(site)
    holder = request.get(_HOLDER)
    given = form.get("csrf")
    if holder is None or not isinstance(given, str) or not csrf_ok(key, holder, given):
        raise web.HTTPForbidden()
    # Text fields only: no form of ours takes a file.
    return MultiDictProxy(MultiDict((k, v) for k, v in form.items() if isinstance(v, str)))


def session_id(request: web.Request) -> str | None:
    """The signed-in visitor's session id (after `visitor`); None when not signed in."""
    return request.get(_SESSION)


async def start_session(site: Site, request: web.Request, tx: Tx, address: str) -> None:
    """Signs `address` in (in the caller's transaction, after `visitor`): a new session
    and its cookie."""
    key = site.web_key
    if key is None:
        raise RuntimeError("start_session before visitor()")
    now = site.runtime.clock.now()
    new = session.new_id()
    await store.add_session(tx, new, address, now, now + session.SESSION_SECONDS)
    signed = session.sign(key, "session", new)
    queue_cookie(request, session.Cookie(session.SESSION_COOKIE, signed, session.SESSION_SECONDS))


async def end_session(request: web.Request, tx: Tx) -> None:
    """Signs the visitor out: the session row goes (the old cookie is worth nothing after),
    and the browser is told to drop the cookie."""
    found = session_id(request)
    if found is not None:
        await store.delete_session(tx, found)
    queue_cookie(request, session.Cookie(session.SESSION_COOKIE, "", 0))
