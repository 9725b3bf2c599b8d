"""The pure parts of the web side: the one-click token's shape, the `[web]` table, what
`mailhub check` says about it, the order of a page's languages, and the gate in front of
the database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp import web

from mailhub.cli import main
from mailhub.errors import ConfigError
from mailhub.lists.leaving import MAX_TOKEN, read_one_click
from mailhub.web.config import WebConfig, parse_web, warnings
from mailhub.web.pages import page_languages
from mailhub.web.site import Gate

MAC = "abcdefghijklmnopqrstuvwxyz234567"


@pytest.mark.parametrize(
    "token, expected",
    [
        (f"green.{MAC}", ("green", MAC)),
        (f"tea.room.{MAC}", ("tea.room", MAC)),  # list names may hold dots
        (f"GREEN.{MAC.upper()}", ("green", MAC)),
        (f"green.{MAC[:-1]}", None),  # too short a MAC
        (f"green.{MAC}a", None),
        (f"green.{MAC[:-1]}1", None),  # not base32
        (MAC, None),  # no list
        (f".{MAC}", None),
        (f"-green.{MAC}", None),  # not a list name
        (f"gr/een.{MAC}", None),
        ("", None),
        ("a" * (MAX_TOKEN - 32) + "." + MAC, None),  # one over the bound
    ],
)
def test_read_one_click(token, expected):
    assert read_one_click(token) == expected


def test_the_bound_itself_is_read():
    token = "a" * (MAX_TOKEN - 32) + "." + MAC
    assert len(token) == MAX_TOKEN + 1 and read_one_click(token[1:]) is not None


def test_no_web_table_is_no_http_and_enabled_false_turns_it_off():
    assert parse_web({}) is None
    assert parse_web({"web": {"enabled": False, "listen": "127.0.0.1:9"}}) is None


def test_the_defaults_and_the_base_url_derived_from_listen():
    assert parse_web({"web": {}}) == WebConfig("127.0.0.1", 8080, "http://127.0.0.1:8080")
    assert parse_web({"web": {"listen": "[::1]:8081"}}) == WebConfig(
        "::1", 8081, "http://[::1]:8081"
    )
    given = parse_web({"web": {"base_url": "https://lists.example.org/"}})
    assert given == WebConfig("127.0.0.1", 8080, "https://lists.example.org", True)


@pytest.mark.parametrize(
    "table, line",
    [
        ({"listn": "x"}, "web.listn: unknown key; did you mean `listen`?"),
        ({"base_uri": "x"}, "web.base_uri: unknown key; did you mean `base_url`?"),
        ({"listen": "8080"}, "web.listen: expected \"host:port\", got '8080'"),
        (
            {"listen": "127.0.0.1:99999"},
            "web.listen: expected \"host:port\", got '127.0.0.1:99999'",
        ),
        (
            {"base_url": "lists.example.org"},
            'web.base_url: must be a URL such as "https://lists.example.org", '
            "got 'lists.example.org'",
        ),
        (
            {"base_url": "https://x.example/?a=1"},
            'web.base_url: must be a URL such as "https://lists.example.org", '
            "got 'https://x.example/?a=1'",
        ),
        ({"enabled": "no"}, "web.enabled: must be true or false, got 'no'"),
    ],
)
def test_mistakes_are_one_line_naming_the_key(table, line):
    with pytest.raises(ConfigError) as caught:
        parse_web({"web": table})
    assert str(caught.value) == line


def test_check_warns_about_what_would_keep_links_from_working():
    assert warnings(None, has_lists=False) == []
    [no_web] = warnings(None, has_lists=True)
    assert "no [web] section" in no_web
    [unset] = warnings(parse_web({"web": {}}), has_lists=True)
    assert unset.startswith("web.base_url is not set: links use http://127.0.0.1:8080")
    [plain] = warnings(parse_web({"web": {"base_url": "http://lists.example.org"}}), True)
    assert "not https" in plain
    public = parse_web({"web": {"listen": "0.0.0.0:80", "base_url": "https://l.example"}})
    [exposed] = warnings(public, True)
    assert "not loopback" in exposed
    assert warnings(parse_web({"web": {"base_url": "https://l.example"}}), True) == []


def test_mailhub_check_prints_the_web_side_and_its_warning(tmp_path: Path, capsys):
    path = tmp_path / "m.toml"
    path.write_text(
        '[server]\ndomains = ["cop.example.org"]\n[outbound]\nmaildir = "o"\n'
        '[admin]\naddresses = ["a@example.net"]\n[web]\nlisten = "127.0.0.1:8090"\n'
    )
    assert main(["check", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "web: http://127.0.0.1:8090 (links http://127.0.0.1:8090)\n" in out
    assert "  warning: web.base_url is not set" in out


def test_page_languages_follow_the_list_then_add_the_other():
    assert page_languages("cy+en") == ("cy", "en")
    assert page_languages("en+cy") == ("en", "cy")
    assert page_languages("en") == ("en", "cy")
    assert page_languages("cy") == ("cy", "en")
    assert page_languages(None) == ("cy", "en")  # no list: Welsh first


async def test_the_gate_lets_few_work_and_turns_away_past_its_queue():
    gate = Gate(slots=1, max_waiting=1)
    inside = asyncio.Event()
    release = asyncio.Event()

    async def hold() -> None:
        async with gate():
            inside.set()
            await release.wait()

    holder = asyncio.create_task(hold())
    await inside.wait()
    waiter = asyncio.create_task(hold())
    while gate.waiting < 1:  # the second is queued behind the first
        await asyncio.sleep(0)
    with pytest.raises(web.HTTPServiceUnavailable):
        async with gate():
            pass
    release.set()
    await asyncio.gather(holder, waiter)
    assert gate.waiting == 0
    async with gate():  # free again
        pass
