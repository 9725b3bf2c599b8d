"""Header injection (issue 9, CVE-2024-6923): no header we send carries a line break we
did not write.

Every test sends posts whose headers hold long RFC 2047 encoded words that decode to
`\\r\\nBcc: victim@evil.example` or `\\r\\nFrom: ceo@evil.example` (base64, quoted-printable,
an unknown charset, and encoded twice), through a real service, and reads every message
the SMTP sink received as bytes, line by line: no `Bcc` field, one `From` field, no
line anywhere in the message that starts an injected field.
"""

from __future__ import annotations

import base64
import re
import sys
from email import policy
from email.parser import BytesParser

import pytest

from mailhub.lists.config import DmarcConfig, ListConfig
from mailhub.lists.headers import distribution_copy, stripped_copy
from mailhub.messages import build_message, clean_raw_value, fold, safe_text, to_bytes
from mailhub.store import lists as store
from tests.support.hub import DOMAIN, running_hub
from tests.support.sink import Received, Sink
from tests.test_conduct_e2e import COMMITTEE_TOML

# Every test here runs on SQLite and on PostgreSQL (tests/conftest.py: backend).
pytestmark = pytest.mark.usefixtures("backend")

PAYLOADS = ("\r\nBcc: victim@evil.example\r\n", "\r\nFrom: ceo@evil.example\r\n")
STYLES = ("b", "q", "unknown", "double")
INJECTED = re.compile(rb"(?im)^[ \t]*bcc[ \t]*:")
FIELDS = ("X-Custom", "Comments", "Keywords", "In-Reply-To", "References", "Subject")
RAISED_LIMITS = """
[autoreply]
per_hour = 100
per_day = 100
"""


def _q(text: str) -> str:
    return "".join(c if c.isalnum() else f"={ord(c):02X}" for c in text)


def encoded(text: str, style: str) -> str:
    """`text` as one RFC 2047 encoded word of the given style."""
    if style == "b":
        return f"=?utf-8?b?{base64.b64encode(text.encode()).decode()}?="
    if style == "q":
        return f"=?utf-8?q?{_q(text)}?="
    if style == "unknown":  # the email package reads an unknown charset as ASCII
        return f"=?x-unknown?q?{_q(text)}?="
    return encoded(encoded(text, "q"), "b")  # decoded once, it is an encoded word again


def injected(payload: str, style: str) -> str:
    """A long header value (well past 78 columns) whose decoded text holds `payload`: the
    shape that the email package of Python 3.11.7 writes out as a line break."""
    return " ".join(
        [
            encoded("hello world " * 3, style),
            encoded("x" * 60 + payload, style),
            encoded("tail " * 10, style),
        ]
    )


def variants() -> list[tuple[str, str]]:
    return [(p, s) for p in PAYLOADS for s in STYLES]


def attack(
    *, sender: str, to: str, payload: str, style: str, n: int, display_name: bool = False
) -> bytes:
    """A message with every injection header. `display_name`: the From's name is one too."""
    value = injected(payload, style)
    shown = value if display_name else "Sam Sender"
    lines = [f"From: {shown} <{sender}>", f"To: {value} <{to}>", f"Cc: {value} <cc@example.net>"]
    lines += [f"{name}: {value}" for name in FIELDS]
    lines += [f"Message-ID: <attack-{n}-{style}@example.net>", "", f"Text of message {n}.", ""]
    return "\r\n".join(lines).encode()


def assert_header_block(head: bytes) -> None:
    """One header block read line by line as a receiver reads it: every line is a field or
    a continuation, no Bcc field, exactly one From field."""
    lines = head.split(b"\r\n")
    for line in lines:
        assert not re.search(rb"[\r\n\x00]", line), line
    names = [ln.split(b":", 1)[0].strip().lower() for ln in lines if ln[:1] not in (b" ", b"\t")]
    assert all(re.fullmatch(rb"[!-9;-~]+", n) for n in names), head  # every line is a field
    assert b"bcc" not in names, head
    assert names.count(b"from") == 1, head


def embedded_heads(raw: bytes) -> list[bytes]:
    """The header blocks of the messages a member digest embeds."""
    m = re.search(rb'multipart/digest; boundary="([^"]+)"', raw)
    if not m:
        return []
    chunks = raw.split(b"\r\n--" + m.group(1))[1:]
    return [c[4:].split(b"\r\n\r\n", 1)[0] for c in chunks if c.startswith(b"\r\n\r\n")]


