"""Deliverability end to end: DKIM on what mailhub sends, ARC on list copies, DMARC by DNS.

A real Service over loopback SMTP with a real SQLite file and an SMTP sink, and a real DNS
server on loopback (tests/support/dns_server.py) serving our DKIM public key (made by
`signing.keygen`), the posters' keys and their `_dmarc` records. Every signature is checked
by dkimpy's verifier (`dkim.verify`, `dkim.arc_verify`), whose `dnsfunc` asks that DNS
server with dnspython, as a receiving host would ask its resolver.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import dkim
import dns.resolver
import pytest
from cryptography.fernet import Fernet

from mailhub.delivery import signing_domain
from mailhub.dmarc import Disposition, DmarcPolicy
from mailhub.lists import authenticity
from mailhub.lists.authenticity import Authenticity, relabelled, rewrite_from
from mailhub.lists.config import ListConfig
from mailhub.parsing import addresses, header
from mailhub.signing import keygen, split_message
from mailhub.store import lists as store
from tests.support.dns_server import DnsServer, txt
from tests.support.hub import DOMAIN, Hub, running_hub
from tests.support.sink import Received

# Every test here runs on SQLite and on PostgreSQL (tests/conftest.py: backend).
pytestmark = pytest.mark.usefixtures("backend")

REPO = Path(__file__).resolve().parent.parent
LIST = f"green@{DOMAIN}"
MEMBERS = ("bob@example.org", "cat@example.com")
TRUSTED = "mx.trusted.example"
SERVER_ID = DOMAIN  # our authserv-id: server.hostname, by default the first domain

LISTS = """
[autoreply]
per_hour = 100
per_day = 100

[web]
listen = "127.0.0.1:0"
base_url = "https://lists.example.org"

