"""What the archive pages show of a post (mailhub.lists.archive_render) and its feed
(mailhub.lists.feed): pure functions over hostile input."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from email.message import EmailMessage
from email.policy import SMTP

import pytest

from mailhub.lists.archive_render import (
    OCTET_STREAM,
    attachment,
    content_disposition,
    mbox_entry,
    message_view,
    redact,
    redact_bytes,
    safe_filename,
    sanitise_html,
    served_type,
    shown_author,
    shown_subject,
    snippet,
)
from mailhub.lists.config import ListConfig
from mailhub.lists.feed import ATOM, FeedEntry, atom_feed, entry_id, rfc3339

HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">click</a>',
    '<a href="JaVaScRiPt&#58;alert(1)">click</a>',
    '<a href=" javascript:alert(1)">click</a>',
    "<svg onload=alert(1)><circle r=1 /></svg>",
    "<svg><script>alert(1)</script></svg>",
    '<iframe src="https://evil.example/"></iframe>',
    '<object data="x.swf"></object><embed src="x.swf">',
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">d</a>',
    '<img src="data:image/svg+xml,<svg onload=alert(1)>">',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    '<form action="https://evil.example/"><input name=q><button>go</button></form>',
    '<style>body{display:none}</style><p style="background:url(javascript:alert(1))">p</p>',
    '<div onmouseover="alert(1)">hover</div>',
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>',
    "<!--<img src=x onerror=alert(1)>-->",
    '<meta http-equiv="refresh" content="0;url=https://evil.example/">',
    '<base href="https://evil.example/"><a href="/x">rel</a>',
    '<a href="https://ok.example/" onclick="alert(1)" target="_top">ok</a>',
    "<template><script>alert(1)</script></template>",
    "<p>plain</p></pre><script>alert(1)</script>",
]


def inert(html: str) -> None:
    low = html.lower()
    assert "<script" not in low
    assert not re.search(r"<[^>]*\son\w+\s*=", low), html
    assert "javascript:" not in low
    assert "data:" not in low
    for tag in ("iframe", "object", "embed", "svg", "math", "form", "style", "img", "meta", "base"):
        assert f"<{tag}" not in low, (tag, html)
    assert "style=" not in low and "target=" not in low


@pytest.mark.parametrize("html", HOSTILE)
@pytest.mark.parametrize("lang", ["cy", "en"])
def test_hostile_html_comes_out_inert(html, lang):
    inert(sanitise_html(html, lang))


def test_formatting_is_kept():
    out = sanitise_html("<p>Hi <b>bold</b> <em>em</em></p><ul><li>one</li></ul>", "en")
    assert out == "<p>Hi <b>bold</b> <em>em</em></p><ul><li>one</li></ul>"


def test_links_are_marked_external_in_the_page_language_and_send_no_referrer():
    html = '<a href="https://example.org/a?b=1&amp;c=2">read</a>'
    en = sanitise_html(html, "en")
    assert en == (
        '<a href="https://example.org/a?b=1&amp;c=2" rel="external nofollow noopener noreferrer">'
        'read <span class="external">(external)</span></a>'
    )
    assert "(allanol)" in sanitise_html(html, "cy")


def test_a_link_with_no_allowed_url_is_not_marked_and_goes_nowhere():
    out = sanitise_html('<a href="mailto:ann@example.net">mail me</a>', "en")
    assert "href" not in out and "(external)" not in out and "ann@example.net" not in out


def test_images_never_load_they_become_links_to_follow():
    out = sanitise_html('<p><img src="https://t.example/pixel.gif" alt="Our logo"></p>', "cy")
    assert "<img" not in out
    assert '<a href="https://t.example/pixel.gif"' in out
    assert "Dangos y ddelwedd: Our logo" in out
    en = sanitise_html('<img src="https://t.example/p.png">', "en")
    assert ">Show image <span" in en
    # No usable source (data:, relative, cid:): the words only.
    for src in ("data:image/png;base64,AAAA", "pic.png", "cid:part1@x"):
        out = sanitise_html(f'<img src="{src}" alt="a chart">', "en")
        assert out == "[Image: a chart]", src


def test_an_image_inside_a_link_is_words_not_a_link_in_a_link():
    out = sanitise_html(
        '<a href="https://x.example/"><img src="https://y.example/i.png" alt="go"></a>', "en"
    )
    assert out.count("<a ") == 1 and "[Image: go]" in out


def test_headings_become_paragraphs_so_the_page_keeps_one_h1():
    assert sanitise_html("<h1>Big</h1><h3>small</h3>", "en") == "<p>Big</p><p>small</p>"


def test_no_address_in_text_links_or_alt():
    html = (
        '<p>Write to ann@example.net or <a href="https://x.example/?to=bob%40example.org">'
        'bob@example.org</a><img src="https://x.example/i?u=cai@example.org" alt="cai@example.org"></p>'
    )
    out = sanitise_html(html, "en")
    for who in ("ann@example.net", "bob%40example.org", "bob@example.org", "cai@example.org"):
        assert who not in out
    assert "ann@…" in out


def test_redact_keeps_the_local_part_only():
    assert (
        redact("From Ann <ann.jones+list@mail.example.co.uk> wrote:")
        == "From Ann <ann.jones+list@…> wrote:"
    )
    assert redact("no address here") == "no address here"
    assert redact("mailto:ann%40example.net") == "mailto:ann@…"
    assert redact_bytes(b"To: ann@example.net\r\n") == b"To: ann@...\r\n"


def test_redact_is_fast_on_a_long_run_with_no_at_sign():
    import time

    text = "a" * 200_000 + "@"
    start = time.perf_counter()
    redact(text)
    assert time.perf_counter() - start < 1.0


def test_snippet_marks_matches_and_escapes_the_rest():
    assert snippet("a \x02<b>\x03 c") == "a <mark>&lt;b&gt;</mark> c"
    assert snippet("cut \x02off") == "cut <mark>off</mark>"
    assert "ann@example.net" not in snippet("ann@example.net")


HIDDEN = ListConfig(name="green", display_name="Green Team", display_name_cy="Tîm Gwyrdd")


def test_authors_are_names_via_the_list_on_a_hidden_list():
    assert shown_author("Ann Jones", HIDDEN, "en") == "Ann Jones via Green Team"
    assert shown_author("Ann Jones", HIDDEN, "cy") == "Ann Jones drwy Tîm Gwyrdd"
    assert shown_author("", HIDDEN, "cy") == "Aelod drwy Tîm Gwyrdd"
    assert shown_author("ann@example.net", HIDDEN, "en") == "A member via Green Team"
    shown = ListConfig(name="green", display_name="Green Team", addresses="shown")
    assert shown_author("Ann Jones", shown, "en") == "Ann Jones"
    assert shown_author("ann@example.net", shown, "en") == "A member"


def test_subject_without_address_or_emptiness():
    assert shown_subject("  ", "cy") == "(dim pwnc)"
    assert shown_subject("ann@example.net said", "en") == "ann@… said"


def test_served_types_come_from_a_small_list_and_must_look_like_themselves():
    assert served_type("image/png", b"\x89PNG\r\n\x1a\nrest") == "image/png"
    assert served_type("image/png", b"<html><script>") == OCTET_STREAM
    assert served_type("text/html", b"<p>") == OCTET_STREAM
    assert served_type("image/svg+xml", b"<svg>") == OCTET_STREAM
    assert served_type("application/pdf", b"%PDF-1.7") == "application/pdf"
    assert served_type("TEXT/PLAIN", b"hi") == "text/plain; charset=utf-8"


def test_filenames_lose_paths_controls_and_addresses():
    assert safe_filename("../../etc/passwd", 1) == "_.._etc_passwd"
    assert safe_filename("a\r\nb.txt", 1) == "a_b.txt"
    assert safe_filename(None, 3) == "attachment-3"
    assert safe_filename("ann@example.net.txt", 1) == "ann@…"
    assert len(safe_filename("x" * 500 + ".pdf", 1)) <= 120
    assert safe_filename("x" * 500 + ".pdf", 1).endswith(".pdf")


def test_content_disposition_is_rfc_6266():
    value = content_disposition('Adroddiad ŵ "1".pdf')
    assert value == (
        "attachment; filename=\"Adroddiad _ _1_.pdf\"; filename*=UTF-8''Adroddiad%20%C5%B5%20%221%22.pdf"
    )
    assert "\r" not in value and "\n" not in value


def post_with_parts() -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = "Ann <ann@example.net>"
    msg["Subject"] = "parts"
    msg.set_content("the text")
    msg.add_alternative("<p>the <b>html</b><script>x()</script></p>", subtype="html")
    msg.add_attachment(
        b"\x89PNG\r\n\x1a\n1234", maintype="image", subtype="png", filename="pic.png"
    )
    msg.add_attachment(
        b"<script>alert(1)</script>", maintype="text", subtype="html", filename="x.html"
    )
    msg.add_attachment(
        "Helô".encode("latin-1"),
        maintype="text",
        subtype="plain",
        filename="n.txt",
        params={"charset": "latin-1"},
    )
    return msg.as_bytes()


def test_message_view_sanitises_the_html_and_lists_the_attachments():
    view = message_view(post_with_parts(), "en")
    assert view.html == "<p>the <b>html</b></p>"
    assert [(a.number, a.filename, a.content_type, a.size) for a in view.attachments] == [
        (1, "pic.png", "image/png", 12),
        (2, "x.html", OCTET_STREAM, 25),
        (3, "n.txt", "text/plain; charset=utf-8", 5),
    ]


def test_attachment_by_number_as_served():
    raw = post_with_parts()
    png = attachment(raw, 1)
    assert png is not None and png.data == b"\x89PNG\r\n\x1a\n1234"
    text = attachment(raw, 3)
    assert text is not None and text.data == "Helô".encode()
    assert attachment(raw, 0) is None and attachment(raw, 4) is None


def test_a_message_with_too_many_parts_is_refused_not_parsed():
    boundary = "b"
    body = "".join(f"--{boundary}\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(2100))
    raw = (
        f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n{body}--{boundary}--\r\n'
    ).encode()
    view = message_view(raw, "en")
    assert view.problem and view.attachments == ()


# --- feed ----------------------------------------------------------------------------------


def test_atom_feed_is_rfc_4287_with_names_only_and_text_content():
    entries = [
        FeedEntry(
            id=entry_id("https://l.example", "green", 7),
            title="Cyfarfod <b>nesaf</b>",
            author="Ann drwy Tîm",
            link="https://l.example/lists/green/message/7",
            published=1_796_000_000.0,
            text="line\x00one <script>\x1b",
        )
    ]
    data = atom_feed(
        feed_id="urn:uuid:0",
        title="Tîm Gwyrdd",
        subtitle="",
        self_url="https://l.example/lists/green/feed.atom",
        page_url="https://l.example/lists/green/",
        lang="cy",
        updated=1_700_000_000.0,
        entries=entries,
    )
    root = ET.fromstring(data)
    ns = {"a": ATOM}
    assert root.tag == f"{{{ATOM}}}feed"
    assert root.get("{http://www.w3.org/XML/1998/namespace}lang") == "cy"
    assert root.findtext("a:updated", namespaces=ns) == rfc3339(1_796_000_000.0)
    [entry] = root.findall("a:entry", ns)
    assert entry.findtext("a:id", namespaces=ns).startswith("urn:uuid:")
    assert entry.findtext("a:title", namespaces=ns) == "Cyfarfod <b>nesaf</b>"
    assert entry.find("a:content", ns).get("type") == "text"
    assert entry.findtext("a:content", namespaces=ns) == "lineone <script>"
    assert [c.tag for c in entry.find("a:author", ns)] == [f"{{{ATOM}}}name"]
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", entry.findtext("a:updated", namespaces=ns)
    )
    assert b"<script>" not in data  # escaped as text


def test_entry_ids_are_stable_and_distinct():
    assert entry_id("https://a", "l", 1) == entry_id("https://a", "l", 1)
    assert entry_id("https://a", "l", 1) != entry_id("https://a", "l", 2)
    assert entry_id("https://a", "l", 1) != entry_id("https://b", "l", 1)


# --- mbox ----------------------------------------------------------------------------------

POST = (
    b"From: Ann Jones <ann@example.net>\r\n"
    b"To: green@cop.example.org\r\n"
    b"Cc: bob@example.org\r\n"
    b"Message-ID: <x1@example.net>\r\n"
    b"References: <x0@example.net>\r\n"
    b"Received: from x by y for <ann@example.net>\r\n"
    b"Subject: hi\r\n"
    b"\r\n"
    b"From the start\r\n"
    b">From here\r\n"
    b"write to cai@example.org\r\n"
)
DOMAINS = ("cop.example.org",)


def test_mbox_entry_on_a_hidden_list_holds_no_address_but_ours_and_keeps_threading():
    cfg = ListConfig(name="green", display_name="Green Team")
    entry = mbox_entry(POST, 1_796_000_000.0, cfg, DOMAINS, hide=True)
    assert entry.startswith(b"From mailhub Mon Nov 30 00:53:20 2026\n")
    for who in (b"ann@example.net", b"bob@example.org", b"cai@example.org"):
        assert who not in entry
    assert b"From: Ann Jones drwy Green Team <green@cop.example.org>\n" in entry
    assert b"Message-ID: <x1@example.net>\n" in entry and b"References: <x0@example.net>\n" in entry
    # mboxrd: body lines that start with (>*)From get one more >; LF line ends; a blank line after.
    assert b"\n>From the start\n>>From here\n" in entry
    assert b"\r" not in entry and entry.endswith(b"cai@...\n\n")


def test_mbox_entry_for_a_member_of_a_shown_list_keeps_the_copy_header_block():
    cfg = ListConfig(name="green", display_name="Green Team", addresses="shown")
    entry = mbox_entry(POST, 1_796_000_000.0, cfg, DOMAINS, hide=False)
    assert b"From: Ann Jones <ann@example.net>\n" in entry and b"Cc: bob@example.org\n" in entry
    # One of the fields a list copy strips is gone here too.
    hidden = mbox_entry(POST, 0.0, cfg, DOMAINS, hide=True)
    assert b"ann@example.net" not in hidden and b"Received:" not in hidden


def test_a_snippet_hides_an_address_its_marks_cut_into():
    for marked in (
        "\x02ann\x03@example.net",
        "ann@\x02example\x03.net",
        "\x02ann@example.net\x03 x",
    ):
        out = snippet(marked)
        assert "example.net" not in out and "example" not in out, out
        assert out.count("<mark>") == out.count("</mark>")
