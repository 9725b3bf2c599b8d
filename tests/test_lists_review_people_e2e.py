"""The review as the facilitators read it, and joining as a would-be member does, in Welsh
and English (`cy+en` and `en+cy`), end to end over loopback: the text at the sink.

A would-be member's introduction (their confirmation reply) reaches the review as their
own words; the review is short-lined, one block per entry, with the line to reply; the
answer names people; a mistyped command is quoted back with the closest command, in each
language, and changes nothing; Welsh says "all" its own ways; `review send` says what
waits when nothing is due.
"""

from __future__ import annotations

import argparse

import pytest
import pytest_asyncio

from mailhub.dates import format_datetime
from mailhub.lists import cli
from mailhub.messages import SEPARATOR
from mailhub.store import lists as list_store
from mailhub.store import membership as mstore
from tests.support.hub import DOMAIN, message, start_hub
from tests.support.lists import reply_address, stop_hub

# Every test here runs on SQLite and on PostgreSQL (tests/conftest.py: backend).
pytestmark = pytest.mark.usefixtures("backend")

FRAN = "fran@example.net"
TOM, CARYS, DAI = "tom@example.net", "carys@example.net", "dai@example.net"
NAME_EN, NAME_CY = "Bilingual services", "Gwasanaethau dwyieithog"

TOM_SAYS = (
    "Helo! I am Tom Smith, I lead the translation team at Cyngor Sir Ceredigion and we "
    "would like to share our glossary work with the community.\n"
    "\n"
    "Diolch yn fawr.\n"
)


def lists(language: str) -> str:
    return f"""
[autoreply]
per_hour = 100
per_day = 100

[[lists]]
name = "bilingual-services"
display_name = "{NAME_EN}"
display_name_cy = "{NAME_CY}"
subscription = "approve"
language = "{language}"
facilitators = ["{FRAN}"]
"""


@pytest_asyncio.fixture(params=["cy+en", "en+cy"])
async def hub(request, tmp_path):
    h = await start_hub(tmp_path, extra=lists(request.param))
    h.language = request.param
    yield h
    await stop_hub(h)


def text(msg) -> str:
    return msg.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")


def halves(hub, msg) -> dict[str, str]:
    """The Welsh and the English half of a bilingual mail, by the list's order."""
    first, second = text(msg).split(SEPARATOR.strip("\n"), 1)
    order = hub.language.split("+")
    return {order[0]: first.strip(), order[1]: second.strip()}


def flat(s: str) -> str:
    return " ".join(s.split())


async def send(hub, envelope: str, to: str, body: str, *, sender: str = "") -> None:
    code, _ = await hub.send(envelope, [to], message(sender=sender or envelope, to=to, body=body))
    assert code == 250


async def nth(hub, who: str, n: int):
    received = await hub.sink.wait_count(who, n)
    await hub.idle()
    return received[n - 1].message


async def join(hub, who: str, name: str, first: str, reply: str) -> None:
    """Ask to join, then answer the confirmation as a mail client does: new text on top,
    an attribution line and the confirmation quoted below, perhaps a signature."""
    await send(hub, who, f"bilingual-services-join@{DOMAIN}", first, sender=f"{name} <{who}>")
    confirmation = await nth(hub, who, 1)
    quoted = "".join(f"> {line}\n" for line in text(confirmation).splitlines())
    body = f"{reply}\nOn Mon, 30 Nov 2026, {NAME_EN} wrote:\n{quoted}"
    await send(hub, who, reply_address(confirmation), body, sender=f"{name} <{who}>")
    await nth(hub, who, 2)  # the request is with the facilitators


async def review_for(hub, n: int = 1):
    await hub.service.scheduler.run_once()
    return await nth(hub, FRAN, n)


async def three_waiting(hub):
    await join(hub, TOM, "Tom Smith", "\n", TOM_SAYS + "-- \nTom Smith\nCyfieithydd\n")
    await join(hub, CARYS, "Carys Evans", "I work for Cyngor Gwynedd.\n", "yes\n")
    await join(hub, DAI, "Dai Jones", "Hi, I run a team.\n", "Our team translates signage.\n")
    await send(
        hub,
        "nora@example.org",
        f"bilingual-services@{DOMAIN}",
        "A question.\n",
        sender="Nora Owen <nora@example.org>",
    )
    await nth(hub, "nora@example.org", 1)  # told the post is held
    return await review_for(hub)


