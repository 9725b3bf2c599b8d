"""Reading every text of a report (real parsing, no mocks), and withholding the rest."""

from __future__ import annotations

import base64
import time
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from mailhub.conduct.config import CommitteeMember
from mailhub.conduct.conflicts import scan_report
from mailhub.conduct.reading import scan, scan_bytes, withhold

ADA = CommitteeMember("ada-jones", "Ada Jones", ("ada@example.net",), ("AJ",))
BRYN = CommitteeMember("bryn-hughes", "Bryn Hughes", ("bryn@example.net",), ("Brynnie",))
COMMITTEE = (ADA, BRYN)
HEAD = b"From: r@example.org\r\nTo: conduct@cop.example.org\r\nSubject: report\r\nMIME-Version: 1.0\r\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"


def single(body: bytes, ctype: bytes = b"text/plain; charset=utf-8", extra: bytes = b"") -> bytes:
    return HEAD + b"Content-Type: " + ctype + b"\r\n" + extra + b"\r\n" + body


def named(raw: bytes) -> dict[str, bool]:
    return {m.member: m.possible for m in scan_report(raw, COMMITTEE).matches}


def minimal_pdf(text: str) -> bytes:
    """A minimal valid PDF with one page showing `text` in Helvetica."""
    content = f"BT /F1 24 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for i, obj in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return out


def with_attachment(data: bytes, maintype: str, subtype: str, filename: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "r@example.org"
    msg["To"] = "conduct@cop.example.org"
    msg["Subject"] = "report"
    msg.set_content("Please see the attachment.")
    msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes()


def test_calendar_lines_are_unfolded():
    ics = b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:Meeting with Ada Jo\r\n nes\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    assert named(single(ics, b"text/calendar; charset=utf-8")) == {"ada-jones": False}
    vcard = b"BEGIN:VCARD\r\nFN:Bryn Hu\r\n\tghes\r\nEND:VCARD\r\n"
    assert named(single(vcard, b"text/vcard")) == {"bryn-hughes": False}


def test_octet_stream_that_is_text_is_read():
    raw = with_attachment(b"notes: Ada Jones was rude", "application", "octet-stream", "notes.bin")
    s = scan_bytes(raw)
    assert s.unscannable == ()
    assert named(raw) == {"ada-jones": False}
    utf16 = "Ada Jones".encode("utf-16")
    assert named(with_attachment(utf16, "application", "octet-stream", "x")) == {"ada-jones": False}


def test_html_attributes_are_read_with_entities():
    html = (
        b'<p>Hello</p><a href="mailto:&#97;da@example.net">write</a>'
        b'<img alt="Bryn&#32;Hughes" src="x.png"><input value="x" data-who="AJ">'
    )
    assert named(single(html, b"text/html; charset=utf-8")) == {
        "ada-jones": False,
        "bryn-hughes": False,
    }


def test_html_comments_and_split_words():
    assert named(single(b"<!-- Ada Jones -->hi", b"text/html")) == {"ada-jones": False}
    assert "ada-jones" in named(single(b"A<b></b>da Jo<i>nes</i>", b"text/html"))


def test_a_real_pdf_is_read():
    raw = with_attachment(minimal_pdf("Ada Jones"), "application", "pdf", "statement.pdf")
    s = scan_bytes(raw)
    assert s.unscannable == ()
    assert any("Ada Jones" in t for t in s.texts)
    assert named(raw) == {"ada-jones": False}
    # The same PDF sent as octet-stream is sniffed and read too.
    raw = with_attachment(minimal_pdf("Ada Jones"), "application", "octet-stream", "x")
    assert named(raw) == {"ada-jones": False}


def test_a_broken_pdf_is_unscannable():
    raw = with_attachment(b"%PDF-1.4\nnot really", "application", "pdf", "broken.pdf")
    s = scan_bytes(raw)
    assert s.unscannable and s.unscannable[0].startswith("application/pdf")


def test_an_image_is_unscannable():
    raw = with_attachment(PNG, "image", "png", "shot.png")
    assert scan_bytes(raw).unscannable == ("image/png",)
    assert scan(BytesParser(policy=policy.default).parsebytes(raw)).unscannable == ("image/png",)


def deep(n: int) -> bytes:
    s = b""
    for i in range(n):
        s += b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
    s += b"Content-Type: text/plain\r\n\r\nAda Jones\r\n"
    for i in reversed(range(n)):
        s += b"--b%d--\r\n" % i
    return HEAD + s


def test_500_deep_nesting_is_read_without_recursion():
    s = scan_bytes(deep(500))
    assert not s.over_budget and s.unscannable == ()
    assert named(deep(500)) == {"ada-jones": False}
    w = withhold(deep(500))
    assert w.held == () and w.raw == deep(500)


def test_too_many_parts_is_over_budget():
    outcome = scan_report(deep(50), COMMITTEE, max_parts=10)
    assert outcome.over_budget


def test_base64_forwarded_message_is_read():
    inner = b"From: x@example.org\r\nSubject: hi\r\n\r\nBrynnie was there\r\n"
    body = base64.encodebytes(inner)
    raw = (
        HEAD + b"Content-Type: multipart/mixed; boundary=BB\r\n\r\n--BB\r\n"
        b"Content-Type: text/plain\r\n\r\nsee below\r\n--BB\r\n"
        b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + body.replace(b"\n", b"\r\n")
        + b"--BB--\r\n"
    )
    assert named(raw) == {"bryn-hughes": False}


def test_withhold_replaces_an_image_and_keeps_the_text():
    raw = with_attachment(PNG, "image", "png", "shot.png")
    w = withhold(raw)
    assert len(w.held) == 1
    (h,) = w.held
    assert (h.filename, h.content_type) == ("shot.png", "image/png") and h.size > 0
    msg = BytesParser(policy=policy.default).parsebytes(w.raw)
    parts = list(msg.walk())
    assert [p.get_content_type() for p in parts] == [
        "multipart/mixed",
        "text/plain",
        "text/plain",
    ]
    assert "Please see the attachment." in parts[1].get_content()
    notice = parts[2].get_content()
    assert "shot.png" in notice and "held back" in notice and "wedi'i ddal yn ôl" in notice
    assert scan_bytes(w.raw).unscannable == ()
    assert msg["Subject"] == "report"


def test_withhold_keeps_readable_mail_unchanged():
    raw = with_attachment(b"plain notes", "text", "plain", "notes.txt")
    assert withhold(raw).raw == raw and withhold(raw).held == ()


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\xff\xfe\x00garbage",
        HEAD + b"Content-Type: multipart/mixed; boundary=\r\n\r\n\xff\xfe Ada",
        HEAD + b"Content-Type: multipart/mixed; boundary=XX\r\n\r\nno parts at all Ada Jones",
        HEAD
        + b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: image/png\r\n\r\n",
        HEAD + b"Content-Type: text/plain; charset=bogus-charset\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64",
        b"Subject: =?utf-8?b?broken\r\nContent-Type: message/rfc822\r\n\r\n",
        HEAD + b"Content-Type: multipart/mixed; boundary=A\r\n\r\n--A\r\n--A\r\n--A--\r\n--A\r\n",
    ],
)
def test_malformed_mime_never_raises(raw):
    s = scan_bytes(raw)
    assert isinstance(s.texts, tuple)
    scan_report(raw, COMMITTEE)
    w = withhold(raw)
    assert isinstance(w.raw, bytes)
    BytesParser(policy=policy.default).parsebytes(w.raw)


