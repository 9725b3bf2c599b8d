"""What the review shows of a held post (mailhub.lists.held_view): the excerpt, the poster's
address taken out of the attachment, the attachment's bytes, and the cost of a huge post."""

from __future__ import annotations

import time
from email import policy
from email.parser import BytesParser

from mailhub import content
from mailhub.lists.held_view import (
    EXCERPT_LINES,
    EXCERPT_WIDTH,
    excerpt,
    held_view,
    with_attachments,
    without_poster,
)
from mailhub.messages import build_message
from mailhub.store import Store
from mailhub.store import lists as store


def test_excerpt_is_cleaned_wrapped_and_short():
    body = (
        "\r\n\r\nFirst\tline\x07 with a bell and \u202eright-to-left\u202c marks.\r\n\r\n\r\n"
        + "> " + "quoted words " * 20 + "\r\n"
        + "".join(f"line {i}\r\n" for i in range(30))
    )  # fmt: skip
    raw = f"From: Ann Jones <ann@example.net>\r\nSubject: x\r\n\r\n{body}".encode()
    shown = excerpt(raw)
    assert shown.name == "Ann Jones"
    assert shown.lines[:2] == ("First   line with a bell and right-to-left marks.", "")
    quoted = [line for line in shown.lines if line.startswith(">")]
    assert len(quoted) >= 3 and all(line.startswith("> ") for line in quoted)
    assert len(shown.lines) == EXCERPT_LINES and shown.more
    assert all(len(line) <= EXCERPT_WIDTH for line in shown.lines)


def test_excerpt_of_a_short_post_is_all_of_it():
    shown = excerpt(b"Subject: x\r\n\r\nJust this.\r\n")
    assert shown.lines == ("Just this.",) and not shown.more


def test_without_poster_keeps_every_other_byte():
    head = (
        b"Received: from a.example.org\n\tby b.example.net; Mon, 30 Nov 2026\n"
        b"From: =?utf-8?q?Si=C3=A2n?= <sian@example.org>\n"
        b"To: green@d.org,\n  sian@example.org\n"
        b"Subject: folded\n  subject\n"
        b"X-Other: keep me\n"
    )
    raw = head + b"\nBody with sian@example.org in it.\n"
    out = without_poster(raw, "Green", "green@d.org")
    assert out == (
        "From: Siân via Green <green@d.org>\n".encode()
        + b"Subject: folded\n  subject\nX-Other: keep me\n"
        + b"\nBody with sian@example.org in it.\n"
    )


def test_attachment_bytes_are_the_post_itself():
    post = "From: a@example.net\r\nSubject: caf\u00e9\r\n\r\nCaf\u00e9 au lait.\r\n".encode()
    msg = build_message(
        from_="x@d.org", to="f@example.net", subject="Review", body="Hi\n", domain="d.org", now=0
    )
    raw = with_attachments(msg, [("held-7.eml", post)])
    parsed = BytesParser(policy=policy.default).parsebytes(raw)
    assert parsed.get_body(preferencelist=("plain",)).get_content().strip() == "Hi"
    (part,) = parsed.iter_attachments()
    assert part.get_content_type() == "message/rfc822"
    assert part.get_filename() == "held-7.eml"
    assert part["Content-Transfer-Encoding"] == "8bit"
    boundary = parsed.get_boundary().encode()
    chunk = raw.split(b"\r\n--" + boundary)[2]
    assert chunk.split(b"\r\n\r\n", 1)[1] == post


async def test_a_huge_held_post_costs_no_more_than_its_start(tmp_path):
    db = await Store.open(tmp_path / "mailhub.db")
    try:
        post = b"From: a@example.net\r\nSubject: big\r\n\r\nOpening line.\r\n"
        async with db.transaction() as tx:
            small = await store.hold_post(
                tx, list_name="g", sender="a@example.net", mail_from="a@example.net",
                subject="small", reason="r", raw=post + b"x" * 60_000 + b"\r\n", now=0,
            )  # fmt: skip
            huge = await store.hold_post(
                tx, list_name="g", sender="a@example.net", mail_from="a@example.net",
                subject="big", reason="r", raw=post + (b"y" * 76 + b"\r\n") * 130_000, now=0,
            )  # fmt: skip
        await content.run_bounded(content.needs_bounded_read, b"")  # the worker started
        async with db.read() as tx:
            await held_view(tx, huge)  # the worker has imported what it needs
            started = time.perf_counter()
            big_view = await held_view(tx, huge)
            big_cost = time.perf_counter() - started
            started = time.perf_counter()
            small_view = await held_view(tx, small)
            small_cost = time.perf_counter() - started
        assert big_view.size > 10_000_000 and big_view.attachment is None
        assert big_view.excerpt.lines[0] == "Opening line." and big_view.excerpt.more
        assert small_view.attachment is not None
        print(f"10 MB held post: {big_cost * 1000:.1f} ms; 60 KB: {small_cost * 1000:.1f} ms")
        assert big_cost < 0.5
    finally:
        await db.close()
        content.shutdown()