async def test_the_introduction_is_kept_and_the_review_reads_on_a_phone(hub):
    review = await three_waiting(hub)
    # The would-be members' own words are stored with their requests: the confirmation
    # reply, cleaned, after what a first mail said when that was something else.
    async with hub.service.store.read() as tx:
        notes = {
            r.address: r.note
            for r in await mstore.requests_in_state(tx, "bilingual-services", mstore.PENDING)
        }
    assert notes[TOM] == TOM_SAYS.strip().replace("\n\n", "\n")
    assert notes[CARYS] == "I work for Cyngor Gwynedd."
    assert notes[DAI] == "Hi, I run a team.\n\nOur team translates signage."

    # A short subject in the first language only (both would not fit on a phone).
    first = hub.language.split("+")[0]
    assert (
        review["Subject"]
        == {
            "cy": f"[{NAME_CY}] 3 cais, 1 neges wedi'i dal",
            "en": f"[{NAME_EN}] 3 requests, 1 held post",
        }[first]
    )
    body = text(review)
    assert all(len(line) <= 72 for line in body.splitlines())
    async with hub.service.store.read() as tx:
        asked = (await mstore.open_request(tx, "bilingual-services", TOM)).confirmed_at
    parts = halves(hub, review)
    en, cy = parts["en"], parts["cy"]
    assert en.startswith("Hello,") and cy.startswith("Helo,")

    assert (
        "1. Tom Smith asks to join.\n"
        f"   When: {format_datetime(asked, 'en')}\n"
        "   In their own words:\n"
        "   > Helo! I am Tom Smith, I lead the translation team at Cyngor Sir\n"
        "   > Ceredigion and we would like to share our glossary work with the\n"
        "   > community.\n"
        "   > Diolch yn fawr.\n"
        "   To let them join, reply: approve 1\n"
        "   To say no, reply: reject 1 and your reason\n"
    ) in en
    assert (
        "1. Mae Tom Smith yn gofyn am gael ymuno.\n"
        f"   Pryd: {format_datetime(asked, 'cy')}\n"
        "   Yn eu geiriau eu hunain:\n"
        "   > Helo! I am Tom Smith, I lead the translation team at Cyngor Sir\n"
    ) in cy
    assert "   I adael iddynt ymuno, atebwch: cymeradwyo 1\n" in cy
    assert "dydd " in format_datetime(asked, "cy") and "UTC" in cy
    # Nobody's signature or the quoted confirmation is taken for their words.
    assert "Cyfieithydd" not in body and "> > " not in body
    assert "   > I work for Cyngor Gwynedd.\n" in en
    assert "   > Hi, I run a team.\n   >\n   > Our team translates signage.\n" in en
    assert "4. A post from Nora Owen was held.\n   Subject: Hello\n" in en
    assert "4. Neges gan Nora Owen a ddaliwyd.\n   Pwnc: Hello\n" in cy
    assert "   I'w hanfon at yr aelodau, atebwch: derbyn 4\n" in cy
    # A blank line before what to do; signed by the facilitators, in each language.
    assert "\n\nWhat to do: " in en and "\n\nBeth i'w wneud: " in cy
    assert "cymeradwyo'r cyfan" in cy and 'cymeradwyo pob"' not in cy
    assert en.rstrip().endswith(f"The facilitators of {NAME_EN}")
    assert cy.rstrip().endswith(f"Hwyluswyr {NAME_CY}")
    assert "mailhub at" not in body and "mailhub yn" not in body
    assert f'ar "{NAME_CY}"' in cy and NAME_CY not in en


