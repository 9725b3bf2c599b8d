"""List-Unsubscribe end to end: from the header a mail client reads to leaving.

The real Service (a real SQLite file, a real SMTP sink) with its HTTP side on loopback.
Each personalised copy names the member's one-click URL (RFC 8058, with
`List-Unsubscribe-Post`) and the member's own leave address `LIST-leave+MAC@D`; the URL
is taken from the copy and POSTed with aiohttp's real client (at the loopback port, as
the TLS reverse proxy in front would pass it on), and the mailto is written to over
loopback SMTP. Only the member's own token *and* address leave at once; anything else
is the usual confirmation, or nothing at all for automatic mail.
"""

from __future__ import annotations

import re
from email.message import EmailMessage
from urllib.parse import urlsplit

import aiohttp
import pytest
import pytest_asyncio

from mailhub.lists.verp import LEAVE, member_token
from mailhub.store import lists as store
from mailhub.store import secrets
from tests.support.hub import DOMAIN, Hub, message, start_hub
from tests.support.lists import stop_hub

# Every test here runs on SQLite and on PostgreSQL (tests/conftest.py: backend).
pytestmark = pytest.mark.usefixtures("backend")

LIST = f"green@{DOMAIN}"
WEB = """
[web]
listen = "127.0.0.1:0"
base_url = "https://lists.example.org"
"""
LISTS = """
[[lists]]
name = "green"
display_name = "Green Team"

[[lists]]
name = "bulky"
display_name = "Bulky"
delivery = "bulk"
"""
MEMBERS = ["ann@example.net", "bob@example.net", "cat@example.org"]
ONE_CLICK = {"List-Unsubscribe": "One-Click"}


async def make_hub(tmp_path, *, web: bool = True) -> Hub:
    hub = await start_hub(tmp_path, extra=(WEB if web else "") + LISTS)
    async with hub.service.store.transaction() as tx:
        for name in ("green", "bulky"):
            for addr in MEMBERS:
                await store.add_member(tx, name, addr, "", hub.clock.now())
    return hub


@pytest_asyncio.fixture
async def hub(tmp_path):
    h = await make_hub(tmp_path)
    yield h
    await stop_hub(h)


async def is_member(hub: Hub, address: str, list_name: str = "green") -> bool:
    async with hub.service.store.read() as tx:
        return await store.get_member(tx, list_name, address) is not None


async def leave_mac(hub: Hub, address: str) -> str:
    async with hub.service.store.transaction() as tx:
        secret = await secrets.get_or_create(tx, "lists")
    return member_token(secret, LEAVE, "green", address)


async def copy_for(hub: Hub, member: str, list_name: str = "green") -> EmailMessage:
    """The copy `member` gets of a post by ann."""
    to = f"{list_name}@{DOMAIN}"
    await hub.send("ann@example.net", [to], message(sender="ann@example.net", to=to))
    [got] = await hub.sink.wait_count(member)
    await hub.idle()
    return got.message


def uris(msg: EmailMessage) -> list[str]:
    """The URIs of List-Unsubscribe, in order (RFC 2369: each in angle brackets)."""
    return re.findall(r"<([^<>]+)>", str(msg["List-Unsubscribe"]))


async def send_leave(hub: Hub, envelope: str, to: str, *, sender: str = "", **kw) -> None:  # noqa: ANN003
    code, _ = await hub.send(envelope, [to], message(sender=sender or envelope, to=to, **kw))
    assert code == 250
    await hub.idle()


# What each answer is, by the English half of its subject (a bilingual list's subject
# has a Welsh half too; the English one is there either way).
SAID = {
    "You have left Green Team": "left",
    "Please confirm: leave Green Team": "confirm",
    "You are not a member of Green Team": "not a member",
}


def said(hub: Hub, rcpt: str) -> list[str]:
    """What `rcpt` was told, in order: "left", "confirm", "not a member" or the subject."""
    out = []
    for r in hub.sink.to(rcpt):
        subject = str(r.message["Subject"])
        out.append(next((v for k, v in SAID.items() if k in subject), subject))
    return out


