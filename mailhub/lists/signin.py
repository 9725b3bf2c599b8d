"""Sign-in without passwords: `/signin` mails a member a single-use link, `/signin/TOKEN`
signs them in, `/signout` ends the session.

`POST /signin` answers every address with the same page and the same status, having done
the same work: it checks the form and the client's rate limit (one transaction, the same
for everyone), queues the address and answers. A worker (one task, a bounded queue) then
looks the address up and, for a member of at least one list within the address's rate
limit, mails the link. So neither the page nor its timing says whether an address is a
member, and nothing is ever sent to an address that is not one (no backscatter).

`GET /signin/TOKEN` changes nothing (mail scanners follow links): it shows one button;
`POST /signin/TOKEN` (with its CSRF token) uses the token once and starts the session.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets as token_source
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import urlencode

from aiohttp import web

from mailhub import logs
from mailhub.dates import Moment
from mailhub.lists.cli import usable_address
from mailhub.lists.config import find_list
from mailhub.mailbox import mailbox_key
from mailhub.messages import address as named_address
from mailhub.messages import build_message
from mailhub.store import lists as members
from mailhub.store import web as store
from mailhub.web import layout
from mailhub.web.clients import client_id
from mailhub.web.site import Site
from mailhub.web.visitor import Visitor, checked_form, end_session, start_session, visitor

# A link works once, for this long.
LINK_SECONDS = 15 * 60
# Links mailed to one mailbox (normalised: case, +tags): at most 3 in 15 minutes, 10 a day.
# Past that a request is dropped silently (the page is the same: it reveals nothing).
ADDRESS_LIMITS = ((15 * 60, 3), (24 * 3600, 10))
# Sign-in requests from one client: at most 20 an hour, then a 429 page.
CLIENT_WINDOW, CLIENT_LIMIT = 3600, 20
# Rate-limit events are kept as long as the longest window.
EVENTS_KEPT = 24 * 3600
# Requests waiting for the worker; past that the answer is 503 (for everyone alike).
QUEUE_SIZE = 256
MAX_ADDRESS = 254
MAX_NEXT = 1000
# secrets.token_urlsafe(32): 43 characters of the URL-safe base64 alphabet.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")
# The service's own sender for sign-in mail: nobody reads replies (mail to it is refused
# at RCPT: no list or service address has this name), and robots recognise the name.
NO_REPLY = "no-reply"

CLIENT = "signin-client"
MAILBOX = "signin-mailbox"


def normalise_address(text: str | None) -> str | None:
    """The address as members are stored (lower-case, trimmed); None when it is no address."""
    if not text or len(text) > MAX_ADDRESS:
        return None
    try:  # email-validator, as for every other address a person gives us
        return usable_address(text)
    except ValueError:
        return None


def safe_next(text: str | None) -> str | None:
    """A local path to go back to after sign-in; None for anything that could leave this
    site (`//evil`, `/\\evil`, `https://evil`, control characters) or is too long."""
    if not text or len(text) > MAX_NEXT or not text.startswith("/"):
        return None
    if text.startswith("//") or "\\" in text or any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        return None
    return text


def well_formed(token: str) -> bool:
    return bool(_TOKEN.fullmatch(token))


@dataclass(frozen=True)
class SigninRequest:
    address: str
    next_path: str  # "" for the default (/me)
    lang: str  # the page's language: the mail leads with it


class SigninQueue:
    """The sign-in requests waiting to be looked up and, for members, mailed: one worker."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.queue: asyncio.Queue[SigninRequest] = asyncio.Queue(QUEUE_SIZE)
        self.task: asyncio.Task[None] | None = None

    def offer(self, request: SigninRequest) -> bool:
        try:
            self.queue.put_nowait(request)
        except asyncio.QueueFull:
            return False
        return True

    async def start(self, app: web.Application) -> None:
        self.task = asyncio.create_task(self.run(), name="web signin")

    async def stop(self, app: web.Application) -> None:
        task, self.task = self.task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def run(self) -> None:
        while True:
            request = await self.queue.get()
            try:
                await mail_link(self.site, request)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - one request lost, the worker goes on
                logs.event("web.signin", logging.ERROR, outcome="error", error=type(exc).__name__)


async def mail_link(site: Site, request: SigninRequest) -> bool:
    """Mail a sign-in link to a member within their mailbox's limit; True if one was sent.
    Token, rate-limit event and mail in one transaction."""
    cfg = site.runtime.config
    now = site.runtime.clock.now()
    mailbox = mailbox_key(request.address)
    async with site.gate(), site.store.transaction() as tx:
        found = await members.memberships(tx, request.address)
        if not any(find_list(cfg.lists, m.list_name) for m in found):
            logs.event("web.signin", outcome="not a member")
            return False
        for window, limit in ADDRESS_LIMITS:
            if await store.count_events(tx, MAILBOX, mailbox, now - window) >= limit:
                logs.event("web.signin", member=request.address, outcome="rate limited")
                return False
        token = token_source.token_urlsafe(32)
        await store.add_signin_token(tx, token, request.address, now, now + LINK_SECONDS)
        await store.add_event(tx, MAILBOX, mailbox, now)
        ctx = site.runtime.context(tx, "web:signin")
        msg = signin_mail(site, request, token, now)
        await ctx.send(msg, [request.address], kind="web.signin", mail_from="")
    site.wake_delivery()
    logs.event("web.signin", member=request.address, outcome="link sent")
    return True


