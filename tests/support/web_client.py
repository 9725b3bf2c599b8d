"""A visitor of the web side over plain HTTP (aiohttp's client with its own cookie jar),
and sign-in as a person does it: ask on /signin, read the link from the sink's mail,
open it and press its button."""

from __future__ import annotations

import re

import aiohttp

CSRF = re.compile(r'name="csrf" value="([^"]*)"')
LINK = re.compile(r"https?://\S+/signin/([A-Za-z0-9_-]{43})(\?next=\S*)?")


class Browser:
    """One visitor: a cookie jar of its own (cookies for 127.0.0.1 too)."""

    def __init__(self, hub) -> None:  # noqa: ANN001
        self.hub = hub
        self.session = aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True), headers={"X-Test": "1"}
        )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.hub.service.web.port}{path}"

    async def get(self, path: str) -> tuple[int, str, aiohttp.ClientResponse]:
        async with self.session.get(self.url(path), allow_redirects=False) as r:
            return r.status, await r.text(), r

    async def post(
        self, path: str, data: dict[str, str], **kw
    ) -> tuple[int, str, aiohttp.ClientResponse]:  # noqa: ANN003
        async with self.session.post(self.url(path), data=data, allow_redirects=False, **kw) as r:
            return r.status, await r.text(), r

    async def csrf(self, path: str = "/signin") -> str:
        status, page, _ = await self.get(path)
        assert status == 200, page
        return CSRF.search(page).group(1)

    async def ask(self, address: str, next_path: str = "", **kw) -> tuple[int, str]:  # noqa: ANN003
        form = {"csrf": await self.csrf(), "address": address, "next": next_path}
        status, page, _ = await self.post("/signin", form, **kw)
        return status, page

    async def close(self) -> None:
        await self.session.close()


async def link_mail(hub, address: str, n: int = 1):  # noqa: ANN001
    got = await hub.sink.wait_count(address, n)
    return got[n - 1]


def token_of(received) -> tuple[str, str]:  # noqa: ANN001
    m = LINK.search(received.message.get_content())
    assert m, received.message.get_content()
    return m.group(1), m.group(2) or ""


async def sign_in(hub, b: Browser, address: str) -> str:  # noqa: ANN001
    before = len(hub.sink.to(address))
    status, _ = await b.ask(address)
    assert status == 200
    token, query = token_of(await link_mail(hub, address, before + 1))
    status, page, _ = await b.get(f"/signin/{token}{query}")
    assert status == 200 and "<button" in page
    status, _, r = await b.post(f"/signin/{token}", {"csrf": CSRF.search(page).group(1)})
    assert status == 303, r.headers
    return r.headers["Location"]


def without_csrf(page: str) -> str:
    return CSRF.sub('name="csrf" value=""', page)


def main_of(page: str) -> str:
    """The page's own part (the header differs with who is signed in)."""
    return page[page.index('<main id="main"') : page.index("</main>")]
