"""DKIM and ARC signing (mailhub.signing) and `mailhub dkim keygen` (mailhub.dkim_cli).

Every signature is checked by dkimpy's verifier, an implementation independent of the
signer, against the TXT record that keygen printed (served by a `dnsfunc`, as a DNS
server would serve it). The copies signed are real list copies (distribution_copy)."""

from __future__ import annotations

import argparse
import asyncio
import base64
import logging
import os
import re
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailhub import dkim_cli
from mailhub.apps import load_config
from mailhub.cli import build_parser
from mailhub.errors import ConfigError, UserError
from mailhub.lists.config import DmarcConfig, ListConfig
from mailhub.lists.headers import distribution_copy
from mailhub.signing import (
    DkimConfig,
    Signer,
    keygen,
    missing,
    parse_dkim,
    split_message,
    trusted_srv_id,
)

REPO = Path(__file__).resolve().parent.parent
D = "cop.example.org"
OTHER = "lists.example.net"
SRV_ID = "mailhub.test"
LIST = ListConfig(name="green", display_name="Green Team", footer="Leave: green-leave@" + D)
ONE_CLICK = (
    b"List-Unsubscribe: <https://lists.example.org/u/TOKEN-%d>, "
    b"<mailto:green-leave+TOKEN-%d@cop.example.org>\r\n"
    b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
)

# A 512-bit key (too small to sign with: only here to be refused).
SMALL_KEY = """-----BEGIN PRIVATE KEY-----
MIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEA0FDuBdVRi2gfUqYj
1qSmSYG//PZGL8+iMkvai5znf/tYhqR2Cv7z1cua2LgvW2srG5bloQ25Xb+O/rYJ
0ApS/QIDAQABAkB6Bf33MsZqZ5p5elJh5950DmncjpH8bZ6v4Zjp0QYWA6Fm2VM9
qO9qDAR2Zdloi4+IzprjW2NcXJbHhLNgKOWtAiEA7aAHH/wVNmZabQdsnosY1hJJ
5TiqvgqSBdpTaInZ2uMCIQDgbLVKAhuzUbemK1UMuE7q1jfzcAieI8+xzm/841Ug
nwIhANlvwrVI1RxHQl1cGs9klqBkccvXM53cTEwgwIv7ACdjAiEAmKm6RMbcWwYa
nGHbsBRsMplYZDPw2MpZjYV1bpyiGtcCIFdhEPPzyk3ENtmdULhyojghpSfjPrSz
NWBKd80RX1bR
-----END PRIVATE KEY-----
"""

PLAIN = (
    b"From: Ann Example <ann@example.net>\r\nTo: green@cop.example.org\r\n"
    b"Subject: Hello\r\nDate: Mon, 01 Jan 2024 10:00:00 +0000\r\n"
    b"Message-ID: <p1@example.net>\r\n\r\nHi all.\r\n\r\nSee you  at the meeting.\r\n"
)
MULTIPART = (
    b"From: ann@example.net\r\nTo: green@cop.example.org\r\nSubject: Files\r\n"
    b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
    b"--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=a.pdf\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--b--\r\n"
)
EIGHT_BIT = (
    "From: Siân Thomas <sian@example.cymru>\r\nTo: green@cop.example.org\r\n"
    "Subject: Cyfarfod nesaf — diolch\r\nMIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    "Shwmae bawb,\r\n\r\nDiolch am y cyfarfod ddydd Llun. Bydd y nesaf yng Nghaerdydd.\r\n"
    "\tGwelwn ni chi yno!   \r\n\r\nSiân\r\n"
).encode()


def list_copy(post: bytes, member: int = 1) -> bytes:
    """A real list copy of `post`, personalised as a one-click copy is."""
    copy = distribution_copy(
        post,
        cfg=LIST,
        domain=D,
        loop_id="green@" + D,
        footer=LIST.footer,
        dmarc=DmarcConfig(),
        message_id="<copy@cop.example.org>",
    )
    # The member's own one-click headers in place of the list-wide mailto.
    fields, sep, body = split_message(copy)
    kept = b"".join(f.raw for f in fields if not f.name.startswith(b"list-unsubscribe"))
    return ONE_CLICK % (member, member) + kept + sep + body