def test_broken_top_level_mime_gives_a_notice_only_message():
    raw = HEAD + b"Content-Type: multipart/mixed; boundary=\r\n\r\n\xff\xfe Ada"
    w = withhold(raw)
    msg = BytesParser(policy=policy.default).parsebytes(w.raw)
    assert msg["Subject"] == "report" and msg["From"] == "r@example.org"
    assert "held back" in msg.get_content() and "Ada" not in msg.get_content()
    assert w.held and scan_bytes(raw).unscannable


def many_parts(n: int) -> bytes:
    parts = b"".join(b"--BB\r\nContent-Type: text/plain\r\n\r\nhello %d\r\n" % i for i in range(n))
    return HEAD + b"Content-Type: multipart/mixed; boundary=BB\r\n\r\n" + parts + b"--BB--\r\n"


@pytest.mark.parametrize(
    ("name", "raw", "max_parts"),
    [
        ("markup and spaces", single(b"<b>" * 200_000 + b" " * 1_000_000, b"text/html"), 2000),
        ("markup as text", single(b"<b>" * 200_000 + b" " * 1_000_000), 2000),
        ("one long word", single(b"a" * 2_000_000), 2000),
        ("unclosed tags", single(b"<" * 1_000_000 + b'<a x="' * 100_000, b"text/html"), 2000),
        ("dots", single(b"a." * 1_000_000), 2000),
        ("spaced letters", single(b"a " * 1_000_000), 2000),
        ("at and dot", single(b" at " * 100_000 + b" [dot] " * 100_000), 2000),
        ("quote marks", single(b"> | " * 500_000), 2000),
        ("20,000 parts", many_parts(20_000), 30_000),
        ("20,000 parts over budget", many_parts(20_000), 2000),
        ("5,000 deep", deep(5000), 2000),
    ],
)
def test_pathological_inputs_finish_quickly(name, raw, max_parts):
    started = time.perf_counter()
    scan_report(raw, COMMITTEE, max_parts=max_parts)
    withhold(raw)
    assert time.perf_counter() - started < 5.0, name
