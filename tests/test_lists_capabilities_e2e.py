"""Settings, bounces and joining are capabilities, not From: (end to end over loopback).

An attacker who writes in a member's name (From:, or the envelope sender) can change
nothing at once: the real member is mailed one confirmation, and only their reply, or a
command sent to the member's own command address from their copies, acts. Bounces to
the bare LIST-bounces@D of a VERP list count for nothing; joining is always confirmed by
the address that joins, and those confirmations are limited per mailbox.
"""

from __future__ import annotations

import pytest
import pytest_asyncio

from mailhub.lists.requests import parse_commands
from mailhub.lists.verp import personalise
from mailhub.store import lists as store
from mailhub.store import membership as mstore
from tests.support.hub import DOMAIN, message
from tests.support.lists import reply_address, stop_hub
from tests.test_lists_bounces import dsn
from tests.test_lists_posting_e2e import LIST, make_hub, post

# Every test here runs on SQLite and on PostgreSQL (tests/conftest.py: backend).
pytestmark = pytest.mark.usefixtures("backend")

REQUEST = f"green-request@{DOMAIN}"
DAY = 86400.0
EXTRA = """
[autoreply]
per_hour = 100
per_day = 100

[[lists]]
name = "open-talk"
display_name = "Open Talk"
language = "en"  # English only, as this test reads it (the default is Welsh first)
subscription = "open"

[[lists]]
name = "sgwrs"
display_name = "Sgwrs Agored"
subscription = "open"
language = "cy"
"""
ATTACKER = "eve@attacker.example"


@pytest_asyncio.fixture
async def hub(tmp_path):
    h = await make_hub(tmp_path, extra=EXTRA)
    yield h
    await stop_hub(h)


async def member(hub, list_name: str, addr: str):
    async with hub.service.store.read() as tx:
        return await store.get_member(tx, list_name, addr)


async def send(hub, envelope: str, to: str, body: str, *, sender: str = "", subject: str = ""):
    text = message(sender=sender or envelope, to=to, subject=subject, body=body)
    code, _ = await hub.send(envelope, [to], text)
    assert code == 250
    await hub.idle()


def own_address(received) -> str:
    """The member's own command address, from the List-Help of their copy."""
    value = str(received.message["List-Help"])
    assert value.endswith("?subject=help>")
    return value.strip("<>").removeprefix("mailto:").split("?", 1)[0]


async def bobs_own_address(hub) -> str:
    await hub.send("ann@example.net", [LIST], post())
    await hub.sink.wait_count("bob@example.net")
    await hub.idle()
    return own_address(hub.sink.to("bob@example.net")[0])


# --- settings ---------------------------------------------------------------------------


async def test_forged_nomail_changes_nothing_and_mails_the_member_one_confirmation(hub):
    await send(hub, ATTACKER, REQUEST, "nomail\n", sender="Bob <bob@example.net>")
    assert (await member(hub, "green", "bob@example.net")).delivery == "each"
    assert hub.sink.to(ATTACKER) == []
    [confirmation] = hub.sink.to("bob@example.net")
    assert confirmation.mail_from == ""
    msg = confirmation.message
    assert msg["Subject"] == "Please confirm: change how you get Green Team"
    assert "no messages for now" in msg.get_content()
    assert reply_address(msg).startswith("green-confirm+")
    # Repeating the forgery (even from bob's own envelope) mails bob nothing more.
    await send(hub, ATTACKER, REQUEST, "nomail\n", sender="bob@example.net")
    await send(hub, "bob@example.net", REQUEST, "nomail\n")
    assert len(hub.sink.to("bob@example.net")) == 1
    assert (await member(hub, "green", "bob@example.net")).delivery == "each"


async def test_the_members_reply_to_the_confirmation_applies_it_once(hub):
    await send(hub, ATTACKER, REQUEST, "nomail\nown on\n", sender="bob@example.net")
    back = reply_address(hub.sink.to("bob@example.net")[0].message)
    await send(hub, "bob@example.net", back, "yes\n")
    bob = await member(hub, "green", "bob@example.net")
    assert bob.delivery == "nomail" and bob.own_posts
    done = hub.sink.to("bob@example.net")[1].message
    assert done["Subject"] == "Your settings for Green Team have changed"
    # A second reply changes nothing more and says the confirmation is used up.
    async with hub.service.store.transaction() as tx:
        await store.set_delivery(tx, "green", "bob@example.net", "each")
    await send(hub, "bob@example.net", back, "yes again\n")
    assert (await member(hub, "green", "bob@example.net")).delivery == "each"
    assert "did not work" in hub.sink.to("bob@example.net")[2].message["Subject"]


async def test_the_address_in_the_members_own_copy_applies_it_at_once(hub):
    own = await bobs_own_address(hub)
    assert own.startswith("green-confirm+") and own.endswith(f"@{DOMAIN}")
    assert own != own_address(hub.sink.to("cat@example.org")[0])
    await send(hub, "bob@example.net", own, "nomail\n", sender="Bob <bob@example.net>")
    assert (await member(hub, "green", "bob@example.net")).delivery == "nomail"
    done = hub.sink.to("bob@example.net")[1].message
    assert done["Subject"] == "Your settings for Green Team have changed"
    assert own in done.get_content()  # where to send "mail" to start again
    # "help" there answers with the same own address.
    await send(hub, "bob@example.net", own, "", subject="help")
    assert own in hub.sink.to("bob@example.net")[2].message.get_content()


