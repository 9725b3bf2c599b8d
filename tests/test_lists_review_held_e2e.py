"""Held posts judged from the review, end to end over loopback: each held entry shows the
first lines of the post's text and carries the post as a message/rfc822 attachment (its
own bytes); a huge post gives an excerpt but no attachment; on a list whose addresses are
hidden the review names people and holds no poster's address."""

from __future__ import annotations

import re
import time
from email import policy
from email.parser import BytesParser

import pytest
import pytest_asyncio

from mailhub.store import lists as store
from tests.support.hub import DOMAIN, message, start_hub
from tests.support.lists import reply_address, stop_hub

# Every test here runs on SQLite and on PostgreSQL (tests/conftest.py: backend).
pytestmark = pytest.mark.usefixtures("backend")

FRAN = "fran@example.net"
NORA = "nora@example.org"

LISTS = """
[autoreply]
per_hour = 100
per_day = 100

[[lists]]
name = "shown"
display_name = "Shown List"
addresses = "shown"
language = "en"
facilitators = ["fran@example.net"]
digest_interval = "0"

[[lists]]
name = "hidden"
display_name = "Hidden List"
subscription = "confirm"
language = "en"
facilitators = ["fran@example.net"]
digest_interval = "0"
"""


@pytest_asyncio.fixture
async def hub(tmp_path):
    h = await start_hub(tmp_path, extra=LISTS, max_message_bytes=8 * 1024 * 1024)
    yield h
    await stop_hub(h)


def text(msg) -> str:
    return msg.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")