[[lists]]
name = "green"
display_name = "Green Team"
facilitators = ["fac@example.net"]
subscription = "confirm"
non_member_posts = "accept"
addresses = "shown"
language = "en"  # the rewritten From: is read in English ("Name via List")
delivery = "{delivery}"
{more}
"""
KEYS = """
[dkim]
selector = "mailhub"
key_file = "{key_file}"
trusted_authserv_ids = ["{trusted}"]
"""
CONDUCT = """
[conduct]
fallback = "board@example.net"
release_after = "0"
key_file = "{key_file}"
[[conduct.committee]]
name = "Ada Jones"
addresses = ["ada@example.net"]
[[conduct.committee]]
name = "Bryn Hughes"
addresses = ["bryn@example.net"]
"""
DNS = """
[dns]
nameservers = ["{address}"]
timeout = {timeout}
"""


def record_value(record: str) -> str:
    """The TXT value of the zone-file line keygen printed."""
    return "".join(re.findall(r'"([^"]*)"', record))


class Keys:
    """Our key (the service's domain) and two posters' keys, made by keygen once."""

    def __init__(self, directory: Path) -> None:
        self.ours, ours_record = keygen(DOMAIN, "mailhub", directory)
        self.records: dict[tuple[str, str], list[str]] = {
            (f"mailhub._domainkey.{DOMAIN}", "TXT"): [txt(record_value(ours_record))],
        }
        self.posters: dict[str, bytes] = {}
        for domain in ("signed.example", "silent.example"):
            path, record = keygen(domain, "p1", directory)
            self.posters[domain] = path.read_bytes()
            self.records[(f"p1._domainkey.{domain}", "TXT")] = [txt(record_value(record))]


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> Keys:
    return Keys(tmp_path_factory.mktemp("keys"))


def dmarc(policy: str) -> list[str]:
    return [txt(f"v=DMARC1; p={policy}; rua=mailto:d@example.invalid")]


@pytest.fixture
async def dns_server(keys):
    records = dict(keys.records)
    records[("_dmarc.signed.example", "TXT")] = dmarc("reject")
    records[("_dmarc.reject.example", "TXT")] = dmarc("reject")
    records[("_dmarc.quarantine.example", "TXT")] = dmarc("quarantine")
    records[("_dmarc.none.example", "TXT")] = dmarc("none")
    records[("_dmarc.strict.example", "TXT")] = dmarc("none")
    # norecord.example: nothing at all (NXDOMAIN). silent.example: never answered.
    async with DnsServer(records) as server:
        server.silent |= {"_dmarc.silent.example", "p1._domainkey.silent.example"}
        yield server


def hub_for(tmp_path, keys, dns_server, *, delivery="personalised", more="", timeout=2.0, key=True):  # noqa: ANN001, ANN201
    extra = LISTS.format(delivery=delivery, more=more)
    extra += DNS.format(address=dns_server.address, timeout=timeout)
    if key:
        extra += KEYS.format(key_file=keys.ours, trusted=TRUSTED)
    return running_hub(tmp_path, extra=extra)


async def add_members(hub: Hub) -> None:
    async with hub.service.store.transaction() as tx:
        for addr in MEMBERS:
            await store.add_member(tx, "green", addr, "", hub.clock.now())


def crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()


def post(sender: str, subject: str = "Maps", extra: str = "") -> bytes:
    return crlf(
        f"{extra}From: {sender}\nTo: {LIST}\nSubject: {subject}\n"
        f"Date: Mon, 01 Jan 2024 10:00:00 +0000\n"
        f"Message-ID: <{subject.replace(' ', '-')}@mail.example>\n\nHello all.\n\nSee you.\n"
    )


def poster_signed(raw: bytes, domain: str, keys: Keys) -> bytes:
    """The post as the poster's own MTA signs it (dkimpy's signer, the poster's key)."""
    signature = dkim.sign(
        raw,
        b"p1",
        domain.encode(),
        keys.posters[domain],
        include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
    )
    return signature + raw


# --- verifying as a receiving host does ----------------------------------------------------


def dnsfunc_for(server: DnsServer):  # noqa: ANN201
    """dkimpy's key lookup, asked of the loopback DNS server with dnspython."""
    host, port = server.address.split(":")
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [host]
    resolver.port = int(port)
    resolver.lifetime = 5

    def dnsfunc(name: bytes | str, timeout: float = 5) -> bytes | None:
        text = name.decode() if isinstance(name, bytes) else name
        try:
            answer = resolver.resolve(text, "TXT")
        except dns.exception.DNSException:
            return None
        return b"".join(answer[0].strings)

    return dnsfunc


async def verifies(raw: bytes, server: DnsServer) -> bool:
    # In a thread: dkimpy asks DNS synchronously, and the DNS server runs on this loop.
    return await asyncio.to_thread(dkim.verify, raw, dnsfunc=dnsfunc_for(server))


async def arc_verified(raw: bytes, server: DnsServer):  # noqa: ANN201
    return await asyncio.to_thread(dkim.arc_verify, raw, dnsfunc=dnsfunc_for(server))


def fields(raw: bytes, name: bytes) -> list[bytes]:
    return [f.raw for f in split_message(raw)[0] if f.name == name]


def tags(field: bytes) -> dict[bytes, bytes]:
    return dict(dkim.util.parse_tag_value(field.partition(b":")[2]))


def our_signature(raw: bytes) -> dict[bytes, bytes]:
    (signature,) = fields(raw, b"dkim-signature")
    return tags(signature)


def aar(raw: bytes) -> str:
    (value,) = fields(raw, b"arc-authentication-results")
    return re.sub(rb"\s+", b" ", value).decode()


async def copies(hub: Hub, n: int = 1) -> list[Received]:
    for member in MEMBERS:
        await hub.sink.wait_count(member, n)
    return [r for m in MEMBERS for r in hub.sink.to(m)]


# --- DKIM and ARC ------------------------------------------------------------------------


@pytest.mark.parametrize("delivery", ["personalised", "bulk"])
async def test_copies_notices_and_acknowledgements_are_signed_and_verify(
    tmp_path, keys, dns_server, delivery
):
    async with hub_for(tmp_path, keys, dns_server, delivery=delivery) as hub:
        await add_members(hub)
        signed_post = poster_signed(post("Ann <ann@signed.example>"), "signed.example", keys)
        assert (await hub.send("ann@signed.example", [LIST], signed_post))[0] == 250
        got = await copies(hub)
        for r in got:
            # Ours, for the list's domain, covering the one-click headers (RFC 8058 §4)
            # when the copy is personalised; the poster's own signature is gone (one left).
            signature = our_signature(r.raw)
            assert signature[b"d"] == DOMAIN.encode()
            signed = [h.strip().lower() for h in signature[b"h"].split(b":")]
            assert {b"from", b"subject", b"list-unsubscribe", b"list-id"} <= set(signed)
            if delivery == "personalised":
                assert b"list-unsubscribe-post" in signed
                assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" in r.raw
            assert await verifies(r.raw, dns_server), r.rcpt
            # The ARC chain: our seal over the poster's verified signature.
            cv, results, reason = await arc_verified(r.raw, dns_server)
            assert cv == dkim.CV_Pass, reason
            assert results[0]["ams-domain"] == DOMAIN.encode()
            sealed = aar(r.raw)
            assert f"i=1; {SERVER_ID};" in sealed
            assert "dkim=pass header.d=signed.example header.s=p1" in sealed
            assert "dmarc=pass header.from=signed.example" in sealed
            # The control: a verifier that can say no says no to an altered copy.
            altered = r.raw.replace(b"Hello all.", b"Hello ALL.")
            assert not await verifies(altered, dns_server)
            assert (await arc_verified(altered, dns_server))[0] == dkim.CV_Fail
        # A notice (the join confirmation) and an acknowledgement (enquiries@) verify too.
        join = crlf("From: dee@example.com\nTo: green-join@cop.example.org\nSubject: hi\n\nx\n")
        assert (await hub.send("dee@example.com", [f"green-join@{DOMAIN}"], join))[0] == 250
        enquiry = crlf(f"From: Eve <eve@example.com>\nTo: enquiries@{DOMAIN}\nSubject: Q\n\nHi\n")
        assert (await hub.send("eve@example.com", [f"enquiries@{DOMAIN}"], enquiry))[0] == 250
        (confirmation,) = await hub.sink.wait_count("dee@example.com")
        (ack,) = await hub.sink.wait_count("eve@example.com")
        (forward,) = await hub.sink.wait_count("helper@example.net")
        for r in (confirmation, ack, forward):
            assert our_signature(r.raw)[b"d"] == DOMAIN.encode()
            assert await verifies(r.raw, dns_server), r.rcpt
            assert not fields(r.raw, b"arc-seal")  # only list copies are sealed


async def test_the_seal_carries_a_trusted_mtas_results(tmp_path, keys, dns_server):
    """An Authentication-Results of the MTA in front ([dkim] trusted_authserv_ids) is what
    the seal carries, under our authserv-id; one of any other MTA is not trusted, and our
    own verification stands instead."""
    trusted = (
        f"Authentication-Results: {TRUSTED}; dkim=pass header.d=elsewhere.example;\n"
        " spf=pass smtp.mailfrom=ann@elsewhere.example; dmarc=pass header.from=elsewhere.example\n"
    )
    untrusted = "Authentication-Results: mx.other.example; dkim=pass header.d=bank.example\n"
    async with hub_for(tmp_path, keys, dns_server) as hub:
        await add_members(hub)
        first = post("Ann <ann@elsewhere.example>", "Trusted", extra=trusted)
        assert (await hub.send("ann@elsewhere.example", [LIST], first))[0] == 250
        second = post("Ann <ann@elsewhere.example>", "Untrusted", extra=untrusted)
        assert (await hub.send("ann@elsewhere.example", [LIST], second))[0] == 250
        got = await copies(hub, 2)
        for r in got:
            cv, _, reason = await arc_verified(r.raw, dns_server)
            assert cv == dkim.CV_Pass, reason
            assert await verifies(r.raw, dns_server)
            assert len(fields(r.raw, b"authentication-results")) == 1  # ours alone
            assert TRUSTED.encode() not in r.raw and b"bank.example" not in r.raw
        by_subject = {header(r.message, "subject"): aar(r.raw) for r in got}
        assert "spf=pass smtp.mailfrom=ann@elsewhere.example" in by_subject["[Green Team] Trusted"]
        assert f"i=1; {SERVER_ID}; dkim=pass" in by_subject["[Green Team] Trusted"]
        assert "dkim=none" in by_subject["[Green Team] Untrusted"]  # ours: it is not signed


async def test_without_a_key_mail_goes_out_unsigned_and_unsealed(tmp_path, keys, dns_server):
    async with hub_for(tmp_path, keys, dns_server, key=False) as hub:
        await add_members(hub)
        assert (await hub.send("ann@none.example", [LIST], post("ann@none.example")))[0] == 250
        for r in await copies(hub):
            assert not fields(r.raw, b"dkim-signature") and not fields(r.raw, b"arc-seal")
            assert not fields(r.raw, b"authentication-results")  # nothing would seal it


async def test_case_mail_sealed_at_rest_is_signed_as_it_is_sent(tmp_path, keys, dns_server):
    """Conduct mail rests sealed (Fernet) in the queue; it is signed after it is unsealed, at
    send time, so the signature is over what the committee member reads."""
    fernet_key = tmp_path / "conduct.key"
    fernet_key.write_bytes(Fernet.generate_key())
    extra = DNS.format(address=dns_server.address, timeout=2)
    extra += KEYS.format(key_file=keys.ours, trusted=TRUSTED)
    extra += CONDUCT.format(key_file=fernet_key)
    async with running_hub(tmp_path, extra=extra) as hub:
        report = crlf(
            f"From: Rhian <rhian@reporter.example>\nTo: conduct@{DOMAIN}\n"
            "Subject: Something happened\n\nWhat happened, in detail.\n"
        )
        assert (await hub.send("rhian@reporter.example", [f"conduct@{DOMAIN}"], report))[0] == 250
        (ack,) = await hub.sink.wait_count("rhian@reporter.example")
        (case_mail, *_) = await hub.sink.wait_count("ada@example.net")
        async with hub.service.store.read() as tx:
            cur = await tx.execute("SELECT COUNT(*) FROM outbound WHERE sealed != 0")
            (sealed,) = await cur.fetchone()
        assert sealed  # it rested sealed: what went out was unsealed, then signed
        for r in (ack, case_mail):
            assert b"What happened" in r.raw or r is ack
            assert our_signature(r.raw)[b"d"] == DOMAIN.encode()
            assert await verifies(r.raw, dns_server), r.rcpt


async def test_a_post_with_long_runs_of_spaces_is_sealed_and_signed(tmp_path, keys, dns_server):
    """Lines of spaces ending in a letter make dkimpy's own relaxed body form backtrack
    (quadratic in the run, holding the GIL): the ARC signer is handed the body already
    relaxed (linear, ours; the form is idempotent), so such a post is sealed like any other
    and its seal and signature verify. A post with some indentation is the control."""
    async with hub_for(tmp_path, keys, dns_server) as hub:
        await add_members(hub)
        spaces = "Look:\n" + (" " * 996 + "x\n") * 150
        eight_bit = "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
        eight_bit += "Content-Transfer-Encoding: 8bit\n"
        crafted = post("ann@none.example", "Spaces", extra=eight_bit)
        crafted = crafted.replace(b"Hello all.", crlf(spaces))
        indented = post("ann@none.example", "Code").replace(b"Hello all.", b"    x = 1\r\n")
        for raw in (crafted, indented):
            assert (await hub.send("ann@none.example", [LIST], raw))[0] == 250
        for r in await copies(hub, 2):
            assert fields(r.raw, b"arc-seal")
            assert (await arc_verified(r.raw, dns_server))[0] == dkim.CV_Pass
            assert await verifies(r.raw, dns_server)


# --- DMARC by DNS --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "domain, more, rewritten",
    [
        pytest.param("reject.example", "", True, id="reject"),
        pytest.param("quarantine.example", "", True, id="quarantine"),
        pytest.param("none.example", "", False, id="none"),
        pytest.param("norecord.example", "", False, id="no-record"),
        pytest.param("strict.example", "", True, id="strict-domains-override"),
        pytest.param("reject.example", 'dmarc_rewrite = "never"', False, id="list-says-never"),
        pytest.param("none.example", 'dmarc_rewrite = "always"', True, id="list-says-always"),
    ],
)
async def test_from_is_rewritten_as_the_posters_dmarc_policy_asks(
    tmp_path, keys, dns_server, domain, more, rewritten
):
    more += '\n[dmarc]\nstrict_domains = ["strict.example"]\n'
    async with hub_for(tmp_path, keys, dns_server, more=more) as hub:
        await add_members(hub)
        sender = f"ann@{domain}"
        assert (await hub.send(sender, [LIST], post(f"Ann Poster <{sender}>")))[0] == 250
        for r in await copies(hub):
            msg = r.message
            (name, shown), *_ = addresses(msg, "from")
            if rewritten:
                assert (name, shown) == ("Ann Poster via Green Team", LIST)
                # The poster is still reachable by reply.
                assert [a for _, a in addresses(msg, "reply-to")] == [sender]
            else:
                assert shown == sender and not addresses(msg, "reply-to")
            assert await verifies(r.raw, dns_server)
    assert f"_dmarc.{domain}" in dns_server.queries or "dmarc_rewrite" in more


