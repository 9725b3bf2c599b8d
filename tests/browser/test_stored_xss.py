"""A stored-XSS attempt in a post renders inert on every archive page: script tags,
`javascript:` links, event attributes, SVG and MathML, iframes, objects, forms, meta
refresh, in the HTML part, the plain text, the subject and the author's name.

Each page is loaded twice: as served (its CSP forbids every script), and with the
browser told to bypass the CSP, so that what is tested is the sanitiser itself: a
payload that survived would run then (test_harness proves the canary fires). Inert
means: no alert opened, the canary variable the payloads set stays undefined, and the DOM
holds no script, no element with an on… attribute, no active content, no javascript:
or data: URL."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from selenium.common.exceptions import NoAlertPresentException, UnexpectedAlertPresentException
from selenium.webdriver.common.by import By

from tests.browser import browse, harness

LISTS = """
[[lists]]
name = "agored"
display_name = "Open list"
display_name_cy = "Rhestr agored"
archive = "public"
language = "en+cy"
"""
EVE = "eve@example.net"
HTML_PART = """\
<p>Hello <b>everyone</b>, the agenda is below.</p>
<script>window.__pwned = 1; alert(1)</script>
<SCRIPT SRC=//evil.example/x.js></SCRIPT>
<a href="javascript:window.__pwned=1;alert(1)">javascript link</a>
<a href=" JaVaScRiPt:alert(1)">mixed-case javascript link</a>
<a href="data:text/html,&lt;script&gt;alert(1)&lt;/script&gt;">data link</a>
<a href="https://example.org/agenda">the agenda</a>
<img src="x" onerror="window.__pwned=1;alert(1)" alt="agenda picture">
<img src="https://example.org/chart.png"><img src="https://example.org/map.png" alt="">
<div onmouseover="window.__pwned=1" onclick="alert(1)">hover or click</div>
<svg onload="window.__pwned=1;alert(1)"><circle r="10"/></svg>
<svg><script>window.__pwned=1</script><a href="javascript:alert(1)"><text>svg link</text></a></svg>
<math><mtext><table><mglyph><style><img src=x onerror="window.__pwned=1"></style></mglyph></table></mtext></math>
<iframe src="javascript:alert(1)"></iframe>
<iframe srcdoc="<script>parent.__pwned=1</script>"></iframe>
<object data="javascript:alert(1)"></object>
<embed src="javascript:alert(1)">
<form action="javascript:alert(1)"><button formaction="javascript:alert(1)">go</button></form>
<details open ontoggle="window.__pwned=1"><summary>details</summary>x</details>
<input autofocus onfocus="window.__pwned=1">
<meta http-equiv="refresh" content="0;url=javascript:alert(1)">
<base href="javascript:alert(1)//">
<style>body { background: url("javascript:alert(1)") }</style>
<p style="background:url(javascript:alert(1))">styled paragraph</p>
<a href="#" onfocus="window.__pwned=1" autofocus>focus me</a>
"""
HTML_POST = f"""\
From: "<svg onload=alert(1)>Eve" <{EVE}>
To: agored@cop.example.org
Subject: <script>window.__pwned=1</script>Agenda <img src=x onerror=alert(1)>
Message-ID: <xss-html@example.net>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="b1"

--b1
Content-Type: text/plain; charset=utf-8

Hello everyone, the agenda is below. </pre><script>window.__pwned=1</script>
<a href="javascript:alert(1)">plain javascript link</a> <img src=x onerror=alert(1)>

--b1
Content-Type: text/html; charset=utf-8

{HTML_PART}
--b1--
"""
TEXT_POST = f"""\
From: Eve <{EVE}>
To: agored@cop.example.org
Subject: Re: Agenda </title><script>alert(1)</script>
Message-ID: <xss-text@example.net>
In-Reply-To: <xss-html@example.net>
References: <xss-html@example.net>
Content-Type: text/plain; charset=utf-8

Plain reply: </pre></div><script>window.__pwned=1;alert(1)</script>
<iframe src="javascript:alert(1)"></iframe> <svg onload="window.__pwned=1">
"""
HTML_ONLY_POST = f"""\
From: Eve <{EVE}>
To: agored@cop.example.org
Subject: HTML only
Message-ID: <xss-html-only@example.net>
MIME-Version: 1.0
Content-Type: text/html; charset=utf-8

<html><head><script>window.__pwned=1</script></head>
<body onload="window.__pwned=1">{HTML_PART}</body></html>
"""

# What no archive page may hold, whatever the posts said (CSS selectors). The layout's own
# forms (search, sign in) are allowed: their actions are checked separately.
ACTIVE = "script, iframe, frame, object, embed, applet, svg, math, base, meta[http-equiv]"
URL_ATTRIBUTES = ("href", "src", "action", "formaction", "data", "srcdoc", "xlink:href")
DANGEROUS = """
const bad = [];
for (const e of document.querySelectorAll('*'))
  for (const a of e.attributes) {
    const v = a.value.replace(/[\\s\\u0000-\\u001f]+/g, '').toLowerCase();
    if (arguments[0].includes(a.name.toLowerCase())
        && (v.startsWith('javascript:') || v.startsWith('data:') || v.startsWith('vbscript:')))
      bad.push(e.tagName + '[' + a.name + '=' + a.value + ']');
  }
