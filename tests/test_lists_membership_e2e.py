"""Joining and leaving lists, end to end over loopback: policies, double opt-in, idempotency,
bans, invitations, expiry, and the owner address."""

from __future__ import annotations

import asyncio
import re

import pytest
import pytest_asyncio

from mailhub.store import bans
from mailhub.store import lists as list_store
from mailhub.store import membership as mstore
from tests.support.hub import DOMAIN, message, start_hub
from tests.support.lists import DATAVIZ, reply_address, stop_hub

# Every test here runs on SQLite and on PostgreSQL (tests/conftest.py: backend).
pytestmark = pytest.mark.usefixtures("backend")

# English only, but for "confirmed" (Welsh only): these tests read the answers' words;
# bilingual joining is read in test_lists_review_people_e2e.py.
LISTS = (
    DATAVIZ.replace('subscription = "approve"\n', 'subscription = "approve"\nlanguage = "en"\n')
    + """
[[lists]]
name = "open-talk"
display_name = "Open Talk"
subscription = "open"
language = "en"

[[lists]]
name = "confirmed"
display_name = "Confirmed List"
description = "A list that asks people to confirm."
subscription = "confirm"
language = "cy"

[[lists]]
name = "invited"
display_name = "Invited Only"
subscription = "invite"
language = "en"
facilitators = ["fran@example.net"]
"""
)


@pytest_asyncio.fixture
async def hub(tmp_path):
    h = await start_hub(tmp_path, extra=LISTS)
    yield h
    await stop_hub(h)


async def ask(hub, who: str, to: str, body: str = "Hello\n", name: str = "Sam Sender") -> None:
    code, _ = await hub.send(who, [to], message(sender=f"{name} <{who}>", to=to, body=body))
    assert code == 250


async def mail_for(hub, who: str, n: int):
    received = await hub.sink.wait_count(who, n)
    await hub.idle()
    return received[n - 1]


async def member(hub, list_name: str, who: str):
    async with hub.service.store.read() as tx:
        return await list_store.get_member(tx, list_name, who)


async def test_confirm_policy_joins_after_confirmation_then_leaves(hub):
    await ask(hub, "sam@example.net", f"confirmed-join@{DOMAIN}")
    confirmation = await mail_for(hub, "sam@example.net", 1)
    assert confirmation.mail_from == ""
    msg = confirmation.message
    assert msg["Auto-Submitted"] == "auto-replied"
    token_address = reply_address(msg)
    assert re.fullmatch(rf"confirmed-confirm\+[a-z2-7]{{26,}}@{DOMAIN}", token_address)
    assert "Cadarnhewch" in msg["Subject"]  # a Welsh list speaks Welsh
    assert await member(hub, "confirmed", "sam@example.net") is None

    await ask(hub, "sam@example.net", token_address, "ie\n")
    welcome = (await mail_for(hub, "sam@example.net", 2)).message
    assert "Croeso" in welcome["Subject"]
    body = welcome.get_content()
    assert "A list that asks people to confirm." in body
    assert f"confirmed-leave@{DOMAIN}" in body and f"confirmed@{DOMAIN}" in body
    assert "cod ymddygiad" in body
    assert (await member(hub, "confirmed", "sam@example.net")) is not None

    # Confirming twice: a clear answer, still one membership.
    await ask(hub, "sam@example.net", token_address, "ie eto\n")
    again = (await mail_for(hub, "sam@example.net", 3)).message
    assert "eisoes yn aelod" in again["Subject"]
    async with hub.service.store.read() as tx:
        assert await list_store.count_members(tx, "confirmed") == 1

    # Leaving: confirmed by token, then removed and told.
    await ask(hub, "sam@example.net", f"confirmed-leave@{DOMAIN}")
    leave = (await mail_for(hub, "sam@example.net", 4)).message
    leave_address = reply_address(leave)
    assert "+".join(leave_address.split("+")[:1]) == "confirmed-confirm"
    assert (await member(hub, "confirmed", "sam@example.net")) is not None
    await ask(hub, "sam@example.net", leave_address, "ie\n")
    left = (await mail_for(hub, "sam@example.net", 5)).message
    assert "gadael" in left["Subject"]
    assert await member(hub, "confirmed", "sam@example.net") is None
    # Confirming the leave twice: told plainly that the address is not a member.
    await ask(hub, "sam@example.net", leave_address, "ie\n")
    again = (await mail_for(hub, "sam@example.net", 6)).message
    assert "Nid ydych yn aelod" in again["Subject"]


