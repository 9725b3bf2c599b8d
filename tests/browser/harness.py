"""What the real-browser tests share: a real Service on its own thread and event loop
(Selenium's calls block, so the service cannot share the test's thread), the Chromium
driver's options, axe-core run in the page, and screenshots kept as artefacts.

Nothing of mailhub is mocked: the service listens for SMTP and HTTP on loopback, keeps
a real SQLite file and relays to a real SMTP sink, from which the sign-in mail is read.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import threading
from collections.abc import Coroutine
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar

from mailhub.lists.leaving import one_click_token
from mailhub.service import StartError
from mailhub.store import lists as store
from mailhub.store import secrets
from tests.support.hub import DOMAIN, Hub, start_hub
from tests.support.lists import stop_hub
from tests.support.sink import Sink

T = TypeVar("T")

CHECKOUT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Installed by .ci/run (`npm ci --prefix .ci/axe`: the version pinned in its lock file).
AXE = CHECKOUT / ".ci" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
# WCAG 2.0, 2.1 and 2.2 at levels A and AA: what the public sector regulations ask.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
# How long one wait for a page or a mail may take before the test fails (not a sleep:
# each wait ends as soon as its condition holds).
WAIT_SECONDS = 15.0


def artefacts() -> Path:
    """Where screenshots go: $MAILHUB_ARTEFACTS, else test-artefacts/ in the checkout."""
    path = Path(os.environ.get("MAILHUB_ARTEFACTS") or CHECKOUT / "test-artefacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def missing() -> list[str]:
    """What the browser tests need and this machine lacks (empty: they can run)."""
    lacking = []
    try:
        import selenium  # noqa: F401
    except ImportError:
        lacking.append("selenium (pip install -e '.[test]')")
    if not os.access(CHROMIUM, os.X_OK):
        lacking.append(f"{CHROMIUM} (Debian package chromium)")
    if not os.access(CHROMEDRIVER, os.X_OK):
        lacking.append(f"{CHROMEDRIVER} (Debian package chromium-driver)")
    if not AXE.is_file():
        lacking.append(f"{AXE.relative_to(CHECKOUT)} (npm ci --prefix .ci/axe)")
    return lacking


def free_port() -> int:
    """A loopback port free just now, so that `[web] base_url` (and the links mailed from
    it) can name the port the server will listen on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveHub:
    """`start_hub` on a thread of its own, its event loop running while the test's thread
    drives the browser; `run(coro)` runs a coroutine there and returns its result."""

    def __init__(self, tmp_path: Path, lists_toml: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="live-hub", daemon=True)
        self.thread.start()
        try:
            self.hub: Hub = self.run(self._start(tmp_path, lists_toml))
        except BaseException:
            self._end_loop()
            raise

    async def _start(self, tmp_path: Path, lists_toml: str) -> Hub:
        sink = Sink()
        await sink.start()
        for attempt in range(3):
            # The port is free when chosen; something else may take it before the service
            # listens (unlikely): then another port, in a fresh directory.
            self.web_port = free_port()
            self.base = f"http://127.0.0.1:{self.web_port}"
            web = f'\n[web]\nlisten = "127.0.0.1:{self.web_port}"\nbase_url = "{self.base}"\n'
            path = tmp_path / f"service-{attempt}"
            path.mkdir()
            try:
                return await start_hub(path, extra=web + lists_toml, sink=sink)
            except StartError:
                if attempt == 2:
                    await sink.stop()
                    raise
        raise AssertionError("unreachable")

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def url(self, path: str) -> str:
        return self.base + path

    def close(self) -> None:
        try:
            self.run(stop_hub(self.hub))
        finally:
            self._end_loop()

    def _end_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    # What the tests do to the service, each through the real paths.

    def add_members(self, list_name: str, people: dict[str, str]) -> None:
        """`people`: address -> name."""

        async def add() -> None:
            async with self.hub.service.store.transaction() as tx:
                for address, name in people.items():
                    await store.add_member(tx, list_name, address, name, self.hub.clock.now())

        self.run(add())

    def post(self, sender: str, list_name: str, raw: str) -> None:
        """Send `raw` to the list by SMTP and wait until it is processed (archived)."""

        async def send() -> None:
            code, text = await self.hub.send(sender, [f"{list_name}@{DOMAIN}"], raw)
            assert code == 250, (code, text)
            await self.hub.idle()

        self.run(send())

    def mails_to(self, address: str) -> int:
        return len(self.hub.sink.to(address))

    def wait_link(self, address: str, since: int) -> str:
        """The sign-in link in the first mail to `address` after its first `since` mails
        that carries one (list mail may arrive in between)."""
        pattern = re.compile(re.escape(self.base) + r"/signin/[^\s<>\"]+")

        def found(text: str) -> str | None:
            match = pattern.search(text)
            return match.group(0) if match else None

        def texts() -> list[str]:
            return [plain_text(r.message) for r in self.hub.sink.to(address)[since:]]

        async def wait() -> str:
            await self.hub.sink.wait_for(
                lambda _: any(found(t) for t in texts()), timeout=WAIT_SECONDS
            )
            return next(link for link in map(found, texts()) if link)

        return self.run(wait(), timeout=WAIT_SECONDS + 5)

    def member(self, list_name: str, address: str) -> store.Member | None:
        async def get() -> store.Member | None:
            async with self.hub.service.store.read() as tx:
                return await store.get_member(tx, list_name, address)

        return self.run(get())

    def archived(self, list_name: str) -> dict[str, tuple[int, float]]:
        """The list's archived posts: Message-ID -> (archive id, when archived). An id is
        what the archive's URLs name (a thread by the id of its first message)."""

        async def get() -> dict[str, tuple[int, float]]:
            async with self.hub.service.store.read() as tx:
                posts = await store.archived_since(tx, list_name, 0)
            return {p.message_id.strip("<>"): (p.id, p.archived_at) for p in posts}

        return self.run(get())

    def one_click_path(self, list_name: str, address: str) -> str:
        """The member's one-click unsubscribe page, as their list mail links it."""

        async def get() -> str:
            async with self.hub.service.store.transaction() as tx:
                secret = await secrets.get_or_create(tx, "lists")
            return "/u/" + one_click_token(secret, list_name, address)

        return self.run(get())