return bad;
"""


@pytest.fixture(scope="module")
def live(chrome, tmp_path_factory):
    hub = harness.LiveHub(tmp_path_factory.mktemp("xss"), LISTS)
    hub.add_members("agored", {EVE: "Eve"})
    for raw in (HTML_POST, TEXT_POST, HTML_ONLY_POST):
        hub.post(EVE, "agored", raw)
    yield hub
    hub.close()


@pytest.fixture(scope="module")
def pages(live) -> list[str]:
    posts = live.archived("agored")
    first, at = posts["xss-html@example.net"]
    month = datetime.fromtimestamp(at, UTC)
    paths = [
        "/",
        "/lists/agored/",
        f"/lists/agored/{month:%Y/%m}/",
        f"/lists/agored/thread/{first}",
    ]
    paths += [f"/lists/agored/message/{i}" for i, _ in posts.values()]
    paths += ["/lists/agored/search?q=agenda", "/lists/agored/search?q=Plain+reply"]
    return [live.url(p) for p in paths]


def alerts(driver) -> list[str]:
    """The texts of the alerts open now, each dismissed (a payload may open several)."""
    texts = []
    for _ in range(50):
        try:
            alert = driver.switch_to.alert
        except NoAlertPresentException:
            break
        texts.append(alert.text)
        alert.dismiss()
    return texts


def assert_inert(driver, url: str) -> None:
    try:
        driver.get(url)
        opened = alerts(driver)
    except UnexpectedAlertPresentException as exc:  # opened while loading: dismissed
        opened = [exc.alert_text or "", *alerts(driver)]
    assert not opened, f"{url} opened alerts: {opened}"
    assert driver.execute_script("return typeof window.__pwned") == "undefined", url
    assert browse.has_on_attributes(driver) == [], url
    active = [e.tag_name for e in driver.find_elements(By.CSS_SELECTOR, ACTIVE)]
    assert active == [], (url, active)
    assert driver.execute_script(DANGEROUS, list(URL_ATTRIBUTES)) == [], url
    # Forms on the page are the site's own: they post (or get) to its own paths.
    for form in driver.find_elements(By.TAG_NAME, "form"):
        action = form.get_attribute("action") or url
        assert action.startswith(url.split("/lists/")[0].rstrip("/") + "/"), (url, action)
    # Focus every link and control (what autofocus/onfocus payloads wait for).
    for element in driver.find_elements(By.CSS_SELECTOR, "a[href], button, input, summary"):
        driver.execute_script("arguments[0].focus()", element)
    assert driver.execute_script("return typeof window.__pwned") == "undefined", url


def test_the_posts_are_shown(driver, live, pages):
    """The payloads' harmless text is on the pages: the test looks at the real thing."""
    posts = live.archived("agored")
    driver.get(live.url(f"/lists/agored/thread/{posts['xss-html@example.net'][0]}"))
    text = browse.main_text(driver)
    assert "Hello everyone" in text and "Plain reply" in text
    for message_id in ("xss-html@example.net", "xss-html-only@example.net"):
        driver.get(live.url(f"/lists/agored/message/{posts[message_id][0]}"))
        assert "the agenda" in browse.main_text(driver)
        assert browse.hrefs(driver, r"^https://example\.org/agenda$"), message_id
        harness.screenshot(driver, "xss-" + message_id.split("@")[0])
        # What the sanitiser keeps of a hostile post is still an accessible page.
        violations = harness.axe(driver)
        assert not violations, harness.describe(violations)


@pytest.mark.parametrize(
    "page",
    [
        HTML_PART,  # everything at once: the alert comes first
        "<p onclick='x()'>an event attribute alone</p>",
        "<a href=' JavaScript:x()'>a javascript: link alone</a>",
        "<svg><circle r=1 /></svg>",
        "<iframe title=t></iframe>",
    ],
)
def test_the_checks_find_what_a_sanitiser_let_through(driver, page):
    with pytest.raises(AssertionError):
        assert_inert(driver, "data:text/html;charset=utf-8," + quote(page))


@pytest.mark.parametrize("csp", ["as served", "bypassed"])
def test_a_stored_xss_post_renders_inert_on_every_page(driver, pages, csp):
    driver.execute_cdp_cmd("Page.setBypassCSP", {"enabled": csp == "bypassed"})
    try:
        for url in pages:
            assert_inert(driver, url)
    finally:
        driver.execute_cdp_cmd("Page.setBypassCSP", {"enabled": False})