async def test_open_policy_joins_once_confirmed_and_joining_twice_is_idempotent(hub):
    # Open means no facilitator looks; the address still confirms (as GNU Mailman does),
    # so nobody can join someone else.
    await ask(hub, "olu@example.net", f"open-talk-join@{DOMAIN}", name="Olu Open")
    confirmation = (await mail_for(hub, "olu@example.net", 1)).message
    assert confirmation["Subject"] == "Please confirm: join Open Talk"
    assert "facilitators" not in confirmation.get_content().split("If you did not")[0]
    assert await member(hub, "open-talk", "olu@example.net") is None
    await ask(hub, "olu@example.net", reply_address(confirmation), "yes\n")
    welcome = (await mail_for(hub, "olu@example.net", 2)).message
    assert welcome["Subject"] == "Welcome to Open Talk"
    assert "code of conduct" in welcome.get_content()
    m = await member(hub, "open-talk", "olu@example.net")
    assert m is not None and m.display_name == "Olu Open"
    await ask(hub, "olu@example.net", f"open-talk-join@{DOMAIN}")
    again = (await mail_for(hub, "olu@example.net", 3)).message
    assert again["Subject"].startswith("You are already a member")
    async with hub.service.store.read() as tx:
        assert await list_store.count_members(tx, "open-talk") == 1


async def test_asking_twice_replaces_the_confirmation(hub):
    await ask(hub, "sam@example.net", f"confirmed-join@{DOMAIN}")
    first = reply_address((await mail_for(hub, "sam@example.net", 1)).message)
    await ask(hub, "sam@example.net", f"confirmed-join@{DOMAIN}", "again\n")
    second = reply_address((await mail_for(hub, "sam@example.net", 2)).message)
    assert first != second
    # The old confirmation no longer works; the new one does.
    await ask(hub, "sam@example.net", first, "yes\n")
    refused = (await mail_for(hub, "sam@example.net", 3)).message
    assert "Ni weithiodd" in refused["Subject"]
    assert await member(hub, "confirmed", "sam@example.net") is None
    await ask(hub, "sam@example.net", second, "yes\n")
    await mail_for(hub, "sam@example.net", 4)
    assert await member(hub, "confirmed", "sam@example.net") is not None


async def test_invite_policy(hub):
    await ask(hub, "nia@example.net", f"invited-join@{DOMAIN}")
    refused = (await mail_for(hub, "nia@example.net", 1)).message
    assert refused["Subject"].startswith("Joining by invitation")
    assert f"invited-owner@{DOMAIN}" in refused.get_content()
    async with hub.service.store.transaction() as tx:
        await mstore.invite(tx, "invited", "nia@example.net", "admin", hub.clock.now())
    await ask(hub, "nia@example.net", f"invited-join@{DOMAIN}")
    confirmation = (await mail_for(hub, "nia@example.net", 2)).message
    await ask(hub, "nia@example.net", reply_address(confirmation), "yes\n")
    welcome = (await mail_for(hub, "nia@example.net", 3)).message
    assert welcome["Subject"] == "Welcome to Invited Only"
    assert await member(hub, "invited", "nia@example.net") is not None


async def test_banned_address_cannot_join(hub):
    now = hub.clock.now()
    async with hub.service.store.transaction() as tx:
        await bans.add(
            tx, address="ben@example.net", scope="all", starts_at=now - 10, ends_at=now + 86400 * 30
        )
    await ask(hub, "ben@example.net", f"open-talk-join@{DOMAIN}")
    refused = (await mail_for(hub, "ben@example.net", 1)).message
    assert refused["Subject"] == "You cannot join Open Talk"
    assert "until" in refused.get_content()
    assert await member(hub, "open-talk", "ben@example.net") is None