def signin_mail(site: Site, request: SigninRequest, token: str, now: float) -> EmailMessage:
    """The link, in both languages, the page's language first; RFC 3834 auto-generated."""
    cfg = site.runtime.config
    base = cfg.web.base_url if cfg.web is not None else ""
    link = f"{base}/signin/{token}"
    if request.next_path:
        link += "?" + urlencode({"next": request.next_path})
    languages = "cy+en" if request.lang == "cy" else "en+cy"
    text = site.runtime.templates.render(
        "web_signin",
        languages,
        link=link,
        minutes=LINK_SECONDS // 60,
        expires=Moment(now + LINK_SECONDS),
        domain=cfg.server.domain,
    )
    msg = build_message(
        from_=named_address(cfg.server.domain, f"{NO_REPLY}@{cfg.server.domain}"),
        to=request.address,
        subject=text.subject,
        body=text.body,
        domain=cfg.server.domain,
        now=now,
    )
    # Generated, not a reply: out-of-office robots must not answer it (RFC 3834 §5).
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    return msg


async def over_client_limit(site: Site, client: str) -> bool:
    """Counts this request against its client (and purges old rows while it writes):
    True when the client has had its share this hour."""
    now = site.runtime.clock.now()
    async with site.gate(), site.store.transaction() as tx:
        await store.purge(tx, now, now - EVENTS_KEPT)
        if await store.count_events(tx, CLIENT, client, now - CLIENT_WINDOW) >= CLIENT_LIMIT:
            return True
        await store.add_event(tx, CLIENT, client, now)
    return False


def register(app: web.Application, site: Site) -> None:
    signins = SigninQueue(site)
    app.on_startup.append(signins.start)
    app.on_cleanup.append(signins.stop)
    web_config = site.runtime.config.web
    trust = web_config.trust_forwarded if web_config is not None else False

    async def form(request: web.Request) -> web.Response:
        who = await visitor(site, request)
        next_path = safe_next(request.query.get("next")) or ""
        return layout.render(
            site, request, who, "signin", next_path=next_path, address="", invalid=False
        )

    async def ask(request: web.Request) -> web.Response:
        who = await visitor(site, request)
        fields = await checked_form(site, request, who)
        client = client_id(request.remote, request.headers.get("X-Forwarded-For"), trust)
        if await over_client_limit(site, client):
            logs.event("web.signin", client=client, outcome="client rate limited")
            raise web.HTTPTooManyRequests(headers={"Retry-After": str(CLIENT_WINDOW)})
        next_path = safe_next(fields.get("next")) or ""
        address = normalise_address(fields.get("address"))
        if address is None:
            typed = (fields.get("address") or "")[:MAX_ADDRESS]
            return layout.render(
                site,
                request,
                who,
                "signin",
                status=400,
                next_path=next_path,
                address=typed,
                invalid=True,
            )
        if not signins.offer(SigninRequest(address, next_path, who.lang)):
            raise web.HTTPServiceUnavailable()
        return layout.render(site, request, who, "signin_sent")

    async def link(request: web.Request) -> web.Response:
        who = await visitor(site, request)
        token = request.match_info["token"]
        if not well_formed(token) or not await _usable(site, token):
            return layout.render(site, request, who, "signin_dead")
        next_path = safe_next(request.query.get("next")) or ""
        action = layout.url(site, f"/signin/{token}")
        return layout.render(site, request, who, "signin_link", action=action, next_path=next_path)

    async def use(request: web.Request) -> web.Response:
        who = await visitor(site, request)
        fields = await checked_form(site, request, who)
        token = request.match_info["token"]
        now = site.runtime.clock.now()
        address = None
        if well_formed(token):
            async with site.gate(), site.store.transaction() as tx:
                address = await store.use_signin_token(tx, token, now)
                if address is not None:
                    await end_session(request, tx)  # whoever was signed in here before
                    await start_session(site, request, tx, address)
        if address is None:
            logs.event("web.signin", outcome="dead link")
            return layout.render(site, request, who, "signin_dead")
        logs.event("web.signin", member=address, outcome="signed in")
        target = safe_next(fields.get("next")) or layout.url(site, "/me")
        raise web.HTTPSeeOther(target)

    async def signout(request: web.Request) -> web.Response:
        who = await visitor(site, request)
        await checked_form(site, request, who)
        async with site.gate(), site.store.transaction() as tx:
            await end_session(request, tx)
        if who.address:
            logs.event("web.signin", member=who.address, outcome="signed out")
        gone = Visitor(who.lang, None, who.csrf)
        return layout.render(site, request, gone, "signout", ask=False)

    app.router.add_get("/signin", form)
    app.router.add_post("/signin", ask)
    app.router.add_get("/signin/{token}", link)
    app.router.add_post("/signin/{token}", use)

    async def signout_page(request: web.Request) -> web.Response:
        # Someone who types /signout: a button (a GET changes nothing), or "signed out".
        who = await visitor(site, request)
        return layout.render(site, request, who, "signout", ask=who.address is not None)

    app.router.add_get("/signout", signout_page)
    app.router.add_post("/signout", signout)


async def _usable(site: Site, token: str) -> bool:
    """Whether a token would still sign someone in (read only: the GET uses nothing)."""
    async with site.gate(), site.store.read() as tx:
        return await store.signin_token_usable(tx, token, site.runtime.clock.now())
