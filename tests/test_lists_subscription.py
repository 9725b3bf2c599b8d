"""`next_step`, the one decision of joining: every subscription policy (open | confirm |
approve | invite) against every state the address can be in, when a join arrives and when
its confirmation does."""

from __future__ import annotations

import pytest

from mailhub.lists import tokens
from mailhub.lists.subscription import (
    Add,
    AskFacilitators,
    Confirm,
    Refuse,
    introduction,
    next_step,
    standing,
)
from mailhub.store import membership as store
from mailhub.store.bans import Ban
from mailhub.store.lists import Member
from mailhub.store.membership import Invitation, MembershipRequest

POLICIES = ("open", "confirm", "approve", "invite")
WHO = "sam@example.net"
MEMBER = Member("l", WHO, "Sam", "each", False, "active", 0.0, 1.0, 0, None)
BAN = Ban(1, WHO, "l", 1.0, 500.0, "C-ABCD-12", "", "cli")
FOREVER = Ban(2, WHO, "all", 1.0, None, "", "", "cli")
INVITED = Invitation("l", WHO, "fran@example.net", 1.0, None)
INVITATION_USED = Invitation("l", WHO, "fran@example.net", 1.0, 2.0)


def request(state: str) -> MembershipRequest:
    return MembershipRequest(7, "l", WHO, "Sam", "", state, 1.0, 2.0, "", None, "")


UNCONFIRMED = request(store.UNCONFIRMED)
PENDING = request(store.PENDING)


def ask(policy, req=None, member=None, ban=None, invite=None):  # noqa: ANN001, ANN201
    return next_step(policy, req, member, ban, invite)


def confirm(policy, req=UNCONFIRMED, member=None, ban=None, invite=None):  # noqa: ANN001, ANN201
    return next_step(policy, req, member, ban, invite, confirming=True)


# --- a join arrives --------------------------------------------------------------------


@pytest.mark.parametrize("policy", ("open", "confirm"))
def test_join_is_confirmed_first_then_added_under_open_and_confirm(policy):
    assert ask(policy) == Confirm(again=False, needs_approval=False)
    assert ask(policy, UNCONFIRMED) == Confirm(again=True, needs_approval=False)
    assert ask(policy, invite=INVITED) == Confirm(again=False, needs_approval=False)


def test_join_under_approve_says_the_facilitators_decide_unless_invited():
    assert ask("approve") == Confirm(again=False, needs_approval=True)
    assert ask("approve", UNCONFIRMED) == Confirm(again=True, needs_approval=True)
    assert ask("approve", invite=INVITED) == Confirm(again=False, needs_approval=False)
    # An invitation already used does not let anyone past the facilitators again.
    assert ask("approve", invite=INVITATION_USED) == Confirm(again=False, needs_approval=True)


def test_join_under_invite_needs_an_unused_invitation():
    refused = Refuse("invite_only", "not invited")
    assert ask("invite") == refused
    assert ask("invite", UNCONFIRMED) == refused
    assert ask("invite", invite=INVITATION_USED) == refused
    assert ask("invite", invite=INVITED) == Confirm(again=False, needs_approval=False)


@pytest.mark.parametrize("policy", POLICIES)
def test_join_refused_for_a_member_and_a_banned_address_whatever_the_policy(policy):
    assert ask(policy, member=MEMBER) == Refuse("already_member")
    assert ask(policy, member=MEMBER, ban=BAN) == Refuse("already_member")
    assert ask(policy, ban=BAN, invite=INVITED) == Refuse("banned", "banned", until=500.0)
    assert ask(policy, ban=FOREVER) == Refuse("banned", "banned", until=None)


@pytest.mark.parametrize("policy", ("open", "confirm", "approve"))
def test_join_while_a_request_waits_for_the_facilitators(policy):
    assert ask(policy, PENDING) == Refuse("already_pending", since=2.0)


def test_the_bars_come_before_a_waiting_request():
    assert ask("approve", PENDING, ban=BAN) == Refuse("banned", "banned", until=500.0)
    assert ask("invite", PENDING) == Refuse("invite_only", "not invited")


# --- its confirmation arrives ----------------------------------------------------------


@pytest.mark.parametrize("policy", ("open", "confirm"))
def test_confirmed_join_adds_under_open_and_confirm(policy):
    assert confirm(policy) == Add()
    assert confirm(policy, invite=INVITED) == Add()


def test_confirmed_join_under_approve_asks_the_facilitators_unless_invited():
    assert confirm("approve") == AskFacilitators()
    assert confirm("approve", invite=INVITATION_USED) == AskFacilitators()
    assert confirm("approve", invite=INVITED) == Add()


def test_confirmed_join_under_invite_adds_only_the_invited():
    assert confirm("invite", invite=INVITED) == Add()
    assert confirm("invite") == Refuse("invite_only", "not invited", closes=store.REJECTED)
    assert confirm("invite", invite=INVITATION_USED) == Refuse(
        "invite_only", "not invited", closes=store.REJECTED
    )


@pytest.mark.parametrize("policy", POLICIES)
def test_things_that_changed_since_the_join_close_the_request(policy):
    # Added by a facilitator meanwhile: the request is done, as joined.
    assert confirm(policy, member=MEMBER) == Refuse("already_member", closes=store.JOINED)
    # Banned meanwhile: the request is rejected, and the ban's end is said.
    assert confirm(policy, ban=BAN, invite=INVITED) == Refuse(
        "banned", "banned", until=500.0, closes=store.REJECTED
    )


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize(
    ("req", "member", "expected"),
    [
        (None, None, Refuse("token_invalid", tokens.USED)),
        (request(store.JOINED), MEMBER, Refuse("already_member")),
        (PENDING, None, Refuse("already_pending", since=2.0)),
        (request(store.REJECTED), None, Refuse("token_invalid", tokens.USED)),
        (request(store.WITHDRAWN), None, Refuse("token_invalid", tokens.USED)),
        (request(store.EXPIRED), None, Refuse("token_invalid", tokens.USED)),
    ],
)
def test_a_confirmation_that_already_did_its_work_changes_nothing(policy, req, member, expected):
    step = confirm(policy, req, member, ban=BAN)
    assert step == expected and step.closes == ""
    assert standing(req, member) == expected


def test_introduction_is_the_confirmation_reply_after_a_first_mail_that_said_more():
    assert introduction("", "I translate for the council.") == "I translate for the council."
    assert introduction("I translate.", "") == "I translate."
    assert introduction("Hi, I run a team.", "We translate signs.") == (
        "Hi, I run a team.\n\nWe translate signs."
    )
    # The same words twice (a reply that repeats the first mail) are kept once.
    assert introduction("I translate.", "I translate.\nThanks") == "I translate.\nThanks"
    assert len(introduction("a" * 900, "b" * 900)) == 1000
