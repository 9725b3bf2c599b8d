"""Web pages of the lists app: sign-in (`mailhub.lists.signin`) and a member's own page.

`/me` lists the lists the signed-in person is on, each with a form: delivery (every
message / daily digest / no mail), a copy of their own posts, the language of the list's
notices to them, and a link to leave (`/me/LIST/leave`: a page that asks, then a POST that
leaves exactly as the email command and one-click do). Each change is one transaction with
its action-log record, like the email commands; it takes effect from the next message.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from multidict import MultiDictProxy

from mailhub import logs
from mailhub.lists import action_log, signin
from mailhub.lists.archive_pages import feed_token
from mailhub.lists.archive_render import list_title
from mailhub.lists.config import ListConfig, find_list
from mailhub.lists.leaving import leave_now
from mailhub.store import Tx, secrets
from mailhub.store import lists as members
from mailhub.store.lists import DELIVERY_MODES, MEMBER_LANGUAGES, Member
from mailhub.web import layout
from mailhub.web.site import Site
from mailhub.web.visitor import Visitor, checked_form, visitor


@dataclass(frozen=True)
class Entry:
    """One list on a member's page."""

    list_name: str
    name: str  # the list's name in the page's language
    delivery: str
    own_posts: bool
    language: str
    disabled: bool
    archive: bool  # the list has a web archive to link to
    feed: str  # the private feed's URL, "" when the list has no archive


@dataclass(frozen=True)
class Done:
    """What the page says happened."""

    name: str
    changes: tuple[str, ...] = ()
    left: bool = False
    gone: bool = False


@dataclass(frozen=True)
class Settings:
    delivery: str
    own_posts: bool
    language: str


def read_settings(form: MultiDictProxy[str], current: Member) -> Settings | None:
    """The settings a /me form asks for (pure); None when a field holds what no form of ours
    sends. A field left out keeps its value, except the checkbox (absent: off)."""
    delivery = form.get("delivery", current.delivery)
    language = form.get("language", current.language)
    own = form.get("own_posts", "")
    if delivery not in DELIVERY_MODES or language not in MEMBER_LANGUAGES or own not in ("", "on"):
        return None
    return Settings(delivery, own == "on", language)


def changes(current: Member, wanted: Settings) -> list[str]:
    """What differs, as the verbs the action log and the page use (pure)."""
    found = []
    if wanted.delivery != current.delivery or (
        wanted.delivery == "each" and current.status == "disabled"
    ):
        found.append(wanted.delivery)
    if wanted.own_posts != current.own_posts:
        found.append("own-on" if wanted.own_posts else "own-off")
    if wanted.language != current.language:
        found.append("language")
    return found


async def apply(tx: Tx, cfg: ListConfig, who: str, wanted: Settings, now: float) -> None:
    if wanted.delivery == "digest":
        await members.set_delivery(tx, cfg.name, who, "digest", now)
    else:
        await members.set_delivery(tx, cfg.name, who, wanted.delivery)
    if wanted.delivery == "each":
        # As the `mail` command: a member disabled by bounces asks for mail again.
        await members.enable_member(tx, cfg.name, who)
    await members.set_own_posts(tx, cfg.name, who, wanted.own_posts)
    await members.set_language(tx, cfg.name, who, wanted.language)