async def test_a_held_post_released_later_is_sealed_and_rewritten_as_it_came_in(
    tmp_path, keys, dns_server
):
    """What the preparer found when the post came in (the poster's dkim=pass, p=reject) is
    kept with the held post: released from the review, its copies carry it, ARC-sealed, and
    From: is the list's, as the post's own delivery would have been."""
    more = 'hold_first_posts = 1\nreview_interval = "0"'
    async with hub_for(tmp_path, keys, dns_server, more=more) as hub:
        await add_members(hub)
        poster = "ann@signed.example"
        async with hub.service.store.transaction() as tx:
            await store.add_member(tx, "green", poster, "Ann", hub.clock.now())
        raw = poster_signed(post(f"Ann Poster <{poster}>", "Held maps"), "signed.example", keys)
        assert (await hub.send(poster, [LIST], raw))[0] == 250
        (review,) = await hub.sink.wait_count("fac@example.net")
        assert all(not hub.sink.to(m) for m in MEMBERS)  # held, not sent
        async with hub.service.store.read() as tx:
            (held,) = await store.held_posts(tx, "green")
            assert "dkim=pass" in await store.held_authenticity(tx, held.id)
        (_, reply_to), *_ = addresses(review.message, "reply-to")
        answer = crlf(
            f"From: fac@example.net\nTo: {reply_to}\nSubject: Re: review\n"
            "Message-ID: <answer@example.net>\n\naccept 1\n"
        )
        assert (await hub.send("fac@example.net", [reply_to], answer))[0] == 250
        for r in await copies(hub):
            (name, shown), *_ = addresses(r.message, "from")
            assert (name, shown) == ("Ann Poster via Green Team", LIST)
            cv, _, reason = await arc_verified(r.raw, dns_server)
            assert cv == dkim.CV_Pass, reason
            assert "dkim=pass header.d=signed.example" in aar(r.raw)
            assert await verifies(r.raw, dns_server)


