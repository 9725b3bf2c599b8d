"""The distribution copy: list headers, subject prefix, footer placement, DMARC rewrite."""

from __future__ import annotations

from dataclasses import replace

from mailhub.lists import footer
from mailhub.lists.config import DmarcConfig, ListConfig
from mailhub.lists.headers import (
    distribution_copy,
    needs_dmarc_rewrite,
    prefixed_subject,
)
from mailhub.parsing import addresses, body_text, header, parse

D = "cop.example.org"
# These tests are about lists whose addresses are shown (hidden: tests/test_hidden_addresses.py).
LIST = ListConfig(
    name="green", display_name="Green Team", archive_url="https://a.example/g", addresses="shown"
)
NO_DMARC = DmarcConfig()

PLAIN = (
    b"From: Ann Example <ann@example.net>\r\nTo: green@cop.example.org\r\n"
    b"Subject: Hello\r\nMessage-ID: <p1@example.net>\r\nReturn-Receipt-To: ann@example.net\r\n"
    b"List-Id: <other.example.com>\r\n\r\nHi all.\r\n"
)
MIXED = (
    b"From: ann@example.net\r\nTo: green@cop.example.org\r\nSubject: Files\r\n"
    b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
    b"--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=a.pdf\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--b--\r\n"
)
HTML = (
    b"From: ann@example.net\r\nTo: green@cop.example.org\r\nSubject: Rich\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Hello</p>\r\n"
)
ENCRYPTED = (
    b"From: ann@example.net\r\nSubject: Secret\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary="e"\r\n'
    b"\r\n--e\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n"
    b"--e\r\nContent-Type: application/octet-stream\r\n\r\n-----BEGIN PGP-----\r\n--e--\r\n"
)


def copy(raw: bytes, cfg: ListConfig = LIST, dmarc: DmarcConfig = NO_DMARC):
    out = distribution_copy(
        raw,
        cfg=cfg,
        domain=D,
        loop_id=f"mailhub@{D}",
        footer="Be kind. Report: conduct@cop.example.org",
        dmarc=dmarc,
        message_id="<new@cop.example.org>",
    )
    return parse(out)


def test_subject_prefixed_once():
    assert prefixed_subject("Hello", "Green Team") == "[Green Team] Hello"


def test_subject_prefix_not_repeated_on_replies():
    assert prefixed_subject("Re: [Green Team] Hello", "Green Team") == "Re: [Green Team] Hello"


def test_empty_subject_gets_prefix():
    assert prefixed_subject("", "Green") == "[Green] (no subject)"


def test_a_welsh_first_list_prefixes_its_welsh_name_and_never_twice():
    welsh = replace(LIST, display_name_cy="Tîm Gwyrdd", language="cy+en")
    assert header(copy(PLAIN, welsh), "subject") == "[Tîm Gwyrdd] Hello"
    assert header(copy(PLAIN, replace(welsh, language="en+cy")), "subject") == "[Green Team] Hello"
    # A reply whose subject carries the list's name in its other language keeps one prefix.
    reply = PLAIN.replace(b"Subject: Hello", b"Subject: Re: [Green Team] Hello")
    assert header(copy(reply, welsh), "subject") == "Re: [Green Team] Hello"


def test_list_headers_rfc2919_and_2369():
    m = copy(PLAIN)
    assert header(m, "list-id") == '"Green Team" <green.cop.example.org>'
    assert header(m, "list-post") == "<mailto:green@cop.example.org>"
    assert header(m, "list-help") == "<mailto:green-request@cop.example.org?subject=help>"
    assert header(m, "list-subscribe") == "<mailto:green-join@cop.example.org>"
    assert header(m, "list-unsubscribe") == "<mailto:green-leave@cop.example.org>"
    assert header(m, "list-archive") == "<https://a.example/g>"
    assert header(m, "precedence") == "list"
    assert header(m, "x-loop") == f"mailhub@{D}"
    assert header(m, "message-id") == "<p1@example.net>"


def test_foreign_list_headers_and_receipt_requests_stripped():
    m = copy(PLAIN)
    assert len(m.get_all("list-id")) == 1 and "return-receipt-to" not in m


