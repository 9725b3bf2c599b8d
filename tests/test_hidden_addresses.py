"""Hidden addresses in a list copy (pure): From: "Name via List", none of the poster's
addresses left in any field, and the header edits every copy gets (signatures removed,
`rewrite_from`, `authentication_results`). End to end: tests/test_hidden_addresses_e2e.py."""

from __future__ import annotations

import base64
from dataclasses import replace
from pathlib import Path

from mailhub.lists.config import DmarcConfig, ListConfig
from mailhub.lists.headers import distribution_copy, poster_name, stripped_copy
from mailhub.lists.reply_relay import (
    AUTOMATIC,
    LIMIT,
    NOT_MEMBER,
    PER_DAY,
    PER_HOUR,
    UNKNOWN,
    RelayFacts,
    forward,
    make_token,
    relay_problem,
)
from mailhub.messages import Templates, split_raw
from mailhub.parsing import addresses, decode_words, header, parse

D = "cop.example.org"
HIDDEN = ListConfig(name="green", display_name="Green Team", language="en")  # English only
SHOWN = replace(HIDDEN, addresses="shown")
RELAY = f"green-reply+{'a' * 32}@{D}"
ANN = "ann@example.net"
# The poster's addresses in every form a post's header block may name them.
POST = (
    b"Received: from mail.example.net by mx.cop.example.org for <ann@example.net>; Mon\r\n"
    b"Received: from [10.0.0.1] by mail.example.net; Mon\r\n"
    b"DKIM-Signature: v=1; a=rsa-sha256; d=example.net; s=s1; h=from:subject; bh=x; b=y\r\n"
    b"ARC-Seal: i=1; a=rsa-sha256; d=example.net; s=s1; cv=none; b=z\r\n"
    b"Authentication-Results: mx.example.net; dkim=pass smtp.mailfrom=ann@example.net\r\n"
    b"From: Ann Example <Ann@Example.net>\r\n"
    b"Sender: ann@example.net\r\nReply-To: Ann <ann.home@example.org>\r\n"
    b"To: green@cop.example.org\r\nCc: Bob <bob@example.net>, ann@example.net\r\n"
    b"X-Original-From: ann@example.net\r\n"
    b"X-Comment: =?utf-8?b?" + base64.b64encode(b"written by ann@example.net") + b"?=\r\n"
    b"X-Mailer: Thunderbird\r\n"
    b"Subject: Maps\r\nMessage-ID: <maps-1@mail.example.net>\r\n\r\nHello all.\r\n"
)
POSTER = ("ann@example.net", "ann.home@example.org")


def copy(raw: bytes, cfg: ListConfig = HIDDEN, **kw) -> bytes:  # noqa: ANN003
    return distribution_copy(
        raw,
        cfg=cfg,
        domain=D,
        loop_id=f"mailhub@{D}",
        footer="Be kind.",
        dmarc=kw.pop("dmarc", DmarcConfig()),
        message_id="<new@cop.example.org>",
        **kw,
    )


def head_text(raw: bytes) -> str:
    """The header block as a reader sees it: raw, and with every encoded word decoded."""
    head = split_raw(raw)[0].decode("utf-8", "replace")
    return (head + "\n" + decode_words(head)).lower()


def test_a_hidden_copy_names_none_of_the_posters_addresses():
    out = copy(POST, reply_address=RELAY)
    text = head_text(out)
    for a in POSTER:
        assert a not in text
    msg = parse(out)
    assert addresses(msg, "from") == [("Ann Example via Green Team", f"green@{D}")]
    assert addresses(msg, "reply-to") == [("Ann Example via Green Team", RELAY)]
    # Cc keeps the others; the thread's identifier stays; an unrelated field stays.
    assert addresses(msg, "cc") == [("Bob", "bob@example.net")]
    assert header(msg, "message-id") == "<maps-1@mail.example.net>"
    assert header(msg, "x-mailer") == "Thunderbird"
    for gone in ("Received", "Sender", "X-Original-From", "X-Comment", "DKIM-Signature"):
        assert gone not in msg
    # The Received lines are gone but still counted: a loop is still seen.
    assert header(msg, "x-mailhub-hops") == "3"
    assert split_raw(out)[1].startswith(b"Hello all.\r\n")


