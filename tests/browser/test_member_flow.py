"""A member's and a non-member's way through the site in a real browser: sign in through
the emailed link, read a thread, search in Welsh and English, change delivery on /me and
change it back, leave with the confirm step; a non-member sees nothing of a members-only
archive and is shown exactly what a member is shown until then. One flow runs again with
JavaScript turned off in the browser: nothing needs it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from selenium.webdriver.common.by import By

from tests.browser import browse, content, harness
from tests.browser.content import CAI, DAI, NOBODY, PRIVATE_WORDS

GWYRDD = "/lists/gwyrdd/"


@pytest.fixture(scope="module")
def no_js_chrome(tmp_path_factory):
    """A second browser, with JavaScript off (the content setting a managed profile
    uses): the site must work the same without it."""
    from tests.browser.conftest import _require

    _require()
    profile = tmp_path_factory.mktemp("chromium-no-js")
    driver = harness.start_chrome(javascript=False, profile=profile)
    yield driver
    driver.quit()
    harness.remove_profile(profile)


def read_and_search(driver, live) -> None:
    """From the list's months to the Welsh thread, then the searches."""
    driver.get(live.url(GWYRDD))
    assert driver.current_url == live.url(GWYRDD)
    browse.follow(driver, r"/lists/gwyrdd/\d{4}/\d{2}/$")
    browse.follow(driver, r"/lists/gwyrdd/thread/\d+$", "Llandudno")
    assert driver.find_elements(By.TAG_NAME, "script") == []  # none needed, none sent
    text = browse.main_text(driver)
    # Both messages, the first first, the authors by name only.
    assert text.index("Bydd y cyfarfod nesaf yn Llandudno") < text.index("Gwych!")
    assert "Cai Jones" in text and "Ann Smith" in text
    # No member's address (but the reader's own, in the header: "signed in as").
    others = {a for people in content.MEMBERS.values() for a in people}
    assert not [a for a in others if a in browse.main(driver).get_attribute("innerHTML")]
    # Welsh: case and diacritics folded both ways.
    for query, finds in [
        ("llandudno", "Cyfarfod yn Llandudno"),
        ("caffi", "Cyfarfod yn Llandudno"),  # "caffî" in the first, "caffi" in the reply
        ("dwr", "Cyfarfod yn Llandudno"),  # "dŵr"
        ("dŵr", "Cyfarfod yn Llandudno"),
        ("CAFFÎ", "Cyfarfod yn Llandudno"),  # with the circumflex, in capitals
        ("palettes", "Accessible charts"),
    ]:
        search(driver, query)
        assert finds in browse.main_text(driver), query
        marked = [m.text.lower() for m in browse.main(driver).find_elements(By.TAG_NAME, "mark")]
        assert marked, f"no highlighted term for {query!r}"
    search(driver, "zzyzzx")
    assert "Llandudno" not in browse.main_text(driver)


def search(driver, query: str) -> None:
    """Use the list's search box (on the months page), as a person would."""
    driver.get(driver.current_url.split("/lists/")[0] + GWYRDD)
    form = browse.form_with(driver, "q")
    box = form.find_element(By.NAME, "q")
    box.clear()
    box.send_keys(query)
    browse.submit(driver, form)
    assert "/lists/gwyrdd/search?" in driver.current_url
    assert browse.form_with(driver, "q").find_element(By.NAME, "q").get_attribute("value") == query


def set_delivery(driver, live, value: str) -> str:
    driver.get(live.url("/me"))
    form = browse.main(driver).find_element(By.XPATH, ".//form[contains(@action, '/me/gwyrdd')]")
    browse.choose(form, "delivery", value)
    browse.submit(driver, form)
    return browse.main_text(driver)


def archive_paths(live) -> list[str]:
    """Every kind of page of gwyrdd's archive, at its real month and ids."""
    posts = live.archived("gwyrdd")
    first, at = posts["cyfarfod-1@example.org"]
    reply, _ = posts["cyfarfod-2@example.net"]
    month = f"{datetime.fromtimestamp(at, UTC):%Y/%m}"
    return [
        GWYRDD,
        f"{GWYRDD}{month}/",
        f"{GWYRDD}thread/{first}",
        f"{GWYRDD}message/{reply}",
        f"{GWYRDD}search?q=Llandudno",
        f"{GWYRDD}{month}.mbox",
    ]


def status(driver) -> str:
    """What the page says has just happened (its role=status notice)."""
    return " ".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, "[role=status]"))


