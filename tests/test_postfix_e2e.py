"""mailhub behind a real Postfix, configured with contrib/postfix as documented.

    internet client ──SMTP──▶ Postfix (inbound smtpd) ──LMTP──▶ mailhub
    mailhub ──SMTP──▶ Postfix (loopback smtpd) ──SMTP──▶ members' mailboxes (a Sink)
    Postfix's DSN to LIST-bounces+TOKEN@D ──LMTP──▶ mailhub (bounce score)

A private Postfix instance (tests/support/postfix.py) runs in a temp directory on
loopback ports; mailhub is the real service (tests/support/hub.py) with `lmtp = true`
and its relay pointed at Postfix. Postfix needs root and the Debian package `postfix`
(.ci/run installs it); without them the tests skip, unless MAILHUB_REQUIRE_POSTFIX=1
(set by .ci/run), where they fail instead.

Several nodes (issue 15): two `mailhub serve` processes on one PostgreSQL database
behind one Postfix, whose transport for the community domain lists both LMTP
destinations (`lmtp:[127.0.0.1]:P1, [127.0.0.1]:P2`, Postfix 3.5 and later); kill -9 of
the first in the middle of a burst loses nothing.
"""

from __future__ import annotations

import asyncio
import os
import re
import smtplib
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import pytest_asyncio

from mailhub.lists.verp import token_matches
from mailhub.store import inbound, secrets
from mailhub.store import lists as store
from mailhub.store.postgres import PostgresStore
from tests.support.hub import DOMAIN, Hub, message, start_hub
from tests.support.nodes import free_port, node_config, start_server, stop_server
from tests.support.postfix import Postfix, RelayTo, lmtp_destinations, unavailable
from tests.support.sink import Sink
from tests.test_cluster_e2e import held_by

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
        return await submit(self.postfix, mail_from, rcpts, raw)

    async def member(self, address: str) -> store.Member:
        async with self.hub.service.store.read() as tx:
            found = await store.get_member(tx, "green", address)
        assert found is not None
        return found


async def submit(postfix: Postfix, mail_from: str, rcpts: list[str], raw: str) -> dict[str, tuple]:
    """Send to Postfix's internet-facing port; returns {rcpt: (code, text)} of the RCPT
    answers (DATA is sent when any was accepted)."""
    return await asyncio.to_thread(_submit, postfix, mail_from, rcpts, raw)


def _submit(postfix: Postfix, mail_from: str, rcpts: list[str], raw: str) -> dict[str, tuple]:
    data = raw.replace("\r\n", "\n").replace("\n", "\r\n").encode()
    deadline = time.monotonic() + WAIT
    while True:
        with smtplib.SMTP("127.0.0.1", postfix.inbound_port, timeout=WAIT) as s:
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


# --- two mailhub nodes on one PostgreSQL behind one Postfix (issue 15, point 4) -----------
#
# The community domain's transport is one LMTP next-hop holding two destinations (Postfix
# 3.5 and later: "a list of nexthop destinations separated by comma or whitespace",
# transport(5), lmtp(8)): `lmtp:[127.0.0.1]:P1, [127.0.0.1]:P2`. Postfix tries them in the
# order listed: the first takes the mail while it answers; when it does not (connection
# refused), the same delivery attempt goes on to the next. Each node is a real
# `mailhub serve` process (kill -9 must be real) on one PostgreSQL database.

NODE_LEASE = 3.0  # seconds ([storage] lease): short, so the survivor's takeover is seen
NODE_CONNECTIONS = 2  # [outbound] connections of each node (to Postfix's loopback port)
BURST = 100  # posts
BURST_KILL_AT = 5 + BURST // 2  # posts taken by Postfix when the first node is killed
READERS = ["bob@example.net", "cat@example.org"]  # every member but the poster, ann
# Only this test's Postfix: a message whose LMTP session the kill cut is retried within
# seconds rather than after the default back-off of 300 s (the retry is what is awaited).
RETRY_SOON = """
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
"""
_ACCEPTED = re.compile(r" received queue_id=(\w+) .*outcome=queued")
_POST = re.compile(rb"^Subject: \[Green Team\] post (\d+)\r?$", re.MULTILINE)
_MESSAGE_ID = re.compile(r"\]: (\w+): message-id=<post-(\d+)@example\.net>")
_LMTP_SENT = re.compile(
    r"/lmtp\[\d+\]: (\w+): to=<green@.*status=sent \(250 2\.0\.0 OK queued as (\w+)\)"
)