def record_value(record: str) -> bytes:
    """The TXT value a DNS server serves for the zone-file line keygen printed."""
    assert re.fullmatch(r'\S+\._domainkey\.\S+\. IN TXT \( ("[^"]{1,255}" ?)+ \)', record)
    return "".join(re.findall(r'"([^"]*)"', record)).encode()


class Zone:
    """TXT records by name, as dkimpy's `dnsfunc` asks for them."""

    def __init__(self) -> None:
        self.records: dict[bytes, bytes] = {}

    def add(self, record: str) -> None:
        self.records[record.split()[0].encode()] = record_value(record)

    def __call__(self, name: bytes, timeout: float = 5) -> bytes | None:
        return self.records.get(name)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """Two keys made by keygen: the service's ([dkim]) and another domain's ([[dkim.keys]])."""
    directory = tmp_path_factory.mktemp("dkim")
    zone = Zone()
    path, record = keygen(D, "mailhub", directory)
    zone.add(record)
    other_path, other_record = keygen(OTHER, "s2024", directory)
    zone.add(other_record)
    config = parse_dkim(
        {
            "selector": "mailhub",
            "key_file": path.name,  # relative: resolved against the config's folder
            "keys": [{"domain": OTHER, "selector": "s2024", "key_file": str(other_path)}],
        },
        directory,
    )
    return config, zone, directory


@pytest.fixture
def signer(keys):
    config, _, _ = keys
    return Signer(config, [D, "second.example.org"])


@pytest.fixture
def zone(keys):
    return keys[1]


def tags(raw: bytes, name: bytes = b"dkim-signature") -> dict[bytes, bytes]:
    fields, _, _ = split_message(raw)
    value = next(f.raw for f in fields if f.name == name).partition(b":")[2]
    return dict(dkim.util.parse_tag_value(value))


def signed_headers(raw: bytes) -> list[bytes]:
    return [h.strip() for h in tags(raw)[b"h"].split(b":")]


# --- keygen -----------------------------------------------------------------------------


