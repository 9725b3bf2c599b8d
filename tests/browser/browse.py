"""What a person does in the browser, as the tests do it: follow links, fill and send
forms, sign in through the emailed link. Every wait is for a condition (a new page, an
element), never a fixed time."""

from __future__ import annotations

import re
from typing import Any

from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.harness import WAIT_SECONDS, LiveHub


def wait(driver: WebDriver) -> WebDriverWait:
    return WebDriverWait(driver, WAIT_SECONDS)


def click_to_new_page(driver: WebDriver, element: WebElement) -> None:
    """Click something that loads a page (a link, a form's button) and wait for it."""
    old = driver.find_element(By.TAG_NAME, "html")
    element.click()
    # While the page changes, asking about the old one can fail otherwise than "stale"
    # ("node does not belong to the document"): ask again until it is stale.
    WebDriverWait(driver, WAIT_SECONDS, ignored_exceptions=(WebDriverException,)).until(
        EC.staleness_of(old)
    )
    wait(driver).until(lambda d: d.execute_script("return document.readyState") == "complete")


def main(driver: WebDriver) -> WebElement:
    return driver.find_element(By.TAG_NAME, "main")


def main_text(driver: WebDriver) -> str:
    return main(driver).text


def body_text(driver: WebDriver) -> str:
    return driver.find_element(By.TAG_NAME, "body").text


def links(driver: WebDriver, pattern: str) -> list[WebElement]:
    """The links whose (absolute) href matches `pattern` (a regex searched in it)."""
    found = re.compile(pattern)
    return [
        a
        for a in driver.find_elements(By.CSS_SELECTOR, "a[href]")
        if found.search(a.get_attribute("href") or "")
    ]


def hrefs(driver: WebDriver, pattern: str) -> list[str]:
    return [a.get_attribute("href") for a in links(driver, pattern)]


def follow(driver: WebDriver, pattern: str, text: str = "") -> None:
    """Click the first link whose href matches `pattern` (and whose text holds `text`)."""
    candidates = [a for a in links(driver, pattern) if text in a.text]
    assert candidates, f"no link matching {pattern!r} {text!r} on {driver.current_url}"
    click_to_new_page(driver, candidates[0])


def form_with(driver: WebDriver, field: str, value: str | None = None) -> WebElement:
    """The form in <main> holding a field named `field` (with `value`, for radios and
    hidden fields)."""
    test = f"@name='{field}'" + (f" and @value='{value}'" if value is not None else "")
    return main(driver).find_element(By.XPATH, f".//form[.//*[{test}]]")


def submit(driver: WebDriver, form: WebElement) -> None:
    """Press the form's (first) submit button: a real click, as a person would."""
    button = form.find_element(
        By.CSS_SELECTOR, "button:not([type]), button[type=submit], input[type=submit]"
    )
    click_to_new_page(driver, button)


def choose(form: WebElement, name: str, value: str) -> None:
    """Set the field `name` to `value`, whether it is a select or radio buttons."""
    fields = form.find_elements(By.NAME, name)
    assert fields, f"no field {name!r} in the form"
    if fields[0].tag_name == "select":
        Select(fields[0]).select_by_value(value)
        return
    [radio] = [f for f in fields if f.get_attribute("value") == value]
    if not radio.is_selected():
        radio.click()


def sign_in(driver: WebDriver, live: LiveHub, address: str, start: str = "/signin") -> str:
    """Sign in as a person does: the sign-in form (at `start`, or where `start` sends an
    anonymous visitor), the mailed link, its one button. Returns the link."""
    driver.get(live.url(start))
    form = form_with(driver, "address")
    form.find_element(By.NAME, "address").send_keys(address)
    before = live.mails_to(address)
    submit(driver, form)
    link = live.wait_link(address, before)
    driver.get(link)
    submit(driver, main(driver).find_element(By.TAG_NAME, "form"))
    return link


def has_on_attributes(driver: WebDriver) -> list[str]:
    """Elements with an event-handler attribute (on…), as `tag[attr]`."""
    script = """
    const found = [];
    for (const e of document.querySelectorAll('*'))
      for (const a of e.attributes)
        if (a.name.toLowerCase().startsWith('on')) found.push(e.tagName + '[' + a.name + ']');
    return found;
    """
    result: Any = driver.execute_script(script)
    return list(result)