def test_replies_go_to_the_list_when_it_asks_or_when_no_relay_address_is_given():
    as_list = parse(copy(POST, replace(HIDDEN, reply_to="list"), reply_address=RELAY))
    assert addresses(as_list, "reply-to") == [("Green Team", f"green@{D}")]
    no_relay = parse(copy(POST))
    assert addresses(no_relay, "reply-to") == [("Green Team", f"green@{D}")]


def test_the_name_is_never_the_address_nor_a_part_of_it():
    bare = b"From: ann@example.net\r\nSubject: x\r\n\r\nHi\r\n"
    named_by_address = b'From: "ann@example.net" <ann@example.net>\r\nSubject: x\r\n\r\nHi\r\n'
    for raw in (bare, named_by_address):
        out = copy(raw, reply_address=RELAY)
        assert b"ann" not in split_raw(out)[0].lower()
        assert addresses(parse(out), "from")[0][0] == "A member via Green Team"
    welsh = replace(HIDDEN, display_name="Tîm Gwyrdd", language="cy+en")
    assert addresses(parse(copy(bare, welsh)), "from")[0][0] == "Aelod drwy Tîm Gwyrdd"
    # A list that leads in Welsh is named in Welsh, as its notices and subject prefix are.
    named = replace(HIDDEN, display_name_cy="Tîm Gwyrdd", language="cy+en")
    assert addresses(parse(copy(bare, named)), "from")[0][0] == "Aelod drwy Tîm Gwyrdd"
    english = replace(named, language="en+cy")
    assert addresses(parse(copy(bare, english)), "from")[0][0] == "A member via Green Team"
    assert poster_name("", "en+cy") == "A member" and poster_name("", "cy") == "Aelod"


def test_the_digests_embedded_copy_is_hidden_too():
    out = stripped_copy(POST, cfg=HIDDEN, domain=D, reply_address=RELAY)
    for a in POSTER:
        assert a not in head_text(out)
    assert addresses(parse(out), "from") == [("Ann Example via Green Team", f"green@{D}")]
    # A shown list's digest keeps the poster (and the signatures: the digest is the list's).
    assert b"Ann@Example.net" in stripped_copy(POST, cfg=SHOWN, domain=D)


def test_a_shown_copy_keeps_from_but_never_the_posters_signatures():
    msg = parse(copy(POST, SHOWN))
    assert addresses(msg, "from") == [("Ann Example", "Ann@Example.net")]
    for gone in ("DKIM-Signature", "ARC-Seal", "Authentication-Results"):
        assert gone not in msg


def test_rewrite_from_when_the_caller_decided_and_our_authentication_results():
    strict = DmarcConfig(strict_domains=frozenset({"example.net"}))
    kept = parse(copy(POST, SHOWN, dmarc=strict, rewrite_from=False))
    assert addresses(kept, "from") == [("Ann Example", "Ann@Example.net")]
    rewritten = parse(copy(POST, SHOWN, rewrite_from=True))
    assert addresses(rewritten, "from") == [("Ann Example via Green Team", f"green@{D}")]
    results = "cop.example.org; dkim=pass header.d=example.net"
    out = copy(POST, SHOWN, authentication_results=results)
    assert out.startswith(f"Authentication-Results: {results}\r\n".encode())
    assert parse(out).get_all("Authentication-Results") == [results]


# --- the relay's decision and its forward ----------------------------------------------

OK = RelayFacts(False, True, True, True, True, 0, 0)


