"""The facilitators' digest and acting on it by reply, end to end over loopback."""

from __future__ import annotations

import re

import pytest
import pytest_asyncio

from mailhub.store import lists as list_store
from mailhub.store import membership as mstore
from tests.support.hub import DOMAIN, message, start_hub
from tests.support.lists import DATAVIZ, reply_address, stop_hub

# Every test here runs on SQLite and on PostgreSQL (tests/conftest.py: backend).
pytestmark = pytest.mark.usefixtures("backend")

# These lists show addresses (the review names people as "Name <address>"); a list whose
# addresses are hidden, the default, is in test_lists_review_held_e2e.py.
LISTS = (
    # In English only: these tests are about acting on the review; its Welsh and its
    # bilingual forms are read in test_lists_review_people_e2e.py.
    DATAVIZ.replace(
        'subscription = "approve"\n',
        'subscription = "approve"\naddresses = "shown"\nlanguage = "en"\n',
    )
    + """
[[lists]]
name = "quick"
display_name = "Quick List"
subscription = "approve"
addresses = "shown"
language = "en"
digest_interval = "0"
facilitators = ["fran@example.net"]
"""
)

FRAN, GWEN, CAI = "fran@example.net", "gwen@example.net", "cai@example.net"


@pytest_asyncio.fixture
async def hub(tmp_path):
    h = await start_hub(tmp_path, extra=LISTS)
    yield h
    await stop_hub(h)


async def send(hub, envelope: str, to: str, body: str, *, sender: str = "", headers: str = ""):
    raw = message(sender=sender or envelope, to=to, body=body, headers=headers)
    code, _ = await hub.send(envelope, [to], raw)
    assert code == 250


async def nth(hub, who: str, n: int):
    received = await hub.sink.wait_count(who, n)
    await hub.idle()
    return received[n - 1].message


def text(msg) -> str:
    """The text of a message; of a review with held posts attached, its first (text) part."""
    return msg.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")


async def request_to_join(hub, who: str, name: str, note: str = "", lst: str = "dataviz") -> None:
    before = len(hub.sink.to(who))
    await send(hub, who, f"{lst}-join@{DOMAIN}", note or "Hello\n", sender=f"{name} <{who}>")
    confirmation = await nth(hub, who, before + 1)
    await send(hub, who, reply_address(confirmation), "yes\n")
    pending = await nth(hub, who, before + 2)
    assert "with the facilitators" in pending["Subject"]


async def digest_for(hub, who: str, n: int = 1):
    await hub.service.scheduler.run_once()
    return await nth(hub, who, n)


async def is_member(hub, who: str, lst: str = "dataviz") -> bool:
    async with hub.service.store.read() as tx:
        return await list_store.get_member(tx, lst, who) is not None


async def test_join_confirm_digest_approve_by_reply_welcome(hub):
    await request_to_join(hub, "sam@example.net", "Sam Sender", "I make maps at a council.\n")
    digest = await digest_for(hub, FRAN)
    body = text(digest)
    assert (
        "1. Sam Sender asks to join.\n   Address: sam@example.net\n   When: " in body
        and "   In their own words:\n   > I make maps at a council.\n" in body
        and "   To let them join, reply: approve 1\n" in body
    )
    token_address = reply_address(digest)
    assert re.fullmatch(rf"dataviz-confirm\+[a-z2-7]{{26,}}@{DOMAIN}", token_address)
    await nth(hub, GWEN, 1)
    assert hub.sink.to(CAI) == []  # champions see held posts only

    # The reply quotes the digest: the quoted lines must not act.
    quoted = "\n".join("> " + line for line in body.splitlines())
    await send(hub, FRAN, token_address, f"approve 1\n\nThanks\n-- \nFran\n\n{quoted}\n")
    welcome = await nth(hub, "sam@example.net", 3)
    assert welcome["Subject"] == "Welcome to Data Visualisation"
    assert "approved your request" in text(welcome)
    assert "Sharing charts and maps" in text(welcome)
    result = await nth(hub, FRAN, 2)
    assert result["Subject"] == "[Data Visualisation] Done; nothing waiting"
    assert "Approved: Sam Sender <sam@example.net> (1)" in text(result)
    assert await is_member(hub, "sam@example.net")

    # The second facilitator acts on the same entry: told who did it, nothing twice.
    gwen_digest = hub.sink.to(GWEN)[0].message
    await send(hub, GWEN, reply_address(gwen_digest), "approve 1\n")
    answer = text(await nth(hub, GWEN, 2))
    flat = " ".join(answer.split())  # the line is wrapped to 72 columns
    assert "Sam Sender <sam@example.net> (1): already approved by fran@example.net on" in flat
    assert "Already handled by someone else" in answer and "Approved:" not in answer
    assert len(hub.sink.to("sam@example.net")) == 3
    async with hub.service.store.read() as tx:
        assert await list_store.count_members(tx, "dataviz") == 1
        log = await mstore.action_log(tx, "dataviz")
    assert [(e.actor, e.action) for e in log if e.action == "approve"] == [(FRAN, "approve")]

    # Nothing is pending any more: no further digest, even a day later.
    hub.clock.advance(2 * 86400)
    await hub.service.scheduler.run_once()
    await hub.idle()
    assert len(hub.sink.to(FRAN)) == 2 and len(hub.sink.to(GWEN)) == 2


