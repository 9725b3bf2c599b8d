"""WCAG 2.2 AA in a real browser, on every type of page, in Welsh and in English:
axe-core finds no violation at levels A and AA; the skip link is the first Tab stop and
takes focus to the main content; at 320 CSS pixels wide (1280 at 400 % zoom) no page
scrolls sideways. Screenshots of each page are kept as artefacts (the thread page's as
thread-cy.png and thread-en.png)."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.browser import browse, content, harness
from tests.browser.content import CAI

LANGS = ("cy", "en")
# Pages a signed-in member of gwyrdd sees (the path of each is known once posts are in).
MEMBER_PAGES = ("home", "months", "month", "thread", "message", "search", "me", "leave", "404")
ANONYMOUS_PAGES = (
    "signin",
    "check-email",
    "signin-link",
    "dead-link",  # a sign-in link used, expired or forged
    "signout",
    "public-months",  # a public list's months (with its feed link)
    "no-results",
    "404",
)


@pytest.fixture(scope="module")
def paths(live) -> dict[str, str]:
    posts = live.archived("gwyrdd")
    first, at = posts["cyfarfod-1@example.org"]
    reply, _ = posts["cyfarfod-2@example.net"]
    month = datetime.fromtimestamp(at, UTC)
    return {
        "home": "/",
        "months": "/lists/gwyrdd/",
        "month": f"/lists/gwyrdd/{month:%Y/%m}/",
        "thread": f"/lists/gwyrdd/thread/{first}",
        "message": f"/lists/gwyrdd/message/{reply}",
        "search": "/lists/gwyrdd/search?q=caffi",
        "me": "/me",
        "leave": "/me/gwyrdd/leave",
        "signin": "/signin?next=/lists/gwyrdd/",
        "one-click": live.one_click_path("gwyrdd", content.ANN),
        "404": "/lists/nosuch/",
        "dead-link": "/signin/" + "A" * 43,
        "signout": "/signout",
        "public-months": "/lists/glas/",
        "no-results": "/lists/glas/search?q=zzyzzx",
    }


@pytest.fixture(scope="module")
def member_cookies(chrome, live) -> list[dict]:
    """Cai's session, signed in once through the browser for the whole module."""
    chrome.execute_cdp_cmd("Network.clearBrowserCookies", {})
    browse.sign_in(chrome, live, CAI)
    return chrome.get_cookies()


def as_member(driver, live, cookies) -> None:
    driver.get(live.url("/robots.txt"))  # a page of the site, so its cookies can be set
    for cookie in cookies:
        driver.add_cookie(cookie)


def with_lang(path: str, lang: str) -> str:
    return path + ("&" if "?" in path else "?") + f"lang={lang}"


def open_page(driver, live, paths, page: str, lang: str) -> None:
    """Open the page in `lang`; the pages reached by a form are reached by their form."""
    if page == "check-email":
        driver.get(live.url(with_lang(paths["signin"], lang)))
        form = browse.form_with(driver, "address")
        form.find_element(By.NAME, "address").send_keys(content.NOBODY)
        browse.submit(driver, form)
    elif page == "signin-link":
        driver.get(live.url(with_lang(paths["signin"], lang)))
        form = browse.form_with(driver, "address")
        form.find_element(By.NAME, "address").send_keys(content.ANN)
        before = live.mails_to(content.ANN)
        browse.submit(driver, form)
        driver.get(live.wait_link(content.ANN, before))
    else:
        driver.get(live.url(with_lang(paths[page], lang)))
    assert driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == lang
    # The page is the one meant (not, say, the sign-in page it could redirect to).
    expected = {
        "thread": "Llandudno",
        "message": "Gwych!",
        "search": "Llandudno",
        "me": CAI,
    }.get(page)
    if expected:
        assert expected in browse.main_text(driver), (page, driver.current_url)
    if page == "search":
        assert browse.main(driver).find_elements(By.TAG_NAME, "mark")


def check(driver, page: str, lang: str) -> None:
    violations = harness.axe(driver)
    harness.screenshot(driver, f"{page}-{lang}")
    assert not violations, f"{page} ({lang}) at {driver.current_url}:\n" + harness.describe(
        violations
    )


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("page", MEMBER_PAGES)
def test_a_members_pages_have_no_violations(driver, live, paths, member_cookies, page, lang):
    as_member(driver, live, member_cookies)
    open_page(driver, live, paths, page, lang)
    check(driver, page, lang)
    if page == "leave":  # the confirm step changed nothing
        assert live.member("gwyrdd", CAI) is not None


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("page", ANONYMOUS_PAGES)
def test_the_pages_before_signing_in_have_no_violations(driver, live, paths, page, lang):
    open_page(driver, live, paths, page, lang)
    check(driver, page, lang)


def test_the_one_click_page_has_no_violations(driver, live, paths):
    """The one-click unsubscribe page (RFC 8058) is both languages at once, each half
    marked with its own lang, the list's language first."""
    driver.get(live.url(paths["one-click"]))
    halves = [e.get_attribute("lang") for e in driver.find_elements(By.CSS_SELECTOR, "main [lang]")]
    assert {"cy", "en"} <= set(halves), halves
    check(driver, "one-click", "cy+en")


def test_the_thread_page_screenshots_are_kept(driver, live, paths, member_cookies):
    as_member(driver, live, member_cookies)
    for lang in LANGS:
        open_page(driver, live, paths, "thread", lang)
        shot = harness.screenshot(driver, f"thread-{lang}")
        assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def tab(driver) -> None:
    ActionChains(driver).send_keys(Keys.TAB).perform()


def active(driver):
    return driver.switch_to.active_element


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("page", ["home", "thread", "me", "signin", "404"])
def test_the_skip_link_is_the_first_tab_stop_and_moves_focus_to_main(
    driver, live, paths, member_cookies, page, lang
):
    if page != "signin":
        as_member(driver, live, member_cookies)
    open_page(driver, live, paths, page, lang)
    tab(driver)
    skip = active(driver)
    assert skip.tag_name == "a" and urlsplit(skip.get_attribute("href")).fragment == "main"
    assert skip.is_displayed()  # shown when focused (it may hide until then)
    skip.send_keys(Keys.ENTER)
    main = browse.main(driver)
    assert main.get_attribute("id") == "main"
    # Focus is on <main> itself, or the next Tab lands inside it (past the header).
    if active(driver) != main:
        tab(driver)
        assert driver.execute_script(
            "return arguments[0].contains(document.activeElement)", main
        ), f"after the skip link, focus is on {active(driver).tag_name}"


@pytest.mark.parametrize("lang", LANGS)
def test_no_page_scrolls_sideways_at_400_percent_zoom(driver, live, paths, member_cookies, lang):
    """320 CSS pixels wide is a 1280-pixel window at 400 % (WCAG 1.4.10 Reflow)."""
    as_member(driver, live, member_cookies)
    harness.narrow(driver)
    try:
        wide = {}
        for page in ("home", "months", "month", "thread", "message", "search", "me", "leave"):
            open_page(driver, live, paths, page, lang)
            harness.screenshot(driver, f"{page}-{lang}-320px")
            wide[page] = harness.overflow(driver)
        driver.delete_all_cookies()
        for page in ("signin", "check-email", "404"):
            open_page(driver, live, paths, page, lang)
            wide[page] = harness.overflow(driver)
        assert not any(wide.values()), wide
    finally:
        harness.full_width(driver)
