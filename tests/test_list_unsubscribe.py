"""The member's List-Unsubscribe, made per copy (`verp.personalise`), and the pure parts of
leaving by mail (`leaving.mailto_mac`, `leaving.proves_leaver`)."""

from __future__ import annotations

import dataclasses

import pytest

from mailhub.apps import load_config
from mailhub.config import Config
from mailhub.lists.config import find_list
from mailhub.lists.headers import list_headers
from mailhub.lists.leaving import mailto_mac, proves_leaver, read_one_click
from mailhub.lists.verp import LEAVE, member_token, one_click_token, personalise
from mailhub.web.config import WebConfig

D = "cop.example.org"
SECRET = b"s" * 32
ONE_CLICK_POST = b"List-Unsubscribe-Post: List-Unsubscribe=One-Click"
CONFIG = f"""
[server]
domains = ["{D}"]
[storage]
path = "{{db}}"
[outbound]
maildir = "{{outbox}}"
[admin]
addresses = ["admin@example.net"]
[web]
listen = "127.0.0.1:8080"
base_url = "https://lists.example.org"
[[lists]]
name = "green"
display_name = "Green Team"
"""
# Bytes the email package would not write back as they are: 8-bit UTF-8, a line that
# looks like the generic header, trailing spaces, a bare "." line.
BODY = (
    "Caf\u00e9 \u00e2 chwarae   \r\n"
    f"List-Unsubscribe: <mailto:green-leave@{D}>\r\n"
    ".\r\n"
    "\r\n"
    "-- \r\nAnn\r\n"
).encode()


@pytest.fixture
def config(tmp_path) -> Config:
    path = tmp_path / "mailhub.toml"
    path.write_text(CONFIG.format(db=tmp_path / "db", outbox=tmp_path / "out"))
    return load_config(path)


def stored_copy(config: Config) -> bytes:
    """A list copy as it is stored: the generic list headers, then the body."""
    lst = find_list(config.lists, "green")
    assert lst is not None
    headers = [
        "From: ann@example.net",
        f"To: green@{D}",
        "Subject: [Green Team] Tea",
        *(f"{k}: {v}" for k, v in list_headers(lst, D).items()),
        "MIME-Version: 1.0",
        'Content-Type: text/plain; charset="utf-8"',
        "Content-Transfer-Encoding: 8bit",
    ]
    return "\r\n".join(headers).encode() + b"\r\n\r\n" + BODY


def split(copy: bytes) -> tuple[list[bytes], bytes]:
    head, _, body = copy.partition(b"\r\n\r\n")
    return head.split(b"\r\n"), body


def test_the_body_is_untouched_and_only_the_two_headers_differ_between_members(config):
    raw = stored_copy(config)
    env_b, bob = personalise(config, SECRET, "green", raw, "bob@example.net")
    env_c, cat = personalise(config, SECRET, "green", raw, "cat@example.org")
    assert env_b != env_c
    (bob_head, bob_body), (cat_head, cat_body) = split(bob), split(cat)
    assert bob_body == cat_body == BODY
    assert bob.endswith(b"\r\n\r\n" + BODY)
    differ = {a.split(b":")[0] for a, b in zip(bob_head, cat_head, strict=True) if a != b}
    # The folded List-Unsubscribe's continuation line (the mailto) is its own line here.
    assert differ == {b"List-Unsubscribe", b"List-Help", b" <mailto"}
    # Everything else is the stored header block, in order, plus the one-click header.
    kept = [h for h in bob_head if h.split(b":")[0] not in differ]
    stored = [h for h in split(raw)[0] if h.split(b":")[0] not in differ]
    assert kept.count(ONE_CLICK_POST) == 1
    kept.remove(ONE_CLICK_POST)
    assert kept == stored


