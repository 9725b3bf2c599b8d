"""mailhub.authentication: our own DKIM verification (dkimpy) and DMARC evaluation of posts
signed here with a key made for the test, whose public half a real DNS server on loopback
serves; and the choice of a trusted MTA's Authentication-Results."""

from __future__ import annotations

import asyncio
import base64
from email import message_from_bytes

import dkim
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from dkim.canonicalization import Relaxed, Simple

from mailhub.authentication import (
    TIME_LIMIT,
    AuthResults,
    DkimResult,
    Result,
    authserv_id,
    canonical_body,
    trusted_results,
    verify,
)
from mailhub.resolver import DnsConfig, Resolver
from tests.support.dns_server import DnsServer, txt

AUTHSERV = "lists.cop.example.org"
POST = (
    b"From: Sam Jones <sam@mail.example.org>\r\n"
    b"To: practice@cop.example.org\r\n"
    b"Subject: Bilingual forms\r\n"
    b"Message-ID: <post-1@mail.example.org>\r\n"
    b"\r\n"
    b"Has anyone tested the new Welsh forms?\r\n"
)


@pytest.fixture(scope="module")
def key() -> tuple[bytes, str]:
    """(private key PEM, public key as the p= of a DKIM record): made for this test run."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem, base64.b64encode(der).decode()


def sign(
    message: bytes,
    pem: bytes,
    domain: str = "example.org",
    selector: str = "s2026",
    headers: tuple[bytes, ...] = (b"from", b"to", b"subject", b"message-id"),
    canonicalize: tuple[bytes, bytes] = (b"relaxed", b"simple"),
) -> bytes:
    signature = dkim.sign(
        message,
        selector.encode(),
        domain.encode(),
        pem,
        include_headers=list(headers),
        canonicalize=canonicalize,
    )
    return signature + message


@pytest_asyncio.fixture
async def server(key):
    _, public = key
    records = {
        ("s2026._domainkey.example.org", "TXT"): [txt(f"v=DKIM1; k=rsa; p={public}")],
        ("s2026._domainkey.other.example", "TXT"): [txt(f"v=DKIM1; k=rsa; p={public}")],
        ("revoked._domainkey.example.org", "TXT"): ['"v=DKIM1; k=rsa; p="'],
        ("_dmarc.example.org", "TXT"): ['"v=DMARC1; p=reject"'],
        ("_dmarc.strict.example.org", "TXT"): ['"v=DMARC1; p=reject; adkim=s"'],
    }
    async with DnsServer(records) as s:
        yield s


@pytest.fixture
def resolver(server):
    return Resolver(DnsConfig((server.address,), timeout=0.3))


async def check(raw: bytes, resolver: Resolver, **kw) -> AuthResults:
    return await verify(raw, resolver, authserv_id=AUTHSERV, envelope_from=None, **kw)


# -- DKIM ---------------------------------------------------------------------------------


async def test_a_signed_post_passes_and_aligns_with_its_from_domain(key, resolver, server):
    results = await check(sign(POST, key[0]), resolver)
    assert results.value == (
        "lists.cop.example.org; dkim=pass header.d=example.org header.s=s2026; "
        "dmarc=pass header.from=mail.example.org"  # relaxed: the same organisational domain
    )
    # The key came through our resolver from the loopback server, asked once.
    assert server.queries.count("s2026._domainkey.example.org") == 1


async def test_the_body_altered_after_signing_fails(key, resolver):
    signed = sign(POST, key[0]).replace(b"Welsh forms", b"Welsh form!")
    results = await check(signed, resolver)
    assert results.dkim == (
        DkimResult(Result.FAIL, "example.org", "s2026", "body hash did not verify"),
    )
    assert results.dmarc is Result.FAIL
    assert 'dkim=fail reason="body hash did not verify" header.d=example.org' in results.value


async def test_a_signed_header_altered_fails(key, resolver):
    signed = sign(POST, key[0]).replace(b"Subject: Bilingual", b"Subject: [practice] Bilingual")
    results = await check(signed, resolver)
    assert results.dkim[0].result is Result.FAIL
    assert results.dkim[0].reason == "signature did not verify"


async def test_an_unknown_selector_is_a_permanent_error(key, resolver):
    # RFC 6376 §6.1.2: no key record is PERMFAIL ("no key for signature"), which
    # Authentication-Results writes as permerror (RFC 8601 §2.7.1).
    results = await check(sign(POST, key[0], selector="gone"), resolver)
    assert results.dkim == (
        DkimResult(Result.PERMERROR, "example.org", "gone", "no key for signature"),
    )
    assert results.dmarc is Result.FAIL


async def test_a_key_lookup_that_times_out_is_a_temporary_error(key, resolver, server):
    server.silent.add("s2026._domainkey.example.org")
    results = await check(sign(POST, key[0]), resolver)
    assert results.dkim[0].result is Result.TEMPERROR
    assert results.dkim[0].reason == "key lookup failed"


async def test_a_revoked_key_is_a_permanent_error(key, resolver):
    results = await check(sign(POST, key[0], selector="revoked"), resolver)
    assert results.dkim[0] == DkimResult(Result.PERMERROR, "example.org", "revoked", "unusable key")


@pytest.mark.parametrize(
    "header",
    [
        b"DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=s2026; h=from; bh=AAAA\r\n",  # no b=
        b"DKIM-Signature: this is not a tag list\r\n",
        b"DKIM-Signature: v=1; v=1; a=rsa-sha256\r\n",  # a tag twice
        b"DKIM-Signature: v=1; a=rot13; d=example.org; s=s2026; h=from; bh=AAAA; b=AAAA\r\n",
        b"DKIM-Signature: \r\n",
    ],
)
async def test_a_malformed_signature_is_a_permanent_error_never_an_exception(header, resolver):
    results = await check(header + POST, resolver)
    assert [r.result for r in results.dkim] == [Result.PERMERROR]
    assert results.value.startswith("lists.cop.example.org; dkim=permerror reason=")
    # The reason is ours or dkimpy's fixed words, never the sender's text.
    assert results.dkim[0].reason in (
        "missing b=",
        "missing v=",
        "malformed signature",
        "unknown signature algorithm",
    )


async def test_signatures_past_the_size_bounds_are_not_read(key, resolver):
    # A long folded b= makes dkimpy's b= pattern slow (seconds at 25 KB): over 4 KB is
    # refused before dkimpy sees it. And h= with more than 100 names is refused too.
    long = b"DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=s2026; h=from; bh=AAAA; b=a"
    long += b"\r\n \r\n " * 5000 + b"\r\n"
    many = b"DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=s2026; bh=AAAA; b=AAAA;"
    many += b" h=" + b":".join([b"from"] + [b"x-h"] * 150) + b"\r\n"
    loop = asyncio.get_running_loop()
    started = loop.time()
    results = await check(long + many + POST, resolver)
    assert loop.time() - started < 2.0
    assert [(r.result, r.reason) for r in results.dkim] == [
        (Result.PERMERROR, "signature too long"),
        (Result.PERMERROR, "too many signed headers"),
    ]


async def test_a_signature_that_does_not_cover_from_is_not_used(key, resolver):
    # dkimpy refuses to sign without From:, so the h= of a real signature is edited; the
    # result must come from the h= check (permerror), not from the hash (fail).
    signed = sign(POST, key[0], headers=(b"from", b"subject"))
    assert b"h=from : subject" in signed
    edited = signed.replace(b"h=from : subject", b"h=subject", 1)
    results = await check(edited, resolver)
    assert results.dkim == (
        DkimResult(Result.PERMERROR, "example.org", "s2026", "From: not signed"),
    )


async def test_at_most_five_of_a_hundred_signatures_are_checked(key, resolver, server):
    signed = sign(POST, key[0])
    signature = signed[: len(signed) - len(POST)]
    results = await check(signature * 100 + POST, resolver)
    assert [r.result for r in results.dkim] == [Result.PASS] * 5
    assert server.queries.count("s2026._domainkey.example.org") == 1


async def test_several_signatures_each_get_a_result_topmost_first(key, resolver):
    once = sign(POST, key[0], domain="other.example")
    twice = sign(once, key[0], selector="gone")
    results = await check(twice, resolver)
    assert [(r.result, r.domain, r.selector) for r in results.dkim] == [
        (Result.PERMERROR, "example.org", "gone"),
        (Result.PASS, "other.example", "s2026"),
    ]
    # other.example does not align with mail.example.org: DMARC fails.
    assert results.dmarc is Result.FAIL


async def test_a_ten_mib_post_verifies_within_the_time_limit(key, resolver):
    # An attachment's worth of base64 lines: the post intake's limit allows.
    body = (b"TGxpbmVsbCBvIGRlc3R1bi9hIGxpbmUgb2YgdGV4dA" * 2 + b"\r\n") * (10 * 1024 * 1024 // 84)
    big = POST + body
    signed = sign(big, key[0], canonicalize=(b"relaxed", b"relaxed"))
    signature = signed[: len(signed) - len(big)]
    loop = asyncio.get_running_loop()
    started = loop.time()
    results = await check(signature * 5 + big, resolver)
    elapsed = loop.time() - started
    assert [r.result for r in results.dkim] == [Result.PASS] * 5
    assert elapsed < TIME_LIMIT / 2, elapsed  # one canonical body and hash for all five


async def test_a_body_made_to_slow_canonicalisation_down_costs_linear_time(key, resolver):
    # Lines of spaces ending in a letter: dkimpy's own relaxed rule backtracks over each
    # (about 10 s a signature for 10 MiB); ours reads each byte a few times.
    signature = sign(POST, key[0], canonicalize=(b"relaxed", b"relaxed"))[: -len(POST)]
    slow = POST + (b" " * 990 + b"x\r\n") * (10 * 1024 * 1024 // 993)
    loop = asyncio.get_running_loop()
    started = loop.time()
    results = await check(signature * 5 + slow, resolver)
    elapsed = loop.time() - started
    assert [r.reason for r in results.dkim] == ["body hash did not verify"] * 5
    assert elapsed < TIME_LIMIT / 2, elapsed


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\r\n",
        b"\r\n\r\n\r\n",
        b"text",
        b"text\r\n",
        b"text\r\n\r\n\r\n",
        b" lead  and \t tabs\t \r\n  \r\nend \t\r\n\r\n",
        b"a\tb\t\tc  \r\n\t\r\n d",
        b"  \r\n \r\n",
        b"bare\nline ends \n\r\n\n",
    ],
)
@pytest.mark.parametrize("relaxed", [False, True])
@pytest.mark.parametrize("chunk", [1, 3, 1 << 18])  # pieces cut at every line, or few
def test_canonical_body_is_dkimpys(body, relaxed, chunk):
    form = Relaxed if relaxed else Simple
    # dkimpy reads a message's lines as CRLF ones first (rfc822_parse), then canonicalises.
    _, as_dkimpy_reads = dkim.rfc822_parse(b"X: y\r\n\r\n" + body)
    assert canonical_body(body, relaxed, chunk) == form.canonicalize_body(as_dkimpy_reads)


async def test_verification_past_its_time_limit_is_a_temporary_error(key, resolver):
    big = POST + (b"x" * 76 + b"\r\n") * 50_000
    results = await check(sign(big, key[0]), resolver, time_limit=0.000_001)
    assert [r.result for r in results.dkim] == [Result.TEMPERROR]
    assert results.dkim[0].reason == "time limit"


# -- DMARC ---------------------------------------------------------------------------------


async def test_an_unsigned_post_from_a_domain_without_policy(resolver):
    post = POST.replace(b"sam@mail.example.org", b"sam@nopolicy.example")
    results = await check(post, resolver)
    assert (
        results.value == "lists.cop.example.org; dkim=none; dmarc=none header.from=nopolicy.example"
    )
    assert results.policy is not None and results.policy.outcome == "absent"


async def test_strict_alignment_asked_by_the_policy_is_honoured(key, resolver):
    post = POST.replace(b"sam@mail.example.org", b"sam@strict.example.org")
    results = await check(sign(post, key[0]), resolver)
    assert results.dkim[0].result is Result.PASS
    assert results.dmarc is Result.FAIL  # d=example.org is not strict.example.org
    same = await check(sign(post, key[0], domain="example.org"), resolver)
    assert same.dmarc is Result.FAIL
    exact = post.replace(b"sam@strict.example.org", b"sam@example.org")
    assert (await check(sign(exact, key[0]), resolver)).dmarc is Result.PASS


async def test_a_policy_lookup_that_fails_is_a_dmarc_temperror(key, resolver, server):
    server.silent.add("_dmarc.mail.example.org")
    results = await check(sign(POST, key[0]), resolver)
    assert results.dkim[0].result is Result.PASS
    assert results.dmarc is Result.TEMPERROR


async def test_two_from_fields_are_a_dmarc_permerror(key, resolver, server):
    post = b"From: eve@evil.example\r\n" + POST
    results = await check(post, resolver)
    assert results.dmarc is Result.PERMERROR
    assert results.dmarc_reason == "several From: fields"
    assert "header.from" not in results.value
    assert not [q for q in server.queries if q.startswith("_dmarc")]


async def test_garbage_gets_results_not_an_exception(resolver):
    for raw in (b"", b"\x00\xff\xfe", b"no header here\r\n\r\nbody", b"DKIM-Signature: \xff\r\n"):
        results = await check(raw, resolver)
        assert results.value.startswith("lists.cop.example.org; ")


# -- a trusted MTA's results -----------------------------------------------------------------


def with_headers(*lines: bytes) -> bytes:
    return b"".join(line + b"\r\n" for line in lines) + POST


def test_the_topmost_trusted_results_are_taken_and_forged_ones_below_ignored():
    raw = with_headers(
        b"Authentication-Results: spamfilter.internal; spam=no",
        b"Received: from mx.cop.example.org by lists.cop.example.org",
        b"Authentication-Results: mx.cop.example.org;",
        b"  dkim=pass header.d=example.org; dmarc=pass header.from=mail.example.org",
        b"Received: from mail.example.org by mx.cop.example.org",
        b"Authentication-Results: mx.cop.example.org; dkim=pass header.d=forged.example",
    )
    assert trusted_results(raw, ["MX.cop.example.org"]) == (
        "mx.cop.example.org;  dkim=pass header.d=example.org; "  # unfolded, spaces kept
        "dmarc=pass header.from=mail.example.org"
    )
    # The same from a parsed message, and from header pairs.
    assert trusted_results(message_from_bytes(raw), ["mx.cop.example.org"]) is not None
    pairs = [("Authentication-Results", "mx.cop.example.org 1; none")]
    assert trusted_results(pairs, ["mx.cop.example.org"]) == "mx.cop.example.org 1; none"


def test_no_trusted_results():
    raw = with_headers(b"Authentication-Results: mx.elsewhere.example; dkim=pass")
    assert trusted_results(raw, ["mx.cop.example.org"]) is None
    assert trusted_results(raw, []) is None
    assert trusted_results(POST, ["mx.cop.example.org"]) is None
    # A name that merely starts with the trusted one is another name.
    raw = with_headers(b"Authentication-Results: mx.cop.example.org.evil.example; dkim=pass")
    assert trusted_results(raw, ["mx.cop.example.org"]) is None


@pytest.mark.parametrize(
    ("value", "ident"),
    [
        ("mx.example.org; dkim=pass", "mx.example.org"),
        ("mx.example.org 1; none", "mx.example.org"),
        ("(the edge) mx.example.org; spf=pass", "mx.example.org"),
        ("(nested (comment)) mx.example.org;", "mx.example.org"),
        ('"mx.example.org"; dkim=pass', "mx.example.org"),
        ("mx.example.org(comment); dkim=pass", "mx.example.org"),
        ("; dkim=pass", ""),
        ("", ""),
    ],
)
def test_authserv_id(value, ident):
    assert authserv_id(value) == ident


def test_a_trusted_value_is_returned_cleaned_of_control_characters():
    pairs = [("Authentication-Results", "mx.cop.example.org; dkim=pass\x00\r\nBcc: x@y")]
    value = trusted_results(pairs, ["mx.cop.example.org"])
    assert value is not None and "\r" not in value and "\n" not in value and "\x00" not in value
