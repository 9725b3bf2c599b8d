"""Administrivia end to end over loopback: "unsubscribe" sent to the list is held, reaches
no member, and its writer is told (in both languages) how to do it through the request
address; the facilitators' review lists it; real posts are distributed."""

from __future__ import annotations

import pytest
import pytest_asyncio

from mailhub.store import lists as store
from tests.support.hub import DOMAIN, message, start_hub
from tests.support.lists import stop_hub

# Every test here runs on SQLite and on PostgreSQL (tests/conftest.py: backend).
pytestmark = pytest.mark.usefixtures("backend")

LIST = f"green@{DOMAIN}"
REQUEST = f"green-request@{DOMAIN}"
FAC = "fac@example.net"
ANN, BOB = "ann@example.net", "bob@example.net"

LISTS = """
[autoreply]
per_hour = 100
per_day = 100

[[lists]]
name = "green"
display_name = "Green Team"
language = "en+cy"
facilitators = ["fac@example.net"]
digest_interval = "0"
"""


@pytest_asyncio.fixture
async def hub(tmp_path):
    h = await start_hub(tmp_path, extra=LISTS)
    async with h.service.store.transaction() as tx:
        for who in (ANN, BOB):
            await store.add_member(tx, "green", who, who.split("@")[0].title(), h.clock.now())
    yield h
    await stop_hub(h)


def text(msg) -> str:
    return msg.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")


async def held(hub) -> list[store.HeldPost]:
    async with hub.service.store.read() as tx:
        return await store.held_posts(tx, "green")


@pytest.mark.parametrize(
    ("subject", "body"),
    [
        ("unsubscribe", "Sent from my phone\n"),
        ("Re: Tea on Friday", "unsubscribe\n\nOn Mon, Bob wrote:\n> Who is in?\n"),
        ("dad-danysgrifio", "\n"),
        ("Re: Te ddydd Gwener", "gadael os gwelwch yn dda\n"),
    ],
)
async def test_unsubscribe_sent_to_the_list_is_held_and_the_poster_told_how(hub, subject, body):
    code, _ = await hub.send(
        ANN, [LIST], message(sender=f"Ann <{ANN}>", to=LIST, subject=subject, body=body)
    )
    assert code == 250
    told = (await hub.sink.wait_count(ANN))[0].message
    review = (await hub.sink.wait_count(FAC))[0].message
    await hub.idle()

    assert hub.sink.to(BOB) == []  # nobody on the list receives it
    assert [h.reason for h in await held(hub)] == ["a member command (leave)"]
    # Short enough for a phone, both languages ("Nid anfonwyd": "nid" before a vowel).
    assert told["Subject"] == (
        "Your message was not sent to the list / Nid anfonwyd eich neges at y rhestr"
    )
    words = text(told)
    assert f"send an email to:\n\n    {REQUEST}\n" in words
    assert "\n    unsubscribe\n" in words
    assert f"anfonwch e-bost at:\n\n    {REQUEST}\n" in words
    assert "\n    gadael\n" in words
    assert f"Or write to green-leave@{DOMAIN}" in words
    assert told["Auto-Submitted"] == "auto-replied"
    review_text = text(review)
    assert f"1. A post from Ann was held.\n   Subject: {subject}\n" in review_text
    assert "Held because: a member command (leave)" in review_text
    assert "Rheswm ei dal: gorchymyn aelod (leave)" in review_text


async def test_non_member_command_is_held_as_administrivia_too(hub):
    nora = "nora@example.org"
    await hub.send(nora, [LIST], message(sender=nora, to=LIST, subject="Mute", body="\n"))
    told = (await hub.sink.wait_count(nora))[0].message
    await hub.idle()
    assert "\n    mute\n" in text(told) and "\n    tewi\n" in text(told)
    assert "reply to one of its messages" in text(told)
    assert [h.reason for h in await held(hub)] == ["a member command (mute)"]


@pytest.mark.parametrize(
    ("subject", "body"),
    [
        ("Help with translation memory", "Does anyone use a translation memory tool?\n"),
        ("Unsubscribe links", "The unsubscribe link in our newsletter is broken. Ideas?\n"),
        ("Sut i ddad-danysgrifio?", "Sut mae pobl yn dad-danysgrifio o'n cylchlythyr?\n"),
    ],
)
async def test_real_posts_about_commands_are_distributed(hub, subject, body):
    await hub.send(ANN, [LIST], message(sender=f"Ann <{ANN}>", to=LIST, subject=subject, body=body))
    copy = (await hub.sink.wait_count(BOB))[0].message
    await hub.idle()
    assert subject in str(copy["Subject"])
    assert await held(hub) == []
    assert hub.sink.to(ANN) == []


async def test_an_out_of_office_is_never_answered(hub):
    raw = message(
        sender=f"Ann <{ANN}>",
        to=LIST,
        subject="unsubscribe",
        body="I am out of the office until Monday.\n",
        headers="Auto-Submitted: auto-replied",
    )
    await hub.send(ANN, [LIST], raw)
    await hub.sink.wait_count(FAC)  # the facilitator still sees it held
    await hub.idle()
    assert hub.sink.to(ANN) == [] and hub.sink.to(BOB) == []
    assert len(await held(hub)) == 1