async def test_a_copy_carries_both_uris_and_its_url_leaves_with_a_post(hub):
    msg = await copy_for(hub, "bob@example.net")
    mac = await leave_mac(hub, "bob@example.net")
    # RFC 8058 §3.1: the https URI and List-Unsubscribe-Post; the mailto second.
    assert uris(msg) == [
        f"https://lists.example.org/u/green.{mac}",
        f"mailto:green-leave+{mac}@{DOMAIN}",
    ]
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert len(msg.get_all("List-Unsubscribe-Post")) == 1
    # What a mail client does with it: POST the body RFC 8058 names to that URL.
    path = urlsplit(uris(msg)[0]).path
    async with aiohttp.ClientSession() as http:
        port = hub.service.web.port
        async with http.post(f"http://127.0.0.1:{port}{path}", data=ONE_CLICK) as r:
            assert r.status == 200
    assert not await is_member(hub, "bob@example.net")
    await hub.sink.wait_count("bob@example.net", 2)
    assert said(hub, "bob@example.net")[1] == "left"
    assert await is_member(hub, "cat@example.org")


async def test_each_members_copy_names_their_own_token_only(hub):
    bob = await copy_for(hub, "bob@example.net")
    [cats] = await hub.sink.wait_count("cat@example.org")
    assert uris(bob) != uris(cats.message)
    assert await leave_mac(hub, "cat@example.org") in str(cats.message["List-Unsubscribe"])
    assert await leave_mac(hub, "bob@example.net") not in cats.raw.decode()


async def test_the_members_own_mailto_from_their_address_leaves_at_once(hub):
    mailto = uris(await copy_for(hub, "bob@example.net"))[1].removeprefix("mailto:")
    await send_leave(hub, "bob@example.net", mailto, sender="Bob <bob@example.net>")
    assert not await is_member(hub, "bob@example.net")
    [_, goodbye] = await hub.sink.wait_count("bob@example.net", 2)
    assert said(hub, "bob@example.net")[1] == "left"
    assert goodbye.mail_from == ""
    # One step: no confirmation was asked for, and nobody else left.
    assert "confirm" not in said(hub, "bob@example.net")
    assert await is_member(hub, "cat@example.org")


async def test_the_same_mailto_from_another_address_asks_that_address_to_confirm(hub):
    mailto = f"green-leave+{await leave_mac(hub, 'bob@example.net')}@{DOMAIN}"
    # A forwarded copy's button, pressed by cat: cat is asked, bob stays.
    await send_leave(hub, "cat@example.org", mailto)
    await hub.sink.wait_count("cat@example.org")
    assert said(hub, "cat@example.org") == ["confirm"]
    assert await is_member(hub, "bob@example.net") and await is_member(hub, "cat@example.org")
    assert hub.sink.to("bob@example.net") == []


async def test_the_members_from_with_another_envelope_sender_does_not_leave(hub):
    mailto = f"green-leave+{await leave_mac(hub, 'bob@example.net')}@{DOMAIN}"
    # Bob's From: and token, but the mail came from cat's mailbox (a forger, or a
    # forwarder that rewrote the return path): the confirmation goes to the envelope.
    await send_leave(hub, "cat@example.org", mailto, sender="bob@example.net")
    await hub.sink.wait_count("cat@example.org")
    assert await is_member(hub, "bob@example.net")
    assert hub.sink.to("bob@example.net") == []


async def test_a_forged_token_leaves_nobody(hub):
    forged = f"green-leave+{'a' * 32}@{DOMAIN}"
    cats_token_for_bob = f"green-leave+{await leave_mac(hub, 'cat@example.org')}@{DOMAIN}"
    for to in (forged, cats_token_for_bob):
        await send_leave(hub, "bob@example.net", to)
    assert await is_member(hub, "bob@example.net") and await is_member(hub, "cat@example.org")
    # Treated as LIST-leave@D: bob is asked to confirm (the second ask voids the first).
    assert said(hub, "bob@example.net") == ["confirm"] * 2
    assert hub.sink.to("cat@example.org") == []


