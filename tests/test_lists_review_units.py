"""Pure decisions of the review side: when a review is due, what a verb means for an
entry, who a reply is from, whether a token may be used."""

from __future__ import annotations

from mailhub.context import Incoming
from mailhub.lists import tokens
from mailhub.lists.config import ListConfig
from mailhub.lists.review import (
    CHAMPION,
    FACILITATOR,
    action_for,
    review_due,
    reviewers,
    role_of,
)
from mailhub.lists.review_reply import sent_by
from mailhub.store.membership import Review, Token

HOUR, DAY = 3600.0, 86400.0


def review(sent_at: float, keys: str) -> Review:
    return Review(1, "l", "f@example.net", FACILITATOR, sent_at, keys)


def test_review_due():
    now = 10 * DAY
    assert not review_due(frozenset(), None, now, HOUR)
    assert review_due(frozenset({"r:1"}), None, now, HOUR)
    # Something new: at most once per interval.
    assert not review_due(frozenset({"r:1", "r:2"}), review(now - 600, "r:1"), now, HOUR)
    assert review_due(frozenset({"r:1", "r:2"}), review(now - HOUR, "r:1"), now, HOUR)
    assert review_due(frozenset({"r:2"}), review(now - 1, "r:1"), now, 0)
    # Nothing new (even if something left): a reminder once a day.
    assert not review_due(frozenset({"r:1"}), review(now - 5 * HOUR, "r:1 r:2"), now, HOUR)
    assert review_due(frozenset({"r:1"}), review(now - DAY, "r:1 r:2"), now, HOUR)


def test_action_for_verbs_per_entry_kind():
    assert action_for("approve", "request") == "approve"
    assert action_for("accept", "request") == "approve"
    assert action_for("discard", "request") == "reject"
    assert action_for("approve", "held") == "accept"
    assert action_for("reject", "held") == "discard"


def test_roles():
    lst = ListConfig(
        "l", "L", facilitators=("F@example.net",), champions=("c@example.net", "f@example.net")
    )
    assert role_of(lst, "f@example.net") == FACILITATOR
    assert role_of(lst, "C@example.net") == CHAMPION
    assert role_of(lst, "x@example.net") is None
    assert reviewers(lst) == [("f@example.net", FACILITATOR), ("c@example.net", CHAMPION)]


def mail(envelope: str, from_: str) -> Incoming:
    raw = f"From: Someone <{from_}>\r\nSubject: x\r\n\r\napprove 1\r\n".encode()
    return Incoming("Q1", envelope, ("l-confirm+x@d",), raw, 0.0)


def test_sender_must_be_the_facilitator_in_from_and_envelope():
    assert sent_by(mail("f@example.net", "F@example.net"), "f@example.net")
    assert sent_by(mail("", "f@example.net"), "f@example.net")
    assert not sent_by(mail("eve@example.net", "f@example.net"), "f@example.net")
    assert not sent_by(mail("f@example.net", "eve@example.net"), "f@example.net")


def test_token_problem():
    def token(**kw) -> Token:  # noqa: ANN003
        base = dict(
            id=1,
            purpose=tokens.REVIEW,
            list_name="l",
            address="f@example.net",
            request_id=None,
            review_id=1,
            created_at=0.0,
            expires_at=100.0,
            used_at=None,
        )
        base.update(kw)
        return Token(**base)

    assert tokens.token_problem(None, "l", 1) == tokens.UNKNOWN
    assert tokens.token_problem(token(), "other", 1) == tokens.WRONG_LIST
    assert tokens.token_problem(token(used_at=5.0), "l", 6) == tokens.USED
    assert tokens.token_problem(token(), "l", 100) == tokens.EXPIRED
    assert tokens.token_problem(token(), "l", 99) is None