async def test_the_answer_names_people_and_a_typo_is_quoted_with_the_closest_command(hub):
    review = await three_waiting(hub)
    await send(hub, FRAN, reply_address(review), "cymeradwyo 1\naprove 2\ngwrthod 3 dim lle\n")
    answer = await nth(hub, FRAN, 2)
    first = hub.language.split("+")[0]
    assert (
        answer["Subject"]
        == {
            "cy": f"[{NAME_CY}] Wedi'i wneud; 2 yn dal i aros",
            "en": f"[{NAME_EN}] Done; 2 still waiting",
        }[first]
    )
    parts = halves(hub, answer)
    en, cy = parts["en"], parts["cy"]
    assert "Approved: Tom Smith (1)\nRejected: Dai Jones (3)\n" in en
    assert "Cymeradwywyd: Tom Smith (1)\nGwrthodwyd: Dai Jones (3)\n" in cy
    assert '  "aprove 2": not a command I know.\n    Did you mean: approve 2?\n' in en
    assert (
        "  \"aprove 2\": nid yw'n orchymyn rwy'n ei adnabod.\n"
        "    Oeddech chi'n golygu: cymeradwyo 2?\n"
    ) in cy
    assert all(len(line) <= 72 for line in text(answer).splitlines())
    # The typo did nothing: Carys still waits, first in the renumbered entries.
    async with hub.service.store.read() as tx:
        assert await list_store.get_member(tx, "bilingual-services", TOM) is not None
        assert await list_store.get_member(tx, "bilingual-services", CARYS) is None
    assert "1. Carys Evans asks to join." in en
    assert "1. Mae Carys Evans yn gofyn am gael ymuno." in cy


async def test_a_reply_with_only_a_typo_changes_nothing_then_welsh_all_approves_all(hub):
    review = await three_waiting(hub)
    await send(hub, FRAN, reply_address(review), "cymeradwyio 1\n\nDiolch,\nFran\n")
    refused = await nth(hub, FRAN, 2)
    parts = halves(hub, refused)
    assert "I could not find a decision in your reply" in parts["en"]
    assert '"cymeradwyio 1": not a command I know.\n    Did you mean: approve 1?' in parts["en"]
    assert "Oeddech chi'n golygu: cymeradwyo 1?" in parts["cy"]
    assert parts["cy"].rstrip().endswith(f"Hwyluswyr {NAME_CY}")
    async with hub.service.store.read() as tx:
        assert await mstore.count_pending(tx, "bilingual-services") == 3
    # The review still works: the Welsh "all" approves every join request (not the post).
    await send(hub, FRAN, reply_address(review), "cymeradwyo'r cyfan\n")
    answer = halves(hub, await nth(hub, FRAN, 3))
    assert "Approved: Tom Smith (1), Carys Evans (2), Dai Jones (3)" in flat(answer["en"])
    assert "Cymeradwywyd: Tom Smith (1), Carys Evans (2), Dai Jones (3)" in flat(answer["cy"])
    async with hub.service.store.read() as tx:
        assert await mstore.count_pending(tx, "bilingual-services") == 0
        assert len(await list_store.held_posts(tx, "bilingual-services", "held")) == 1


async def test_review_send_says_what_waits_and_when_the_next_review_is_due(hub, capsys):
    await three_waiting(hub)
    config = hub.service.config
    assert await cli.cmd_review(argparse.Namespace(list=None, all=False), config) == 0
    out = capsys.readouterr().out.splitlines()
    async with hub.service.store.read() as tx:
        last = await mstore.last_review(tx, "bilingual-services", FRAN)
    due = cli.short_datetime(last.sent_at + 86400)  # nothing new since: a daily reminder
    assert out == [
        f"bilingual-services: 3 requests, 1 held post waiting; next review due {due}; "
        "use --now to send it now",
        "queued 0 review(s); the running server delivers them",
    ]
    assert await cli.cmd_review(argparse.Namespace(list=None, all=True), config) == 0
    assert capsys.readouterr().out.splitlines() == [
        "queued 1 review(s); the running server delivers them"
    ]


async def test_the_confirmation_asks_who_they_are_in_each_language(hub):
    who = "gwen@example.net"
    await send(hub, who, f"bilingual-services-join@{DOMAIN}", "\n", sender=f"Gwen <{who}>")
    confirmation = await nth(hub, who, 1)
    first = hub.language.split("+")[0]
    assert (
        confirmation["Subject"]
        == {
            "cy": f"Cadarnhewch: ymuno â {NAME_CY}",
            "en": f"Please confirm: join {NAME_EN}",
        }[first]
    )
    parts = halves(hub, confirmation)
    assert "Please say in your reply who you are" in flat(parts["en"])
    assert "Dywedwch yn eich ateb pwy ydych chi" in flat(parts["cy"])
    assert "does not matter" not in parts["en"]  # it does: the facilitators read it
    assert f'"{NAME_CY}"' in parts["cy"] and parts["cy"].endswith(f"Hwyluswyr {NAME_CY}")
    assert "Daw i ben: dydd " in parts["cy"] and "It stops working on " in parts["en"]
    assert all(len(line) <= 72 for line in text(confirmation).splitlines())