def register(app: web.Application, site: Site) -> None:
    """Adds this module's routes (and the sign-in routes) to the HTTP app."""
    signin.register(app, site)

    async def me(request: web.Request) -> web.Response:
        who = await signed_in(site, request)
        return await page(site, request, who)

    async def change(request: web.Request) -> web.Response:
        who = await signed_in(site, request)
        form = await checked_form(site, request, who)
        cfg = configured(site, request)
        return await page(site, request, who, await save(site, cfg, who, form))

    async def ask_leave(request: web.Request) -> web.Response:
        who = await signed_in(site, request)
        cfg = configured(site, request)
        async with site.gate(), site.store.read() as tx:
            member = await members.get_member(tx, cfg.name, str(who.address))
        if member is None:
            return layout.not_found(site, request, who)
        return layout.render(
            site, request, who, "me_leave", name=list_title(cfg, who.lang), list_name=cfg.name
        )

    async def leave(request: web.Request) -> web.Response:
        who = await signed_in(site, request)
        await checked_form(site, request, who)
        cfg = configured(site, request)
        address = str(who.address)
        async with site.gate(), site.store.transaction() as tx:
            ctx = site.runtime.context(tx, "web:me")
            left = await leave_now(ctx, cfg, address, "web")
        if left:
            site.wake_delivery()
        logs.event("web.me", list=cfg.name, member=address, outcome="left" if left else "gone")
        name = list_title(cfg, who.lang)
        return await page(site, request, who, Done(name, left=left, gone=not left))

    app.router.add_get("/me", me)
    app.router.add_post("/me/{list}", change)
    app.router.add_get("/me/{list}/leave", ask_leave)
    app.router.add_post("/me/{list}/leave", leave)


async def signed_in(site: Site, request: web.Request) -> Visitor:
    """The signed-in visitor; anyone else is sent to sign in and come back to /me."""
    who = await visitor(site, request)
    if who.address is None:
        raise web.HTTPSeeOther(layout.signin_url(site, layout.url(site, "/me")))
    return who


def configured(site: Site, request: web.Request) -> ListConfig:
    cfg = find_list(site.runtime.config.lists, request.match_info["list"])
    if cfg is None:
        raise web.HTTPNotFound()
    return cfg


async def save(site: Site, cfg: ListConfig, who: Visitor, form: MultiDictProxy[str]) -> Done:
    """Apply a /me form to one list: one transaction, recorded like the email commands."""
    address = str(who.address)
    name = list_title(cfg, who.lang)
    async with site.gate(), site.store.transaction() as tx:
        current = await members.get_member(tx, cfg.name, address)
        if current is None:
            return Done(name, gone=True)
        wanted = read_settings(form, current)
        if wanted is None:
            raise web.HTTPBadRequest()
        done = changes(current, wanted)
        if done:
            ctx = site.runtime.context(tx, "web:me")
            await apply(tx, cfg, address, wanted, ctx.now())
            await action_log.record(
                ctx,
                cfg,
                address,
                "settings",
                "member",
                subject_address=address,
                detail="web: " + ",".join(done),
            )
    logs.event("web.me", list=cfg.name, member=address, outcome="saved", changes=",".join(done))
    lay = layout.layout_for(site.runtime.config.templates_dir)
    said = []
    for verb in done:
        if verb == "language":
            language = lay.word(who.lang, "me_language_" + (wanted.language or "default"))
            said.append(lay.word(who.lang, "me_changed_language", language=language))
        else:
            said.append(lay.word(who.lang, "me_changed_" + verb.replace("-", "_")))
    return Done(name, tuple(said))


async def page(
    site: Site, request: web.Request, who: Visitor, done: Done | None = None
) -> web.Response:
    address = str(who.address)
    config = site.runtime.config
    base = config.web.base_url if config.web is not None else ""
    # A write transaction only because the lists secret is made on first use (feed tokens
    # must be the ones the archive checks); a member's page is rare enough for that.
    async with site.gate(), site.store.transaction() as tx:
        found = await members.memberships(tx, address)
        secret = await secrets.get_or_create(tx, "lists") if found else b""
    entries = []
    for m in found:
        cfg = find_list(config.lists, m.list_name)
        if cfg is None:
            continue  # a list no longer configured
        archive = cfg.archive != "off"
        feed = ""
        if archive:
            token = feed_token(secret, cfg.name, address)
            feed = f"{base}/lists/{cfg.name}/feed.atom?token={token}"
        entries.append(
            Entry(
                cfg.name,
                list_title(cfg, who.lang),
                m.delivery,
                m.own_posts,
                m.language,
                m.status == "disabled",
                archive,
                feed,
            )
        )
    return layout.render(site, request, who, "me", entries=entries, done=done)
