"""A forward's header block written by hand (`ForwardHead.lines`) says exactly what the
email package's version of it (`ForwardHead.envelope`) says, for awkward senders too, and
hands back to the email package whatever it cannot write itself."""

from __future__ import annotations

import base64
from email import policy
from email.parser import BytesParser

import pytest

from mailhub.context import Incoming
from mailhub.forwarding import ForwardHead
from mailhub.messages import field_count, plain_address, rewrap, rewrap_lines, safe_text
from mailhub.parsing import addresses, header

VIA = "postmaster@cop.example.org"
TO = ["admin@example.net", "second.admin@example.org"]
DATE = "Mon, 30 Nov 2026 16:00:00 +0000"
MSGID = "<1.2.3@cop.example.org>"
LOOP = "mailhub@cop.example.org"
CRLF_BCC = base64.b64encode(b"hi\r\nBcc: victim@evil.example").decode()

SENDERS = [
    "Bench <bench@example.net>",
    "bench@example.net",
    '"Smith, Jo" <jo.smith@example.net>',
    '"Jo \\"JJ\\" O\'Neil" <jo@example.net>',
    '"back\\\\slash" <b@example.net>',
    "=?utf-8?q?Si=C3=A2n_Lloyd?= <sian@example.net>",
    "=?utf-8?b?" + base64.b64encode("Siân ❤ ".encode() * 12).decode() + "?= <s@example.net>",
    f"=?utf-8?b?{CRLF_BCC}?= <x@example.net>",
    "Dr. A. N. Other (work) <a.n.other@sub.example.ac.uk>",
    "<angle-only@example.net>",
    "",
]
SUBJECTS = [
    "load 1",
    "",
    "Cwestiwn am y rhestr – ŵ ŷ",
    f"=?utf-8?b?{CRLF_BCC}?=",
    "a very long subject line " * 12,
    "=?utf-8?q?hello?= and =?bogus",
]


def message(sender: str, subject: str, extra: str = "") -> bytes:
    head = f"To: {VIA}\r\nMessage-ID: <m-1@example.net>\r\n{extra}"
    if sender:
        head = f"From: {sender}\r\n" + head
    if subject:
        head += f"Subject: {subject}\r\n"
    return (head + "\r\nBody line.\r\n").encode()


def incoming(raw: bytes) -> Incoming:
    return Incoming("Q1", "envelope@example.net", (VIA,), raw, 0.0)


def head_of(raw: bytes) -> ForwardHead:
    return ForwardHead.of(incoming(raw), via=VIA, to=TO, label="postmaster", now_header=DATE)


def both(raw: bytes) -> tuple[bytes, bytes]:
    head = head_of(raw)
    lines = head.lines(MSGID)
    assert lines is not None, "a plain ASCII address must be written by hand"
    fast = rewrap_lines(raw, lines, loop_id=LOOP, received=True)
    slow = rewrap(raw, head.envelope(MSGID), loop_id=LOOP, received=True)
    return fast, slow


def read(raw: bytes):
    return BytesParser(policy=policy.default).parsebytes(raw)


@pytest.mark.parametrize("sender", SENDERS)
@pytest.mark.parametrize("subject", SUBJECTS)
def test_the_hand_written_head_says_what_was_meant(sender, subject):
    raw = message(sender, subject)
    meant = head_of(raw)
    fast, slow = both(raw)
    assert fast.isascii()
    a = read(fast)
    assert list(a.keys()) == list(read(slow).keys())
    # Read as RFC 2047 says (the space between two adjacent encoded words goes), as
    # mailhub reads mail. (The email package's own writer, the other path, can lose a
    # space of a long display name at a word boundary.)
    assert addresses(a, "from") == [(safe_text(meant.from_name), VIA)]
    assert addresses(a, "to") == [("", t) for t in TO]
    reply = [(meant.reply_name, meant.reply_addr)] if meant.reply_addr else []
    assert addresses(a, "reply-to") == reply
    assert header(a, "subject") == meant.subject
    assert header(a, "x-original-message-id") == meant.original_id
    assert (header(a, "date"), header(a, "message-id")) == (DATE, MSGID)
    assert a.get_payload() == "Body line.\r\n"
    # Nothing injected: as many fields as we wrote, every line within the limits.
    head = fast.split(b"\r\n\r\n", 1)[0]
    assert field_count(head) == len(a.keys())
    assert not any(line.lower().startswith(b"bcc") for line in head.split(b"\r\n"))
    assert all(len(line) <= 998 for line in head.split(b"\r\n"))


def test_the_benchmarks_forward_is_byte_for_byte_the_same():
    fast, slow = both(message("Bench <bench@example.net>", "load 1"))
    assert fast == slow


@pytest.mark.parametrize(
    "sender",
    [
        "Rhŷs Jones <rhŷs@example.cymru>",  # internationalised: UTF-8 headers (RFC 6532)
        '"odd local"@example.net',  # a quoted local part
        "user@[192.0.2.1]",  # an address literal
        "a..b@example.net",  # not a dot-atom
    ],
)
def test_what_it_cannot_write_goes_to_the_email_package(sender):
    raw = message(sender, "x")
    head = head_of(raw)
    assert head.lines(MSGID) is None
    assert rewrap(raw, head.envelope(MSGID), loop_id=LOOP)  # and that writes it


def test_plain_address_quotes_encodes_and_refuses():
    assert plain_address("Jo", "jo@example.net") == "Jo <jo@example.net>"
    assert plain_address("", "jo@example.net") == "jo@example.net"
    assert plain_address("Smith, Jo", "jo@example.net") == '"Smith, Jo" <jo@example.net>'
    assert plain_address('a "b" \\ c', "jo@example.net") == '"a \\"b\\" \\\\ c" <jo@example.net>'
    assert plain_address("Siân", "s@example.net") == "=?utf-8?b?U2nDom4=?= <s@example.net>"
    assert plain_address("Jo\r\nBcc: x@evil.example", "jo@example.net") is not None
    assert "\n" not in plain_address("Jo\r\nBcc: x@evil.example", "jo@example.net")
    assert plain_address("Jo", "jo@example.net>\r\nBcc: x@evil.example") is None
    assert plain_address("Jo", "rhŷs@example.cymru") is None