def assert_clean(got: Received) -> None:
    """The received bytes' header block (and those of the messages it embeds)."""
    assert_header_block(got.raw.split(b"\r\n\r\n", 1)[0])
    for head in embedded_heads(got.raw):
        assert_header_block(head)
    # No line anywhere in the message starts a Bcc field.
    assert not INJECTED.search(got.raw), got.raw[:3000]


def assert_all_clean(sink: Sink, expected: int) -> None:
    assert len(sink.received) >= expected
    for got in sink.received:
        assert_clean(got)


# --- the attack is real on a vulnerable Python, and our helpers stop it ------------------


@pytest.mark.skipif(
    sys.version_info >= (3, 12, 5) or (3, 11, 10) <= sys.version_info < (3, 12),
    reason="the email package of this Python is fixed (CVE-2024-6923)",
)
def test_the_email_package_of_this_python_injects():
    value = injected(PAYLOADS[0], "b")
    raw = f"From: ann@example.net\r\nX-Custom: {value}\r\n\r\nHi\r\n".encode()
    out = BytesParser(policy=policy.default).parsebytes(raw).as_bytes(policy=policy.SMTP)
    assert re.search(rb"(?m)^Bcc:", out.split(b"\r\n\r\n")[0])


@pytest.mark.parametrize(("payload", "style"), variants())
def test_values_we_set_are_decoded_and_cleaned(payload, style):
    text = safe_text(injected(payload, style))
    assert not re.search(r"[\x00-\x1f\x7f]", text) and "=?" not in text
    msg = build_message(
        from_="a@example.org", to="b@example.org", subject=text, body="x\n", domain=DOMAIN, now=0
    )
    head = to_bytes(msg).split(b"\r\n\r\n")[0]
    assert not re.search(rb"(?im)^(bcc|from):.*evil", head)


@pytest.mark.parametrize(("payload", "style"), variants())
def test_raw_values_kept_are_cleaned_and_refolded(payload, style):
    value = clean_raw_value(injected(payload, style))
    line = fold("X-Custom", value)
    assert line is not None
    for part in line.split(b"\r\n")[1:]:
        assert part[:1] == b" "  # continuation lines only
    # An encoded word that decoded to a control character is written anew; others stay.
    assert safe_text(value).count("evil.example") == 1


def test_a_field_too_long_to_fold_is_dropped():
    assert fold("X-Custom", "x" * 1200) is None
    raw = b"From: a@example.net\r\nX-Long: " + b"x" * 1200 + b"\r\n\r\nbody\r\n"
    assert b"X-Long" not in stripped_copy(raw)


@pytest.mark.parametrize(("payload", "style"), variants())
def test_distribution_copy_unit(payload, style):
    raw = attack(sender="ann@example.net", to="green@x", payload=payload, style=style, n=1)
    for dmarc in ("never", "always"):
        cfg = ListConfig(name="green", display_name="Green", dmarc_rewrite=dmarc, reply_to="list")
        out = distribution_copy(
            raw,
            cfg=cfg,
            domain=DOMAIN,
            loop_id=f"mailhub@{DOMAIN}",
            footer="Be kind.",
            dmarc=DmarcConfig(),
            message_id="<n@x>",
        )
        assert_clean(Received("", "m@example.net", out))
        assert b"X-Custom:" in out and b"Be kind." in out


# --- end to end: every kind of mail we send, read at the SMTP sink -----------------------

LISTS = """
[[lists]]
name = "green"
display_name = "Green Team"
facilitators = ["fac@example.net"]
delivery = "bulk"

[[lists]]
name = "blue"
display_name = "Blue Team"
facilitators = ["fac@example.net"]
delivery = "personalised"
dmarc_rewrite = "always"
reply_to = "list"

[[lists]]
name = "held"
display_name = "Held Team"
facilitators = ["fac@example.net"]
non_member_posts = "hold"
"""
MEMBERS = ("ann@example.net", "bob@example.net", "cat@example.org")


