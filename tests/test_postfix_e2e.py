"""mailhub behind a real Postfix, configured with contrib/postfix as documented.

    internet client ──SMTP──▶ Postfix (inbound smtpd) ──LMTP──▶ mailhub
    mailhub ──SMTP──▶ Postfix (loopback smtpd) ──SMTP──▶ members' mailboxes (a Sink)
    Postfix's DSN to LIST-bounces+TOKEN@D ──LMTP──▶ mailhub (bounce score)

A private Postfix instance (tests/support/postfix.py) runs in a temp directory on
loopback ports; mailhub is the real service (tests/support/hub.py) with `lmtp = true`
and its relay pointed at Postfix. Postfix needs root and the Debian package `postfix`
(.ci/run installs it); without them the tests skip, unless MAILHUB_REQUIRE_POSTFIX=1
(set by .ci/run), where they fail instead.
"""

from __future__ import annotations

import asyncio
import os
import re
import smtplib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio

from mailhub.lists.verp import token_matches
from mailhub.store import inbound, secrets
from mailhub.store import lists as store
from tests.support.hub import DOMAIN, Hub, message, start_hub
from tests.support.postfix import Postfix, RelayTo, unavailable
from tests.support.sink import Sink

WHY_NOT = unavailable()
REQUIRED = os.environ.get("MAILHUB_REQUIRE_POSTFIX") == "1"
pytestmark = pytest.mark.skipif(
    WHY_NOT is not None and not REQUIRED, reason=f"no private Postfix: {WHY_NOT}"
)

LIST = f"green@{DOMAIN}"
MEMBERS = ["ann@example.net", "bob@example.net", "cat@example.org"]
LISTS_TOML = """
[[lists]]
name = "green"
display_name = "Green Team"
facilitators = ["fac@example.net"]
delivery = "personalised"
"""
WAIT = 60.0  # seconds: the bound on every wait for Postfix


@dataclass
class Behind:
    hub: Hub
    postfix: Postfix
    mailboxes: Sink  # the members' domains, behind Postfix

    async def submit(self, mail_from: str, rcpts: list[str], raw: str) -> dict[str, tuple]:
        """Send to Postfix's internet-facing port; returns {rcpt: (code, text)} of the
        RCPT answers (DATA is sent when any was accepted)."""
        return await asyncio.to_thread(self._submit, mail_from, rcpts, raw)

    def _submit(self, mail_from: str, rcpts: list[str], raw: str) -> dict[str, tuple]:
        data = raw.replace("\r\n", "\n").replace("\n", "\r\n").encode()
        deadline = time.monotonic() + WAIT
        while True:
            with smtplib.SMTP("127.0.0.1", self.postfix.inbound_port, timeout=WAIT) as s:
                s.ehlo("client.example.net")
                code, text = s.mail(mail_from)
                assert code == 250, (code, text)
                answers = {r: s.rcpt(r) for r in rcpts}
                # 450 "unverified address: Address verification in progress": Postfix
                # asked mailhub but has no answer yet; ask again (bounded).
                pending = [a for a in answers.values() if a[0] == 450]
                if pending and time.monotonic() < deadline:
                    s.rset()
                    time.sleep(0.2)
                    continue
                if any(a[0] == 250 for a in answers.values()):
                    code, text = s.data(data)
                    assert code == 250, (code, text)
                return answers

    async def member(self, address: str) -> store.Member:
        async with self.hub.service.store.read() as tx:
            found = await store.get_member(tx, "green", address)
        assert found is not None
        return found


@pytest_asyncio.fixture
async def behind(tmp_path) -> AsyncIterator[Behind]:
    if WHY_NOT is not None:
        pytest.fail(f"MAILHUB_REQUIRE_POSTFIX=1 but Postfix cannot run: {WHY_NOT}")
    mailboxes = Sink()
    await mailboxes.start()
    postfix = Postfix(transports={})
    hub = None
    try:
        hub = await start_hub(
            tmp_path, lmtp=True, sink=RelayTo(postfix.outbound_port), extra=LISTS_TOML
        )
        async with hub.service.store.transaction() as tx:
            for addr in MEMBERS:
                await store.add_member(tx, "green", addr, addr.split("@")[0].title(), 0.0)
        postfix.transports = {
            DOMAIN: f"lmtp:inet:127.0.0.1:{hub.port}",
            "example.net": f"smtp:[127.0.0.1]:{mailboxes.port}",
            "example.org": f"smtp:[127.0.0.1]:{mailboxes.port}",
        }
        await asyncio.to_thread(postfix.start)
        yield Behind(hub, postfix, mailboxes)
    finally:
        try:
            await asyncio.to_thread(postfix.stop)
        finally:
            if hub is not None:
                await hub.service.stop()
            await mailboxes.stop()
            print(postfix.maillog())  # shown by pytest when the test failed
            postfix.cleanup()


