"""Pure decisions about a case: its reference, who handles it, who may write to it."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from mailhub.conduct.config import CommitteeMember, ConductConfig
from mailhub.store.conduct import Case, Recusal

# No 0/O or 1/I: a reference is read aloud and typed back by people.
_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
REF_PATTERN = re.compile(r"\bC-[0-9A-Z]{4}-[0-9A-Z]{2}\b", re.IGNORECASE)
_TAG = re.compile(r"\[\s*(C-[0-9A-Z]{4}-[0-9A-Z]{2})\s*\]", re.IGNORECASE)


def new_ref() -> str:
    """A short reference such as C-7KQ2-9F (30 random bits from `secrets`).

    The reference is not a capability: who may write to a case is decided by the
    sender (reporter or non-recused member), and anyone else who uses it opens a new
    case. So it only has to be unguessable enough that a guess gains nothing.
    """
    chars = "".join(secrets.choice(_ALPHABET) for _ in range(6))
    return f"C-{chars[:4]}-{chars[4:]}"


def subject_tag(subject: str) -> str | None:
    """The case reference tagged in a subject, e.g. 'Re: [C-7KQ2-9F] Report received'."""
    m = _TAG.search(subject)
    return m.group(1).upper() if m else None


def active_recused(recusals: Iterable[Recusal]) -> set[str]:
    return {r.member for r in recusals if r.active}


def participants(
    case: Case, recusals: Iterable[Recusal], conduct: ConductConfig
) -> list[CommitteeMember]:
    """The members handling the case: the non-recused ones (only the chosen member of a
    direct report until it is shared)."""
    recused = active_recused(recusals)
    members = [m for m in conduct.committee if m.key not in recused]
    if case.direct_member and not case.shared:
        members = [m for m in members if m.key == case.direct_member]
    return members


def handler_addresses(
    case: Case, recusals: Iterable[Recusal], conduct: ConductConfig, exclude: str = ""
) -> list[str]:
    """Where committee mail of the case goes: the participants, else the fallback reviewer."""
    members = participants(case, recusals, conduct)
    if not members:
        return [conduct.fallback] if conduct.fallback != exclude.lower() else []
    return [m.address for m in members if not m.owns(exclude)]


class Writer(Enum):
    REPORTER = "reporter"
    MEMBER = "member"
    FALLBACK = "fallback"
    OUTSIDER = "outsider"


@dataclass(frozen=True)
class WriterVerdict:
    writer: Writer
    member: CommitteeMember | None = None


def classify_writer(
    case: Case,
    recusals: Iterable[Recusal],
    conduct: ConductConfig,
    from_addr: str,
    envelope: str,
) -> WriterVerdict:
    """Who is writing to this case? Anyone who is not its reporter, a participant or the
    fallback reviewer is an outsider (a recused member included)."""
    recusals = list(recusals)
    identities = {a.lower() for a in (from_addr, envelope) if a}
    if case.reporter and case.reporter in identities:
        return WriterVerdict(Writer.REPORTER)
    recused = active_recused(recusals)
    if any(m.key in recused for m in conduct.committee if any(m.owns(a) for a in identities)):
        return WriterVerdict(Writer.OUTSIDER)
    for m in participants(case, recusals, conduct):
        if from_addr and m.owns(from_addr):
            return WriterVerdict(Writer.MEMBER, m)
    if from_addr and from_addr.lower() == conduct.fallback:
        return WriterVerdict(Writer.FALLBACK)
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


def find_member(name: str, committee: Iterable[CommitteeMember]) -> CommitteeMember | None:
    """A member by key, name, alias or address, ignoring case (for `#readmit NAME`)."""
    wanted = " ".join(name.split()).casefold()
    for m in committee:
        forms = {m.key, m.name, *m.aliases, *m.addresses, m.name.split()[0]}
        if wanted in {" ".join(f.split()).casefold() for f in forms}:
            return m
    return None