async def test_list_copies_both_modes_and_member_digests(tmp_path):
    async with running_hub(tmp_path, extra=RAISED_LIMITS + LISTS) as hub:
        async with hub.service.store.transaction() as tx:
            for name in ("green", "blue"):
                for addr in MEMBERS:
                    await store.add_member(tx, name, addr, "", hub.clock.now())
            await store.set_delivery(tx, "green", "cat@example.org", "digest", hub.clock.now())
        n = 0
        for name in ("green", "blue"):
            for payload, style in variants():
                n += 1
                raw = attack(
                    sender="ann@example.net",
                    to=f"{name}@{DOMAIN}",
                    payload=payload,
                    style=style,
                    n=n,
                    display_name=name == "blue",  # the DMARC rewrite builds From from it
                )
                code, _ = await hub.send("ann@example.net", [f"{name}@{DOMAIN}"], raw)
                assert code == 250
        await hub.idle()
        assert_all_clean(hub.sink, 1)
        copies = len(variants())
        # The From's decoded name can name another sender (parsing.addresses decodes before
        # it parses): such a post to blue is held as a non-member's, and ann is told.
        to_bob, held = len(hub.sink.to("bob@example.net")), len(hub.sink.to("ann@example.net"))
        assert to_bob + held == 2 * copies and to_bob > copies
        blue = to_bob - copies
        assert len(hub.sink.to("cat@example.org")) == blue  # green in digest mode
        hub.clock.advance(86400 * 30)
        await hub.service.scheduler.run_once()
        digests = await hub.sink.wait_count("cat@example.org", blue + 1)
        await hub.idle()
        digest = digests[-1]
        assert digest.message.get_content_type() == "multipart/mixed"
        assert len(embedded_heads(digest.raw)) == copies
        for head in embedded_heads(digest.raw):
            assert b"X-Custom:" in head  # each post's own headers kept, cleaned
        assert_all_clean(hub.sink, to_bob + blue + held + 1)


async def test_enquiry_admin_and_owner_forwards_and_acknowledgements(tmp_path):
    async with running_hub(tmp_path, extra=RAISED_LIMITS + LISTS) as hub:
        targets = [f"enquiries@{DOMAIN}", f"postmaster@{DOMAIN}", f"green-owner@{DOMAIN}"]
        for n, (payload, style) in enumerate(variants()):
            for to in targets:
                raw = attack(
                    sender="sam@example.net",
                    to=to,
                    payload=payload,
                    style=style,
                    n=n,
                    display_name=True,
                )
                code, _ = await hub.send("sam@example.net", [to], raw)
                assert code == 250
        await hub.idle()
        assert_all_clean(hub.sink, 1)
        count = len(variants())
        assert len(hub.sink.to("helper@example.net")) == count
        assert len(hub.sink.to("admin@example.net")) == count
        assert len(hub.sink.to("fac@example.net")) == count
        assert len(hub.sink.to("sam@example.net")) == count  # the enquiry acknowledgements
        assert_all_clean(hub.sink, 4 * count)


async def test_held_notices(tmp_path):
    async with running_hub(tmp_path, extra=RAISED_LIMITS + LISTS) as hub:
        for n, (payload, style) in enumerate(variants()):
            raw = attack(
                sender="stranger@example.net",
                to=f"held@{DOMAIN}",
                payload=payload,
                style=style,
                n=n,
                display_name=True,
            )
            code, _ = await hub.send("stranger@example.net", [f"held@{DOMAIN}"], raw)
            assert code == 250
        await hub.idle()
        assert_all_clean(hub.sink, 1)
        assert len(hub.sink.to("stranger@example.net")) == len(variants())  # "held" notices
        assert_all_clean(hub.sink, len(variants()))


async def test_case_mail(tmp_path):
    async with running_hub(tmp_path, extra=RAISED_LIMITS + COMMITTEE_TOML) as hub:
        for n, (payload, style) in enumerate(variants()):
            reporter = f"reporter{n}@reporter.example"  # 5 cases an hour per mailbox
            raw = attack(
                sender=reporter,
                to=f"conduct@{DOMAIN}",
                payload=payload,
                style=style,
                n=n,
                display_name=True,
            )
            code, _ = await hub.send(reporter, [f"conduct@{DOMAIN}"], raw)
            assert code == 250
            await hub.idle()
            assert_all_clean(hub.sink, 1)
            assert len(hub.sink.to(reporter)) == 1  # the acknowledgement
        assert len(hub.sink.to("ada@example.net")) >= len(variants())  # the reports
        assert len(hub.sink.to("bryn@example.net")) >= len(variants())
        assert_all_clean(hub.sink, 3 * len(variants()))
