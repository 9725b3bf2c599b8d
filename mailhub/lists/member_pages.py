"""Web pages of the lists app (member_pages; being built)."""

from __future__ import annotations

from aiohttp import web

from mailhub.web.site import Site


def register(app: web.Application, site: Site) -> None:
    """Adds this module's routes to the HTTP app."""
