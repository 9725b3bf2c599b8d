"""Who receives case mail, and who is writing to a case: the one rule, pure (no I/O).

Every piece of case mail (the report, replies, discussion, answer copies, reminders,
escalations, closure notices, `#share`, `#readmit`, `#release`, the console's close) gets
its recipients from `recipients`, so the promise "a recused member receives nothing of
the case" is checked here and only here (tests/test_conduct_policy.py enumerates every
purpose). The senders of mail into a case are classified by `classify_writer`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import Enum

from mailhub.conduct.config import CommitteeMember, ConductConfig
from mailhub.store.conduct import Case, Recusal

FALLBACK = "fallback"  # the owner name of the fallback reviewer's reply tokens
REPORTER = "reporter"  # the owner name of the reporter's reply tokens


class Purpose(Enum):
    REPORT = "report"  # the report and its details, once released
    DETAILS = "details"  # the case details again (new recusals, flags)
    REPORTER_REPLY = "reporter_reply"
    DISCUSSION = "discussion"  # a message on the committee thread
    ANSWER_COPY = "answer_copy"  # a copy of a member's answer to the reporter
    REMINDER = "reminder"
    CLOSED = "closed"
    SHARE = "share"  # a direct report shared with the rest of the committee
    READMIT = "readmit"  # the report, to the one member readmitted
    RELEASE = "release"  # held parts released by the fallback reviewer
    COMMAND_ANSWER = "command_answer"  # the result of a command, to its author
    ESCALATION = "escalation"  # the fallback reviewer only
    HOLD = "hold"  # what could not be read or checked: the fallback reviewer only


# Purposes that reach the fallback reviewer whatever the committee's state.
_FALLBACK_ONLY = frozenset({Purpose.ESCALATION, Purpose.HOLD})
# Purposes that fall back to the fallback reviewer when no member may receive them.
_NO_FALLBACK = frozenset({Purpose.READMIT, Purpose.COMMAND_ANSWER, Purpose.ANSWER_COPY})


@dataclass(frozen=True)
class Recipient:
    owner: str  # a member key, or FALLBACK
    address: str
    name: str


def active_recused(recusals: Iterable[Recusal]) -> set[str]:
    return {r.member for r in recusals if r.active}


def _fallback(conduct: ConductConfig) -> Recipient:
    return Recipient(FALLBACK, conduct.fallback, "Fallback reviewer")


def _member(m: CommitteeMember) -> Recipient:
    return Recipient(m.key, m.address, m.name)


def participants(
    case: Case, recusals: Iterable[Recusal], conduct: ConductConfig, named: Iterable[str] = ()
) -> list[CommitteeMember]:
    """The members handling the case: not recused and not named in the mail at hand (only
    the chosen member of a direct report until it is shared)."""
    blocked = active_recused(recusals) | set(named)
    members = [m for m in conduct.committee if m.key not in blocked]
    if case.direct_member and not case.shared:
        members = [m for m in members if m.key == case.direct_member]
    return members


def recipients(
    case: Case,
    recusals: Iterable[Recusal],
    conduct: ConductConfig,
    purpose: Purpose,
    *,
    author: str = "",
    member: str = "",
    named: Iterable[str] = (),
) -> list[Recipient]:
    """Who receives one piece of case mail.

    `author`: the owner (member key or FALLBACK) who wrote the mail being relayed; they
    do not get their own words back. `member`: the one member a READMIT or COMMAND_ANSWER
    is for. `named`: members the mail at hand names, who must not receive it even before
    their recusal is stored. Nothing reaches anyone before the report is released; a case
    whose content could not be checked at all goes to the fallback reviewer only.
    """
    if not case.released:
        return []
    recusals = list(recusals)
    if purpose in _FALLBACK_ONLY:
        return [_fallback(conduct)]
    if purpose is Purpose.COMMAND_ANSWER:
        if member == FALLBACK:
            return [_fallback(conduct)]
        allowed = participants(case, recusals, conduct, named)
        return [_member(m) for m in allowed if m.key == member]
    if "unscanned" in case.flags:
        # Fail closed: until the fallback reviewer releases it, only they see the case.
        return [] if author == FALLBACK else [_fallback(conduct)]
    if purpose is Purpose.SHARE:
        members = [
            m
            for m in participants(replace(case, shared=True), recusals, conduct, named)
            if m.key != case.direct_member
        ]
    elif purpose is Purpose.READMIT:
        members = [m for m in participants(case, recusals, conduct, named) if m.key == member]
    else:
        members = participants(case, recusals, conduct, named)
    out = [_member(m) for m in members if m.key != author]
    if not members and purpose not in _NO_FALLBACK and author != FALLBACK:
        out = [_fallback(conduct)]
    return out


# --- who is writing ---------------------------------------------------------------------


class Writer(Enum):
    REPORTER = "reporter"  # the reporter, through their own reply address (token)
    REPORTER_UNVERIFIED = "reporter-unverified"  # the reporter's address, no token
    MEMBER = "member"  # a participant, through their own reply address, from their address
    FALLBACK = "fallback"  # the fallback reviewer, likewise
    UNVERIFIED = "unverified"  # a committee address without its token: acts on nothing
    FORGED = "forged"  # a token used from an address that is not its owner's, or revoked
    OUTSIDER = "outsider"  # anyone else (a recused member included)


@dataclass(frozen=True)
class WriterVerdict:
    writer: Writer
    member: CommitteeMember | None = None

    @property
    def owner(self) -> str:
        if self.member is not None:
            return self.member.key
        return FALLBACK if self.writer is Writer.FALLBACK else ""


def classify_writer(
    case: Case,
    recusals: Iterable[Recusal],
    conduct: ConductConfig,
    from_addr: str,
    envelope: str,
    token_owner: str | None,
    has_token: bool,
) -> WriterVerdict:
    """Who is writing to this case?

    Acting on a case (commands, answers to the reporter, discussion, the reporter's
    `exclude`/`send now`) needs the reply token that only the owner's mailbox received
    (`token_owner`, None when the token is unknown, revoked or absent) *and* the owner's
    address in From: and, when there is one, in the envelope sender. A forged From: alone gets nowhere: without the token a committee
    member's message is UNVERIFIED, with someone else's token it is FORGED.
    """
    recusals = list(recusals)
    from_addr = from_addr.lower()
    identities = {a.lower() for a in (from_addr, envelope) if a}
    recused = active_recused(recusals)
    sender_member = conduct.member_for(from_addr) if from_addr else None
    if has_token:
        if token_owner is None:
            return WriterVerdict(Writer.FORGED)
        envelope_ok = not envelope or envelope.lower() == from_addr
        if token_owner == REPORTER:
            ok = bool(case.reporter) and from_addr == case.reporter and envelope_ok
            return WriterVerdict(Writer.REPORTER if ok else Writer.FORGED)
        if token_owner == FALLBACK:
            ok = from_addr == conduct.fallback and envelope_ok
            return WriterVerdict(Writer.FALLBACK if ok else Writer.FORGED)
        member = conduct.member(token_owner)
        allowed = {m.key for m in participants(case, recusals, conduct)}
        if member is None or member.key not in allowed or not member.owns(from_addr):
            return WriterVerdict(Writer.FORGED)
        if envelope and not member.owns(envelope):
            # The envelope sender is the member's too when there is one: a leaked copy of
            # a token used from someone else's server, with a forged From:, gets nowhere.
            return WriterVerdict(Writer.FORGED)
        return WriterVerdict(Writer.MEMBER, member)
    if case.reporter and case.reporter in identities:
        return WriterVerdict(Writer.REPORTER_UNVERIFIED)
    if any(m.key in recused for m in conduct.committee if any(m.owns(a) for a in identities)):
        return WriterVerdict(Writer.OUTSIDER)
    if sender_member is not None:
        return WriterVerdict(Writer.UNVERIFIED, sender_member)
    if from_addr and from_addr == conduct.fallback:
        return WriterVerdict(Writer.UNVERIFIED)
    return WriterVerdict(Writer.OUTSIDER)


def reaches_recused(
    to_cc: Iterable[str], recusals: Iterable[Recusal], conduct: ConductConfig, reporter: str
) -> list[str]:
    """Addresses in To/Cc of a committee message that must never see it: recused members'
    and the reporter's (the committee thread is never the reporter's)."""
    recused = active_recused(recusals)
    bad = []
    for addr in to_cc:
        member = conduct.member_for(addr)
        if (member is not None and member.key in recused) or (
            reporter and addr.lower() == reporter
        ):
            bad.append(addr.lower())
    return sorted(set(bad))
