"""The one rule for case mail (conduct.policy): who receives it, who is writing. Pure."""

from __future__ import annotations

import itertools

import pytest

from mailhub.conduct.cases import find_member
from mailhub.conduct.config import CommitteeMember, ConductConfig
from mailhub.conduct.policy import (
    FALLBACK,
    REPORTER,
    Purpose,
    Writer,
    classify_writer,
    reaches_recused,
    recipients,
)
from mailhub.store.conduct import Case, Recusal

ADA = CommitteeMember("ada", "Ada Jones", ("ada@x",), ("AJ",))
BRYN = CommitteeMember("bryn", "Bryn Hughes", ("bryn@x", "b@home"))
CAI = CommitteeMember("cai", "Cai Evans", ("cai@x",))
CONDUCT = ConductConfig("board@x", (ADA, BRYN, CAI))


def case(**kw) -> Case:
    base = dict(
        ref="C-AAAA-22",
        opened_at=0.0,
        state="open",
        reporter="r@x",
        direct_member="",
        shared=False,
        flags=(),
        answered_at=None,
        reminded_at=None,
        escalated_at=None,
        closed_at=None,
        outcome="",
        content_deleted_at=None,
        release_at=0.0,
        released_at=0.0,
    )
    return Case(**(base | kw))


def rec(member: str, lifted: bool = False) -> Recusal:
    return Recusal(1, "C-AAAA-22", member, "r", True, 0.0, 1.0 if lifted else None, "")


def owners(rcpts) -> list[str]:
    return [r.owner for r in rcpts]


# Every purpose × every shape of case × every set of recusals × every named member × every
# author and target: a recused (or named) member is never a recipient.
CASES = [
    case(),
    case(direct_member="ada"),
    case(direct_member="ada", shared=True),
    case(flags=("withheld",)),
    case(flags=("unscanned",)),
    case(released_at=None),
    case(state="closed"),
]
RECUSAL_SETS = [(), ("bryn",), ("ada", "bryn"), ("ada", "bryn", "cai")]


@pytest.mark.parametrize("purpose", list(Purpose))
def test_a_recused_or_named_member_never_receives_case_mail(purpose):
    checked = 0
    for c, recused, named, author, member in itertools.product(
        CASES,
        RECUSAL_SETS,
        [(), ("cai",)],
        ["", "ada", "cai", FALLBACK],
        ["", "ada", "bryn", "cai", FALLBACK],
    ):
        recs = [rec(m) for m in recused] + [rec("cai", lifted=True)]
        got = recipients(c, recs, CONDUCT, purpose, author=author, member=member, named=named)
        blocked = set(recused) | set(named)
        assert not blocked & set(owners(got)), (c, recused, named, author, member, got)
        if c.released_at is None:
            assert got == []  # nothing before the reporter's window ends
        if author and purpose is not Purpose.COMMAND_ANSWER:
            assert (
                author not in owners(got)
                or author == FALLBACK
                and purpose
                in (
                    Purpose.HOLD,
                    Purpose.ESCALATION,
                )
            )
        checked += 1
    assert checked == len(CASES) * len(RECUSAL_SETS) * 2 * 4 * 5


def test_where_case_mail_goes():
    assert owners(recipients(case(), [rec("bryn")], CONDUCT, Purpose.REPORT)) == ["ada", "cai"]
    everyone = [rec("ada"), rec("bryn"), rec("cai")]
    assert owners(recipients(case(), everyone, CONDUCT, Purpose.REPORT)) == [FALLBACK]
    assert owners(recipients(case(), [], CONDUCT, Purpose.DISCUSSION, author="ada")) == [
        "bryn",
        "cai",
    ]
    direct = case(direct_member="ada")
    assert owners(recipients(direct, [], CONDUCT, Purpose.REPORT)) == ["ada"]
    assert owners(recipients(direct, [rec("bryn")], CONDUCT, Purpose.SHARE)) == ["cai"]
    assert owners(recipients(case(), [], CONDUCT, Purpose.ESCALATION)) == [FALLBACK]
    assert owners(recipients(case(), [], CONDUCT, Purpose.HOLD)) == [FALLBACK]
    # A case that could not be checked goes to the fallback reviewer only, until released.
    unscanned = case(flags=("unscanned",))
    assert owners(recipients(unscanned, [], CONDUCT, Purpose.REPORT)) == [FALLBACK]
    assert owners(recipients(case(), [], CONDUCT, Purpose.READMIT, member="bryn")) == ["bryn"]
    assert recipients(case(), [rec("bryn")], CONDUCT, Purpose.READMIT, member="bryn") == []
    assert owners(recipients(case(), [], CONDUCT, Purpose.COMMAND_ANSWER, member="cai")) == ["cai"]
    assert recipients(case(), [rec("cai")], CONDUCT, Purpose.COMMAND_ANSWER, member="cai") == []
    assert owners(recipients(case(), [], CONDUCT, Purpose.REPORT, named=["ada"])) == ["bryn", "cai"]


