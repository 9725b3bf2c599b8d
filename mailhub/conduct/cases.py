"""Pure decisions about a case: its reference, its tag, naming a member.

Who receives case mail and who may write to a case are decided in `policy.py`.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable

from mailhub.conduct.config import CommitteeMember
from mailhub.mutations import radicals

# No 0/O or 1/I: a reference is read aloud and typed back by people.
_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
REF_PATTERN = re.compile(r"\bC-[0-9A-Z]{4}-[0-9A-Z]{2}\b", re.IGNORECASE)
_TAG = re.compile(r"\[\s*(C-[0-9A-Z]{4}-[0-9A-Z]{2})\s*\]", re.IGNORECASE)


def new_ref() -> str:
    """A short reference such as C-7KQ2-9F (30 random bits from `secrets`).

    The reference is not a capability: acting on a case needs the reply token of one's
    own copy (policy.classify_writer), and anyone else who uses the reference opens a
    new case. So it only has to be unguessable enough that a guess gains nothing.
    """
    chars = "".join(secrets.choice(_ALPHABET) for _ in range(6))
    return f"C-{chars[:4]}-{chars[4:]}"


def subject_tag(subject: str) -> str | None:
    """The case reference tagged in a subject, e.g. 'Re: [C-7KQ2-9F] Report received'."""
    m = _TAG.search(subject)
    return m.group(1).upper() if m else None


def find_member(name: str, committee: Iterable[CommitteeMember]) -> CommitteeMember | None:
    """A member by key, name, alias, given name or address, ignoring case (for `#readmit
    NAME`, `#recuse NAME` and the reporter's `exclude NAME`). A Welsh writer may mutate
    the name after the verb ("eithrio Fryn"), so the radical forms of its first word count.
    """
    committee = list(committee)
    wanted = " ".join(name.split()).casefold()
    first, _, rest = wanted.partition(" ")
    candidates = [wanted] + [" ".join(filter(None, (r, rest))) for r in sorted(radicals(first))]
    for candidate in candidates:
        for m in committee:
            forms = {m.key, m.name, *m.aliases, *m.addresses, m.name.split()[0]}
            if candidate in {" ".join(f.split()).casefold() for f in forms}:
                return m
    return None
