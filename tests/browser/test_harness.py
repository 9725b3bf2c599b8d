"""The browser tests' own instruments can fail: axe-core finds violations on a page that
has them, and the stored-XSS canary fires when a script does run (even under a CSP that
forbids it, once the browser is told to bypass the CSP, as test_stored_xss does to test
the sanitiser alone), and a page too wide for 400 % zoom is found."""

from __future__ import annotations

from urllib.parse import quote

from tests.browser import harness

BAD_PAGE = (
    "<!doctype html><html><head><title>x</title></head><body>"
    '<img src="x.png"><form><input name="q"></form>'
    '<p style="color:#777;background:#888">grey on grey</p></body></html>'
)
SCRIPTED = (
    "<!doctype html><html lang=en><head><title>x</title>"
    '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'"></head>'
    "<body><script>window.__pwned = 1</script><p>hi</p></body></html>"
)


WIDE = (
    "<!doctype html><html lang=en><head><title>x</title></head>"
    '<body><div style="width:600px">a fixed-width block</div></body></html>'
)


def data_url(page: str) -> str:
    return "data:text/html;charset=utf-8," + quote(page)


def test_axe_reports_the_violations_of_a_page_that_has_them(driver):
    found = {v["id"] for v in harness.axe(driver, data_url(BAD_PAGE))}
    assert {"html-has-lang", "image-alt", "label", "color-contrast"} <= found, found
    assert "image-alt (critical)" in harness.describe(harness.axe(driver))


def test_the_canary_fires_when_the_csp_is_bypassed_and_not_before(driver):
    driver.get(data_url(SCRIPTED))
    assert driver.execute_script("return window.__pwned") is None  # the CSP held
    driver.execute_cdp_cmd("Page.setBypassCSP", {"enabled": True})
    try:
        driver.get(data_url(SCRIPTED))
        assert driver.execute_script("return window.__pwned") == 1
    finally:
        driver.execute_cdp_cmd("Page.setBypassCSP", {"enabled": False})


def test_a_page_too_wide_for_400_percent_zoom_is_found(driver):
    harness.narrow(driver)
    try:
        driver.get(data_url(WIDE))
        assert harness.overflow(driver) > 200
        driver.get(data_url(WIDE.replace("width:600px", "max-width:600px")))
        assert harness.overflow(driver) == 0
    finally:
        harness.full_width(driver)