def test_keygen_writes_a_private_key_and_prints_its_record(tmp_path):
    path, record = keygen("Cop.Example.org", "sel-1", tmp_path / "keys")
    assert path == tmp_path / "keys" / "cop.example.org.sel-1.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    assert record.startswith("sel-1._domainkey.cop.example.org. IN TXT ( ")
    value = record_value(record)
    assert value.startswith(b"v=DKIM1; k=rsa; p=") and len(value) > 255  # split in two
    # The record is the public half of the key written.
    public = dkim.crypto.parse_public_key(base64.b64decode(dkim.util.parse_tag_value(value)[b"p"]))
    assert public["modulus"] == key.private_numbers().public_numbers.n


def test_keygen_never_overwrites_a_key(tmp_path):
    path, _ = keygen(D, "mailhub", tmp_path)
    before = path.read_bytes()
    with pytest.raises(UserError) as err:
        keygen(D, "mailhub", tmp_path)
    assert "already exists" in str(err.value) and "\n" not in str(err.value)
    assert path.read_bytes() == before


@pytest.mark.parametrize("domain, selector", [("not a domain", "mailhub"), (D, "bad selector")])
def test_keygen_refuses_names_dns_cannot_carry(tmp_path, domain, selector):
    with pytest.raises(UserError):
        keygen(domain, selector, tmp_path)
    assert not any(tmp_path.iterdir())


# --- DKIM -------------------------------------------------------------------------------


@pytest.mark.parametrize("post", [PLAIN, MULTIPART, EIGHT_BIT], ids=["plain", "multipart", "8bit"])
def test_a_list_copy_is_signed_and_verifies(signer, zone, post):
    copy = list_copy(post)
    signed = signer.sign(copy, D)
    assert signed.endswith(copy)  # one header added on top, nothing else touched
    assert signed.count(b"\n") == signed.count(b"\r\n")  # CRLF throughout
    assert dkim.verify(signed, dnsfunc=zone)
    t = tags(signed)
    assert (t[b"d"], t[b"s"], t[b"a"], t[b"c"]) == (
        D.encode(),
        b"mailhub",
        b"rsa-sha256",
        b"relaxed/relaxed",
    )
    h = signed_headers(signed)
    for name in (b"from", b"to", b"subject", b"list-id", b"list-post", b"x-loop"):
        assert name in h
    # Over-signed: named once more than they occur, so a second one cannot be added.
    assert h.count(b"from") == 2 and h.count(b"subject") == 2
    assert h.count(b"list-unsubscribe") == 2 and h.count(b"list-unsubscribe-post") == 2


@pytest.mark.parametrize(
    "alter",
    [
        pytest.param(
            lambda m: m.replace(b"Subject: [Green Team] ", b"Subject: [Green Team] Re: "),
            id="subject",
        ),
        # Added on top, where a verifier's bottom-up choice of instances would not look
        # unless the header is over-signed.
        pytest.param(
            lambda m: b"List-Unsubscribe: <https://evil.example/u/x>\r\n" + m,
            id="second-list-unsubscribe",
        ),
        pytest.param(lambda m: b"From: ceo@cop.example.org\r\n" + m, id="second-from"),
        pytest.param(lambda m: b"Subject: Urgent: pay now\r\n" + m, id="second-subject"),
        pytest.param(lambda m: m.replace(b"Hi all.", b"Hi all!"), id="body"),
        pytest.param(lambda m: m + b"Appended.\r\n", id="body-appended"),
    ],
)
def test_a_copy_altered_after_signing_fails(signer, zone, alter):
    signed = signer.sign(list_copy(PLAIN), D)
    altered = alter(signed)
    assert altered != signed
    assert not dkim.verify(altered, dnsfunc=zone)


def test_what_relaxed_signing_allows_still_verifies(signer, zone):
    """The control for the test above: a Received line on top, refolded headers and extra
    trailing blank lines are what MTAs do, and the signature survives them."""
    signed = signer.sign(list_copy(PLAIN), D)
    moved = b"Received: from mx by mx2; Mon, 1 Jan 2024 10:00:01 +0000\r\n" + signed
    moved = moved.replace(b"Subject: [Green Team] Hello", b"Subject:  [Green Team]\r\n\tHello")
    assert dkim.verify(moved + b"\r\n\r\n", dnsfunc=zone)


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(b"From: a@cop.example.org\r\nSubject: x\r\n\r\n", id="empty-body"),
        pytest.param(b"From: a@cop.example.org\r\n", id="no-body-at-all"),
        pytest.param(b"From: a@cop.example.org\r\n\r\n\r\n\r\n", id="blank-lines-only"),
        pytest.param(b"From: a@cop.example.org\r\n\r\nno line end  \t", id="no-final-crlf"),
        pytest.param(b"From:\ta@cop.example.org \r\nSubject: a\r\n  b\r\n\r\nx \t y\r\n", id="wsp"),
        pytest.param(b"From: a@cop.example.org\nSubject: lf\n\nline one\nline two\n", id="lf"),
    ],
)
def test_canonicalisation_edge_cases_verify(signer, zone, message):
    signed = signer.sign(message, D)
    assert signed != message
    if not signed.endswith(b"\n"):
        signed += b"\r\n"  # what SMTP's DATA does to a text that does not end its line
    assert dkim.verify(signed, dnsfunc=zone)


def test_an_lf_message_gets_an_lf_signature(signer):
    signed = signer.sign(b"From: a@cop.example.org\nSubject: lf\n\nbody\n", D)
    assert b"\r" not in signed


def test_sign_many_signs_every_copy_for_its_own_headers(signer, zone):
    copies = [list_copy(PLAIN, member) for member in (1, 2, 3)]
    signed = signer.sign_many(copies, D)
    assert [s.endswith(c) for s, c in zip(signed, copies, strict=True)] == [True] * 3
    assert all(dkim.verify(s, dnsfunc=zone) for s in signed)
    assert len({tags(s)[b"b"] for s in signed}) == 3
    # A copy's signature does not fit another member's copy (the unsubscribe token differs).
    swapped = signed[0].replace(b"TOKEN-1", b"TOKEN-2")
    assert not dkim.verify(swapped, dnsfunc=zone)
    # Bodies that differ are hashed each for itself.
    mixed = signer.sign_many([list_copy(PLAIN), list_copy(EIGHT_BIT)], D)
    assert all(dkim.verify(s, dnsfunc=zone) for s in mixed)


