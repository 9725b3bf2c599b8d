"""Two mailhub services forwarding to each other stop (issue 9).

Two real services, each with its own SQLite file and domain, each relaying to a small
forwarding sink that hands mail for the other's domain to the other's SMTP intake (as
an MTA would). Hub A's enquiry handler is `enquiries@b.example` and hub B's is
`enquiries@a.example`; a list on each has the other's list as a member. The loop must
stop: at once when the X-Loop lines get through, and within the hop limit when the
forwarder between them drops them (and even our own hop count), as some do.
"""

from __future__ import annotations

import logging
import re
import textwrap
from contextlib import AsyncExitStack
from pathlib import Path

import aiosmtplib
import pytest

from mailhub.apps import load_config
from mailhub.clock import ManualClock
from mailhub.messages import MAX_HOPS
from mailhub.service import Service
from mailhub.store import lists as store
from tests.support.hub import DNS_CONFIG, Hub, empty_dns
from tests.support.sink import Sink

# Every test here runs on SQLite and on PostgreSQL (tests/conftest.py: backend).
pytestmark = pytest.mark.usefixtures("backend")

CONFIG = """
[server]
domains = ["{domain}"]
listen = "127.0.0.1:0"

[storage]
path = "{db}"

[outbound]
relay = "smtp://127.0.0.1:{relay_port}"
retry_base = 0

[admin]
addresses = ["admin@example.net"]

[enquiries]
handlers = ["enquiries@{other}"]

[[lists]]
name = "green"
display_name = "Green {domain}"
non_member_posts = "accept"
delivery = "{delivery}"
# Shown: the loop needs each list's copy to come From: the poster, so that the other list
# sends it on (a hidden list's copy comes From: the list, which is the other's member).
addresses = "shown"
"""


class ForwardingSink(Sink):
    """A relay that records every message, then hands mail for `domain` on to the SMTP
    port `target` (set once the other hub is listening), adding a Received line as an MTA
    does and, when told to, dropping header fields (as a forwarder that rewrites mail)."""

    def __init__(self, domain: str, strip: tuple[str, ...]) -> None:
        super().__init__()
        self.domain = domain
        self.strip = strip
        self.target = 0
        self.handed_on = 0

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001
        reply = await super().handle_DATA(server, session, envelope)
        rcpts = [r for r in envelope.rcpt_tos if r.lower().endswith("@" + self.domain)]
        if rcpts:
            raw = self._edit(envelope.original_content)
            await aiosmtplib.send(
                raw,
                sender=envelope.mail_from or "",
                recipients=rcpts,
                hostname="127.0.0.1",
                port=self.target,
                timeout=10,
            )
            self.handed_on += 1
        return reply

    def _edit(self, raw: bytes) -> bytes:
        head, _, body = raw.partition(b"\r\n\r\n")
        fields: list[list[bytes]] = []
        for line in head.split(b"\r\n"):
            if line[:1] in (b" ", b"\t") and fields:
                fields[-1].append(line)
            else:
                fields.append([line])
        kept = [
            b"\r\n".join(f)
            for f in fields
            if f[0].split(b":", 1)[0].strip().lower().decode() not in self.strip
        ]
        received = f"Received: from hub by relay.{self.domain} with ESMTP id {self.handed_on}"
        return b"\r\n".join([received.encode(), *kept]) + b"\r\n\r\n" + body


async def start(tmp_path: Path, domain: str, other: str, sink: Sink, delivery: str) -> Hub:
    (tmp_path / domain).mkdir()
    path = tmp_path / domain / "mailhub.toml"
    path.write_text(
        textwrap.dedent(
            CONFIG.format(
                domain=domain,
                other=other,
                db=tmp_path / domain / "mailhub.db",
                relay_port=sink.port,
                delivery=delivery,
            )
        )
        + DNS_CONFIG.format(address=empty_dns())
    )
    clock = ManualClock()
    service = Service(load_config(path), clock, run_scheduler=False)
    await service.start()
    return Hub(service, sink, clock, path)


async def two_hubs(stack: AsyncExitStack, tmp_path: Path, strip: tuple[str, ...], delivery: str):
    sink_a, sink_b = ForwardingSink("b.example", strip), ForwardingSink("a.example", strip)
    for sink in (sink_a, sink_b):
        await sink.start()
        stack.push_async_callback(sink.stop)
    a = await start(tmp_path, "a.example", "b.example", sink_a, delivery)
    stack.push_async_callback(a.service.stop)
    b = await start(tmp_path, "b.example", "a.example", sink_b, delivery)
    stack.push_async_callback(b.service.stop)
    sink_a.target, sink_b.target = b.port, a.port
    return a, b


