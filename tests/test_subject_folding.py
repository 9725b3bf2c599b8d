"""Subjects are never folded with an empty first line (`Subject:\r\n You have left…`, which
mail clients show with a leading space, "Re:  [C-…]"), and bilingual subjects fit a phone."""

from __future__ import annotations

import re

from mailhub.messages import bilingual_subject, build_message, refold_empty_first_lines, to_bytes
from tests.support.hub import DOMAIN, message

# 72 characters: too long to follow "Subject: " on a 78-character line, short enough to fit on
# one of its own, which is where the email package puts it.
LONG = "Re: [C-9MV6-53] You have left Bilingual services / Rydych wedi gadael ..."


def head_of(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[0]


def test_a_subject_that_fits_a_line_of_its_own_starts_on_the_name_line():
    raw = to_bytes(
        build_message(
            from_="a@example.net",
            to="b@example.net",
            subject=LONG,
            body="x\n",
            domain=DOMAIN,
            now=0,
        )
    )
    head = head_of(raw)
    assert b"Subject:\r\n" not in head and b"Subject: Re: [C-9MV6-53]" in head
    # Unfolding gives the subject back exactly.
    unfolded = re.sub(rb"\r\n[ \t]", b" ", head).decode()
    assert f"Subject: {LONG}\r\n" in unfolded + "\r\n"
    assert all(len(line) <= 78 for line in head.split(b"\r\n"))


def test_a_utf8_header_block_is_refolded_the_same_way():
    # An internationalised address: the header block is written in raw UTF-8 (RFC 6532).
    subject = "Re: [C-9MV6-53] Rydych wedi gadael Tîm Gwyrdd / You have left Tîm Gwyrdd"
    raw = to_bytes(
        build_message(
            from_="a@example.net",
            to="rhŷs@example.cymru",
            subject=subject,
            body="x\n",
            domain=DOMAIN,
            now=0,
        )
    )
    head = head_of(raw)
    assert b"Subject:\r\n" not in head and b"Subject: Re:" in head
    from email import policy
    from email.parser import BytesParser

    assert BytesParser(policy=policy.default).parsebytes(raw)["Subject"] == subject


def test_refolding_leaves_other_fields_byte_for_byte():
    head = b"From: a@b\r\nSubject:\r\n one two\r\nX-Other: keep\r\n  as is"
    assert (
        refold_empty_first_lines(head)
        == b"From: a@b\r\nSubject: one two\r\nX-Other: keep\r\n  as is"
    )


async def test_a_forward_arrives_with_its_subject_on_the_name_line(hub):
    # postmaster@ forwards keep the subject as it came: 72 characters, the case that folded.
    await hub.send("sam@example.net", [f"postmaster@{DOMAIN}"], message(subject=LONG))
    fwd = (await hub.sink.wait_count("admin@example.net"))[0]
    head = head_of(fwd.raw)
    assert not re.search(rb"^[!-9;-~]+:\r\n", head, re.MULTILINE)
    assert b"\r\nSubject: Re: [C-9MV6-53] You have left" in head
    assert fwd.message["Subject"] == LONG


def test_bilingual_subjects_share_a_tag_and_fall_back_to_the_first_language():
    assert (
        bilingual_subject(
            ["[C-AB12-CD] Mae eich adroddiad wedi dod i law", "[C-AB12-CD] Report received"]
        )
        == "[C-AB12-CD] Mae eich adroddiad wedi dod i law / Report received"
    )
    cy = "Rydych wedi gadael y rhestr Gwasanaethau dwyieithog y cyngor sir"
    en = "You have left the Bilingual services of the county council list"
    assert bilingual_subject([cy, en]) == cy
    assert bilingual_subject([en, cy]) == en
    assert bilingual_subject(["Helo", "Hello"]) == "Helo / Hello"