def test_footer_appended_to_plain_text():
    m = copy(PLAIN)
    assert not m.is_multipart()
    assert "Hi all." in m.get_content() and "conduct@cop.example.org" in m.get_content()


def test_footer_added_as_part_of_multipart_mixed():
    m = copy(MIXED)
    parts = list(m.iter_parts())
    assert m.get_content_type() == "multipart/mixed" and len(parts) == 3
    assert parts[1].get_filename() == "a.pdf"
    assert "Report: conduct@" in parts[2].get_content()


def test_html_only_gets_the_footer_inside_its_html():
    # (tests/test_html_footer.py: alternative, attachments, encodings, the bytes kept)
    m = copy(HTML)
    assert m.get_content_type() == "text/html" and not m.is_multipart()
    content = m.get_content()
    assert content.startswith("<p>Hello</p>") and "Be kind. Report: conduct@" in content


def test_encrypted_left_alone():
    m = copy(ENCRYPTED)
    assert m.get_content_type() == "multipart/encrypted" and "Be kind" not in body_text(m)


def test_from_kept_without_dmarc_policy():
    assert addresses(copy(PLAIN), "from") == [("Ann Example", "ann@example.net")]


def test_dmarc_rewrite_for_strict_domain():
    m = copy(PLAIN, dmarc=DmarcConfig(frozenset({"example.net"})))
    assert addresses(m, "from") == [("Ann Example via Green Team", "green@cop.example.org")]
    assert addresses(m, "reply-to") == [("Ann Example", "ann@example.net")]


def test_dmarc_rewrite_always_with_list_reply_to_puts_poster_in_cc():
    m = copy(PLAIN, cfg=replace(LIST, dmarc_rewrite="always", reply_to="list"))
    assert addresses(m, "reply-to") == [("Green Team", "green@cop.example.org")]
    assert ("Ann Example", "ann@example.net") in addresses(m, "cc")


def test_dmarc_subdomain_counts_and_never_means_never():
    strict = DmarcConfig(frozenset({"example.net"}))
    assert needs_dmarc_rewrite(LIST, strict, "a@mail.example.net")
    assert not needs_dmarc_rewrite(replace(LIST, dmarc_rewrite="never"), strict, "a@example.net")


def test_members_are_not_named_in_to():
    m = copy(PLAIN)
    assert [a for _, a in addresses(m, "to", "cc")] == ["green@cop.example.org"]


def test_malformed_post_still_yields_a_copy():
    raw = b"From: \xff\xfe <bad\r\nSubject: =?x-unknown?q?zz?=\r\nContent-Type: text/plain; charset=x-nope\r\n\r\n\xff body\r\n"
    m = copy(raw)
    assert header(m, "list-id") and "[Green Team]" in header(m, "subject")


def test_kept_headers_are_cleaned_and_refolded_not_reserialised():
    long_ref = " ".join(f"<ref-{n}@example.net>" for n in range(12))
    raw = (
        b"From: ann@example.net\r\nTo: green@cop.example.org\r\nSubject: Hi\r\n"
        b"X-Odd: one\x0btwo\r\nReferences: " + long_ref.encode() + b"\r\n"
        b"Message-ID: <k@example.net>\r\n\r\nbody\r\n"
    )
    out = distribution_copy(
        raw,
        cfg=LIST,
        domain=D,
        loop_id=f"mailhub@{D}",
        footer="",
        dmarc=NO_DMARC,
        message_id="<n@x>",
    )
    head = out.split(b"\r\n\r\n")[0]
    assert b"X-Odd: one two" in head  # a control character becomes a space
    assert all(len(line) <= 78 for line in head.split(b"\r\n"))
    assert header(parse(out), "references") == long_ref  # folded at its own spaces: lossless
    assert out.endswith(b"\r\n\r\nbody\r\n")  # no footer: the body untouched