@dataclass
class Nodes:
    """Two `mailhub serve` processes on one database, Postfix in front of both."""

    postfix: Postfix
    mailboxes: Sink
    ports: list[int]
    configs: list[Path]
    logs: list[Path]  # each node's own log: what it accepted (`received ... queued`)
    procs: list[asyncio.subprocess.Process | None]
    url: str

    async def start(self, i: int) -> None:
        with self.logs[i].open("ab") as log:
            self.procs[i] = await start_server(
                self.configs[i], self.ports[i], log_level="INFO", stderr=log.fileno()
            )

    async def post(self, n: int) -> None:
        """Post number n from ann to the list, into Postfix's port 25 (Postfix takes it
        whatever the nodes do: it queues)."""
        raw = (
            f"From: Ann <ann@example.net>\nTo: {LIST}\nSubject: post {n}\n"
            f"Message-ID: <post-{n}@example.net>\n\nPost number {n}.\n"
        )
        answers = await submit(self.postfix, "ann@example.net", [LIST], raw)
        assert answers[LIST][0] == 250, answers

    def accepted_by(self, i: int) -> set[int]:
        """The posts node i accepted over LMTP: the queue ids in its own log, named by
        Postfix's log (mailhub empties a message's raw once it is processed)."""
        ids = set(_ACCEPTED.findall(self.logs[i].read_text(errors="replace")))
        return {n for queue_id, n in handed_over(self.postfix.maillog()).items() if queue_id in ids}

    async def delivered(self, posts: set[int]) -> None:
        """Until every reader has each post, and Postfix's log names the node that took it
        (its lmtp line may be written after the copies went out: a short poll, bounded)."""
        await self.mailboxes.wait_for(lambda rs: all_delivered(self.mailboxes, posts), timeout=WAIT)
        deadline = time.monotonic() + WAIT
        while not posts <= set(handed_over(self.postfix.maillog()).values()):
            assert time.monotonic() < deadline, "Postfix's log lacks a post it handed over"
            await asyncio.sleep(0.05)

    def inbound_counts(self) -> tuple[int, int]:
        """(messages the nodes accepted, of which not yet processed), from the database."""
        with psycopg.connect(self.url) as conn:
            row = conn.execute(
                "SELECT COUNT(*), COUNT(*) FILTER (WHERE state <> 'done') FROM inbound"
            ).fetchone()
        assert row is not None
        return row[0], row[1]


def handed_over(log: str) -> dict[str, int]:
    """mailhub queue id -> post number, for each post Postfix handed over LMTP (a queue
    id's message-id line comes before its delivery line; Postfix may reuse a queue id
    later, so the log is read in order)."""
    post_of: dict[str, int] = {}
    found: dict[str, int] = {}
    for line in log.splitlines():
        if m := _MESSAGE_ID.search(line):
            post_of[m.group(1)] = int(m.group(2))
        elif (m := _LMTP_SENT.search(line)) and m.group(1) in post_of:
            found[m.group(2)] = post_of[m.group(1)]
    return found


@pytest_asyncio.fixture
async def nodes(tmp_path, pg_url) -> AsyncIterator[Nodes]:
    if WHY_NOT is not None:
        pytest.fail(f"MAILHUB_REQUIRE_POSTFIX=1 but Postfix cannot run: {WHY_NOT}")
    # What an operator does once: `mailhub migrate`, `mailhub members` (here directly).
    db = await PostgresStore.connect(pg_url)
    try:
        async with db.transaction() as tx:
            for addr in MEMBERS:
                await store.add_member(tx, "green", addr, addr.split("@")[0].title(), 0.0)
    finally:
        await db.close()
    mailboxes = Sink()
    await mailboxes.start()
    ports = [free_port(), free_port()]
    postfix = Postfix(
        transports={
            DOMAIN: lmtp_destinations(ports),
            "example.net": f"smtp:[127.0.0.1]:{mailboxes.port}",
            "example.org": f"smtp:[127.0.0.1]:{mailboxes.port}",
        },
        extra_main=RETRY_SOON,
    )
    n = Nodes(
        postfix,
        mailboxes,
        ports,
        configs=[
            node_config(
                tmp_path / f"node{i}",
                port=port,
                relay_port=postfix.outbound_port,
                url=pg_url,
                lease=NODE_LEASE,
                connections=NODE_CONNECTIONS,
                lmtp=True,
                extra=LISTS_TOML,
            )
            for i, port in enumerate(ports)
        ],
        logs=[tmp_path / f"node{i}.log" for i in range(len(ports))],
        procs=[None] * len(ports),
        url=pg_url,
    )
    try:
        for i in range(len(ports)):
            await n.start(i)
        await asyncio.to_thread(postfix.start)
        yield n
    finally:
        try:
            await asyncio.to_thread(postfix.stop)
        finally:
            for proc in n.procs:
                await stop_server(proc)
            await mailboxes.stop()
            print(postfix.maillog())  # shown by pytest when the test failed
            postfix.cleanup()