async def test_reject_with_reason_and_the_answer_is_the_next_digest(hub):
    await request_to_join(hub, "sam@example.net", "Sam Sender")
    await request_to_join(hub, "tom@example.net", "Tom Tester", "Please let me in\n")
    digest = await digest_for(hub, FRAN)
    assert "2. Tom Tester asks to join.\n   Address: tom@example.net" in text(digest)
    await send(hub, FRAN, reply_address(digest), "reject 2 not a public-sector employee\n")
    told = await nth(hub, "tom@example.net", 3)
    assert "not accepted" in told["Subject"]
    assert "Their reason: not a public-sector employee" in text(told)
    assert not await is_member(hub, "tom@example.net")
    answer = await nth(hub, FRAN, 2)
    body = text(answer)
    assert "Rejected: Tom Tester <tom@example.net> (2)" in body
    # Sam is still waiting, renumbered in the new digest, which has its own token.
    assert "1. Sam Sender asks to join." in body
    assert reply_address(answer) not in ("", reply_address(digest))
    await send(hub, FRAN, reply_address(answer), "approve all\n")
    await nth(hub, "sam@example.net", 3)
    assert await is_member(hub, "sam@example.net")


async def test_forged_replies_change_nothing(hub):
    await request_to_join(hub, "sam@example.net", "Sam Sender")
    await request_to_join(hub, "tom@example.net", "Tom Tester")
    digest = await digest_for(hub, FRAN)
    token_address = reply_address(digest)

    # Right token, wrong sender.
    await send(hub, "eve@example.net", token_address, "approve all\n")
    refused = await nth(hub, "eve@example.net", 1)
    assert refused["Subject"] == "[Data Visualisation] Your reply changed nothing"
    # Right token, From: forged as the facilitator but another envelope sender.
    await send(hub, "eve@example.net", token_address, "approve 1\n", sender=FRAN)
    await nth(hub, "eve@example.net", 2)
    # Right sender, wrong token.
    await send(hub, FRAN, f"dataviz-confirm+{'b' * 32}@{DOMAIN}", "approve 1\n")
    await nth(hub, FRAN, 2)
    # An out-of-office from the facilitator: ignored entirely, the token stays good.
    await send(hub, FRAN, token_address, "approve 1\n", headers="Auto-Submitted: auto-replied")
    await hub.idle()
    assert len(hub.sink.to(FRAN)) == 2
    assert not await is_member(hub, "sam@example.net")
    assert not await is_member(hub, "tom@example.net")
    async with hub.service.store.read() as tx:
        assert await mstore.count_pending(tx, "dataviz") == 2

    # The real facilitator acts once; reusing the same digest is refused with a clear
    # answer, and a new digest follows for what remains.
    await send(hub, FRAN, token_address, "approve 1\n")
    await nth(hub, FRAN, 3)
    assert await is_member(hub, "sam@example.net")
    await send(hub, FRAN, token_address, "approve 2\n")
    refused = await nth(hub, FRAN, 4)
    assert "already been answered once" in text(refused)
    fresh = await nth(hub, FRAN, 5)
    assert "1. Tom Tester asks to join." in text(fresh)
    assert not await is_member(hub, "tom@example.net")