def test_each_domain_is_signed_with_its_own_key(signer, zone, keys):
    other = signer.sign(PLAIN, OTHER)
    assert (tags(other)[b"d"], tags(other)[b"s"]) == (OTHER.encode(), b"s2024")
    assert dkim.verify(other, dnsfunc=zone)
    # The [dkim] key signs for every domain of the service, and names match whatever case.
    second = signer.sign(PLAIN, "Second.Example.ORG")
    assert (tags(second)[b"d"], tags(second)[b"s"]) == (b"second.example.org", b"mailhub")
    assert signer.key_for("SECOND.example.org") is signer.key_for(D)
    assert signer.key_for(OTHER) is not signer.key_for(D)
    # Had the wrong key been chosen, the other domain's record would not verify it.
    wrong = Zone()
    wrong.records[b"s2024._domainkey." + OTHER.encode() + b"."] = zone.records[
        b"mailhub._domainkey." + D.encode() + b"."
    ]
    assert not dkim.verify(other, dnsfunc=wrong)


def test_a_domain_without_a_key_is_left_unsigned(signer, keys):
    assert signer.key_for("example.com") is None
    assert signer.sign(PLAIN, "example.com") == PLAIN
    ar = b"Authentication-Results: mailhub.test; dkim=pass header.d=example.net\r\n" + PLAIN
    assert signer.seal(ar, "example.com", SRV_ID) == ar
    assert Signer(DkimConfig(), [D]).sign(PLAIN, D) == PLAIN
    # [[dkim.keys]] alone: the service's domains without a key of their own stay unsigned.
    config = keys[0]
    only_keys = DkimConfig(keys=config.keys)
    assert Signer(only_keys, [D]).sign(PLAIN, D) == PLAIN


def test_a_message_that_cannot_be_signed_goes_out_unchanged(signer, caplog):
    broken = b"From: a@cop.example.org\r\nthis line is no header field: secret words\r\n\r\nx\r\n"
    with caplog.at_level(logging.INFO, logger="mailhub"):
        assert signer.sign(broken, D) == broken
        assert signer.seal(broken, D, SRV_ID) == broken
    assert "dkim unsigned" in caplog.text and "arc unsealed" in caplog.text
    assert "secret" not in caplog.text and "a@cop" not in caplog.text


# --- ARC --------------------------------------------------------------------------------


def with_results(copy: bytes, results: bytes = b"dkim=pass header.d=example.net") -> bytes:
    return b"Authentication-Results: " + SRV_ID.encode() + b"; " + results + b"\r\n" + copy


def test_a_sealed_copy_passes_arc_verification(signer, zone):
    copy = with_results(list_copy(PLAIN))
    sealed = signer.seal(copy, D, SRV_ID)
    assert sealed.endswith(copy) and sealed.count(b"\n") == sealed.count(b"\r\n")
    cv, results, reason = dkim.arc_verify(sealed, dnsfunc=zone)
    assert cv == dkim.CV_Pass, reason
    assert results[0]["ams-domain"] == D.encode() and results[0]["cv"] == dkim.CV_None
    assert b"dkim=pass header.d=example.net" in results[0]["aar-value"]
    # Signed as well (what every list copy gets): both verify.
    both = signer.sign(sealed, D)
    assert dkim.verify(both, dnsfunc=zone)
    assert dkim.arc_verify(both, dnsfunc=zone)[0] == dkim.CV_Pass
    # And an altered copy's seal fails.
    altered = both.replace(b"Hi all.", b"Hi all!")
    assert dkim.arc_verify(altered, dnsfunc=zone)[0] == dkim.CV_Fail


def test_the_seal_carries_only_our_topmost_results(signer, zone):
    """An Authentication-Results with our id that came with the post is a forgery (RFC
    8601 §5): the seal carries the one the caller put on top."""
    forged = PLAIN.replace(
        b"\r\n\r\n",
        b"\r\nAuthentication-Results: MAILHUB.test; dkim=pass header.d=bank.example\r\n\r\n",
        1,
    )
    copy = with_results(list_copy(forged), b"dkim=fail header.d=example.net")
    sealed = signer.seal(copy, D, SRV_ID)
    cv, results, _ = dkim.arc_verify(sealed, dnsfunc=zone)
    assert cv == dkim.CV_Pass
    assert b"dkim=fail" in results[0]["aar-value"]
    assert b"bank.example" not in results[0]["aar-value"]


