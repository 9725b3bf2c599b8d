"""mailhub.resolver against a real DNS server on loopback: the three kinds of answer, the
cache (TTL, negative TTL, failures, size, shared queries) and the strict [dns] config."""

from __future__ import annotations

import asyncio
import socket

import pytest
import pytest_asyncio

from mailhub.clock import ManualClock
from mailhub.errors import ConfigError
from mailhub.resolver import DnsConfig, Outcome, Resolver, parse_dns
from tests.support.dns_server import DnsServer

RECORDS = {
    ("_dmarc.example.org", "TXT"): ['"v=DMARC1; p=reject"'],
    ("example.org", "A"): ["192.0.2.1"],
    # One record in three character-strings, long enough to need TCP (> 512 bytes).
    ("long.example.org", "TXT"): ['"' + "a" * 250 + '" "' + "b" * 250 + '" "' + "c" * 250 + '"'],
}


@pytest_asyncio.fixture
async def server():
    async with DnsServer(RECORDS, ttl=60, negative_ttl=120) as s:
        yield s


def resolver_for(server: DnsServer, clock: ManualClock | None = None, **kw) -> Resolver:
    return Resolver(DnsConfig((server.address,), timeout=0.3), clock=clock, **kw)


# -- [dns] config ---------------------------------------------------------------------------


def test_dns_config_defaults_to_the_system_resolver():
    assert parse_dns(None) == DnsConfig(None, 3.0)
    assert parse_dns({}) == DnsConfig(None, 3.0)


def test_dns_config_reads_nameservers_with_ports_and_a_timeout():
    cfg = parse_dns({"nameservers": ["127.0.0.1:5353", "[::1]:53", "192.0.2.7"], "timeout": "2s"})
    assert cfg == DnsConfig(("127.0.0.1:5353", "[::1]:53", "192.0.2.7:53"), 2.0)
    assert parse_dns({"timeout": 0.3}).timeout == 0.3


@pytest.mark.parametrize(
    ("table", "key", "words"),
    [
        ({"nameserver": ["127.0.0.1:53"]}, "dns.nameserver", "did you mean `nameservers`"),
        ({"nameservers": ["dns.example.org:53"]}, "dns.nameservers", "IP address"),
        ({"nameservers": ["127.0.0.1:0"]}, "dns.nameservers", "port"),
        ({"nameservers": ["127.0.0.1:99999"]}, "dns.nameservers", "port"),
        ({"nameservers": ["[::1"]}, "dns.nameservers", "[IPv6]:port"),
        ({"nameservers": []}, "dns.nameservers", "system's resolver"),
        ({"nameservers": [53]}, "dns.nameservers", "must be a list"),
        ({"timeout": 0}, "dns.timeout", "more than 0"),
        ({"timeout": "soon"}, "dns.timeout", "duration"),
    ],
)
def test_dns_config_mistakes_name_the_key(table, key, words):
    with pytest.raises(ConfigError) as caught:
        parse_dns(table)
    assert caught.value.key == key
    assert words in str(caught.value)


# -- the three kinds of answer -----------------------------------------------------------------


async def test_records_are_returned_each_joined_from_its_strings(server):
    resolver = resolver_for(server)
    answer = await resolver.txt("_dmarc.example.org")
    assert answer.outcome is Outcome.RECORDS
    assert answer.texts == ("v=DMARC1; p=reject",)
    long = await resolver.txt("long.example.org.")  # trailing dot: the same name
    assert long.records == (b"a" * 250 + b"b" * 250 + b"c" * 250,)
    assert server.queries.count("long.example.org") == 2  # truncated over UDP, then TCP


async def test_a_name_that_does_not_exist_and_a_name_without_txt_are_no_record(server):
    resolver = resolver_for(server)
    assert (await resolver.txt("_dmarc.nowhere.example.org")).outcome is Outcome.NO_RECORD
    assert (await resolver.txt("example.org")).outcome is Outcome.NO_RECORD


async def test_a_silent_server_is_a_failure_within_the_timeout(server):
    server.silent.add("_dmarc.example.org")
    resolver = resolver_for(server)
    loop = asyncio.get_running_loop()
    started = loop.time()
    answer = await resolver.txt("_dmarc.example.org")
    assert answer.outcome is Outcome.FAILURE
    assert answer.reason == "timeout"
    # 0.3 s asked; dnspython's last try may run a little over, and our outer bound is +1 s.
    assert loop.time() - started < 1.3


async def test_servfail_and_an_unreachable_server_are_failures(server):
    server.failing.add("_dmarc.example.org")
    answer = await resolver_for(server).txt("_dmarc.example.org")
    assert answer.outcome is Outcome.FAILURE
    assert "SERVFAIL" in answer.reason

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{s.getsockname()[1]}"
    nobody = Resolver(DnsConfig((closed,), timeout=0.3))
    assert (await nobody.txt("_dmarc.example.org")).outcome is Outcome.FAILURE