def test_the_header_names_the_url_then_the_mailto_and_asks_for_a_post(config):
    _, copy = personalise(config, SECRET, "green", stored_copy(config), "Bob@Example.net")
    mac = member_token(SECRET, LEAVE, "green", "bob@example.net")
    head = copy.partition(b"\r\n\r\n")[0].decode()
    assert (
        f"List-Unsubscribe: <https://lists.example.org/u/green.{mac}>,\r\n"
        f" <mailto:green-leave+{mac}@{D}>\r\n"
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    ) in head + "\r\n"
    assert head.count("List-Unsubscribe-Post") == 1
    # The URL's token is the web side's (one rule, one place), and it reads back.
    assert one_click_token(SECRET, "green", "bob@example.net") == f"green.{mac}"
    assert read_one_click(f"green.{mac}") == ("green", mac)


def test_without_web_only_the_members_mailto(config):
    config = dataclasses.replace(config, web=None)
    _, copy = personalise(config, SECRET, "green", stored_copy(config), "bob@example.net")
    mac = member_token(SECRET, LEAVE, "green", "bob@example.net")
    head = copy.partition(b"\r\n\r\n")[0].decode()
    assert f"\r\nList-Unsubscribe: <mailto:green-leave+{mac}@{D}>\r\n" in head
    unsubscribe = [f for f in head.split("\r\n") if f.startswith("List-Unsubscribe")]
    assert len(unsubscribe) == 1 and "https:" not in unsubscribe[0]


def test_a_folded_generic_header_is_swapped_too(config):
    raw = f"Subject: x\r\nList-Unsubscribe:\r\n <mailto:green-leave@{D}>\r\n\r\nbody\r\n".encode()
    _, copy = personalise(config, SECRET, "green", raw, "bob@example.net")
    assert copy.startswith(b"Subject: x\r\nList-Unsubscribe: <https://lists.example.org/u/green.")
    assert copy.endswith(b"List-Unsubscribe=One-Click\r\n\r\nbody\r\n")


def test_mail_that_is_not_list_mail_claims_no_one_click(config):
    raw = b"Subject: x\r\nList-Unsubscribe: <mailto:other@example.net>\r\n\r\nbody\r\n"
    assert personalise(config, SECRET, "green", raw, "bob@example.net")[1] == raw


def test_a_base_url_cannot_break_the_header(config):
    web = WebConfig(base_url="https://lists.example.org/a,b <c>\r\nX-Evil: 1")
    config = dataclasses.replace(config, web=web)
    _, copy = personalise(config, SECRET, "green", stored_copy(config), "bob@example.net")
    head = copy.partition(b"\r\n\r\n")[0].decode()
    assert "https://lists.example.org/a%2Cb%20%3Cc%3E%0D%0AX-Evil:%201/u/green." in head
    assert "\r\nX-Evil" not in head


@pytest.mark.parametrize(
    "route_token, subject, mac",
    [
        ("ABCdef234567", "anything", "abcdef234567"),  # the address's own token wins
        ("", "leave " + "a" * 32, "a" * 32),  # the old mailto's subject
        ("", "  Leave  " + "B" * 32 + " ", "b" * 32),
        ("", "leave", ""),
        ("", "Re: leave " + "a" * 32, ""),  # a reply is not the button
        ("", "leave " + "a" * 31, ""),
        ("", "please leave " + "a" * 32, ""),
        ("", "", ""),
    ],
)
def test_mailto_mac(route_token, subject, mac):
    assert mailto_mac(route_token, subject) == mac


@pytest.mark.parametrize(
    "from_, envelope, owns, who",
    [
        (["Bob@Example.net"], "bob@example.net", True, "bob@example.net"),
        (["bob@example.net"], "", True, "bob@example.net"),  # no envelope: From: decides
        (["bob@example.net"], "cat@example.org", True, ""),  # another mailbox sent it
        (["bob@example.net"], "bob@example.net", False, ""),  # not bob's token
        (["bob@example.net", "cat@example.org"], "bob@example.net", True, ""),
        ([], "bob@example.net", True, ""),
    ],
)
def test_proves_leaver(from_, envelope, owns, who):
    assert proves_leaver(from_, envelope, owns) == who