def test_copy_counts_a_hop_and_keeps_incoming_x_loop():
    raw = (
        b"Received: from a\r\nReceived: from b\r\nX-Loop: other@example.com\r\n"
        b"X-Mailhub-Hops: 1\r\n" + PLAIN
    )
    m = copy(raw)
    assert m.get_all("X-Loop") == ["other@example.com", f"mailhub@{D}"]
    assert m.get_all("X-Mailhub-Hops") == ["3"]  # two Received lines, then ours
    assert len(m.get_all("Received")) == 2


def test_footer_in_base64_plain_text_is_reencoded():
    raw = (
        b"From: ann@example.net\r\nSubject: B64\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: base64\r\n"
        b"\r\nQ2Fm6SBhdCBub29uLg==\r\n"
    )
    m = copy(raw)
    assert m.get_content_charset() == "utf-8"
    assert "Café at noon." in m.get_content() and "Be kind" in m.get_content()
    assert len(m.get_all("Content-Type")) == 1 and len(m.get_all("MIME-Version")) == 1


# --- a body that cannot take the footer inline still carries it, beside it -----------------

SIGNED = (
    b"From: ann@example.net\r\nTo: green@cop.example.org\r\nSubject: Signed\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/signed; protocol="application/pgp-signature"; micalg=pgp-sha256;'
    b' boundary="s"\r\n\r\n'
    b"--s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSigned words.\r\n"
    b"--s\r\nContent-Type: application/pgp-signature\r\n\r\n-----BEGIN PGP SIGNATURE-----\r\n"
    b"--s--\r\n"
)


def footer_beside(raw: bytes) -> tuple:
    """The copy, its two parts (the original, the footer) and the copy's raw body."""
    out = distribution_copy(
        raw,
        cfg=LIST,
        domain=D,
        loop_id=f"mailhub@{D}",
        footer="Be kind. Report: conduct@cop.example.org",
        dmarc=NO_DMARC,
        message_id="<new@cop.example.org>",
    )
    m = parse(out)
    assert m.get_content_type() == "multipart/mixed"
    original, footer = list(m.iter_parts())
    assert footer.get_content_type() == "text/plain"
    assert "Be kind. Report: conduct@" in footer.get_content()
    return m, original, footer, out.split(b"\r\n\r\n", 1)[1]


def test_signed_multipart_keeps_its_signed_bytes_and_gets_the_footer_beside():
    _, original, _, body = footer_beside(SIGNED)
    assert original.get_content_type() == "multipart/signed"
    assert SIGNED.split(b"\r\n\r\n", 1)[1] in body  # the signed content, byte for byte


def test_an_unknown_charset_keeps_its_bytes_and_gets_the_footer_beside():
    raw = (
        b"From: ann@example.net\r\nSubject: Odd\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=x-no-such-charset\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n1tDOxA==\r\n"
    )
    _, original, _, body = footer_beside(raw)
    assert original.get_content_type() == "text/plain"
    assert original.get_content_charset() == "x-no-such-charset"
    assert b"\r\n1tDOxA==\r\n" in body


def test_bytes_its_charset_cannot_decode_are_not_replaced_but_kept():
    raw = (
        b"From: ann@example.net\r\nSubject: gb\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=gb2312\r\nContent-Transfer-Encoding: 8bit\r\n"
        b"\r\n\xd6\xd0\xce\xc4\x80\xff\r\n"
    )
    _, original, _, body = footer_beside(raw)
    assert original.get_content_charset() == "gb2312"
    assert b"\xd6\xd0\xce\xc4\x80\xff" in body


def test_the_malformed_post_gets_the_footer_too():
    raw = b"From: \xff\xfe <bad\r\nSubject: x\r\nContent-Type: text/plain; charset=x-nope\r\n\r\n\xff body\r\n"
    _, _, _, body = footer_beside(raw)
    assert b"\xff body" in body


def test_any_failure_editing_in_place_still_wraps(monkeypatch):
    def broken(*args):  # noqa: ANN002
        raise RuntimeError("cannot edit")

    monkeypatch.setattr(footer, "_plain_footer", broken)
    _, original, _, _ = footer_beside(PLAIN)
    assert "Hi all." in original.get_content()
