"""Recipient address → route: a pure table, read top to bottom, first match wins.

Local parts are matched whole (fullmatch), so `victim%foreign@D`, `a!b@D` and
quoted local parts can never reach a route by accident. Captures are checked
against the address book (a list must exist, a committee member must exist).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mailhub.config import Config


@dataclass(frozen=True)
class AddressBook:
    """What the router needs to know of the config, as plain data."""

    domains: frozenset[str]
    lists: frozenset[str] = frozenset()
    conduct: bool = False
    conduct_members: frozenset[str] = frozenset()

    @classmethod
    def from_config(cls, config: Config) -> AddressBook:
        conduct = config.conduct
        return cls(
            domains=frozenset(config.server.domains),
            lists=frozenset(lst.name.lower() for lst in config.lists),
            conduct=conduct is not None,
            conduct_members=frozenset(m.key for m in conduct.committee) if conduct else frozenset(),
        )


@dataclass(frozen=True)
class Route:
    name: str
    address: str
    domain: str
    captures: tuple[tuple[str, str], ...] = field(default=())

    def get(self, key: str, default: str | None = None) -> str:
        captures = dict(self.captures)
        if default is not None:
            return captures.get(key, default)
        return captures[key]


_NAME = r"[a-z0-9](?:[a-z0-9._]|-(?!-))*?"
_TOKEN = r"[A-Za-z0-9_-]{6,64}"
_REF = r"C-[0-9A-Za-z]{4}-[0-9A-Za-z]{2}"

# (pattern, route name). Order matters: the more specific forms come first.
ROUTES: tuple[tuple[str, str], ...] = (
    (r"postmaster|abuse", "admin"),
    (r"enquiries", "enquiries"),
    (r"conduct", "conduct.new"),
    # The personal forms carry the reply token of one person's copy (a capability).
    (rf"conduct\+(?P<ref>{_REF})-committee\+(?P<token>{_TOKEN})", "conduct.committee"),
    (rf"conduct\+(?P<ref>{_TOKEN})-committee", "conduct.committee"),
    (rf"conduct\+(?P<ref>{_REF})\+(?P<token>{_TOKEN})", "conduct.reporter"),
    (rf"conduct\+(?P<ref>{_TOKEN})", "conduct.reporter"),
    (rf"conduct-(?P<member>{_NAME})", "conduct.direct"),
    (rf"(?P<list>{_NAME})-join", "lists.join"),
    (rf"(?P<list>{_NAME})-leave", "lists.leave"),
    (rf"(?P<list>{_NAME})-request", "lists.request"),
    (rf"(?P<list>{_NAME})-owner", "lists.owner"),
    (rf"(?P<list>{_NAME})-confirm\+(?P<token>{_TOKEN})", "lists.confirm"),
    (rf"(?P<list>{_NAME})-bounces\+(?P<token>{_TOKEN})", "lists.bounces"),
    (rf"(?P<list>{_NAME})-bounces", "lists.bounces"),
    (rf"(?P<list>{_NAME})", "lists.post"),
)
_COMPILED = tuple((re.compile(p, re.IGNORECASE), name) for p, name in ROUTES)


def _valid(name: str, captures: dict[str, str], book: AddressBook) -> bool:
    if name.startswith("conduct"):
        if not book.conduct:
            return False
        return name != "conduct.direct" or captures["member"].lower() in book.conduct_members
    if name.startswith("lists."):
        return captures["list"].lower() in book.lists
    return True


def resolve(address: str, book: AddressBook) -> Route | None:
    """The route for a recipient address on one of our domains, or None."""
    local, at, domain = address.rpartition("@")
    if not at or domain.lower() not in book.domains or len(local.encode()) > 64:
        return None
    for pattern, name in _COMPILED:
        m = pattern.fullmatch(local)
        if m is None:
            continue
        captures = {
            k: (v.lower() if k in ("list", "member") else v) for k, v in m.groupdict().items()
        }
        if _valid(name, captures, book):
            return Route(name, address, domain.lower(), tuple(sorted(captures.items())))
    return None


def is_local(address: str, book: AddressBook) -> bool:
    return address.rpartition("@")[2].lower() in book.domains