def test_a_member_signs_in_reads_searches_changes_delivery_and_leaves(driver, live):
    # An anonymous visitor of a members-only archive is sent to sign in, and back after.
    driver.get(live.url(GWYRDD + "?lang=en"))
    assert driver.current_url.startswith(live.url("/signin"))
    link = browse.sign_in(driver, live, CAI, start=GWYRDD)
    assert driver.current_url == live.url(GWYRDD)
    read_and_search(driver, live)

    # Digest, then every message again: each change said and recorded.
    set_delivery(driver, live, "digest")
    said = status(driver)
    assert said and live.member("gwyrdd", CAI).delivery == "digest"
    set_delivery(driver, live, "each")
    assert status(driver) not in ("", said) and live.member("gwyrdd", CAI).delivery == "each"

    # Leaving asks first: the link to leave changes nothing, the confirm button does.
    driver.get(live.url("/me"))
    browse.follow(driver, r"/me/gwyrdd/leave$")
    assert live.member("gwyrdd", CAI) is not None
    browse.submit(driver, browse.main(driver).find_element(By.TAG_NAME, "form"))
    assert live.member("gwyrdd", CAI) is None
    assert status(driver)
    # And with it goes the archive: the list's pages are a 404 to a signed-in non-member.
    driver.get(live.url(GWYRDD))
    assert "Llandudno" not in browse.body_text(driver)

    # Signing out ends the session: /me asks to sign in again, and the emailed link,
    # already used, signs nobody in.
    browse.submit(
        driver, driver.find_element(By.XPATH, "//header//form[contains(@action, '/signout')]")
    )
    driver.get(live.url("/me"))
    assert driver.current_url.startswith(live.url("/signin"))
    driver.get(link)
    for button in browse.main(driver).find_elements(By.CSS_SELECTOR, "form button"):
        browse.click_to_new_page(driver, button)
        break
    driver.get(live.url("/me"))
    assert driver.current_url.startswith(live.url("/signin"))


def test_a_non_member_sees_nothing_and_is_shown_what_a_member_is(driver, live):
    driver.get(live.url("/?lang=cy"))
    paths = archive_paths(live)
    # Signed out, every page of the archive sends to the sign-in page, showing nothing.
    for path in paths:
        driver.get(live.url(path))
        assert driver.current_url.startswith(live.url("/signin?")), path
        text = browse.body_text(driver)
        assert not any(word in text for word in PRIVATE_WORDS), path
    # The sign-in page, and the page after sending it: the same for a member, a member of
    # another list and nobody (the address itself aside); mail only for members.
    pages = set()
    for address in (content.ANN, DAI, NOBODY):
        driver.get(live.url("/signin?next=/lists/gwyrdd/"))
        form_page = browse.body_text(driver)
        form = browse.form_with(driver, "address")
        form.find_element(By.NAME, "address").send_keys(address)
        browse.submit(driver, form)
        pages.add((form_page, browse.body_text(driver).replace(address, "ADDRESS")))
    assert len(pages) == 1
    # dai (glas only) signs in: gwyrdd's pages are the 404 of a list that does not exist,
    # and the home page does not name it.
    browse.sign_in(driver, live, DAI)
    missing = page_of(driver, live.url("/lists/nosuch/"))
    for path in paths:
        assert page_of(driver, live.url(path)) == missing, path
    driver.get(live.url("/"))
    home = browse.body_text(driver)
    assert "Tîm Glas" in home and "Tîm Gwyrdd" not in home and "Green Team" not in home
    assert NOBODY not in {r.rcpt for r in live.hub.sink.received}


def page_of(driver, url: str) -> str:
    driver.get(url)
    return browse.body_text(driver)


def test_without_javascript_a_member_signs_in_reads_searches_and_changes_delivery(
    no_js_chrome, live
):
    driver = no_js_chrome
    # JavaScript is off indeed: a page's own script does not run.
    driver.get("data:text/html,<p id=p>off</p><script>p.textContent='on'</script>")
    assert browse.body_text(driver) == "off"
    browse.sign_in(driver, live, content.ANN, start=GWYRDD)
    read_and_search(driver, live)
    set_delivery(driver, live, "digest")
    assert live.member("gwyrdd", content.ANN).delivery == "digest"
    set_delivery(driver, live, "each")
    assert live.member("gwyrdd", content.ANN).delivery == "each"