def attachments(raw: bytes) -> dict[str, bytes]:
    """The message/rfc822 parts of a review, read from its bytes: filename -> body bytes."""
    boundary = (BytesParser(policy=policy.default).parsebytes(raw).get_boundary() or "").encode()
    out: dict[str, bytes] = {}
    if not boundary:
        return out
    for chunk in raw.split(b"\r\n--" + boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, body = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if b"message/rfc822" in head:
            out[re.search(rb'filename="([^"]+)"', head).group(1).decode()] = body
    return out


async def held_raw(hub, list_name: str) -> tuple[int, bytes]:
    async with hub.service.store.read() as tx:
        (h,) = await store.held_posts(tx, list_name)
        raw, _ = await store.held_raw(tx, h.id)
    return h.id, raw


def entry(review_text: str) -> list[str]:
    """The lines of the review's first entry."""
    lines = review_text.split("\n1. ", 1)[1].split("\n")
    end = next(i for i, line in enumerate(lines) if line and not line.startswith("   ") and i)
    out = ["1. " + lines[0], *lines[1:end]]
    while not out[-1]:
        out.pop()
    return out


def excerpt_of(lines: list[str]) -> list[str]:
    """The excerpt of a held entry: between "Held because:" and the line that says whether
    the post is attached, each set apart by a blank line."""
    start = next(i for i, line in enumerate(lines) if line.startswith("   Held because: "))
    end = next(
        i for i, line in enumerate(lines) if line.startswith(("   The whole", "   Too large"))
    )
    assert lines[start + 1] == "" and lines[end - 1] == ""
    return lines[start + 2 : end - 1]


LONG_POST = (
    "Here is the map I promised.\n\n"
    + "> On Monday Bob wrote that the old map was hard to read, and that we should "
    "redraw it with the new boundaries from the council.\n"
    + "".join(f"Line {i} of the detail.\n" for i in range(1, 30))
)


async def test_held_post_excerpt_and_its_attachment(hub):
    raw = message(sender=f"Nora <{NORA}>", to=f"shown@{DOMAIN}", subject="A map", body=LONG_POST)
    await hub.send(NORA, [f"shown@{DOMAIN}"], raw)
    got = (await hub.sink.wait_count(FRAN))[0]
    await hub.idle()
    review = got.message
    held_id, stored = await held_raw(hub, "shown")

    lines = entry(text(review))
    assert lines[:4] == [
        "1. A post from Nora was held.",
        f"   Address: {NORA}",
        "   Subject: A map",
        lines[3],
    ] and lines[3].startswith("   When: ")
    excerpt = excerpt_of(lines)
    assert excerpt[:2] == ["    Here is the map I promised.", ""]
    # The quoted long line is wrapped, each piece still quoted, within 72 characters.
    assert excerpt[2].startswith("    > On Monday Bob wrote") and excerpt[3].startswith("    > ")
    assert len(excerpt) == 16 and all(len(line) <= 72 for line in lines)
    assert excerpt[-1] == "    [...]"
    assert f"   The whole post is attached: held-{held_id}.eml" in lines
    assert lines[-2:] == [
        "   To send it to the members, reply: accept 1",
        "   To drop it, reply: discard 1 and your reason",
    ]

    parts = [p for p in review.iter_attachments() if p.get_content_type() == "message/rfc822"]
    assert [p.get_filename() for p in parts] == [f"held-{held_id}.eml"]
    assert parts[0].get_content()["Subject"] == "A map"
    assert attachments(got.raw) == {f"held-{held_id}.eml": stored}

    # The reply still acts on the numbers: "accept 1" sends the post on.
    code, _ = await hub.send(
        FRAN,
        [reply_address(review)],
        message(sender=FRAN, to=reply_address(review), body="discard 1\n"),
    )
    assert code == 250


async def test_html_only_held_post_gets_a_text_excerpt(hub):
    raw = (
        f"From: Nora <{NORA}>\nTo: shown@{DOMAIN}\nSubject: Styled\nMessage-ID: <html@example.org>\n"
        "MIME-Version: 1.0\nContent-Type: text/html; charset=utf-8\n\n"
        "<html><head><style>p {color: red}</style></head><body>"
        "<p>First <b>bold</b> paragraph &amp; more.</p><p>Second one.</p></body></html>\n"
    )
    await hub.send(NORA, [f"shown@{DOMAIN}"], raw)
    review = (await hub.sink.wait_count(FRAN))[0].message
    await hub.idle()
    lines = excerpt_of(entry(text(review)))
    assert lines[0:2] == ["    First bold paragraph & more.", ""]
    assert lines[2] == "    Second one."
    assert not any("<" in line or "color" in line for line in lines)


async def test_huge_held_post_gives_an_excerpt_quickly_and_is_not_attached(hub):
    async with hub.service.store.transaction() as tx:
        await store.add_member(tx, "shown", NORA, "Nora", hub.clock.now())
    body = "The start of a very long report.\n" + "x" * 70 + "\n"
    body += ("lorem ipsum " * 6 + "\n") * 80_000  # ~6 MB: over max_post_bytes, held for size
    raw = message(sender=f"Nora <{NORA}>", to=f"shown@{DOMAIN}", subject="Report", body=body)
    started = time.monotonic()
    await hub.send(NORA, [f"shown@{DOMAIN}"], raw)
    got = (await hub.sink.wait_count(FRAN, timeout=30))[0]
    elapsed = time.monotonic() - started
    await hub.idle()
    lines = entry(text(got.message))
    assert any(line.startswith("   Held because: too large") for line in lines)
    excerpt = excerpt_of(lines)
    assert excerpt[0] == "    The start of a very long report."
    assert excerpt[-1] == "    [...]"
    size_kb = (len((await held_raw(hub, "shown"))[1]) + 1023) // 1024
    assert f"   Too large to attach, {size_kb} KB." in lines
    assert size_kb > 5000
    assert attachments(got.raw) == {}
    assert len(got.raw) < 20_000
    assert elapsed < 10, elapsed


async def test_hidden_list_review_names_people_and_holds_no_address(hub):
    async with hub.service.store.transaction() as tx:
        await store.add_member(tx, "hidden", "mia@example.net", "Mia", hub.clock.now())
    raw = (
        "Received: from mail.example.org (mail.example.org [192.0.2.1])\n"
        f"\tby mx.example.net with ESMTP for <hidden@{DOMAIN}>; Mon, 30 Nov 2026 10:00:00 +0000\n"
        f"Return-Path: <{NORA}>\n"
        f'From: "Nora Nonmember" <{NORA}>\n'
        f"Sender: {NORA}\n"
        f"Reply-To: Nora <{NORA}>\n"
        f"Disposition-Notification-To: {NORA}\n"
        f"To: hidden@{DOMAIN}\n"
        "Subject: A question\n"
        "Message-ID: <q1@example.org>\n"
        "X-Mailer: Example Mail 1.0\n"
        "\n"
        "Does anyone have the new boundaries?\n"
    )
    await hub.send(NORA, [f"hidden@{DOMAIN}"], raw)
    got = (await hub.sink.wait_count(FRAN))[0]
    await hub.idle()
    review_text = text(got.message)
    assert "1. A post from Nora Nonmember was held.\n   Subject: A question\n" in review_text
    assert NORA not in got.raw.decode("utf-8", "replace").lower()

    held_id, stored = await held_raw(hub, "hidden")
    attached = attachments(got.raw)[f"held-{held_id}.eml"]
    head, _, body = attached.partition(b"\r\n\r\n")
    assert body == stored.partition(b"\r\n\r\n")[2]  # the body, byte for byte
    fields = head.split(b"\r\n")
    assert fields[0] == f"From: Nora Nonmember via Hidden List <hidden@{DOMAIN}>".encode()
    # Every field that did not name Nora is the post's own line.
    assert fields[1:] == [
        f"To: hidden@{DOMAIN}".encode(),
        b"Subject: A question",
        b"Message-ID: <q1@example.org>",
        b"X-Mailer: Example Mail 1.0",
    ]


async def test_hidden_list_post_without_a_name_and_the_answer(hub):
    await hub.send(NORA, [f"hidden@{DOMAIN}"], message(sender=NORA, to=f"hidden@{DOMAIN}"))
    got = (await hub.sink.wait_count(FRAN))[0]
    await hub.idle()
    assert "1. A post from (no name given) was held.\n   Subject: Hello\n" in text(got.message)
    assert NORA not in got.raw.decode()
    # The answer to the facilitator's reply names the post without its poster's address.
    to = reply_address(got.message)
    await hub.send(FRAN, [to], message(sender=FRAN, to=to, body="discard 1 off topic\n"))
    answer = (await hub.sink.wait_count(FRAN, 2))[1]
    await hub.idle()
    assert 'Discarded: "Hello" (1)' in text(answer.message)
    assert NORA not in answer.raw.decode()