def test_nothing_to_seal_without_our_results(signer):
    copy = list_copy(PLAIN)
    assert signer.seal(copy, D, SRV_ID) == copy
    other = b"Authentication-Results: mx.example.org; spf=pass\r\n" + copy
    assert signer.seal(other, D, SRV_ID) == other


def test_seal_many_makes_one_set_that_is_valid_on_every_copy(signer, zone):
    copies = [with_results(list_copy(PLAIN, member)) for member in (1, 2, 3)]
    sealed = signer.seal_many(copies, D, SRV_ID)
    sets = [s[: -len(c)] for s, c in zip(sealed, copies, strict=True)]
    assert sets[0] and sets[0] == sets[1] == sets[2]
    for s in sealed:
        assert dkim.arc_verify(signer.sign(s, D), dnsfunc=zone)[0] == dkim.CV_Pass
    # A copy whose sealed content differs gets its own set.
    different = [copies[0], with_results(list_copy(EIGHT_BIT))]
    a, b = signer.seal_many(different, D, SRV_ID)
    assert tags(a, b"arc-seal")[b"b"] != tags(b, b"arc-seal")[b"b"]
    assert dkim.arc_verify(b, dnsfunc=zone)[0] == dkim.CV_Pass


def test_trusted_srv_id_is_the_topmost_results_of_a_trusted_mta():
    copy = b"Authentication-Results: mx.example.org; spf=pass\r\n" + PLAIN
    assert trusted_srv_id(copy, ("MX.example.org",)) == "mx.example.org"
    assert trusted_srv_id(copy, ("other.example.org",)) is None
    assert trusted_srv_id(PLAIN, ("mx.example.org",)) is None
    # Only the topmost counts: the trusted MTA puts its own on top (and removes any with
    # its id that came with the post, RFC 8601 §5); one further down is not its.
    below = b"Authentication-Results: other.example; spf=pass\r\n" + copy
    assert trusted_srv_id(below, ("mx.example.org",)) is None


# --- config -----------------------------------------------------------------------------


def test_config_reads_keys_relative_to_the_config_folder(keys):
    config, _, directory = keys
    assert config.default is not None and config.default.key_file == directory / f"{D}.mailhub.key"
    assert [k.domain for k in config.keys] == [OTHER]
    assert "PRIVATE" not in repr(config)  # key material never in a repr (or a log line)
    assert parse_dkim(None, directory) == DkimConfig()
    assert missing([D, OTHER], config) == []
    assert missing([D, OTHER, "third.example"], DkimConfig(keys=config.keys)) == [
        D,
        "third.example",
    ]
    assert missing([D], DkimConfig()) == [D]


@pytest.mark.parametrize(
    "section, key, words",
    [
        ({"selctor": "mailhub"}, "dkim.selctor", "did you mean `selector`"),
        ({"selector": "mailhub", "key_file": "nowhere.key"}, "dkim.key_file", "cannot read"),
        (
            {"selector": "mailhub", "key_file": "not-a-key.pem"},
            "dkim.key_file",
            "not an unencrypted",
        ),
        ({"selector": "mailhub", "key_file": "small.key"}, "dkim.key_file", "under 1024 bits"),
        ({"selector": "mailhub"}, "dkim.key_file", "is required"),
        ({"key_file": "x.key"}, "dkim.selector", "is required"),
        ({"selector": "has space", "key_file": "x.key"}, "dkim.selector", "DNS label"),
        ({"keys": [{"domian": D}]}, "dkim.keys[0].domian", "did you mean `domain`"),
        (
            {"keys": [{"domain": D, "selector": "s", "key_file": "gone.key"}]},
            "dkim.keys[0].key_file",
            "cannot read",
        ),
        ({"keys": {"domain": D}}, "dkim.keys", "[[dkim.keys]]"),
        ({"trusted_authserv_ids": ["mx; evil"]}, "dkim.trusted_authserv_ids", "authserv-ids"),
    ],
)
def test_config_errors_are_one_line_naming_the_key(tmp_path, section, key, words):
    (tmp_path / "not-a-key.pem").write_text("hello\n")
    (tmp_path / "small.key").write_text(SMALL_KEY)
    with pytest.raises(ConfigError) as err:
        parse_dkim(section, tmp_path)
    assert err.value.key == key
    assert words in str(err.value) and "\n" not in str(err.value)


