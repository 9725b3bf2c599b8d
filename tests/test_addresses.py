"""The address spec (mailhub.addresses): every kind resolves to its route, and building
an address then resolving it gives back the kind and its parts."""

from __future__ import annotations

import pytest

from mailhub import addresses
from mailhub.addresses import AddressBook, address, partial, resolve

D = "cop.example.org"
BOOK = AddressBook(
    domains=frozenset({D}),
    lists=frozenset({"data", "bilingual-services"}),
    conduct=True,
    conduct_members=frozenset({"ada-jones"}),
)
TOKEN = "abcdef123456"
REF = "C-7KQ2-9F"

# kind, its parts, the address, its route
TABLE = [
    ("postmaster", {}, "postmaster@", "admin"),
    ("abuse", {}, "abuse@", "admin"),
    ("enquiries", {}, "enquiries@", "enquiries"),
    ("enquiries+TOKEN", {"token": TOKEN}, f"enquiries+{TOKEN}@", "enquiries"),
    ("conduct", {}, "conduct@", "conduct.new"),
    ("conduct+REF-committee+TOKEN", {"ref": REF, "token": TOKEN},
     f"conduct+{REF}-committee+{TOKEN}@", "conduct.committee"),
    ("conduct+REF-committee", {"ref": REF}, f"conduct+{REF}-committee@", "conduct.committee"),
    ("conduct+REF+TOKEN", {"ref": REF, "token": TOKEN},
     f"conduct+{REF}+{TOKEN}@", "conduct.reporter"),
    ("conduct+REF", {"ref": REF}, f"conduct+{REF}@", "conduct.reporter"),
    ("conduct-MEMBER", {"member": "ada-jones"}, "conduct-ada-jones@", "conduct.direct"),
    ("LIST-join", {"list": "data"}, "data-join@", "lists.join"),
    ("LIST-leave+TOKEN", {"list": "data", "token": TOKEN},
     f"data-leave+{TOKEN}@", "lists.leave"),
    ("LIST-leave", {"list": "data"}, "data-leave@", "lists.leave"),
    ("LIST-reply+TOKEN", {"list": "data", "token": TOKEN},
     f"data-reply+{TOKEN}@", "lists.reply"),
    ("LIST-request", {"list": "data"}, "data-request@", "lists.request"),
    ("LIST-owner", {"list": "bilingual-services"}, "bilingual-services-owner@", "lists.owner"),
    ("LIST-confirm+TOKEN", {"list": "data", "token": TOKEN},
     f"data-confirm+{TOKEN}@", "lists.confirm"),
    ("LIST-bounces+TOKEN", {"list": "data", "token": TOKEN},
     f"data-bounces+{TOKEN}@", "lists.bounces"),
    ("LIST-bounces", {"list": "data"}, "data-bounces@", "lists.bounces"),
    ("LIST-digest", {"list": "data"}, "data-digest@", "lists.digest"),
    ("LIST", {"list": "bilingual-services"}, "bilingual-services@", "lists.post"),
]  # fmt: skip


@pytest.mark.parametrize("kind, parts, local, route", TABLE)
def test_every_kind_round_trips(kind, parts, local, route):
    built = address(kind, D, **parts)
    assert built == local + D
    resolved = resolve(built, BOOK)
    assert resolved is not None
    assert (resolved.name, resolved.kind, dict(resolved.captures)) == (route, kind, parts)
    # Case does not matter to the router; names are captured in lowercase, tokens as sent.
    upper = resolve(local.upper() + D.upper(), BOOK)
    assert upper is not None and upper.name == route


def test_the_table_covers_every_routed_kind():
    routed = {k.name for k in addresses.SPEC if k.route}
    assert routed == {kind for kind, *_ in TABLE}


def test_a_kind_only_sent_from_never_routes():
    assert address("mailer-daemon", D) == f"mailer-daemon@{D}"
    assert resolve(f"mailer-daemon@{D}", BOOK) is None


@pytest.mark.parametrize(
    "addr",
    [
        f"nobody-digest@{D}",  # no such list
        f"conduct-nobody@{D}",  # no such committee member
        f"data--digest@{D}",
        f"data-confirm+short@{D}",  # a token is at least 6 characters
        "data-join@example.com",  # not our domain
    ],
)
def test_what_the_book_does_not_know_has_no_route(addr):
    assert resolve(addr, BOOK) is None


def test_conduct_kinds_need_a_conduct_config():
    book = AddressBook(frozenset({D}), lists=frozenset({"data"}))
    assert resolve(address("conduct", D), book) is None
    assert resolve(address("LIST-digest", D, list="data"), book) is not None


def test_wrong_parts_are_refused():
    with pytest.raises(TypeError):
        address("LIST-join", D)
    with pytest.raises(TypeError):
        address("LIST-join", D, list="data", token=TOKEN)
    with pytest.raises(KeyError):
        address("LIST-nothing", D, list="data")


def test_partial_leaves_the_parts_not_given_as_format_fields():
    form = partial("LIST-bounces+TOKEN", D, list="data")
    assert form == f"data-bounces+{{token}}@{D}"
    assert form.format(token=TOKEN) == address("LIST-bounces+TOKEN", D, list="data", token=TOKEN)


def test_reserved_names_and_suffixes_come_from_the_spec():
    assert addresses.reserved_names() == {
        "postmaster",
        "abuse",
        "enquiries",
        "conduct",
        "mailer-daemon",
        "no-reply",
    }
    assert addresses.reserved_suffixes() == (
        "-join",
        "-leave",
        "-reply",
        "-request",
        "-owner",
        "-confirm",
        "-bounces",
        "-digest",
    )


def test_a_list_s_addresses():
    assert addresses.list_addresses("data", D) == {
        "post": f"data@{D}",
        "join": f"data-join@{D}",
        "leave": f"data-leave@{D}",
        "request": f"data-request@{D}",
        "owner": f"data-owner@{D}",
        "bounces": f"data-bounces@{D}",
        "digest": f"data-digest@{D}",
    }
