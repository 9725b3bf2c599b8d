from __future__ import annotations

import pytest

from mailhub.routing import AddressBook, resolve

BOOK = AddressBook(
    domains=frozenset({"cop.example.org"}),
    lists=frozenset({"bilingual-services", "data"}),
    conduct=True,
    conduct_members=frozenset({"ada-jones"}),
)


@pytest.mark.parametrize(
    "address, name, captures",
    [
        ("postmaster@cop.example.org", "admin", {}),
        ("Abuse@COP.example.org", "admin", {}),
        ("enquiries@cop.example.org", "enquiries", {}),
        ("conduct@cop.example.org", "conduct.new", {}),
        ("conduct+C-7KQ2-9F@cop.example.org", "conduct.reporter", {"ref": "C-7KQ2-9F"}),
        ("conduct+C-7KQ2-9F-committee@cop.example.org", "conduct.committee", {"ref": "C-7KQ2-9F"}),
        ("conduct-ada-jones@cop.example.org", "conduct.direct", {"member": "ada-jones"}),
        ("bilingual-services@cop.example.org", "lists.post", {"list": "bilingual-services"}),
        ("bilingual-services-join@cop.example.org", "lists.join", {"list": "bilingual-services"}),
        ("data-leave@cop.example.org", "lists.leave", {"list": "data"}),
        ("data-request@cop.example.org", "lists.request", {"list": "data"}),
        ("data-owner@cop.example.org", "lists.owner", {"list": "data"}),
        (
            "data-confirm+abcdef123456@cop.example.org",
            "lists.confirm",
            {"list": "data", "token": "abcdef123456"},
        ),
        (
            "data-bounces+abcdef123456@cop.example.org",
            "lists.bounces",
            {"list": "data", "token": "abcdef123456"},
        ),
        ("data-bounces@cop.example.org", "lists.bounces", {"list": "data"}),
    ],
)
def test_routes(address, name, captures):
    route = resolve(address, BOOK)
    assert route is not None and route.name == name
    assert dict(route.captures) == captures


@pytest.mark.parametrize(
    "address",
    [
        "nobody@cop.example.org",
        "unknown-list@cop.example.org",
        "conduct-nobody@cop.example.org",
        "victim%example.com@cop.example.org",
        "example.com!victim@cop.example.org",
        '"victim@example.com"@cop.example.org',
        "data@example.com",
        "data--join@cop.example.org",
        "data-confirm+x@cop.example.org",
        "a" * 65 + "@cop.example.org",
    ],
)
def test_no_route(address):
    assert resolve(address, BOOK) is None


def test_conduct_routes_need_a_conduct_config():
    assert resolve("conduct@cop.example.org", AddressBook(frozenset({"cop.example.org"}))) is None
