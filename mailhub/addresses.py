"""THE address spec: every address mailhub answers or sends from, one row each.

A row is the local part's form, with its variable parts in braces (`{list}-confirm+{token}`),
and the route whose handler takes mail sent to it (None: an address mail is only sent
from). Everything else is derived from the table, so nothing else spells an address:

- `resolve(address, book)`: the route of a recipient (the first row that matches, read
  top to bottom, whose parts the address book knows: a list must exist, a committee
  member must exist, conduct routes need a conduct config);
- `address(kind, domain, **parts)`: an address of one kind, e.g.
  `address("LIST-confirm+TOKEN", d, list="data", token=t)`; `partial(...)` fills some
  parts now and leaves the rest as `str.format` fields, for code that formats one kind
  per delivered copy;
- `reserved_names()` and `reserved_suffixes()`: what a list name may not be or end in.

A kind's name is its form with each part in capitals (`{list}-join` is `LIST-join`), the
way the README's table writes it. Local parts are matched whole (fullmatch, case
insensitive), so `victim%foreign@D`, `a!b@D` and quoted local parts can never reach a
route by accident.

This module imports nothing from mailhub: config readers and every app may import it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# The shape of a list name or a committee member's key (no "--", so `LIST-join` is never
# ambiguous); lazy, so the shortest name that completes an address is the one captured.
NAME = r"[a-z0-9](?:[a-z0-9._]|-(?!-))*?"
TOKEN = r"[A-Za-z0-9_-]{6,64}"
REF = r"C-[0-9A-Za-z]{4}-[0-9A-Za-z]{2}"
# The pattern of each part unless a row says otherwise.
PARTS: Mapping[str, str] = {"list": NAME, "member": NAME, "ref": REF, "token": TOKEN}
# Parts compared in lowercase (names); tokens and case references keep their case.
FOLDED = frozenset({"list", "member"})

_FIELD = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Kind:
    form: str  # the local part: literal text and {part} fields
    route: str | None  # the handler's route; None: an address we only send from
    meaning: str
    patterns: Mapping[str, str] = field(default_factory=dict)  # parts unlike PARTS

    @property
    def name(self) -> str:
        return _FIELD.sub(lambda m: m.group(1).upper(), self.form)

    @property
    def parts(self) -> frozenset[str]:
        return frozenset(_FIELD.findall(self.form))

    @property
    def pattern(self) -> str:
        """The regular expression of the local part, with a named group per part."""
        out, at = [], 0
        for m in _FIELD.finditer(self.form):
            part = m.group(1)
            out += [re.escape(self.form[at : m.start()])]
            out += [f"(?P<{part}>{self.patterns.get(part, PARTS[part])})"]
            at = m.end()
        return "".join([*out, re.escape(self.form[at:])])


# fmt: off
# Order matters: the first row that matches wins, so the more specific forms come first.
SPEC: tuple[Kind, ...] = (
    Kind("postmaster", "admin", "the administrators (RFC 2142)"),
    Kind("abuse", "admin", "the administrators (RFC 2142)"),
    Kind("enquiries", "enquiries", "general enquiries, acknowledged"),
    # The Reply-To of one enquiry's acknowledgement: a reply joins that enquiry's thread.
    Kind("enquiries+{token}", "enquiries", "replies to one enquiry's acknowledgement"),
    Kind("conduct", "conduct.new", "a new code-of-conduct case (or a reply with a case tag)"),
    # The personal forms carry the reply token of one person's copy (a capability).
    Kind("conduct+{ref}-committee+{token}", "conduct.committee",
         "one committee member's own reply address in case REF"),
    Kind("conduct+{ref}-committee", "conduct.committee",
         "the committee's internal thread of case REF", {"ref": TOKEN}),
    Kind("conduct+{ref}+{token}", "conduct.reporter",
         "one person's own reply address in the reporter's thread of case REF"),
    Kind("conduct+{ref}", "conduct.reporter", "the reporter's thread of case REF",
         {"ref": TOKEN}),
    Kind("conduct-{member}", "conduct.direct", "a report to one committee member only"),
    Kind("{list}-join", "lists.join", "subscribe request"),
    # A member's own leave address (the List-Unsubscribe mailto): leaves at once when the
    # token is the From: address's own leave token; otherwise as `{list}-leave`.
    Kind("{list}-leave+{token}", "lists.leave", "one member's own leave address"),
    Kind("{list}-leave", "lists.leave", "unsubscribe request"),
    # On a list whose addresses are hidden: one poster's private reply address (the token
    # names the list and the poster; mailhub.lists.reply_relay forwards it from members).
    Kind("{list}-reply+{token}", "lists.reply",
         "private reply relay to a poster on a list whose addresses are hidden"),
    Kind("{list}-request", "lists.request", "commands: subscribe, help, digest on/off, ..."),
    Kind("{list}-owner", "lists.owner", "the list's facilitators"),
    Kind("{list}-confirm+{token}", "lists.confirm",
         "confirmations, and each member's own command address"),
    Kind("{list}-bounces+{token}", "lists.bounces", "VERP return path of one member's copy"),
    Kind("{list}-bounces", "lists.bounces", "return path of list mail"),
    Kind("{list}-digest", "lists.digest", "a member's digest on demand"),
    Kind("{list}", "lists.post", "post to the list"),
    Kind("mailer-daemon", None, "sender of delivery status notifications"),
    Kind("no-reply", None, "sender of web sign-in links; mail to it is refused"),
)
# fmt: on

KINDS: Mapping[str, Kind] = {k.name: k for k in SPEC}
# (pattern, route name) of every routed kind, in order (the shape routing.ROUTES had).
ROUTES: tuple[tuple[str, str], ...] = tuple((k.pattern, k.route) for k in SPEC if k.route)
_ROUTED = tuple(
    (re.compile(k.pattern, re.IGNORECASE), k.route, k) for k in SPEC if k.route is not None
)
_FIELDS = {k.name: (k.form, k.parts) for k in SPEC}


@dataclass(frozen=True)
class AddressBook:
    """What the router needs to know of the config, as plain data."""

    domains: frozenset[str]
    lists: frozenset[str] = frozenset()
    conduct: bool = False
    conduct_members: frozenset[str] = frozenset()

    @classmethod
    def from_config(cls, config: Any) -> AddressBook:
        """From a `mailhub.config.Config` (not imported: this module imports nothing)."""
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
    kind: str = ""  # the spec row that matched (its name)

    def get(self, key: str, default: str | None = None) -> str:
        captures = dict(self.captures)
        if default is not None:
            return captures.get(key, default)
        return captures[key]


def _known(route: str, captures: Mapping[str, str], book: AddressBook) -> bool:
    """Does the address book know what the address names?"""
    if route.startswith("conduct.") and not book.conduct:
        return False
    if "member" in captures and captures["member"] not in book.conduct_members:
        return False
    return "list" not in captures or captures["list"] in book.lists


def resolve(address: str, book: AddressBook) -> Route | None:
    """The route for a recipient address on one of our domains, or None."""
    local, at, domain = address.rpartition("@")
    if not at or domain.lower() not in book.domains or len(local.encode()) > 64:
        return None
    for pattern, route, kind in _ROUTED:
        m = pattern.fullmatch(local)
        if m is None:
            continue
        captures = {k: (v.lower() if k in FOLDED else v) for k, v in m.groupdict().items()}
        if _known(route, captures, book):
            return Route(route, address, domain.lower(), tuple(sorted(captures.items())), kind.name)
    return None


def ordering_key(routes: list[Route]) -> str:
    """What a message must be processed in arrival order with, across every node: its list
    (`list:NAME`), its conduct case (`case:REF`; `conduct` for new reports and direct
    ones), else its route (`enquiries`, `admin`). A message to several destinations is
    ordered by the first of their keys in sorted order (rare: a post to two lists is ordered
    with the first list's mail only). '' when it has no route."""
    keys = sorted({_ordering_key(r) for r in routes})
    return keys[0] if keys else ""


def _ordering_key(route: Route) -> str:
    captures = dict(route.captures)
    if "list" in captures:
        return "list:" + captures["list"]
    if route.name.startswith("conduct."):
        return "case:" + captures["ref"] if "ref" in captures else "conduct"
    return route.name


def is_local(address: str, book: AddressBook) -> bool:
    return address.rpartition("@")[2].lower() in book.domains


def address(kind: str, domain: str, **parts: str) -> str:
    """The address of one kind, e.g. `address("LIST-join", d, list="data")`."""
    form, names = _FIELDS[kind]
    if parts.keys() != names:
        raise TypeError(f"{kind} takes the parts {sorted(names)}, not {sorted(parts)}")
    return f"{form.format_map(parts)}@{domain}"


def partial(kind: str, domain: str, **parts: str) -> str:
    """`address(...)` with the parts not given left as `str.format` fields, for the code
    that formats one kind per copy: `partial("LIST-bounces+TOKEN", d, list=n)` is
    `"n-bounces+{token}@d"`, so each copy costs one `.format(token=...)`."""
    form, names = _FIELDS[kind]
    if not parts.keys() <= names:
        raise TypeError(f"{kind} takes the parts {sorted(names)}, not {sorted(parts)}")
    values = {n: _braced(parts[n]) if n in parts else "{" + n + "}" for n in names}
    return f"{form.format_map(values)}@{_braced(domain)}"


def _braced(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def list_addresses(list_name: str, domain: str) -> dict[str, str]:
    """A list's addresses that need nothing but its name, by route: `{"post": "data@D",
    "join": "data-join@D", ...}` (the route `lists.join` gives the key `join`)."""
    return {
        k.route.removeprefix("lists."): address(k.name, domain, list=list_name)
        for k in SPEC
        if k.route and k.parts == {"list"}
    }


def reserved_names() -> frozenset[str]:
    """Local parts the service itself answers or sends from: no list may take them."""
    return frozenset(k.form for k in SPEC if not k.parts)


def reserved_suffixes() -> tuple[str, ...]:
    """What a list name may not end in: each `{list}-X...` form's `-X` (before any +)."""
    out: dict[str, None] = {}
    for k in SPEC:
        if k.form.startswith("{list}-"):
            out[k.form.removeprefix("{list}").split("+", 1)[0]] = None
    return tuple(out)