def plain_text(msg: EmailMessage) -> str:
    return "\n".join(p.get_content() for p in msg.walk() if p.get_content_type() == "text/plain")


def chrome_options(*, javascript: bool = True, profile: Path) -> Any:
    from selenium.webdriver.chrome.options import Options

    options = Options()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(arg)
    if not javascript:
        options.add_experimental_option(
            "prefs", {"profile.managed_default_content_settings.javascript": 2}
        )
    return options


def start_chrome(*, javascript: bool = True, profile: Path) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    driver = webdriver.Chrome(
        options=chrome_options(javascript=javascript, profile=profile),
        service=Service(executable_path=str(CHROMEDRIVER)),
    )
    driver.set_page_load_timeout(WAIT_SECONDS)
    driver.set_script_timeout(60)  # axe on a long page
    return driver


def remove_profile(profile: Path) -> None:
    shutil.rmtree(profile, ignore_errors=True)


_AXE_RUN = """
const done = arguments[arguments.length - 1];
axe.run(document, {runOnly: {type: 'tag', values: arguments[0]}, resultTypes: ['violations']})
  .then(r => done(r.violations), e => done({error: String(e)}));
"""


def axe(driver: Any, url: str | None = None) -> list[dict[str, Any]]:
    """axe-core's violations of WCAG 2.0/2.1/2.2 A and AA on the page (at `url`, when
    given). The script is injected through WebDriver, which the page's CSP
    (`default-src 'none'`: no script of any origin) does not govern."""
    if url is not None:
        driver.get(url)
    driver.execute_script(AXE.read_text())
    found = driver.execute_async_script(_AXE_RUN, AXE_TAGS)
    if isinstance(found, dict):
        raise AssertionError(f"axe-core failed on {driver.current_url}: {found['error']}")
    return found


def describe(violations: list[dict[str, Any]]) -> str:
    """A failure message: rule, impact, the elements (CSS targets) and the help text."""
    lines = []
    for v in violations:
        lines.append(f"{v['id']} ({v['impact']}): {v['help']} [{v['helpUrl']}]")
        for node in v["nodes"][:5]:
            lines.append(f"    {json.dumps(node['target'])}: {node.get('failureSummary', '')}")
    return "\n".join(lines)


NARROW = {"width": 320, "height": 640, "deviceScaleFactor": 1, "mobile": False}


def narrow(driver: Any) -> None:
    """Lay pages out 320 CSS pixels wide: a 1280-pixel window at 400 % zoom (WCAG 1.4.10)."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", NARROW)


def full_width(driver: Any) -> None:
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def overflow(driver: Any) -> int:
    """How many CSS pixels the page is wider than its window (0: no sideways scrolling)."""
    wide, seen = driver.execute_script(
        "const e = document.documentElement; return [e.scrollWidth, e.clientWidth]"
    )
    return max(0, wide - seen)


def screenshot(driver: Any, name: str) -> Path:
    """A screenshot of the whole page (beyond the window) saved as artefacts()/NAME.png."""
    import base64

    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
    )
    path = artefacts() / f"{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    return path