async def test_held_post_in_digest_accepted_by_champion_reaches_members(hub):
    async with hub.service.store.transaction() as tx:
        await list_store.add_member(tx, "dataviz", "mia@example.net", "Mia Member", hub.clock.now())
    await request_to_join(hub, "sam@example.net", "Sam Sender")
    await send(
        hub,
        "nora@example.net",
        f"dataviz@{DOMAIN}",
        "A map I made.\n",
        sender="Nora Nonmember <nora@example.net>",
    )
    await nth(hub, "nora@example.net", 1)  # told the post is held
    fran_digest = await digest_for(hub, FRAN)
    fran_text = text(fran_digest)
    assert "1. Sam Sender" in fran_text
    assert re.search(
        r"^2\. A post from Nora Nonmember was held\.\n   Address: nora@example.net\n"
        r"   Subject: Hello\n   When: .+\n   Held because: ",
        fran_text,
        re.MULTILINE,
    )
    cai_digest = await nth(hub, CAI, 1)
    cai_text = text(cai_digest)
    assert "Sam Sender" not in cai_text
    assert "1. A post from Nora Nonmember was held." in cai_text
    assert "As a champion" in cai_text

    # A champion's "approve all" means the held posts, never the join requests.
    await send(hub, CAI, reply_address(cai_digest), "approve all\n")
    post = await nth(hub, "mia@example.net", 1)
    assert "A map I made." in text(post)
    result = text(await nth(hub, CAI, 2))
    assert 'Accepted, now sent to the members: "Hello" from nora@example.net (1)' in result
    assert not await is_member(hub, "sam@example.net")

    # Fran's digest still offered the post as entry 2: already handled by the champion.
    await send(hub, FRAN, reply_address(fran_digest), "accept 2\n")
    answer = text(await nth(hub, FRAN, 2))
    flat = " ".join(answer.split())
    assert '"Hello" from nora@example.net (2): already accepted by cai@example.net' in flat
    assert len(hub.sink.to("mia@example.net")) == 1


async def test_html_only_reply_and_discard(hub):
    await send(hub, "nora@example.net", f"dataviz@{DOMAIN}", "Buy things\n")
    await nth(hub, "nora@example.net", 1)
    digest = await digest_for(hub, FRAN)
    html = (
        '<html><body><p>discard 1 off topic</p><div class="gmail_quote">'
        "<blockquote><p>accept 1</p></blockquote></div></body></html>"
    )
    raw = (
        f"From: {FRAN}\nTo: {reply_address(digest)}\nSubject: Re: digest\n"
        "Message-ID: <html-reply@example.net>\nMIME-Version: 1.0\n"
        f"Content-Type: text/html; charset=utf-8\n\n{html}\n"
    )
    code, _ = await hub.send(FRAN, [reply_address(digest)], raw)
    assert code == 250
    result = text(await nth(hub, FRAN, 2))
    assert 'Discarded: "Hello" from nora@example.net (1)' in result
    told = await nth(hub, "nora@example.net", 2)
    assert told["Subject"]
    async with hub.service.store.read() as tx:
        assert await list_store.held_posts(tx, "dataviz", "held") == []


async def test_digest_schedule_hourly_daily_and_at_once(hub):
    # digest_interval = "0": the digest leaves with the request, in the same transaction.
    await request_to_join(hub, "sam@example.net", "Sam Sender", lst="quick")
    first = await nth(hub, FRAN, 1)
    assert "Quick List" in first["Subject"]

    # Hourly list: first digest at once, a new request 10 minutes later waits for the hour.
    await request_to_join(hub, "tom@example.net", "Tom Tester")
    await digest_for(hub, GWEN, 1)
    hub.clock.advance(600)
    await request_to_join(hub, "una@example.net", "Una User")
    await hub.service.scheduler.run_once()
    await hub.idle()
    assert len(hub.sink.to(GWEN)) == 1
    hub.clock.advance(3000)
    second = await digest_for(hub, GWEN, 2)
    assert "2. Una User" in text(second)
    # Nothing new: no digest for a day, then one reminder.
    hub.clock.advance(3 * 3600)
    await hub.service.scheduler.run_once()
    await hub.idle()
    assert len(hub.sink.to(GWEN)) == 2
    hub.clock.advance(86400)
    await digest_for(hub, GWEN, 3)


async def test_pending_request_expiry_leaves_the_digest(hub):
    await request_to_join(hub, "sam@example.net", "Sam Sender")
    digest = await digest_for(hub, FRAN)
    hub.clock.advance(14 * 86400 + 3600)
    await hub.service.scheduler.run_once()
    expired = await nth(hub, "sam@example.net", 3)
    assert "expired" in expired["Subject"]
    await send(hub, FRAN, reply_address(digest), "approve 1\n")
    answer = text(await nth(hub, FRAN, 2))
    assert "Sam Sender <sam@example.net> (1): expired on" in " ".join(answer.split())
    assert not await is_member(hub, "sam@example.net")


async def test_held_post_reaches_facilitators_at_once_with_interval_zero(hub):
    # digest_interval = "0": a held post is in the facilitator's digest straight away,
    # without waiting for the scheduler.
    await send(hub, "outsider@example.org", f"quick@{DOMAIN}", "A post from outside.\n")
    digest = await nth(hub, FRAN, 1)
    assert "outsider@example.org" in text(digest)