async def test_the_own_address_proves_nothing_for_anyone_else(hub):
    own = await bobs_own_address(hub)
    # Bob's From:, an attacker's envelope: not proven, so bob is asked to confirm.
    await send(hub, ATTACKER, own, "nomail\n", sender="bob@example.net")
    # Another member using bob's address acts, at most, on their own settings, unproven.
    await send(hub, "cat@example.org", own, "digest on\n")
    assert (await member(hub, "green", "bob@example.net")).delivery == "each"
    assert (await member(hub, "green", "cat@example.org")).delivery == "each"
    assert hub.sink.to(ATTACKER) == []
    asked = hub.sink.to("bob@example.net")[1].message
    assert asked["Subject"].startswith("Please confirm")
    assert hub.sink.to("cat@example.org")[-1].message["Subject"].startswith("Please confirm")


async def test_welsh_command_words(hub):
    assert parse_commands("", "dim post\n").verbs == ("nomail",)
    assert parse_commands("crynodeb ymlaen", "copi i ffwrdd\ntawelu\n").verbs == (
        "digest-on",
        "own-off",
        "mute",
    )
    assert parse_commands("Ateb: cymorth", "").verbs == ("help",)
    own = await bobs_own_address(hub)
    await send(hub, "bob@example.net", own, "dim post\n")
    assert (await member(hub, "green", "bob@example.net")).delivery == "nomail"
    await send(hub, "bob@example.net", own, "post\n")
    assert (await member(hub, "green", "bob@example.net")).delivery == "each"


async def test_a_folded_list_help_is_personalised_too(hub):
    name = "a-rather-long-list-name-for-folding"
    raw = (
        "Subject: x\r\nList-Help:\r\n"
        f" <mailto:{name}-request@{DOMAIN}?subject=help>\r\n"
        f"List-Unsubscribe:\r\n <mailto:{name}-leave@{DOMAIN}>\r\n\r\nbody\r\n"
    ).encode()
    _, out = personalise(hub.service.config, b"k" * 32, name, raw, "bob@example.net")
    head = out.split(b"\r\n\r\n")[0].decode()
    assert f"List-Help: <mailto:{name}-confirm+" in head
    assert f"List-Unsubscribe: <mailto:{name}-leave+" in head
    assert out.endswith(b"\r\n\r\nbody\r\n")


# --- bounces ----------------------------------------------------------------------------


async def test_forged_bare_bounce_flood_disables_no_one_on_a_verp_list(hub):
    for _ in range(8):
        code, _ = await hub.send("", [f"green-bounces@{DOMAIN}"], dsn("bob@example.net"))
        assert code == 250
        await hub.idle()
        hub.clock.advance(DAY)  # a day apart, so each would have counted
    bob = await member(hub, "green", "bob@example.net")
    assert bob.status == "active" and bob.bounce_score == 0
    assert hub.sink.received == []


# --- joining ----------------------------------------------------------------------------


async def test_a_forged_join_to_an_open_list_needs_the_address_to_confirm(hub):
    victim = "vic@example.net"
    # The attacker gives the victim's address as the envelope sender.
    await send(hub, victim, f"open-talk-join@{DOMAIN}", "subscribe\n")
    assert await member(hub, "open-talk", victim) is None
    [confirmation] = hub.sink.to(victim)
    assert confirmation.message["Subject"] == "Please confirm: join Open Talk"
    # Only the victim's own reply joins them.
    await send(hub, victim, reply_address(confirmation.message), "yes\n")
    assert await member(hub, "open-talk", victim) is not None
    assert hub.sink.to(victim)[1].message["Subject"] == "Welcome to Open Talk"


async def test_welsh_open_list_confirms_in_welsh(hub):
    await send(hub, "nia@example.net", f"sgwrs-request@{DOMAIN}", "ymuno\n")
    assert await member(hub, "sgwrs", "nia@example.net") is None
    confirmation = hub.sink.to("nia@example.net")[0].message
    assert confirmation["Subject"].startswith("Cadarnhewch")
    await send(hub, "nia@example.net", reply_address(confirmation), "ie\n")
    assert await member(hub, "sgwrs", "nia@example.net") is not None


async def test_join_confirmations_are_limited_per_mailbox(hub):
    # Tags and case do not make a new mailbox: three confirmations a day, then silence.
    asks = [
        ("victim+1@example.net", "open-talk"),
        ("victim+2@example.net", "open-talk"),
        ("Victim@Example.NET", "sgwrs"),
        ("victim+4@example.net", "open-talk"),
        ("victim@example.net", "green"),
    ]
    for addr, list_name in asks:
        await send(hub, addr, f"{list_name}-join@{DOMAIN}", "join\n")
    mailed = [r.rcpt for r in hub.sink.received]
    assert mailed == ["victim+1@example.net", "victim+2@example.net", "victim@example.net"]
    async with hub.service.store.read() as tx:
        assert await mstore.open_request(tx, "open-talk", "victim+4@example.net") is None
        assert await mstore.open_request(tx, "green", "victim@example.net") is None
    # Another mailbox is not affected; a day later the victim may ask again.
    await send(hub, "other@example.net", f"open-talk-join@{DOMAIN}", "join\n")
    assert len(hub.sink.to("other@example.net")) == 1
    hub.clock.advance(DAY + 1)
    await send(hub, "victim+4@example.net", f"open-talk-join@{DOMAIN}", "join\n")
    assert len(hub.sink.to("victim+4@example.net")) == 1