async def test_an_out_of_office_or_a_bounce_to_the_mailto_is_ignored(hub):
    mailto = f"green-leave+{await leave_mac(hub, 'bob@example.net')}@{DOMAIN}"
    await send_leave(
        hub,
        "bob@example.net",
        mailto,
        subject="Out of office",
        headers="Auto-Submitted: auto-replied",
    )
    code, _ = await hub.send("", [mailto], message(sender="bob@example.net", to=mailto))
    assert code == 250
    await hub.idle()
    assert await is_member(hub, "bob@example.net")
    assert hub.sink.received == []


async def test_a_replay_after_leaving_is_answered_once_and_the_answer_cannot_loop(hub):
    mailto = f"green-leave+{await leave_mac(hub, 'bob@example.net')}@{DOMAIN}"
    await send_leave(hub, "bob@example.net", mailto)
    await hub.sink.wait_count("bob@example.net")
    await send_leave(hub, "bob@example.net", mailto)  # the same message again
    [_, answer] = await hub.sink.wait_count("bob@example.net", 2)
    await hub.idle()
    assert said(hub, "bob@example.net") == ["left", "not a member"]
    assert answer.message["Auto-Submitted"] == "auto-replied" and answer.mail_from == ""
    # The answer sent back to the address (an autoresponder's echo) is never answered.
    code, _ = await hub.send("bob@example.net", [mailto], answer.raw)
    assert code == 250
    await hub.idle()
    assert len(hub.sink.to("bob@example.net")) == 2


async def test_the_old_subject_form_still_leaves_with_the_members_own_token(hub):
    mac = await leave_mac(hub, "bob@example.net")
    bare = f"green-leave@{DOMAIN}"
    # From someone else, bob's token in the subject changes nothing for bob.
    await send_leave(hub, "cat@example.org", bare, subject=f"leave {mac}")
    assert await is_member(hub, "bob@example.net")
    assert said(hub, "cat@example.org") == ["confirm"]
    # From bob, what `mailto:green-leave@D?subject=leave%20MAC` wrote leaves at once.
    await send_leave(hub, "bob@example.net", bare, subject=f"leave {mac.upper()}")
    assert not await is_member(hub, "bob@example.net")
    assert said(hub, "bob@example.net") == ["left"]


async def test_a_bulk_list_keeps_the_generic_mailto_and_offers_no_one_click(hub):
    msg = await copy_for(hub, "bob@example.net", "bulky")
    assert msg["List-Unsubscribe"] == f"<mailto:bulky-leave@{DOMAIN}>"
    assert msg["List-Unsubscribe-Post"] is None


async def test_a_member_digest_carries_the_members_links_too(hub):
    async with hub.service.store.transaction() as tx:
        await store.set_delivery(tx, "green", "bob@example.net", "digest", hub.clock.now())
    await hub.send("ann@example.net", [LIST], message(sender="ann@example.net", to=LIST))
    await hub.sink.wait_count("cat@example.org")
    await hub.idle()
    hub.clock.advance(86400)
    await hub.service.scheduler.run_once()
    [digest] = await hub.sink.wait_count("bob@example.net")
    mac = await leave_mac(hub, "bob@example.net")
    assert "Digest" in str(digest.message["Subject"])
    assert uris(digest.message) == [
        f"https://lists.example.org/u/green.{mac}",
        f"mailto:green-leave+{mac}@{DOMAIN}",
    ]
    assert digest.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


async def test_without_web_the_copy_names_the_mailto_only(tmp_path):
    hub = await make_hub(tmp_path, web=False)
    try:
        msg = await copy_for(hub, "bob@example.net")
        mac = await leave_mac(hub, "bob@example.net")
        assert msg["List-Unsubscribe"] == f"<mailto:green-leave+{mac}@{DOMAIN}>"
        assert msg["List-Unsubscribe-Post"] is None
    finally:
        await stop_hub(hub)
