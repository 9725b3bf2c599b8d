"""Pure decisions of the moderation side: when a digest is due, what a verb means for an
entry, who a reply is from, whether a token may be used."""

from __future__ import annotations

from mailhub.context import Incoming
from mailhub.lists import tokens
from mailhub.lists.config import ListConfig
from mailhub.lists.moderation import (
    CHAMPION,
    FACILITATOR,
    digest_due,
    moderators,
    normalise,
    role_of,
)
from mailhub.lists.moderation_reply import sender_matches
from mailhub.store.membership import Digest, Token

HOUR, DAY = 3600.0, 86400.0


def digest(sent_at: float, keys: str) -> Digest:
    return Digest(1, "l", "f@example.net", FACILITATOR, sent_at, keys)


def test_digest_due():
    now = 10 * DAY
    assert not digest_due(frozenset(), None, now, HOUR)
    assert digest_due(frozenset({"r:1"}), None, now, HOUR)
    # Something new: at most once per interval.
    assert not digest_due(frozenset({"r:1", "r:2"}), digest(now - 600, "r:1"), now, HOUR)
    assert digest_due(frozenset({"r:1", "r:2"}), digest(now - HOUR, "r:1"), now, HOUR)
    assert digest_due(frozenset({"r:2"}), digest(now - 1, "r:1"), now, 0)
    # Nothing new (even if something left): a reminder once a day.
    assert not digest_due(frozenset({"r:1"}), digest(now - 5 * HOUR, "r:1 r:2"), now, HOUR)
    assert digest_due(frozenset({"r:1"}), digest(now - DAY, "r:1 r:2"), now, HOUR)


def test_normalise_verbs_per_entry_kind():
    assert normalise("approve", "request") == "approve"
    assert normalise("accept", "request") == "approve"
    assert normalise("discard", "request") == "reject"
    assert normalise("approve", "held") == "accept"
    assert normalise("reject", "held") == "discard"


def test_roles():
    lst = ListConfig(
        "l", "L", facilitators=("F@example.net",), champions=("c@example.net", "f@example.net")
    )
    assert role_of(lst, "f@example.net") == FACILITATOR
    assert role_of(lst, "C@example.net") == CHAMPION
    assert role_of(lst, "x@example.net") is None
    assert moderators(lst) == [("f@example.net", FACILITATOR), ("c@example.net", CHAMPION)]


def mail(envelope: str, from_: str) -> Incoming:
    raw = f"From: Someone <{from_}>\r\nSubject: x\r\n\r\napprove 1\r\n".encode()
    return Incoming("Q1", envelope, ("l-confirm+x@d",), raw, 0.0)


def test_sender_must_be_the_facilitator_in_from_and_envelope():
    assert sender_matches(mail("f@example.net", "F@example.net"), "f@example.net")
    assert sender_matches(mail("", "f@example.net"), "f@example.net")
    assert not sender_matches(mail("eve@example.net", "f@example.net"), "f@example.net")
    assert not sender_matches(mail("f@example.net", "eve@example.net"), "f@example.net")


def test_token_problem():
    def token(**kw) -> Token:  # noqa: ANN003
        base = dict(
            id=1,
            purpose=tokens.DIGEST,
            list_name="l",
            address="f@example.net",
            request_id=None,
            digest_id=1,
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