def test_a_stored_finding_reads_back_and_a_bad_one_is_none():
    found = Authenticity(
        results=f"{SERVER_ID}; dkim=pass header.d=a.example",
        policy=DmarcPolicy(Disposition.REJECT, "a.example"),
        from_domain="a.example",
    )
    back = authenticity.from_text(authenticity.to_text(found))
    assert back is not None and back.results == found.results
    assert back.policy is not None and back.policy.outcome is Disposition.REJECT
    assert authenticity.to_text(None) == "" and authenticity.from_text("") is None
    for bad in ("{", "[]", '{"policy": ["nonsense", "x"]}', '{"policy": 3}'):
        assert authenticity.from_text(bad) is None


async def test_a_dns_timeout_rewrites_and_the_post_still_goes_out(tmp_path, keys, dns_server):
    """The poster's DMARC record and DKIM key are never answered: within [dns] timeout the
    copies go out From: the list (the safe side), sealed with dkim=temperror."""
    async with hub_for(tmp_path, keys, dns_server, timeout=0.3) as hub:
        await add_members(hub)
        sender = "ann@silent.example"
        signed_post = poster_signed(post(f"Ann <{sender}>"), "silent.example", keys)
        started = time.monotonic()
        assert (await hub.send(sender, [LIST], signed_post))[0] == 250
        got = await copies(hub)
        # Not stalled: the lookups' bound (0.3 s, plus the resolver's own margin), not 10 s.
        assert time.monotonic() - started < 5
        assert {"_dmarc.silent.example", "p1._domainkey.silent.example"} <= set(dns_server.queries)
        for r in got:
            assert addresses(r.message, "from")[0][1] == LIST
            assert [a for _, a in addresses(r.message, "reply-to")] == [sender]
            sealed = aar(r.raw)
            assert "dkim=temperror" in sealed and "dmarc=temperror" in sealed
            assert (await arc_verified(r.raw, dns_server))[0] == dkim.CV_Pass
            assert await verifies(r.raw, dns_server)


