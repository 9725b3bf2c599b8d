"""Fixtures of the real-browser tests: one headless Chromium for the whole run (Debian's
chromium through chromium-driver, with Selenium), and helpers for each module's own
service (harness.LiveHub).

Without Chromium, chromedriver or axe-core these tests skip with one line naming what is
missing, unless MAILHUB_REQUIRE_BROWSER is set (.ci/run sets it): then they fail, so CI
cannot pass without having run them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
from selenium.common.exceptions import UnexpectedAlertPresentException

from tests.browser import content, harness


def _require() -> None:
    lacking = harness.missing()
    if not lacking:
        return
    reason = "browser tests need " + ", ".join(lacking) + " (.ci/run installs them)"
    if os.environ.get("MAILHUB_REQUIRE_BROWSER"):
        pytest.fail(reason + "; MAILHUB_REQUIRE_BROWSER is set", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chrome(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The one browser of the run (starting one costs about a second)."""
    _require()
    profile = tmp_path_factory.mktemp("chromium-profile")
    driver = harness.start_chrome(profile=profile)
    try:
        yield driver
    finally:
        driver.quit()
        harness.remove_profile(profile)


@pytest.fixture
def driver(chrome: Any) -> Iterator[Any]:
    """The browser, for one test: a fresh start (no cookies of an earlier test or
    service: cookies are per host, not per port) in a window of the usual size."""
    try:  # off any page an earlier test left, and any alert it opened
        chrome.get("about:blank")
    except UnexpectedAlertPresentException:
        chrome.get("about:blank")
    chrome.execute_cdp_cmd("Network.clearBrowserCookies", {})
    chrome.set_window_size(1280, 900)
    yield chrome


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed browser test leaves a screenshot of where the browser was."""
    outcome = yield
    report = outcome.get_result()
    driver = getattr(item, "funcargs", {}).get("driver")
    if report.failed and report.when == "call" and driver is not None:
        name = "failed-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid)[-150:]
        try:
            path = harness.screenshot(driver, name)
            report.sections.append(("browser", f"at {driver.current_url}; screenshot {path}"))
        except Exception as exc:  # noqa: BLE001 - the failure itself is what matters
            report.sections.append(("browser", f"no screenshot: {exc!r}"))


@pytest.fixture(scope="module")
def live(chrome, tmp_path_factory, request):
    """A service per test module, with the shared lists, people and posts
    (tests/browser/content.py); a module that needs other content defines its own."""
    hub = harness.LiveHub(tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1]),
                          content.LISTS)  # fmt: skip
    content.seed(hub)
    yield hub
    hub.close()
