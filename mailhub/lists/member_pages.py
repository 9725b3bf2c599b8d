"""Web pages of the lists app: sign-in by emailed link, and a member's own page (`/me`)."""

from __future__ import annotations

from aiohttp import web

from mailhub.web import layout
from mailhub.web.site import Site
from mailhub.web.visitor import visitor


def register(app: web.Application, site: Site) -> None:
    """Adds this module's routes to the HTTP app."""

    async def signin_form(request: web.Request) -> web.Response:
        who = await visitor(site, request)
        return layout.render(site, request, who, "signin", next_path=request.query.get("next", ""))

    app.router.add_get("/signin", signin_form)