# --- the config and the command line -------------------------------------------------------


def mailhub(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailhub", *argv, "--config", "mailhub.toml"],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60,
    )


def write_config(tmp_path: Path, extra: str = "") -> None:
    text = (REPO / "config" / "mailhub.toml").read_text()
    (tmp_path / "mailhub.toml").write_text(text + extra)


def test_check_warns_when_mail_would_go_out_unsigned(tmp_path, keys):
    write_config(tmp_path)
    unsigned = mailhub(tmp_path, "check")
    assert unsigned.returncode == 0, unsigned.stderr
    assert "dkim: off" in unsigned.stdout
    assert re.search(
        r"warning: mail from cop\.example\.org goes out unsigned .*mailhub dkim keygen",
        unsigned.stdout,
    )
    write_config(tmp_path, KEYS.format(key_file=keys.ours, trusted=TRUSTED))
    signed = mailhub(tmp_path, "check")
    assert signed.returncode == 0, signed.stderr
    assert f"dkim: signs for {DOMAIN}" in signed.stdout and "unsigned" not in signed.stdout


@pytest.mark.parametrize(
    "table, line",
    [
        (
            '[dkim]\nselctor = "mailhub"\n',
            "mailhub: config error: dkim.selctor: unknown key; did you mean `selector`?",
        ),
        (
            '[dns]\nnameservers = ["resolver.example:53"]\n',
            "mailhub: config error: dns.nameservers: expected an IP address and port",
        ),
        ("[dns]\ntimeout = 0\n", "mailhub: config error: dns.timeout: must be more than 0"),
    ],
)
def test_a_mistake_in_dkim_or_dns_is_one_line(tmp_path, table, line):
    write_config(tmp_path, "\n" + table)
    done = mailhub(tmp_path, "check")
    assert done.returncode == 2
    assert done.stderr.startswith(line) and done.stderr.count("\n") == 1


