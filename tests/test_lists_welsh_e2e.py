"""Welsh first-class on a list, end to end over loopback: the mail people receive, read at
the sink, in the shipped default (Welsh first, `cy+en`) and in `en+cy`: the welcome with
the list's Welsh name and description, the held notice with its date in each language, the
footer, the member help in Welsh, and Welsh member commands (`tewi`, `gadael`) acting."""

from __future__ import annotations

import re

import pytest
import pytest_asyncio

from mailhub.dates import format_date
from mailhub.store import lists as store
from tests.support.hub import DOMAIN, message, start_hub
from tests.support.lists import reply_address, stop_hub

# Every test here runs on SQLite and on PostgreSQL (tests/conftest.py: backend).
pytestmark = pytest.mark.usefixtures("backend")

LIST = f"gwasanaethau@{DOMAIN}"
REQUEST = f"gwasanaethau-request@{DOMAIN}"
ANN, BOB, SAM = "ann@example.net", "bob@example.net", "sam@example.net"
WELSH_NAME = "Gwasanaethau dwyieithog"
WELSH_PURPOSE = "Rhannu sut rydym yn cynllunio gwasanaethau yn Gymraeg."
# No `language` line: the shipped default, Welsh first.
LISTS = f"""
[autoreply]
per_hour = 100
per_day = 100

[[lists]]
name = "gwasanaethau"
display_name = "Bilingual services"
display_name_cy = "{WELSH_NAME}"
description = "Sharing how we design services in Welsh and English."
description_cy = "{WELSH_PURPOSE}"
subscription = "open"
facilitators = ["fac@example.net"]
"""


def hub_fixture(language_line: str):  # noqa: ANN201
    @pytest_asyncio.fixture
    async def fixture(tmp_path):
        h = await start_hub(
            tmp_path, extra=LISTS.replace("[[lists]]\n", f"[[lists]]\n{language_line}")
        )
        async with h.service.store.transaction() as tx:
            for who in (ANN, BOB):
                await store.add_member(tx, "gwasanaethau", who, who[:3].title(), h.clock.now())
        yield h
        await stop_hub(h)

    return fixture


hub = hub_fixture("")
english_first = hub_fixture('language = "en+cy"\n')


def text(msg) -> str:  # noqa: ANN001
    return msg.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")


async def send(hub, who: str, to: str, subject: str, body: str = "\n", headers: str = "") -> None:  # noqa: ANN001
    msg = message(
        sender=f"{who[:3].title()} <{who}>", to=to, subject=subject, body=body, headers=headers
    )
    assert (await hub.send(who, [to], msg))[0] == 250


async def nth(hub, who: str, n: int):  # noqa: ANN001, ANN201
    got = await hub.sink.wait_count(who, n)
    await hub.idle()
    return got[n - 1].message


def halves(body: str) -> tuple[str, str]:
    first, _, second = body.partition("-" * 40)
    return first, second


async def join(hub, who: str) -> str:  # noqa: ANN001
    """Join the open list by email; the welcome's text."""
    await send(hub, who, f"gwasanaethau-join@{DOMAIN}", "join")
    confirmation = await nth(hub, who, 1)
    await send(hub, who, reply_address(confirmation), "Re: confirm", "ie\n")
    return await nth(hub, who, 2)


async def test_the_welcome_leads_in_welsh_with_the_lists_welsh_name_and_purpose(hub):
    welcome = await join(hub, SAM)
    assert welcome["Subject"] == f"Croeso i'r rhestr {WELSH_NAME} / Welcome to Bilingual services"
    welsh, english = halves(text(welcome))
    assert f'aelod o\'r rhestr bostio "{WELSH_NAME}"' in welsh
    assert f"Diben y rhestr hon:\n{WELSH_PURPOSE}" in welsh
    assert "Sharing how we design" not in welsh and "Bilingual services" not in welsh
    assert "Hwyluswyr " + WELSH_NAME in welsh
    assert "Sharing how we design services in Welsh and English." in english
    assert '"Bilingual services" mailing list' in english
    assert 'anfonwch "cymorth" at:' in welsh and 'send "help" to:' in english
    assert max(len(line) for line in text(welcome).splitlines()) <= 72
    # The one name a mail client shows for the sender is the Welsh one, Welsh first.
    assert welcome["From"].addresses[0].display_name == WELSH_NAME


async def test_english_first_when_configured_and_the_welsh_half_still_welsh(english_first):
    welcome = await join(english_first, SAM)
    assert welcome["Subject"] == f"Welcome to Bilingual services / Croeso i'r rhestr {WELSH_NAME}"
    assert welcome["From"].addresses[0].display_name == "Bilingual services"
    english, welsh = halves(text(welcome))
    assert "Welcome" not in welsh and "Diben y rhestr hon:\n" + WELSH_PURPOSE in welsh
    assert "What this list is for:" in english