def test_relay_problem_one_rule_each():
    assert relay_problem(OK) is None
    assert relay_problem(replace(OK, automatic=True, known=False)) == AUTOMATIC
    assert relay_problem(replace(OK, known=False)) == UNKNOWN
    assert relay_problem(replace(OK, recipient_member=False)) == UNKNOWN
    assert relay_problem(replace(OK, sender_member=False)) == NOT_MEMBER
    assert relay_problem(replace(OK, envelope_matches=False)) == NOT_MEMBER
    assert relay_problem(replace(OK, sent_hour=PER_HOUR - 1)) is None
    assert relay_problem(replace(OK, sent_hour=PER_HOUR)) == LIMIT
    assert relay_problem(replace(OK, sent_day=PER_DAY)) == LIMIT


def test_relay_tokens_are_keyed_and_salted():
    token = make_token(b"k" * 32, "green", "ann@example.net", "s1")
    assert len(token) == 32 and token == token.lower() and token.isalnum()  # 160 bits
    assert token == make_token(b"k" * 32, "GREEN", "Ann@Example.net", "s1")
    assert token != make_token(b"k" * 32, "green", "ann@example.net", "s2")
    assert token != make_token(b"j" * 32, "green", "ann@example.net", "s1")


def test_the_forward_keeps_the_body_and_names_the_sender_only_by_relay():
    sender = f"green-reply+{'b' * 32}@{D}"
    out = forward(
        POST.replace(b"<maps-1@", b"<ann@example.net-1@"),
        cfg=HIDDEN,
        sender_name="Ann Example",
        sender_relay=sender,
        sender_addresses=frozenset(POSTER),
        to="bob@example.net",
        loop_id=f"mailhub@{D}",
        now=0.0,
    )
    for a in POSTER:
        assert a not in head_text(out)
    msg = parse(out)
    assert addresses(msg, "from") == [("Ann Example via Green Team", sender)]
    assert header(msg, "subject") == "Maps" and msg.get_all("X-Loop") == [f"mailhub@{D}"]
    assert header(msg, "x-mailhub-hops") == "3"
    assert split_raw(out)[1] == b"Hello all.\r\n"


# --- the welcome -------------------------------------------------------------------------


def test_the_welcome_says_whichever_is_true():
    templates = Templates(Path(__file__).resolve().parent.parent / "templates")
    base = {
        "name": "green",
        "display_name": "Green Team",
        "description": "",
        "post": "green@d",
        "join": "green-join@d",
        "leave": "green-leave@d",
        "request": "green-request@d",
        "owner": "green-owner@d",
        "conduct": "conduct@d",
    }
    texts = {
        shown: templates.render(
            "membership_welcome", "cy+en", list={**base, "addresses": shown}, approved=False
        ).body
        for shown in ("hidden", "shown")
    }
    assert "not shown to other members" in texts["hidden"]
    assert "private relay address" in texts["hidden"]
    assert "Nid yw eich cyfeiriad e-bost yn cael ei ddangos" in texts["hidden"]
    assert "Members see your email address when you post" in texts["shown"]
    assert "Mae aelodau eraill yn gweld eich cyfeiriad e-bost" in texts["shown"]
    assert "not shown" not in texts["shown"] and "see your email" not in texts["hidden"]
    # Welsh first on a cy+en list.
    assert texts["hidden"].index("Nid yw eich") < texts["hidden"].index("not shown")


def test_the_forward_of_a_malformed_message_still_has_a_date_and_an_identifier():
    raw = b"From: x@y.example\r\nDate: soon\r\nMessage-ID: not one\r\nSubject: =?x?q?a?=\r\n\r\n"
    out = forward(
        raw,
        cfg=HIDDEN,
        sender_name="",
        sender_relay=f"green-reply+{'b' * 32}@{D}",
        sender_addresses=frozenset({"x@y.example"}),
        to="bob@example.net",
        loop_id=f"mailhub@{D}",
        now=0.0,
    )
    msg = parse(out)
    assert header(msg, "date") == "Thu, 01 Jan 1970 00:00:00 +0000"
    assert header(msg, "message-id").endswith(f"@{D}>")
    assert addresses(msg, "from")[0][0] == "A member via Green Team"
