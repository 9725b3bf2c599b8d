"""The footer of an HTML post goes inside its text and HTML parts (Outlook shows a part of
its own after the attachments as one more attachment), in each part's own transfer
encoding, and every byte of the body outside the edited parts is the poster's."""

from __future__ import annotations

import base64
import re

import pytest

from mailhub.lists.headers import distribution_copy
from mailhub.parsing import parse
from tests.support.hub import DOMAIN, running_hub
from tests.test_hidden_addresses_e2e import CONFIG, add_members
from tests.test_list_headers import LIST, NO_DMARC, D

FOOTER = "Be kind <always>. Report: conduct@cop.example.org\nCymorth: caf\u00e9 & t\u00eem"
PDF = base64.encodebytes(bytes(range(256)) * 4).decode().replace("\n", "\r\n")


def crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def copy_of(raw: bytes) -> bytes:
    return distribution_copy(
        raw, cfg=LIST, domain=D, loop_id=f"mailhub@{D}", footer=FOOTER, dmarc=NO_DMARC,
        message_id="<new@cop.example.org>",
    )  # fmt: skip


def body(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[1]


LIST_ADDRESS = f"green@{DOMAIN}"
HEAD = "From: ann@example.net\nTo: green@cop.example.org\nSubject: Rich\nMIME-Version: 1.0\n"
ALTERNATIVE = (
    'Content-Type: multipart/alternative; boundary="alt"\n\n'
    "--alt\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
    "Hello all, caf\u00e9.\n"
    "--alt\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n"
    "<html><body><p>Hello all, caf=C3=A9.</p></body></html>\n"
    "--alt--\n"
)
WITH_ATTACHMENT = crlf(
    HEAD + 'Content-Type: multipart/mixed; boundary="mix"\n\nPreamble.\n'
    "--mix\n" + ALTERNATIVE + "\n"
    "--mix\nContent-Type: application/pdf; name=r.pdf\n"
    "Content-Disposition: attachment; filename=r.pdf\nContent-Transfer-Encoding: base64\n\n"
    + PDF
    + "--mix--\nEpilogue.\n"
)


def footer_checks(text: str, html: str) -> None:
    assert text.rstrip().endswith("Cymorth: caf\u00e9 & t\u00eem")
    assert "Be kind <always>." in text
    # Escaped, inside the body, before its end.
    assert "Be kind &lt;always&gt;." in html and "&amp; t" in html
    assert html.index("Cymorth: caf") < html.index("</body>")


def test_alternative_inside_mixed_gets_the_footer_in_both_parts_and_nothing_else_changes():
    out = copy_of(WITH_ATTACHMENT)
    m = parse(out)
    parts = list(m.iter_parts())
    assert [p.get_content_type() for p in parts] == ["multipart/alternative", "application/pdf"]
    text, html = parts[0].iter_parts()
    footer_checks(text.get_content(), html.get_content())
    assert parts[1].get_content() == bytes(range(256)) * 4
    assert html.get_content().count("<hr>") == 1 and html["Content-Transfer-Encoding"] == (
        "quoted-printable"
    )
    # Byte for byte outside the two edited parts: preamble, the alternative's delimiters,
    # the attachment, the epilogue.
    original, new = body(WITH_ATTACHMENT), body(out)
    alt_start = original.index(b"--alt\r\n")
    assert new[:alt_start] == original[:alt_start]
    tail = original.index(b"\r\n--alt--")
    assert new.endswith(original[tail:])
    assert new.count(b"--mix") == original.count(b"--mix")


def test_alternative_alone():
    raw = crlf(HEAD + ALTERNATIVE)
    m = parse(copy_of(raw))
    text, html = m.iter_parts()
    footer_checks(text.get_content(), html.get_content())


def test_single_html_part_in_base64_keeps_its_encoding():
    page = "<html><body><p>Helo pawb, t\u00eem.</p></body></html>\n"
    encoded = base64.encodebytes(page.encode()).decode()
    raw = crlf(
        HEAD
        + "Content-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
        + encoded
    )
    out = copy_of(raw)
    m = parse(out)
    assert m.get_content_type() == "text/html" and m["Content-Transfer-Encoding"] == "base64"
    html = m.get_content()
    assert html.startswith("<html><body><p>Helo pawb, t\u00eem.</p>")
    assert html.index("Cymorth: caf&#233; &amp; t&#238;m") < html.index("</body>")
    assert all(len(line) <= 78 for line in body(out).split(b"\r\n"))


def test_html_in_a_latin1_7bit_part_takes_the_footer_as_ascii():
    raw = (
        crlf(HEAD + "Content-Type: text/html; charset=iso-8859-1\n\n")
        + b"<p>Caf\xe9</p>\r\n</BODY>\r\n"
    )
    out = body(copy_of(raw))
    assert out.startswith(b"<p>Caf\xe9</p>\r\n") and out.endswith(b"</BODY>\r\n")
    assert out.isascii() is False and out.count(b"\xe9") == 1  # the footer added no 8-bit byte
    assert b"caf&#233; &amp; t&#238;m" in out


def test_related_html_with_an_inline_image():
    raw = crlf(
        HEAD + 'Content-Type: multipart/related; boundary="rel"\n\n'
        "--rel\nContent-Type: text/html; charset=utf-8\n\n<p><img src=cid:i1></p>\n"
        "--rel\nContent-Type: image/png\nContent-ID: <i1>\nContent-Transfer-Encoding: base64\n\n"
        "iVBORw0KGgo=\n--rel--\n"
    )
    out = body(copy_of(raw))
    page, image = parse(copy_of(raw)).iter_parts()
    assert "Report: conduct@" in page.get_content()
    assert out.endswith(body(raw)[body(raw).index(b"\r\n--rel\r\nContent-Type: image/png") :])


def test_plain_text_with_attachments_keeps_the_footer_as_its_own_text_part():
    raw = crlf(
        HEAD + 'Content-Type: multipart/mixed; boundary="b"\n\n'
        "--b\nContent-Type: text/plain\n\nSee attached.\n"
        "--b\nContent-Type: application/pdf\nContent-Disposition: attachment\n\nJVBERi0=\n--b--\n"
    )
    parts = list(parse(copy_of(raw)).iter_parts())
    assert len(parts) == 3 and "Report: conduct@" in parts[2].get_content()


def test_signed_html_stays_beside():
    raw = crlf(
        HEAD + 'Content-Type: multipart/signed; protocol="application/pgp-signature"; '
        'micalg=pgp-sha256; boundary="s"\n\n'
        "--s\nContent-Type: text/html\n\n<p>Signed</p>\n"
        "--s\nContent-Type: application/pgp-signature\n\nSIG\n--s--\n"
    )
    m = parse(copy_of(raw))
    assert m.get_content_type() == "multipart/mixed"
    signed, footer = m.iter_parts()
    assert signed.get_content_type() == "multipart/signed" and "Report:" in footer.get_content()
    assert re.search(rb"<p>Signed</p>\r\n--s\r\n", copy_of(raw))


# --- end to end: what a member's mail program shows ---------------------------------------


@pytest.mark.parametrize("delivery", ["personalised", "bulk"])
async def test_a_members_copy_of_an_html_post_has_the_footer_inside_in_welsh_and_english(
    tmp_path, delivery
):
    config = CONFIG.format(delivery=delivery, more="").replace(
        'language = "en"', 'language = "cy+en"\ndisplay_name_cy = "Tîm Gwyrdd"'
    )
    async with running_hub(tmp_path, extra=config) as hub:
        await add_members(hub)
        assert (await hub.send("ann@example.net", [LIST_ADDRESS], WITH_ATTACHMENT))[0] == 250
        got = (await hub.sink.wait_count("bob@example.org"))[0]
        m = got.message
        parts = list(m.iter_parts())
        # Still two parts: the post and its attachment; no third part Outlook would list.
        assert [p.get_content_type() for p in parts] == ["multipart/alternative", "application/pdf"]
        text, html = (p.get_content() for p in parts[0].iter_parts())
        for shown in (text, html):
            assert "Cymorth:" in shown and "Help:" in shown
            assert shown.index("Cymorth:") < shown.index("Help:")  # Welsh first
        assert html.index("Help:") < html.index("</body>")
        assert "Tîm Gwyrdd" in text and "T&#238;m Gwyrdd" in html
        assert parts[1].get_content() == bytes(range(256)) * 4
