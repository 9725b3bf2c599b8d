"""decide_post: one line per rule."""

from __future__ import annotations

from dataclasses import replace

from mailhub.lists.config import ListConfig
from mailhub.lists.posting import Accept, Discard, Hold, PostFacts, Reject, decide_post
from mailhub.lists.reasons import held_reason_cy
from mailhub.store.lists import Member

LIST = ListConfig(name="green", display_name="Green", max_post_bytes=1000, max_post_recipients=3)
MEMBER = Member("green", "ann@example.net", "Ann", "each", False, "active", 0.0, 0.0, 5, None)
FACTS = PostFacts(
    sender="ann@example.net", size=100, recipients=1, domain="d.org", loop_id="mailhub@d.org"
)


def test_member_post_accepted():
    assert decide_post(LIST, MEMBER, FACTS) == Accept()


def test_non_member_held_by_default():
    assert decide_post(LIST, None, FACTS) == Hold("non-member", "non-member")


def test_non_member_rejected_when_list_says_so():
    assert isinstance(decide_post(replace(LIST, non_member_posts="reject"), None, FACTS), Reject)


def test_non_member_accepted_when_list_says_so():
    assert decide_post(replace(LIST, non_member_posts="accept"), None, FACTS) == Accept()


def test_new_member_first_posts_held():
    young = replace(MEMBER, posts=1)
    assert decide_post(replace(LIST, hold_first_posts=2), young, FACTS).code == "first-posts"


def test_member_past_first_posts_accepted():
    assert decide_post(replace(LIST, hold_first_posts=2), MEMBER, FACTS) == Accept()


def test_banned_sender_rejected():
    assert decide_post(LIST, MEMBER, replace(FACTS, banned=True)).code == "banned"


def test_oversize_post_held():
    assert decide_post(LIST, MEMBER, replace(FACTS, size=1001)).code == "size"


def test_too_many_recipients_held():
    assert decide_post(LIST, MEMBER, replace(FACTS, recipients=4)).code == "recipients"


def test_own_list_id_coming_back_discarded():
    assert isinstance(decide_post(LIST, MEMBER, replace(FACTS, list_ids=("green.d.org",))), Discard)


def test_other_list_id_is_fine():
    assert decide_post(LIST, MEMBER, replace(FACTS, list_ids=("blue.d.org",))) == Accept()


def test_our_x_loop_discarded():
    assert isinstance(
        decide_post(LIST, MEMBER, replace(FACTS, x_loops=("MAILHUB@d.org",))), Discard
    )


def test_loop_beats_ban_so_loops_are_never_answered():
    facts = replace(FACTS, banned=True, x_loops=("mailhub@d.org",))
    assert isinstance(decide_post(LIST, None, facts), Discard)


def test_every_hold_reason_has_its_welsh_wording():
    cfg = replace(LIST, hold_first_posts=10)
    holds = [
        decide_post(cfg, None, FACTS),
        decide_post(cfg, MEMBER, replace(FACTS, size=5000)),
        decide_post(cfg, MEMBER, replace(FACTS, recipients=9)),
        decide_post(cfg, MEMBER, FACTS),
    ]
    assert all(isinstance(h, Hold) for h in holds)
    welsh = [held_reason_cy(h.reason) for h in holds]
    assert welsh[:2] == ["nid yw'n aelod", "rhy fawr (5000 beit; terfyn 1000)"]
    assert welsh[2] == "gormod o dderbynwyr (9; terfyn 3)"
    assert welsh[3] == "negeseuon cyntaf aelod newydd (neges 6)"
    assert held_reason_cy("a rule added later") == "a rule added later"
