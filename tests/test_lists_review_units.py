"""Pure decisions of the review side: when a review is due, what a verb means for an
entry, who a reply is from, whether a token may be used."""

from __future__ import annotations

from mailhub.context import Incoming
from mailhub.lists import tokens
from mailhub.lists.cli import short_datetime, waiting_line
from mailhub.lists.config import ListConfig
from mailhub.lists.review import (
    CHAMPION,
    FACILITATOR,
    Waiting,
    action_for,
    intro_lines,
    next_due_at,
    review_due,
    review_subjects,
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


def test_next_due_at_agrees_with_review_due():
    now = 10 * DAY
    assert next_due_at(frozenset(), None, now, HOUR) is None
    assert next_due_at(frozenset({"r:1"}), None, now, HOUR) == now
    assert next_due_at(frozenset({"r:1", "r:2"}), review(now - 600, "r:1"), now, HOUR) == (
        now - 600 + HOUR
    )
    assert next_due_at(frozenset({"r:1"}), review(now - 600, "r:1"), now, HOUR) == now - 600 + DAY
    for keys, last in [({"r:1", "r:2"}, review(now - 600, "r:1")), ({"r:1"}, review(now, "r:1"))]:
        due = next_due_at(frozenset(keys), last, now, HOUR)
        assert not review_due(frozenset(keys), last, due - 1, HOUR)
        assert review_due(frozenset(keys), last, due, HOUR)


def test_review_subjects_are_short_in_each_language():
    en, cy = "Bilingual services", "Gwasanaethau dwyieithog"
    assert review_subjects(en, cy, 3, 1, done=False) == {
        "en": "[Bilingual services] 3 requests, 1 held post",
        "cy": "[Gwasanaethau dwyieithog] 3 cais, 1 neges wedi'i dal",
    }
    assert review_subjects(en, cy, 1, 2, done=False) == {
        "en": "[Bilingual services] 1 request, 2 held posts",
        "cy": "[Gwasanaethau dwyieithog] 1 cais, 2 neges wedi'u dal",
    }
    assert review_subjects(en, cy, 0, 0, done=True) == {
        "en": "[Bilingual services] Done; nothing waiting",
        "cy": "[Gwasanaethau dwyieithog] Wedi'i wneud; dim yn aros",
    }
    done = review_subjects(en, cy, 2, 1, done=True)
    assert done["en"].endswith("Done; 3 still waiting")
    assert all(len(s) <= 60 for s in done.values())


def test_intro_lines_wrap_and_keep_one_blank_line_between_paragraphs():
    note = "A " * 50 + "\n\n\nSecond.\n"
    lines = intro_lines(note)
    assert all(len(line) <= 66 for line in lines)
    assert lines[-2:] == ["", "Second."] and lines.count("") == 1
    assert intro_lines("") == []
    assert intro_lines("x" * 100) == ["x" * 66, "x" * 34]


def test_review_send_says_what_waits():
    at = 1796115600.0  # Tuesday 1 December 2026, 09:00 UTC
    assert short_datetime(at) == "Tue 1 Dec 09:00 UTC"
    assert waiting_line("bs", Waiting(6, 1, at), at - 60) == (
        "bs: 6 requests, 1 held post waiting; next review due Tue 1 Dec 09:00 UTC; "
        "use --now to send it now"
    )
    assert waiting_line("bs", Waiting(1, 0, at), at + 1).startswith(
        "bs: 1 request waiting; next review due now"
    )
    assert waiting_line("bs", Waiting(0, 0, None), at) == "bs: nothing waiting"