def post_copies(sink: Sink) -> Counter[tuple[int, str]]:
    """(post number, reader) -> copies in the reader's mailbox."""
    counted: Counter[tuple[int, str]] = Counter()
    for got in sink.received:
        m = _POST.search(got.raw)
        if m:
            counted[(int(m.group(1)), got.rcpt)] += 1
    return counted


def all_delivered(sink: Sink, wanted: set[int]) -> bool:
    got = post_copies(sink)
    return all((n, r) in got for n in wanted for r in READERS)


async def test_two_nodes_behind_postfix_kill_9_of_one_loses_nothing(nodes):
    n = nodes
    posted: set[int] = set()
    halfway = asyncio.Event()

    async def post_all(numbers: range, senders: int = 1) -> None:
        waiting = list(numbers)

        async def sender() -> None:
            while waiting:
                k = waiting.pop(0)
                await n.post(k)
                posted.add(k)
                if len(posted) >= BURST_KILL_AT:
                    halfway.set()

        await asyncio.gather(*(sender() for _ in range(senders)))

    # 1. Both nodes up: Postfix hands the mail to the first destination listed.
    await post_all(range(5))
    await n.delivered(posted)
    assert n.accepted_by(0) == set(range(5)) and n.accepted_by(1) == set()

    # 2. A burst from two clients; halfway through it, kill -9 of the first node while it
    # holds claimed work (the database is the witness: polled, bounded).
    burst = asyncio.create_task(post_all(range(5, 5 + BURST), senders=2))
    await asyncio.wait_for(halfway.wait(), WAIT)
    dead = n.procs[0]
    assert dead is not None
    for _ in range(500):
        if held_by(n.url, dead.pid):
            break
    dead.kill()
    await dead.wait()
    killed_at = time.monotonic()
    held = held_by(n.url, dead.pid)
    await burst
    assert held, "the kill did not land while the node held work"

    # 3. After the kill: Postfix finds the first destination refusing and goes on to the
    # second in the same delivery attempt; the survivor takes over the dead node's
    # claimed work once its leases run out.
    await post_all(range(5 + BURST, 10 + BURST))
    await n.delivered(posted)
    recovered = time.monotonic() - killed_at
    assert set(range(5 + BURST, 10 + BURST)) <= n.accepted_by(1)
    assert f"connect to 127.0.0.1[127.0.0.1]:{n.ports[0]}: Connection refused" in (
        n.postfix.maillog()
    )

    # 4. The first node back (same config): Postfix's next fresh connection goes to it
    # again, without a change to Postfix (bounded: a reused connection may still go to
    # the second node for Postfix's connection-cache time).
    await n.start(0)
    again = range(10 + BURST, 30 + BURST)
    for k in again:
        await post_all(range(k, k + 1))
        await n.delivered(posted)
        if k in n.accepted_by(0):
            break
    assert n.accepted_by(0) & set(again), "the restarted node took no mail"
    await wait_queue_empty(n.postfix)

    # Nothing lost; copies twice only within the two in-flight windows.
    got = post_copies(n.mailboxes)
    lost = {(k, r) for k in posted for r in READERS if (k, r) not in got}
    accepted, unprocessed = n.inbound_counts()
    # (a) An LMTP session the kill cut after the end of data: the dead node may have
    # committed (it says 250 only after), Postfix never heard the 250 and delivered the
    # post again through the survivor, as Postfix's log says it may.
    cut = n.postfix.maillog().count("while sending end of data -- message may be sent more")
    # (b) A copy the dead node was handing to Postfix: Postfix took it, the node died
    # before it marked it sent; the survivor sends it again after the lease.
    twice = [pair for pair, count in got.items() if count > 1]
    print(
        f"posted={len(posted)} accepted={accepted} (sessions cut after data: {cut})"
        f" held_by_dead_node={len(held)} lost={len(lost)} copies_twice={len(twice)}"
        f" all_delivered_after={recovered:.1f}s (lease {NODE_LEASE:g}s)"
        f" through_first={len(n.accepted_by(0))} through_second={len(n.accepted_by(1))}"
    )
    assert not lost
    assert unprocessed == 0
    assert len(posted) <= accepted <= len(posted) + cut
    assert all(count == 2 for count in got.values() if count > 1)
    assert len(twice) <= (accepted - len(posted)) * len(READERS) + NODE_CONNECTIONS