def test_a_pkcs8_key_from_openssl_is_accepted(tmp_path, zone):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "k.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).replace(b"\n", b"\r\n")  # and written on Windows
    )
    config = parse_dkim(
        {"selector": "mailhub", "key_file": "k.pem", "trusted_authserv_ids": "mx.example.org"},
        tmp_path,
    )
    assert config.trusted_authserv_ids == ("mx.example.org",)
    copy = with_results(list_copy(PLAIN))
    sealed = Signer(config, [D]).seal(copy, D, SRV_ID)  # dkimpy reads the key as well
    assert sealed != copy


# --- mailhub dkim keygen ----------------------------------------------------------------


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = (REPO / "config" / "mailhub.toml").read_text()
    path = tmp_path / "mailhub.toml"
    path.write_text(text.replace('domains = ["cop.example.org"]', f'domains = ["{D}", "{OTHER}"]'))
    return load_config(path)


def run_keygen(config, *argv: str) -> int:
    """`mailhub dkim keygen ...` through dkim_cli's own parser, as mailhub.cli runs it."""
    parser = argparse.ArgumentParser(prog="mailhub")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config")
    dkim_cli.register(parser.add_subparsers(dest="command", required=True), common)
    args = parser.parse_args(["dkim", "keygen", *argv])
    return asyncio.run(args.func(args, config))


def printed_config(out: str) -> dict:
    """The TOML lines keygen printed, read as TOML."""
    lines = [ln.strip() for ln in out.splitlines() if re.match(r"   (\[|[a-z_]+ = )", ln)]
    return tomllib.loads("\n".join(lines))


def test_cli_keygen_prints_a_record_and_config_that_work(config, capsys, tmp_path):
    assert run_keygen(config, D) == 0
    out = capsys.readouterr().out
    key = tmp_path / "var" / "dkim" / f"{D}.mailhub.key"  # beside the database
    assert key.exists() and str(key) in out
    records = [ln.strip() for ln in out.splitlines() if " IN TXT " in ln]
    # The [dkim] key signs for both of the service's domains: a record for each.
    assert [r.split()[0] for r in records] == [
        f"mailhub._domainkey.{D}.",
        f"mailhub._domainkey.{OTHER}.",
    ]
    zone = Zone()
    for r in records:
        zone.add(r)
    section = printed_config(out)["dkim"]
    assert section["selector"] == "mailhub"
    signer = Signer(parse_dkim(section, tmp_path), config.server.domains)
    assert dkim.verify(signer.sign(list_copy(PLAIN), D), dnsfunc=zone)
    assert dkim.verify(signer.sign(list_copy(PLAIN), OTHER), dnsfunc=zone)


def test_cli_keygen_for_another_domain_prints_a_keys_table(config, capsys, tmp_path):
    assert run_keygen(config, OTHER, "--selector", "s2", "--dir", str(tmp_path / "k")) == 0
    out = capsys.readouterr().out
    table = printed_config(out)["dkim"]["keys"][0]
    assert table["domain"] == OTHER and table["selector"] == "s2"
    assert table["key_file"] == str((tmp_path / "k" / f"{OTHER}.s2.key").resolve())
    assert "note:" not in out


def test_cli_keygen_refuses_to_overwrite(config, capsys, tmp_path):
    assert run_keygen(config, D) == 0
    key = tmp_path / "var" / "dkim" / f"{D}.mailhub.key"
    before = key.read_bytes()
    with pytest.raises(UserError) as err:
        run_keygen(config, D)
    assert "already exists" in str(err.value) and "\n" not in str(err.value)
    assert key.read_bytes() == before


def _wired() -> bool:
    try:
        build_parser().parse_args(["dkim", "keygen", D])
    except SystemExit:
        return False
    return True


@pytest.mark.skipif(not _wired(), reason="mailhub.cli does not register dkim_cli yet")
def test_mailhub_dkim_keygen_as_a_command(config, tmp_path):
    def keygen_cmd() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mailhub", "dkim", "keygen", D, "--config", "mailhub.toml"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            timeout=60,
        )

    first = keygen_cmd()
    assert first.returncode == 0, first.stderr
    assert f"mailhub._domainkey.{D}. IN TXT" in first.stdout
    again = keygen_cmd()
    assert again.returncode == 1
    assert again.stderr.startswith("mailhub: ") and again.stderr.count("\n") == 1
    assert "already exists" in again.stderr
