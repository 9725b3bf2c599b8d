"""List-Archive names the web archive when the service has one (RFC 2369)."""

from __future__ import annotations

from mailhub.config import ServerConfig
from mailhub.lists.config import parse_lists
from mailhub.lists.headers import list_headers

WEB = {"listen": "127.0.0.1:0", "base_url": "https://lists.example.org"}


def _lists(web: dict | None, **extra: str) -> dict:
    raw: dict = {"lists": [{"name": "green", **extra}]}
    if web is not None:
        raw["web"] = web
    return raw


def _archive_header(raw: dict) -> str | None:
    (lst,) = parse_lists(raw, ServerConfig(domains=("cop.example.org",)))
    return list_headers(lst, "cop.example.org").get("List-Archive")


def test_the_web_archive_is_named_when_there_is_one() -> None:
    assert _archive_header(_lists(WEB)) == "<https://lists.example.org/lists/green/>"
    assert _archive_header(_lists(WEB, archive="public")) == (
        "<https://lists.example.org/lists/green/>"
    )


def test_no_archive_header_without_a_web_archive() -> None:
    assert _archive_header(_lists(None)) is None
    assert _archive_header(_lists(WEB, archive="off")) is None
    assert _archive_header(_lists({**WEB, "enabled": False})) is None


def test_an_archive_url_of_the_list_wins() -> None:
    raw = _lists(WEB, archive_url="https://elsewhere.example/green")
    assert _archive_header(raw) == "<https://elsewhere.example/green>"
