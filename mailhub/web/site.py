"""What every page handler works with: the store, the runtime (config, clock, templates),
the pages, the means to wake delivery, and the gate in front of the database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

from mailhub.context import Runtime
from mailhub.store import Store
from mailhub.web.limits import Window
from mailhub.web.pages import Pages

# Requests doing database work at once, and waiting for their turn; past that a request is
# answered 503 at once. Intake shares the store's one connection: however many HTTP
# requests arrive, at most WORK_SLOTS of them are ever queued for it ahead of a commit.
WORK_SLOTS = 2
MAX_WAITING = 64


class Gate:
    """A bounded queue in front of the database for the web side (a flood of requests,
    e.g. forged tokens that each scan a list's members, cannot starve intake)."""

    def __init__(self, slots: int = WORK_SLOTS, max_waiting: int = MAX_WAITING) -> None:
        self._slots = asyncio.Semaphore(slots)
        self.max_waiting = max_waiting
        self.waiting = 0

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[None]:
        if self.waiting >= self.max_waiting:
            raise web.HTTPServiceUnavailable()
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        try:
            yield
        finally:
            self._slots.release()


@dataclass
class Site:
    store: Store
    runtime: Runtime
    wake_delivery: Callable[[], None]
    pages: Pages = field(init=False)
    gate: Gate = field(default_factory=Gate)
    # Archive searches per client ([web] searches_per_minute; made with the site).
    searches: Window = field(init=False)
    # The key of web cookies and CSRF tokens (secrets "web"), read once (mailhub.web.visitor).
    web_key: bytes | None = None

    def __post_init__(self) -> None:
        self.pages = Pages(self.runtime.config.templates_dir)
        web = self.runtime.config.web
        self.searches = Window(web.searches_per_minute if web else 0, 60.0)


# An app's web pages: adds its routes (and their handlers, given the site) to the HTTP app.
Routes = Callable[[web.Application, "Site"], None]