async def test_a_name_that_cannot_be_in_dns_is_no_record_without_asking(server):
    resolver = resolver_for(server)
    for name in ("a..example.org", "x" * 64 + ".example.org"):
        assert (await resolver.txt(name)).outcome is Outcome.NO_RECORD
    assert server.queries == []


# -- the cache ------------------------------------------------------------------------------


async def test_an_answer_is_kept_for_its_ttl_and_asked_again_after(server):
    clock = ManualClock(1000.0)
    resolver = resolver_for(server, clock)
    await resolver.txt("_dmarc.example.org")
    server.records[("_dmarc.example.org", "TXT")] = ['"v=DMARC1; p=none"']
    clock.advance(59)
    assert (await resolver.txt("_dmarc.EXAMPLE.org")).texts == ("v=DMARC1; p=reject",)
    assert server.queries == ["_dmarc.example.org"]
    clock.advance(2)
    assert (await resolver.txt("_dmarc.example.org")).texts == ("v=DMARC1; p=none",)
    assert server.queries == ["_dmarc.example.org"] * 2


async def test_no_record_is_kept_for_the_soa_minimum(server):
    clock = ManualClock(1000.0)
    resolver = resolver_for(server, clock)
    assert (await resolver.txt("_dmarc.example.net")).outcome is Outcome.NO_RECORD
    server.records[("_dmarc.example.net", "TXT")] = ['"v=DMARC1; p=reject"']
    clock.advance(119)
    assert (await resolver.txt("_dmarc.example.net")).outcome is Outcome.NO_RECORD
    assert server.queries == ["_dmarc.example.net"]
    clock.advance(2)
    assert (await resolver.txt("_dmarc.example.net")).outcome is Outcome.RECORDS


async def test_a_failure_is_kept_only_briefly(server):
    clock = ManualClock(1000.0)
    resolver = resolver_for(server, clock, failure_ttl=30)
    server.failing.add("_dmarc.example.org")
    assert (await resolver.txt("_dmarc.example.org")).outcome is Outcome.FAILURE
    server.failing.clear()
    clock.advance(29)
    assert (await resolver.txt("_dmarc.example.org")).outcome is Outcome.FAILURE
    assert len(server.queries) == 1
    clock.advance(2)
    assert (await resolver.txt("_dmarc.example.org")).outcome is Outcome.RECORDS


async def test_a_zero_ttl_answer_is_not_kept(server):
    server.ttl = 0
    resolver = resolver_for(server, ManualClock(1000.0))
    await resolver.txt("_dmarc.example.org")
    await resolver.txt("_dmarc.example.org")
    assert len(server.queries) == 2


async def test_a_huge_answer_is_returned_but_not_kept(server):
    # 20 different records (an RRset holds each rdata once) of 252 bytes: over 4 KB.
    server.records[("huge.example.org", "TXT")] = [f'"{n:02d}' + "x" * 250 + '"' for n in range(20)]
    resolver = resolver_for(server, ManualClock(1000.0))
    for _ in range(2):
        answer = await resolver.txt("huge.example.org")
        assert answer.outcome is Outcome.RECORDS and len(answer.records) == 20
    assert server.queries.count("huge.example.org") >= 2 * 2  # each time, UDP then TCP


async def test_the_cache_is_bounded_and_drops_the_least_recently_used(server):
    for n in range(3):
        server.records[(f"n{n}.example.org", "TXT")] = ['"x"']
    resolver = resolver_for(server, ManualClock(1000.0), max_entries=2)
    for n in (0, 1, 0, 2):  # n1 is now the least recently used, and goes
        await resolver.txt(f"n{n}.example.org")
    assert server.queries == ["n0.example.org", "n1.example.org", "n2.example.org"]
    await resolver.txt("n0.example.org")
    await resolver.txt("n1.example.org")
    assert server.queries[3:] == ["n1.example.org"]


async def test_concurrent_lookups_of_one_name_share_one_query(server):
    resolver = resolver_for(server)
    server.pause()
    lookups = [asyncio.create_task(resolver.txt("_dmarc.example.org")) for _ in range(5)]
    await server.wait_queries(1)
    server.resume()
    answers = await asyncio.gather(*lookups)
    assert {a.texts for a in answers} == {("v=DMARC1; p=reject",)}
    assert server.queries == ["_dmarc.example.org"]


async def test_one_caller_cancelled_does_not_cancel_the_others(server):
    resolver = resolver_for(server)
    server.pause()
    first = asyncio.create_task(resolver.txt("_dmarc.example.org"))
    second = asyncio.create_task(resolver.txt("_dmarc.example.org"))
    await server.wait_queries(1)
    first.cancel()
    server.resume()
    assert (await second).outcome is Outcome.RECORDS
    with pytest.raises(asyncio.CancelledError):
        await first
