"""The HTTP server: one aiohttp application run by `web.AppRunner`/`web.TCPSite` in the
service's own event loop (no second process), with what every response shares.

Every response, a refusal included, is a bilingual page with the same security headers;
a request that fails inside a handler gets a 500 page and one log line, never a
traceback. aiohttp's access log is off: request paths carry capability tokens, which a
log must not keep (the handlers log what happened, without the token).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web

from mailhub import logs
from mailhub.web import layout
from mailhub.web.config import WebConfig
from mailhub.web.pages import DEFAULT_LANGUAGES
from mailhub.web.site import Routes, Site
from mailhub.web.visitor import VISITOR_KEY, Visitor, apply_cookies

# Bodies past this are refused (413) as they are read: the bodies we take are short forms
# (a CSRF token, an address, a `next` path, a member's few settings).
MAX_BODY = 8192
METHODS = ("GET", "HEAD", "POST")
# Idle keep-alive connections are closed after this (aiohttp's default is an hour).
KEEPALIVE_SECONDS = 15.0
# In-flight requests get this long at shutdown before they are cancelled (a cancelled
# one-click rolls back whole: it changed nothing).
SHUTDOWN_SECONDS = 5.0

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    # Instead of aiohttp's own, which names its version and Python's.
    "Server": "mailhub",
}

FALLBACK_PAGE = (
    '<!doctype html><html lang="cy"><meta charset="utf-8"><title>Gwall / Error</title>'
    '<p lang="cy">Ni allem ateb y cais hwn.</p><p lang="en">We could not answer this request.</p>'
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class WebStartError(Exception):
    """The HTTP port cannot be opened: one line a person can act on."""


def problem(site: Site, status: int, headers: dict[str, str] | None = None) -> web.Response:
    """A refusal as a page in both languages (Welsh first: it may concern no list). If even
    that page cannot be made (own templates without it), a fixed one: still no traceback."""
    name = "not_found" if status == 404 else "problem"
    try:
        text = site.pages.render(name, DEFAULT_LANGUAGES, status=status)
    except Exception as exc:  # noqa: BLE001 - the fixed page and one line
        logs.event("web", logging.ERROR, page=name, outcome="error", error=type(exc).__name__)
        text = FALLBACK_PAGE
    return web.Response(status=status, text=text, content_type="text/html", headers=headers)


LAYOUT_REFUSALS = {403: "forbidden", 404: "not_found"}


def refusal(
    site: Site, request: web.Request, known: Visitor, status: int, headers: dict[str, str] | None
) -> web.Response:
    """A refusal on the layout, in the visitor's language; the bilingual page if that fails."""
    try:
        name = LAYOUT_REFUSALS.get(status, "problem")
        return layout.render(site, request, known, name, status=status, headers=headers)
    except Exception as exc:  # noqa: BLE001 - the plain bilingual page and one line
        logs.event("web", logging.ERROR, page="layout", outcome="error", error=type(exc).__name__)
        return problem(site, status, headers)


def guard(site: Site) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method not in METHODS:
            return problem(site, 405, {"Allow": ", ".join(METHODS)})
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            kept = {k: exc.headers[k] for k in ("Allow", "Retry-After") if k in exc.headers}
            extra = kept or None
            known = request.get(VISITOR_KEY)
            if known is not None:
                # A page of the signed-in/anonymous visitor's kind: the refusal in their
                # language, on the layout (a 404 the same page however it came about).
                return refusal(site, request, known, exc.status, extra)
            return problem(site, exc.status, extra)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a page and one line, never a traceback
            logs.event(
                "web",
                logging.ERROR,
                method=request.method,
                route=_route(request),
                outcome="error",
                error=type(exc).__name__,
            )
            return problem(site, 500)

    return middleware


def _route(request: web.Request) -> str:
    """The route's pattern (`/u/{token}`), never the path itself: it may carry a token."""
    info = request.match_info.route.resource
    return info.canonical if info is not None else "-"


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)


def build_app(site: Site, pages: Iterable[Routes] = ()) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY, middlewares=[guard(site)])
    app.on_response_prepare.append(_security_headers)
    web_config = site.runtime.config.web
    secure = web_config.secure if web_config is not None else False
    path = (web_config.prefix if web_config is not None else "") or "/"

    async def cookies(request: web.Request, response: web.StreamResponse) -> None:
        # What the request's pages decided (a session, the CSRF holder, the language).
        apply_cookies(request, response, secure, path)

    app.on_response_prepare.append(cookies)
    for add in pages:
        add(app, site)
    return app


def _reason(exc: OSError) -> str:
    if isinstance(exc.errno, int) and exc.errno > 0:
        return os.strerror(exc.errno)
    return exc.strerror or str(exc) or type(exc).__name__


class WebServer:
    def __init__(self, config: WebConfig, site: Site, pages: Iterable[Routes] = ()) -> None:
        self.config = config
        self.site = site
        self.pages = tuple(pages)
        self.port = config.port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Listen; `WebStartError` (and nothing left open) if the port cannot be had."""
        runner = web.AppRunner(
            build_app(self.site, self.pages),
            access_log=None,
            keepalive_timeout=KEEPALIVE_SECONDS,
            shutdown_timeout=SHUTDOWN_SECONDS,
        )
        await runner.setup()
        host, port = self.config.host, self.config.port
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            await runner.cleanup()
            raise WebStartError(
                f"cannot listen on {host}:{port} for HTTP ({_reason(exc)}); "
                "change web.listen or stop what is using it"
            ) from None
        self._runner = runner
        self.port = runner.addresses[0][1]
        logs.event("web", outcome="started", listen=f"{host}:{self.port}")

    async def stop(self) -> None:
        """Stop listening, let requests in flight finish (bounded), close."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
