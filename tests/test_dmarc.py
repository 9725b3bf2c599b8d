"""DMARC by DNS against a real DNS server on loopback: each policy, no record, a DNS timeout,
the organisational domain's record with sp=, the record rules of RFC 7489 §6.6.3, and the
must_rewrite table."""

from __future__ import annotations

import pytest
import pytest_asyncio

from mailhub.clock import ManualClock
from mailhub.dmarc import (
    Disposition,
    DmarcPolicy,
    lookup,
    must_rewrite,
    organisational_domain,
    parse_record,
)
from mailhub.resolver import DnsConfig, Resolver
from tests.support.dns_server import DnsServer

RECORDS = {
    ("_dmarc.reject.example", "TXT"): ['"v=DMARC1; p=reject; rua=mailto:d@reject.example"'],
    ("_dmarc.quarantine.example", "TXT"): ['"v=DMARC1; p=quarantine; pct=10"'],
    ("_dmarc.none.example", "TXT"): ['"v=DMARC1; p=none"'],
    # An organisation that rejects for itself and quarantines for its subdomains, one of
    # which publishes its own record.
    ("_dmarc.example.gov.uk", "TXT"): ['"v=DMARC1; p=reject; sp=quarantine"'],
    ("_dmarc.own.example.gov.uk", "TXT"): ['"v=DMARC1; p=none"'],
    ("_dmarc.nosp.example", "TXT"): ['"v=DMARC1; p=reject"'],
    ("_dmarc.twice.example", "TXT"): ['"v=DMARC1; p=reject"', '"v=DMARC1; p=none"'],
    ("_dmarc.broken.example", "TXT"): ['"v=DMARC1; p=bounce"'],
    # A TXT record that is not DMARC's at the subdomain: discarded, so the org decides.
    ("_dmarc.other.nosp.example", "TXT"): ['"google-site-verification=abc"'],
    # A record split into two character-strings is read as one.
    ("_dmarc.split.example", "TXT"): ['"v=DMARC1; " "p=reject"'],
}


@pytest_asyncio.fixture
async def server():
    async with DnsServer(RECORDS) as s:
        yield s


@pytest.fixture
def resolver(server):
    return Resolver(DnsConfig((server.address,), timeout=0.3), clock=ManualClock(1000.0))


@pytest.mark.parametrize(
    ("domain", "outcome"),
    [
        ("reject.example", Disposition.REJECT),
        ("quarantine.example", Disposition.QUARANTINE),  # pct=10 changes nothing
        ("none.example", Disposition.NONE),
        ("nothing.example", Disposition.ABSENT),
        ("split.example", Disposition.REJECT),
        ("twice.example", Disposition.NONE),  # several records: no DMARC processing
        ("broken.example", Disposition.NONE),  # p= not valid: none at best
        ("Reject.Example.", Disposition.REJECT),
    ],
)
async def test_the_published_policy_is_found(resolver, domain, outcome):
    assert (await lookup(resolver, domain)).outcome is outcome


async def test_a_subdomain_falls_back_to_its_organisational_domain_and_its_sp(resolver, server):
    policy = await lookup(resolver, "mail.example.gov.uk")
    assert policy == DmarcPolicy(Disposition.QUARANTINE, "mail.example.gov.uk", "example.gov.uk")
    assert server.queries == ["_dmarc.mail.example.gov.uk", "_dmarc.example.gov.uk"]
    # The organisational domain itself: p=, not sp=.
    assert (await lookup(resolver, "example.gov.uk")).outcome is Disposition.REJECT
    # A subdomain with a record of its own: that record, not the org domain's.
    assert (await lookup(resolver, "own.example.gov.uk")).outcome is Disposition.NONE
    # Without sp=, the org domain's p= applies to its subdomains.
    assert (await lookup(resolver, "deep.mail.nosp.example")).outcome is Disposition.REJECT
    # A TXT record that is not a DMARC record is discarded, and the org domain decides.
    assert (await lookup(resolver, "other.nosp.example")).outcome is Disposition.REJECT


async def test_a_dns_timeout_is_unknown_and_the_org_domain_is_not_asked_instead(resolver, server):
    server.silent.add("_dmarc.mail.example.gov.uk")
    policy = await lookup(resolver, "mail.example.gov.uk")
    assert policy.outcome is Disposition.UNKNOWN
    assert server.queries == ["_dmarc.mail.example.gov.uk"]


async def test_a_failure_at_the_org_domain_is_unknown_too(resolver, server):
    server.failing.add("_dmarc.example.gov.uk")
    assert (await lookup(resolver, "mail.example.gov.uk")).outcome is Disposition.UNKNOWN


async def test_a_second_post_within_the_ttl_asks_dns_nothing(resolver, server):
    await lookup(resolver, "mail.example.gov.uk")
    asked = len(server.queries)
    assert (await lookup(resolver, "mail.example.gov.uk")).outcome is Disposition.QUARANTINE
    assert len(server.queries) == asked


async def test_no_from_domain_is_absent_without_asking(resolver, server):
    assert (await lookup(resolver, "")).outcome is Disposition.ABSENT
    assert server.queries == []


@pytest.mark.parametrize(
    ("domain", "org"),
    [
        ("mail.example.gov.uk", "example.gov.uk"),
        ("example.gov.uk", "example.gov.uk"),
        ("a.b.example.org", "example.org"),
        ("Example.ORG.", "example.org"),
        ("gov.uk", "gov.uk"),  # a public suffix is its own
        ("alice.github.io", "alice.github.io"),  # the list's private section counts
        ("x.y.unknown-tld", "y.unknown-tld"),  # an unlisted TLD is one label
    ],
)
def test_organisational_domain(domain, org):
    assert organisational_domain(domain) == org


@pytest.mark.parametrize(
    ("text", "tags"),
    [
        ("v=DMARC1; p=reject", {"v": "DMARC1", "p": "reject"}),
        ("v = DMARC1 ;P=Quarantine;", {"v": "DMARC1", "p": "Quarantine"}),
        ("p=reject; v=DMARC1", None),  # v= must come first
        ("v=dmarc1; p=reject", None),  # the version is case-sensitive
        ("v=spf1 -all", None),
        ("", None),
    ],
)
def test_parse_record(text, tags):
    assert parse_record(text) == tags


def policy(outcome: Disposition, domain: str = "mail.example.org") -> DmarcPolicy:
    return DmarcPolicy(outcome, domain)


@pytest.mark.parametrize(
    ("outcome", "strict", "domain", "rewrite"),
    [
        (Disposition.REJECT, (), "mail.example.org", True),
        (Disposition.QUARANTINE, (), "mail.example.org", True),
        (Disposition.UNKNOWN, (), "mail.example.org", True),  # DNS failed: err on the safe side
        (Disposition.NONE, (), "mail.example.org", False),
        (Disposition.ABSENT, (), "mail.example.org", False),
        (Disposition.NONE, ("mail.example.org",), "mail.example.org", True),
        (Disposition.ABSENT, ("example.org",), "mail.example.org", True),  # the org domain
        (Disposition.ABSENT, ("Example.Org",), "MAIL.example.org", True),
        (Disposition.ABSENT, ("gov.uk",), "body.example.gov.uk", True),  # as strict_domains did
        (Disposition.ABSENT, ("other.example.org",), "mail.example.org", False),
        (Disposition.NONE, ("ample.org",), "example.org", False),  # labels, not characters
    ],
)
def test_must_rewrite(outcome, strict, domain, rewrite):
    assert must_rewrite(policy(outcome, domain), frozenset(strict), domain) is rewrite
