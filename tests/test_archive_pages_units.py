"""Who may read a list's archive (mailhub.lists.archive_pages.access), the private feed
token, and the route table: pure, no service."""

from __future__ import annotations

import pytest

from mailhub.lists.archive_pages import Access, access, feed_token, month_name
from mailhub.lists.verp import member_token

SECRET = b"k" * 32


@pytest.mark.parametrize(
    ("archive", "signed_in", "member", "expected"),
    [
        ("public", False, False, Access.READ),
        ("public", True, False, Access.READ),
        ("public", True, True, Access.READ),
        ("members", False, False, Access.SIGN_IN),
        ("members", True, False, Access.NOT_FOUND),
        ("members", True, True, Access.READ),
        ("off", False, False, Access.NOT_FOUND),
        ("off", True, True, Access.NOT_FOUND),
        ("anything else", True, True, Access.NOT_FOUND),
    ],
)
def test_access(archive, signed_in, member, expected):
    assert access(archive, signed_in, member) is expected


def test_a_non_member_is_told_what_a_missing_list_tells():
    # A members-only list a signed-in stranger asks for, and an archive that is off, answer
    # alike: the page does not say which members-only lists exist.
    assert access("members", True, False) is access("off", True, False)


def test_feed_tokens_are_per_list_per_address_and_not_the_leave_token():
    token = feed_token(SECRET, "green", "ann@example.net")
    assert token == feed_token(SECRET, "GREEN", "Ann@Example.net")
    assert len(token) == 32 and token.isalnum() and token.islower()
    assert token != feed_token(SECRET, "green", "bob@example.net")
    assert token != feed_token(SECRET, "blue", "ann@example.net")
    assert token != feed_token(b"j" * 32, "green", "ann@example.net")
    # A different purpose from every mailed token: a feed URL can never leave a list.
    for purpose in ("leave", "verp", "request"):
        assert token != member_token(SECRET, purpose, "green", "ann@example.net")


def test_month_names_in_both_languages():
    assert month_name(2026, 11, "cy") == "Tachwedd 2026"
    assert month_name(2026, 1, "en") == "January 2026"