async def test_forged_or_automatic_confirmations_do_nothing(hub):
    await ask(hub, "sam@example.net", f"confirmed-join@{DOMAIN}")
    token_address = reply_address((await mail_for(hub, "sam@example.net", 1)).message)
    # An out-of-office answer must not confirm.
    code, _ = await hub.send(
        "sam@example.net",
        [token_address],
        message(
            sender="sam@example.net",
            to=token_address,
            body="Away\n",
            headers="Auto-Submitted: auto-replied",
        ),
    )
    assert code == 250
    await hub.idle()
    assert await member(hub, "confirmed", "sam@example.net") is None
    assert len(hub.sink.to("sam@example.net")) == 1
    # A guessed token: refused, answered, nothing changes.
    bogus = f"confirmed-confirm+{'a' * 32}@{DOMAIN}"
    await ask(hub, "eve@example.net", bogus)
    answer = (await mail_for(hub, "eve@example.net", 1)).message
    assert "Ni weithiodd" in answer["Subject"]


async def test_unconfirmed_and_pending_requests_expire(hub):
    await ask(hub, "sam@example.net", f"dataviz-join@{DOMAIN}", "I draw maps.\n")
    token_address = reply_address((await mail_for(hub, "sam@example.net", 1)).message)
    await ask(hub, "sam@example.net", token_address, "yes\n")
    pending = (await mail_for(hub, "sam@example.net", 2)).message
    assert "with the facilitators" in pending["Subject"]
    await ask(hub, "tom@example.net", f"dataviz-join@{DOMAIN}")
    await mail_for(hub, "tom@example.net", 1)

    hub.clock.advance(15 * 86400)
    await hub.service.scheduler.run_once()
    expired = (await mail_for(hub, "sam@example.net", 3)).message
    assert "expired" in expired["Subject"]
    await hub.idle()
    # Tom never confirmed: his request lapses silently (he may never have asked).
    assert len(hub.sink.to("tom@example.net")) == 1
    async with hub.service.store.read() as tx:
        assert await mstore.count_pending(tx, "dataviz") == 0
        assert await mstore.open_request(tx, "dataviz", "tom@example.net") is None


async def test_leave_when_not_a_member_and_withdrawing_a_request(hub):
    await ask(hub, "pat@example.net", f"dataviz-leave@{DOMAIN}")
    answer = (await mail_for(hub, "pat@example.net", 1)).message
    assert answer["Subject"].startswith("You are not a member")
    await ask(hub, "pat@example.net", f"dataviz-join@{DOMAIN}")
    await mail_for(hub, "pat@example.net", 2)
    await ask(hub, "pat@example.net", f"dataviz-leave@{DOMAIN}", "never mind\n")
    withdrawn = (await mail_for(hub, "pat@example.net", 3)).message
    assert "cancelled" in withdrawn["Subject"]


async def test_owner_address_reaches_facilitators(hub):
    await ask(hub, "sam@example.net", f"dataviz-owner@{DOMAIN}", "A question for you.\n")
    fwd = (await mail_for(hub, "fran@example.net", 1)).message
    assert "sam@example.net" in str(fwd["Reply-To"])
    assert "A question for you." in fwd.get_content()
    await hub.sink.wait_count("gwen@example.net", 1)
    assert hub.sink.to("cai@example.net") == []


async def test_invitation_from_the_cli_joins_by_reply(hub):
    from mailhub.cli import main

    argv = ["members", "invited", "--config", str(hub.path), "--invite", "ivy@example.net"]
    assert await asyncio.to_thread(main, argv) == 0
    # The CLI is another process in real life, on the system clock: move the test clock
    # past the CLI's timestamps and wake the running server's delivery.
    hub.clock.advance(60)
    hub.service.delivery.wake.set()
    invitation = (await mail_for(hub, "ivy@example.net", 1)).message
    assert invitation["Subject"] == "You are invited to join Invited Only"
    await ask(hub, "ivy@example.net", reply_address(invitation), "Happy to join\n")
    hub.service.delivery.wake.set()
    welcome = (await mail_for(hub, "ivy@example.net", 2)).message
    assert welcome["Subject"] == "Welcome to Invited Only"
    assert await member(hub, "invited", "ivy@example.net") is not None