def test_dkim_keygen_through_the_command_line_prints_the_record(tmp_path):
    write_config(tmp_path)
    done = mailhub(tmp_path, "dkim", "keygen", DOMAIN, "--selector", "s")
    assert done.returncode == 0, done.stderr
    (record,) = [ln.strip() for ln in done.stdout.splitlines() if " IN TXT " in ln]
    assert re.fullmatch(rf's\._domainkey\.{re.escape(DOMAIN)}\. IN TXT \( ("[^"]+" ?)+ \)', record)
    assert record_value(record).startswith("v=DKIM1; k=rsa; p=")
    assert (tmp_path / "var" / "dkim" / f"{DOMAIN}.s.key").exists()


# --- the decisions, one line each ----------------------------------------------------------


@pytest.mark.parametrize(
    "raw, mail_from, domain",
    [
        (b"From: enquiries@other.example.org\r\n\r\n", "", "other.example.org"),  # ours
        (
            b"From: ann@example.net\r\n\r\n",
            "green-bounces+x@other.example.org",
            "other.example.org",
        ),
        (b"From: ann@example.net\r\n\r\n", "ann@example.net", DOMAIN),  # neither: the service's
        (b"Subject: no From\r\n\r\n", "", DOMAIN),
        (b'From: "A via G" <green@COP.example.org>\r\n\r\n', "", DOMAIN),
    ],
)
def test_the_signing_domain_is_always_ours(raw, mail_from, domain):
    assert signing_domain(raw, mail_from, (DOMAIN, "other.example.org")) == domain


def test_a_trusted_mtas_results_are_relabelled_with_our_id():
    assert relabelled("mx.example 1; spf=pass smtp.mailfrom=a@b.example", "us.example") == (
        "us.example; spf=pass smtp.mailfrom=a@b.example"
    )
    assert relabelled("mx.example; none", "us.example") == "us.example; none"
    assert relabelled("mx.example", "us.example") == "us.example; none"


@pytest.mark.parametrize(
    "setting, outcome, strict, expected",
    [
        ("auto", Disposition.REJECT, (), True),
        ("auto", Disposition.QUARANTINE, (), True),
        ("auto", Disposition.UNKNOWN, (), True),  # DNS failed: the safe side
        ("auto", Disposition.NONE, (), False),
        ("auto", Disposition.ABSENT, (), False),
        ("auto", Disposition.ABSENT, ("example.net",), True),
        ("never", Disposition.REJECT, (), False),
        ("always", Disposition.ABSENT, (), True),
    ],
)
def test_the_rewrite_decision(setting, outcome, strict, expected):
    cfg = ListConfig(name="green", display_name="Green", dmarc_rewrite=setting)
    found = Authenticity(None, DmarcPolicy(outcome, "mail.example.net"), "mail.example.net")
    assert rewrite_from(cfg, found, frozenset(strict)) is expected


def test_without_a_lookup_the_list_falls_back_to_strict_domains():
    cfg = ListConfig(name="green", display_name="Green")
    assert rewrite_from(cfg, None, frozenset()) is None
    assert rewrite_from(cfg, Authenticity("x; none", None), frozenset()) is None