async def test_post_through_postfix_reaches_every_member_once(behind):
    b = behind
    async with b.hub.service.store.transaction() as tx:  # the poster gets a copy too
        await store.set_own_posts(tx, "green", "ann@example.net", True)
    # Postfix asks mailhub about each recipient (address verification over LMTP): an
    # unknown community address is refused at Postfix's door with 550, a list is taken.
    answers = await b.submit(
        "ann@example.net",
        [f"nobody@{DOMAIN}", LIST],
        message(sender="Ann <ann@example.net>", to=LIST, subject="Tea", body="Who?\n"),
    )
    assert answers[f"nobody@{DOMAIN}"][0] == 550, answers
    assert b"No such address here" in answers[f"nobody@{DOMAIN}"][1]  # mailhub's own answer
    assert answers[LIST][0] == 250, answers
    # Postfix -> mailhub (LMTP) -> Postfix (relay) -> each member's mailbox.
    await b.mailboxes.wait_for(lambda rs: {r.rcpt for r in rs} >= set(MEMBERS), timeout=WAIT)
    await b.hub.service.idle(timeout=WAIT)
    await wait_queue_empty(b.postfix)
    assert sorted(r.rcpt for r in b.mailboxes.received) == sorted(MEMBERS)  # once each
    async with b.hub.service.store.read() as tx:
        secret = await secrets.get_or_create(tx, "lists")
    for got in b.mailboxes.received:
        # The VERP return path crossed Postfix whole, +TOKEN and all.
        local, _, domain = got.mail_from.partition("@")
        assert local.startswith("green-bounces+") and domain == DOMAIN
        assert token_matches(secret, "verp", "green", got.rcpt, local.partition("+")[2])
        assert got.message["List-Id"] == f'"Green Team" <green.{DOMAIN}>'
        assert got.message["Subject"] == "[Green Team] Tea"
        assert "mx.test.invalid" in str(got.message["Received"])  # through Postfix


async def test_postfix_dsn_comes_back_through_verp_and_counts(behind):
    b = behind
    b.mailboxes.scripts["bob@example.net"] = ["550 5.1.1 no such user"]
    answers = await b.submit(
        "ann@example.net", [LIST], message(sender="Ann <ann@example.net>", to=LIST, body="Hi\n")
    )
    assert answers[LIST][0] == 250, answers
    await b.mailboxes.wait_count("cat@example.org", timeout=WAIT)

    # Postfix's DSN for bob goes to bob's VERP address, which Postfix routes to mailhub.
    async def counted() -> bool:
        return (await b.member("bob@example.net")).bounce_score > 0

    await b.hub.service.wait_until(counted, timeout=WAIT)
    bob = await b.member("bob@example.net")
    assert bob.bounce_score == 1.0 and bob.status == "active"  # one bounce; threshold 5
    assert (await b.member("cat@example.org")).bounce_score == 0
    await b.hub.service.idle(timeout=WAIT)
    await wait_queue_empty(b.postfix)

    # It was Postfix's own DSN (null sender), handed over LMTP to bob's VERP address.
    log = await wait_log(
        b.postfix,
        r"to=<(green-bounces\+[a-z2-7]+@[^>]+)>.*status=sent \(250 2\.0\.0 OK queued as (\w+)",
    )
    verp, queue_id = log.group(1), log.group(2)
    async with b.hub.service.store.read() as tx:
        secret = await secrets.get_or_create(tx, "lists")
        item = await inbound.get(tx, queue_id)
    assert token_matches(
        secret, "verp", "green", "bob@example.net", verp.split("+")[1].split("@")[0]
    )
    assert item is not None and item.mail_from == "" and item.rcpt_tos == (verp,)
    assert "sender non-delivery notification" in b.postfix.maillog()
    # A bounce is never answered: bob got nothing, cat one copy, ann none (own posts off).
    assert [r.rcpt for r in b.mailboxes.received] == ["cat@example.org"]


async def wait_queue_empty(postfix: Postfix) -> None:
    """Until Postfix holds no message (a short poll of the external process, bounded)."""
    deadline = time.monotonic() + WAIT
    while postfix.queued():
        assert time.monotonic() < deadline, f"Postfix still holds {postfix.queued()}"
        await asyncio.sleep(0.1)


async def wait_log(postfix: Postfix, pattern: str) -> re.Match[str]:
    """Until Postfix's log has a line matching `pattern` (its log is written by postlogd)."""
    deadline = time.monotonic() + WAIT
    while (found := re.search(pattern, postfix.maillog())) is None:
        assert time.monotonic() < deadline, f"no {pattern!r} in Postfix's log"
        await asyncio.sleep(0.1)
    return found
