"""The reporter's experience, end to end: the first acknowledgement links to the code of
conduct and promises that nobody named is contacted without talking to the reporter first;
each follow-up gets a short acknowledgement (RFC 3834, at most one an hour per case) that
goes to the reporter alone, never to a member the report names."""

from __future__ import annotations

import pytest
import pytest_asyncio

from tests.support.hub import DOMAIN, message, running_hub
from tests.test_conduct_e2e import (
    ADA,
    BRYN,
    CARYS,
    COMMITTEE_TOML,
    CONDUCT,
    FALLBACK,
    REPORTER,
    body_of,
    open_report,
    personal,
    write,
)

# Every test here runs on SQLite and on PostgreSQL (tests/conftest.py: backend).
pytestmark = pytest.mark.usefixtures("backend")

CODE_URL = "https://cop.example.org/code-of-conduct"
WITH_URL = COMMITTEE_TOML.replace(
    'release_after = "0"', f'release_after = "0"\ncode_url = "{CODE_URL}"'
)


@pytest_asyncio.fixture
async def hub(tmp_path):
    async with running_hub(tmp_path, extra=WITH_URL) as h:
        yield h


def words(text: str) -> str:
    return " ".join(text.split())


async def follow_up(hub, ref: str, body: str, headers: str = "") -> None:
    """The reporter answers the latest case mail they received (their own reply address)."""
    await write(hub, REPORTER, personal(hub, REPORTER, ref, "case"), body=body, headers=headers)


async def test_first_acknowledgement_links_the_code_and_promises_to_ask_first(hub):
    ref = await open_report(hub, message(sender=REPORTER, to=CONDUCT, body="At the meetup.\n"))
    text = body_of(hub.sink.to(REPORTER)[0])
    assert f"You can read our code of conduct here:\n  {CODE_URL}\n" in text.replace("\r\n", "\n")
    assert (
        "We will not contact anyone your report names without talking to you first,"
        " unless someone is in danger." in words(text)
    )
    assert personal(hub, REPORTER, ref, "case") in text
    assert all(len(line) <= 72 for line in text.splitlines())


async def test_first_acknowledgement_in_welsh_first(tmp_path):
    extra = WITH_URL.replace('language = "en"', 'language = "cy+en"')
    async with running_hub(tmp_path, extra=extra) as hub:
        await open_report_cy(hub)
        ack = hub.sink.to(REPORTER)[0].message
        assert str(ack["Subject"]).endswith("Mae eich adroddiad wedi dod i law / Report received")
        text = words(body_of(hub.sink.to(REPORTER)[0]))
        welsh = (
            "Ni fyddwn yn cysylltu ag unrhyw un y mae eich adroddiad yn ei enwi heb siarad"
            " â chi yn gyntaf, oni bai bod rhywun mewn perygl."
        )
        assert welsh in text and f"Gallwch ddarllen ein cod ymddygiad yma: {CODE_URL}" in text
        assert text.index(welsh) < text.index("We will not contact anyone")
        assert "Cofion cynnes, Pwyllgor y cod ymddygiad" in text
        assert all(len(line) <= 72 for line in body_of(hub.sink.to(REPORTER)[0]).splitlines())


async def test_without_code_url_no_link_is_shown(tmp_path):
    async with running_hub(tmp_path, extra=COMMITTEE_TOML) as hub:
        await open_report(hub, message(sender=REPORTER, to=CONDUCT, body="At the meetup.\n"))
        text = body_of(hub.sink.to(REPORTER)[0])
        assert "code of conduct here" not in text and "http" not in text
        assert "without talking to you first" in words(text)