def test_who_may_write():
    c = case()
    recs = [rec("bryn")]

    def who(from_: str, envelope: str = "", owner: str | None = None, token: bool = False):
        return classify_writer(c, recs, CONDUCT, from_, envelope, owner, token).writer

    # Through one's own reply address (a token) and from one's own address: verified.
    assert who("ada@x", "ada@x", "ada", True) is Writer.MEMBER
    assert who("ada@x", "", "ada", True) is Writer.MEMBER
    assert who("r@x", "r@x", REPORTER, True) is Writer.REPORTER
    assert who("board@x", "", FALLBACK, True) is Writer.FALLBACK
    # Someone else's token, an unknown or revoked one, or the wrong envelope: forged.
    assert who("cai@x", "cai@x", "ada", True) is Writer.FORGED
    assert who("ada@x", "mallory@evil", "ada", True) is Writer.FORGED
    assert who("ada@x", "ada@x", None, True) is Writer.FORGED
    assert who("bryn@x", "bryn@x", "bryn", True) is Writer.FORGED  # recused: token revoked
    assert who("mallory@evil", "", REPORTER, True) is Writer.FORGED
    # Without a token: a member's address acts on nothing; the reporter adds text only.
    assert who("ada@x", "ada@x") is Writer.UNVERIFIED
    assert who("r@x") is Writer.REPORTER_UNVERIFIED
    assert who("board@x") is Writer.UNVERIFIED
    assert who("b@home") is Writer.OUTSIDER  # a recused member
    assert who("ada@x", "bryn@x") is Writer.OUTSIDER  # a recused envelope behind Ada's From
    assert who("x@y") is Writer.OUTSIDER


def test_copies_to_a_recused_member_or_the_reporter_are_refused():
    assert reaches_recused(["B@HOME", "ada@x", "r@x"], [rec("bryn")], CONDUCT, "r@x") == [
        "b@home",
        "r@x",
    ]
    assert find_member("ada jones", CONDUCT.committee) is ADA
    assert find_member("aj", CONDUCT.committee) is ADA
    assert find_member("Zed", CONDUCT.committee) is None


def test_committee_commands_in_welsh():
    from mailhub.conduct.commands import Close, Readmit, Recuse, Release, Share, parse_commands

    got = parse_commands(
        "#ymneilltuo\n#rhannu\n#ailgynnwys Ada\n#rhyddhau\n"
        "#cau gwaharddiad-dros-dro 7d y-cyfan troll@bad.example\n#cau cerydd\n"
    )
    assert got == [
        Recuse(),
        Share(),
        Readmit("Ada"),
        Release(),
        Close("temporary-ban", 7 * 86400.0, "all", ("troll@bad.example",)),
        Close("reprimand"),
    ]


@pytest.mark.parametrize(
    "reply,kept",
    [
        (
            "Agreed.\r\n\r\nOn Monday, Bryn Hughes (case) wrote:\r\n> Bryn Hughes here\r\n",
            "Agreed.",
        ),
        ("Iawn.\n\nAr ddydd Llun, ysgrifennodd Bryn Hughes:\n> helo\n", "Iawn."),
        ("Yes.\n-----Original Message-----\nFrom: Bryn Hughes\nSent: Monday\n", "Yes."),
        ("Mine.\n> quoted Bryn Hughes\nMore of mine.\n", "Mine.\nMore of mine."),
    ],
)
def test_committee_mail_is_read_without_what_it_quotes(reply, kept):
    from mailhub.conduct.examine import own_words

    assert own_words(reply).strip() == kept