async def test_the_held_notice_gives_the_date_in_each_language(hub):
    await send(hub, SAM, LIST, "A question")
    told = await nth(hub, SAM, 1)
    # Both subjects together would pass 78 characters: the first language's alone.
    assert told["Subject"] == "Mae eich neges yn aros am hwylusydd"
    welsh, english = halves(text(told))
    by = hub.clock.now() + 14 * 86400
    assert f"erbyn {format_date(by, 'cy')}," in welsh.replace("\n", " ")
    assert re.search(
        r"erbyn dydd (Llun|Mawrth|Mercher|Iau|Gwener|Sadwrn|Sul) \d+ ", welsh.replace("\n", " ")
    )
    assert f"by {format_date(by, 'en')}," in english.replace("\n", " ")
    assert f'Diolch am ysgrifennu at "{WELSH_NAME}"' in welsh.replace("\n", " ")


async def test_the_footer_says_cymorth_in_welsh_first(hub):
    await send(hub, ANN, LIST, "Maps", "Here is a map.\n")
    copy = text(await nth(hub, BOB, 1))
    assert f"Cymorth: {REQUEST}" in copy and f"Help: {REQUEST}" in copy
    assert copy.index("Cymorth:") < copy.index("Help:")
    assert "Help: " not in halves(copy[copy.index(WELSH_NAME) :])[0]


async def test_the_help_in_welsh_lists_welsh_words_and_says_truthfully_how_to_mute(hub):
    await send(hub, ANN, REQUEST, "cymorth")
    help_mail = await nth(hub, ANN, 1)
    assert help_mail["Subject"].startswith(f"Cymorth: {WELSH_NAME}")
    welsh, english = halves(text(help_mail))
    for word in ("crynodeb ymlaen", "crynodeb i ffwrdd", "dim post", "tewi", "gadael", "cymorth"):
        assert f"\n  {word} " in welsh
    assert "digest on, digest off" in welsh  # the English words work too
    assert "crynodeb ymlaen, crynodeb i ffwrdd" in english
    assert "reply to a message with" not in english
    assert "anfonwch eich ateb at y\ncyfeiriad uchod yn lle at y rhestr" in welsh
    assert "send your\nreply to the address above instead of to the list" in english
    assert max(len(line) for line in text(help_mail).splitlines()) <= 72


async def test_tewi_to_the_members_own_address_mutes_the_thread(hub):
    await send(hub, ANN, LIST, "Te", "Pwy sy'n dod?\n", headers="Message-ID: <te-1@example.net>")
    copy = await nth(hub, BOB, 1)
    own = re.search(r"<mailto:([^?>]+)", str(copy["List-Help"])).group(1)
    assert own.startswith("gwasanaethau-confirm+")
    await send(hub, BOB, own, "Re: Te", "tewi\n", headers="In-Reply-To: <te-1@example.net>")
    done = await nth(hub, BOB, 2)
    assert done["Subject"].startswith(f"Mae eich gosodiadau ar gyfer {WELSH_NAME} wedi newid")
    assert "Ni fyddwch yn cael rhagor o negeseuon yn y sgwrs honno." in text(done)

    await send(hub, ANN, LIST, "Re: Te", "Fi!\n", headers="In-Reply-To: <te-1@example.net>")
    await send(hub, ANN, LIST, "Rhywbeth arall", "Newydd.\n")
    await hub.sink.wait_count(BOB, 3)
    await hub.idle()
    subjects = [str(r.message["Subject"]) for r in hub.sink.to(BOB)]
    assert not any("Re: Te" in s for s in subjects)
    assert any("Rhywbeth arall" in s for s in subjects)


@pytest.mark.parametrize("word", ["gadael", "dad-danysgrifio", "datdanysgrifio"])
async def test_gadael_asks_to_confirm_leaving(hub, word):
    await send(hub, ANN, REQUEST, word)
    asked = await nth(hub, ANN, 1)
    assert reply_address(asked).startswith("gwasanaethau-confirm+")
    await send(hub, ANN, reply_address(asked), "Re: gadael", "ie\n")
    left = await nth(hub, ANN, 2)
    assert left["Subject"].startswith(f"Rydych wedi gadael y rhestr {WELSH_NAME}")
    async with hub.service.store.read() as tx:
        assert await store.get_member(tx, "gwasanaethau", ANN) is None


async def test_english_first_held_notice_footer_and_help(english_first):
    hub = english_first
    await send(hub, SAM, LIST, "A question")
    told = await nth(hub, SAM, 1)
    assert told["Subject"] == "Your message is waiting for a facilitator"
    english, welsh = halves(text(told))
    by = hub.clock.now() + 14 * 86400
    assert f"by {format_date(by, 'en')}," in english.replace("\n", " ")
    assert f"erbyn {format_date(by, 'cy')}," in welsh.replace("\n", " ")

    await send(hub, ANN, LIST, "Maps", "Here is a map.\n")
    copy = text(await nth(hub, BOB, 1))
    assert copy.index(f"Help: {REQUEST}") < copy.index(f"Cymorth: {REQUEST}")

    await send(hub, ANN, REQUEST, "help")
    english, welsh = halves(text(await nth(hub, ANN, 1)))
    assert "\n  mute " in english and "\n  tewi " in welsh
