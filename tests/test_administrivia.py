"""Administrivia: which posts are only a member command (held), and which are real posts."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mailhub.lists.administrivia import member_command, own_text
from mailhub.lists.config import ListConfig
from mailhub.lists.posting import Discard, Hold, PostFacts, Reject, decide_post
from mailhub.lists.reasons import held_reason_cy
from mailhub.parsing import parse
from mailhub.store.lists import Member

COMMANDS = [
    # (subject, text, verb)
    ("unsubscribe", "", "leave"),
    ("Unsubscribe", "Sent from my iPhone\n", "leave"),
    ("Re: [Green Team] UNSUBSCRIBE me please!", "", "leave"),
    ("RE: Re: [Green Team] remove me from this list", "", "leave"),
    ("Unsubscribe", "Legal disclaimer.\n" * 12, "leave"),  # a long disclaimer: still held
    ("Tea on Friday", "unsubscribe\n", "leave"),
    ("Re: Tea on Friday", "Hi,\nPlease remove me from this list.\nThanks\nAnn\n", "leave"),
    (
        "Re: Tea",
        "unsubscribe\n\nOn Mon, 1 Dec 2026, Bob wrote:\n> Who is in?\n> " + "x" * 90,
        "leave",
    ),
    ("", "  \n\nleave\n-- \nAnn Jones\nHead of Maps\n" + "Disclaimer\n" * 9, "leave"),
    ("mute", "", "mute"),
    ("Re: Tea on Friday", "mute\n> Who is in?\n", "mute"),
    ("digest on", "", "digest-on"),
    ("Digest off please", "", "digest-off"),
    ("nomail", "", "nomail"),
    ("help", "", "help"),
    ("Help please", "", "help"),
    ("subscribe", "", "join"),
    # Cymraeg
    ("dad-danysgrifio", "", "leave"),
    ("Dad danysgrifio fi os gwelwch yn dda", "", "leave"),
    ("datdanysgrifio", "", "leave"),
    ("Ateb: [Tîm Gwyrdd] gadael", "", "leave"),
    ("Te ddydd Gwener", "gadael os gwelwch yn dda\n", "leave"),
    ("Te", "Shwmae,\ngadael plis\nDiolch\n", "leave"),
    ("tewi", "", "mute"),
    ("crynodeb ymlaen", "", "digest-on"),
    ("crynodeb i ffwrdd", "", "digest-off"),
    ("cymorth", "", "help"),
]

POSTS = [
    ("Help with translation memory", "Does anyone use a translation memory tool?\n"),
    ("Help please", "Our form keeps timing out.\n" * 3 + "Any ideas?\nWe tried:\nA\nB\nC\n"),
    ("Please help me", "Our form keeps timing out.\n"),
    ("Re: unsubscribe links", "The unsubscribe link in our newsletter is broken.\n"),
    ("Unsubscribing from GOV.UK Notify", "How do people unsubscribe from text alerts?\n"),
    ("Tea on Friday", "Unsubscribe links: how do yours look?\n"),
    ("Tea on Friday", "leave early on Friday?\n"),
    ("Leave policy", "Our annual leave policy changed.\n"),
    ("Digest", "A digest of this week's news.\n"),
    ("Post", "Here is the post I promised.\n"),
    ("Mail", "Where does our mail go?\n"),
    ("Help me", "I am stuck.\n"),
    ("Sut i ddad-danysgrifio?", "Sut mae pobl yn dad-danysgrifio o'n cylchlythyr?\n"),
    ("Gadael yn gynnar", "Ydych chi'n gadael yn gynnar ddydd Gwener?\n"),
    # The language commands are everyday subjects here: a post.
    ("Iaith Gymraeg", "Cyfarfod am yr iaith Gymraeg.\n"),
    ("Dwyieithog", "Sut mae gwneud ffurflen ddwyieithog?\n"),
    ("y ddwy iaith", "y ddwy iaith\n"),
    # A long letter that starts with a command word is a letter.
    ("Tea on Friday", "unsubscribe\n" + "".join(f"line {i}\n" for i in range(8))),
    ("", ""),
]


@pytest.mark.parametrize(("subject", "text", "verb"), COMMANDS)
def test_member_command_is_recognised(subject, text, verb):
    assert member_command(subject, text) == verb


@pytest.mark.parametrize(("subject", "text"), POSTS)
def test_real_post_is_not_a_command(subject, text):
    assert member_command(subject, text) is None


def test_own_text_reads_the_html_of_a_top_post_without_its_quote():
    raw = (
        b"From: a@example.net\r\nSubject: Re: Tea\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n"
        b'<div>unsubscribe</div><div class="gmail_quote"><blockquote>'
        + b"<p>Who is in?</p>" * 50
        + b"</blockquote></div>\r\n"
    )
    assert member_command("Re: Tea", own_text(parse(raw))) == "leave"


def test_own_text_does_not_read_a_large_part():
    raw = b"Subject: x\r\nContent-Type: text/plain\r\n\r\nunsubscribe\r\n" + b"y" * 200_000
    assert own_text(parse(raw)) == ""


LIST = ListConfig(name="green", display_name="Green")
MEMBER = Member("green", "ann@example.net", "Ann", "each", False, "active", 0.0, 0.0, 5, None)
FACTS = PostFacts(
    sender="ann@example.net",
    size=100,
    recipients=1,
    domain="d.org",
    loop_id="mailhub@d.org",
    command="leave",
)


def test_command_post_held_for_members_and_non_members_alike():
    expected = Hold("a member command (leave)", "administrivia")
    assert decide_post(LIST, MEMBER, FACTS) == expected
    assert decide_post(LIST, None, FACTS) == expected
    # Even where non-members' posts are refused: the person is told how to do it.
    assert decide_post(replace(LIST, non_member_posts="reject"), None, FACTS) == expected


def test_loops_and_bans_come_before_administrivia():
    assert isinstance(
        decide_post(LIST, MEMBER, replace(FACTS, x_loops=("mailhub@d.org",))), Discard
    )
    assert isinstance(decide_post(LIST, MEMBER, replace(FACTS, banned=True)), Reject)


def test_administrivia_comes_before_the_size_rules():
    assert decide_post(LIST, MEMBER, replace(FACTS, size=10**8)).code == "administrivia"


def test_administrivia_reason_in_welsh():
    hold = decide_post(LIST, MEMBER, replace(FACTS, command="digest-off"))
    assert held_reason_cy(hold.reason) == "gorchymyn aelod (digest-off)"