async def settle(*hubs: Hub, rounds: int = 4 * MAX_HOPS) -> None:
    """Wait until neither hub has anything left to do: a whole pass over both in which no
    message was relayed. Bounded: a loop that never stops fails the test."""
    for _ in range(rounds):
        before = sum(len(h.sink.received) for h in hubs)
        for hub in hubs:
            await hub.idle()
        if sum(len(h.sink.received) for h in hubs) == before:
            return
    pytest.fail(f"still relaying after {rounds} rounds: a mail loop")


def enquiry(n: int) -> bytes:
    return (
        f"From: Sam <sam@example.net>\r\nTo: enquiries@a.example\r\nSubject: Loop {n}\r\n"
        f"Message-ID: <loop-{n}@example.net>\r\n\r\nHello.\r\n"
    ).encode()


def hop_counts(sink: Sink, rcpt: str) -> list[int]:
    out = []
    for got in sink.to(rcpt):
        m = re.search(rb"(?m)^X-Mailhub-Hops: (\d+)", got.raw.split(b"\r\n\r\n")[0])
        out.append(int(m.group(1)) if m else 0)
    return out


async def test_forwards_between_two_services_stop_at_their_own_x_loop(tmp_path):
    async with AsyncExitStack() as stack:
        a, b = await two_hubs(stack, tmp_path, (), "bulk")
        code, _ = await a.send("sam@example.net", ["enquiries@a.example"], enquiry(1))
        assert code == 250
        await settle(a, b)
        # A forwards to B, B forwards back to A, and A sees its own X-Loop: two forwards.
        assert len(a.sink.to("enquiries@b.example")) == 1
        assert len(b.sink.to("enquiries@a.example")) == 1
        back = b.sink.to("enquiries@a.example")[0].message
        assert back.get_all("X-Loop") == ["mailhub@a.example", "mailhub@b.example"]
        assert back["X-Mailhub-Hops"] == "2"
        assert len(a.sink.to("sam@example.net")) == 1  # the acknowledgement, once


@pytest.mark.parametrize(
    "strip",
    [("x-loop",), ("x-loop", "x-mailhub-hops")],
    ids=["forwarder-drops-x-loop", "forwarder-drops-x-loop-and-hop-count"],
)
async def test_forwards_stop_at_the_hop_limit_when_x_loop_is_dropped(tmp_path, caplog, strip):
    caplog.set_level(logging.INFO, logger="mailhub")
    async with AsyncExitStack() as stack:
        a, b = await two_hubs(stack, tmp_path, strip, "bulk")
        code, _ = await a.send("sam@example.net", ["enquiries@a.example"], enquiry(2))
        assert code == 250
        await settle(a, b)
        forwards = len(a.sink.to("enquiries@b.example")) + len(b.sink.to("enquiries@a.example"))
        assert forwards == MAX_HOPS  # hops 1..20, then dropped
        # Each forward counts one hop more than the one before it.
        counts = sorted(
            hop_counts(a.sink, "enquiries@b.example") + hop_counts(b.sink, "enquiries@a.example")
        )
        assert counts == list(range(1, MAX_HOPS + 1))
        dropped = [r for r in caplog.records if "hop limit" in r.getMessage()]
        assert len(dropped) == 1 and 'outcome="loop discarded"' in dropped[0].getMessage()


@pytest.mark.parametrize("delivery", ["bulk", "personalised"])
@pytest.mark.parametrize("strip", [(), ("x-loop", "list-id")], ids=["as-sent", "x-loop-dropped"])
async def test_two_lists_subscribed_to_each_other_stop(tmp_path, caplog, delivery, strip):
    caplog.set_level(logging.INFO, logger="mailhub")
    async with AsyncExitStack() as stack:
        a, b = await two_hubs(stack, tmp_path, strip, delivery)
        for hub, other in ((a, "b.example"), (b, "a.example")):
            async with hub.service.store.transaction() as tx:
                await store.add_member(tx, "green", f"green@{other}", "", hub.clock.now())
        post = (
            b"From: Ann <ann@example.net>\r\nTo: green@a.example\r\nSubject: Round\r\n"
            b"Message-ID: <round@example.net>\r\n\r\nAround we go.\r\n"
        )
        code, _ = await a.send("ann@example.net", ["green@a.example"], post)
        assert code == 250
        await settle(a, b)
        copies = len(a.sink.to("green@b.example")) + len(b.sink.to("green@a.example"))
        if not strip:
            assert copies == 2  # A's copy to B, B's back to A, which A discards
        else:
            assert copies == MAX_HOPS
            dropped = [r for r in caplog.records if "loop discarded" in r.getMessage()]
            assert len(dropped) == 1