async def test_a_follow_up_is_acknowledged_once_an_hour_and_reaches_no_one_named(hub):
    ref = await open_report(
        hub, message(sender=REPORTER, to=CONDUCT, body="Brynnie shouted at me.\n")
    )
    bryn = len(hub.sink.to(BRYN))
    await follow_up(hub, ref, "It happened twice.\n")
    acks = hub.sink.to(REPORTER)
    assert len(acks) == 2
    m = acks[1].message
    assert acks[1].mail_from == ""  # null return path: nothing bounces back
    assert m["Subject"] == f"[{ref}] Your message has been added to your report"
    assert m["Auto-Submitted"] == "auto-replied" and m["In-Reply-To"]
    assert str(m["From"]) == f"Code of conduct committee <conduct@{DOMAIN}>"
    assert m["To"] == REPORTER and m["Reply-To"].startswith(f"conduct+{ref}+")
    text = words(body_of(acks[1]))
    assert f"your message about {ref} has been added to your report" in text
    assert "We will not contact anyone your report names without talking to you first" in text
    assert all(len(line) <= 72 for line in body_of(acks[1]).splitlines())
    # The follow-up itself reached the members handling the case, not Bryn (named).
    for member in (ADA, CARYS):
        assert "It happened twice." in body_of(hub.sink.to(member)[-1])
    assert len(hub.sink.to(BRYN)) == bryn and not hub.sink.to(FALLBACK)

    # Within the hour: relayed, not acknowledged again.
    await follow_up(hub, ref, "And a third time.\n")
    assert "And a third time." in body_of(hub.sink.to(ADA)[-1])
    assert len(hub.sink.to(REPORTER)) == 2
    # An hour later: acknowledged again.
    hub.clock.advance(3601)
    await follow_up(hub, ref, "One more thing.\n")
    assert len(hub.sink.to(REPORTER)) == 3
    assert len(hub.sink.to(BRYN)) == bryn


async def test_a_follow_up_naming_a_member_keeps_them_out_and_is_acknowledged(hub):
    ref = await open_report(hub, message(sender=REPORTER, to=CONDUCT, body="A problem.\n"))
    ada = len(hub.sink.to(ADA))
    await follow_up(hub, ref, "AJ saw it too.\n")
    assert len(hub.sink.to(ADA)) == ada  # named now: nothing new reaches Ada
    assert hub.sink.to(REPORTER)[-1].message["Subject"].endswith("added to your report")


async def test_commands_are_answered_by_what_they_did_not_by_the_short_acknowledgement(tmp_path):
    extra = WITH_URL.replace('release_after = "0"', 'release_after = "1h"')
    async with running_hub(tmp_path, extra=extra) as hub:
        ref = await open_report(hub, message(sender=REPORTER, to=CONDUCT, body="A problem.\n"))
        await follow_up(hub, ref, "exclude Carys Pryce\n")
        last = hub.sink.to(REPORTER)[-1].message
        assert last["Subject"] == f"[{ref}] Who will read your report"
        assert len(hub.sink.to(REPORTER)) == 2


async def test_the_short_acknowledgement_in_welsh(tmp_path):
    extra = COMMITTEE_TOML.replace('release_after = "0"', 'release_after = "1h"').replace(
        'language = "en"', 'language = "cy"'
    )
    async with running_hub(tmp_path, extra=extra) as hub:
        ref = await open_report_cy(hub)
        await follow_up(hub, ref, "Digwyddodd eto.\n")
        ack = hub.sink.to(REPORTER)[-1]
        assert (
            ack.message["Subject"] == f"[{ref}] Mae eich neges wedi'i hychwanegu at eich adroddiad"
        )
        text = words(body_of(ack))
        assert f"bod eich neges am {ref} wedi'i hychwanegu at eich adroddiad" in text
        assert "yn ei darllen gyda'ch adroddiad" in text  # still in the reporter's window
        assert "Cofion cynnes, Pwyllgor y cod ymddygiad" in text
        assert all(len(line) <= 72 for line in body_of(ack).splitlines())


async def open_report_cy(hub) -> str:
    import re

    await write(hub, REPORTER, CONDUCT, body="Problem.\n")
    subject = str(hub.sink.to(REPORTER)[-1].message["Subject"])
    return re.search(r"C-[0-9A-Z]{4}-[0-9A-Z]{2}", subject).group(0)
