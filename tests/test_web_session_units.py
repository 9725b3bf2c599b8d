"""The pure parts of web sessions: signed cookies, CSRF tokens, lifetimes, the client's
identity behind a proxy, the page's language, and the words files (the same keys in Welsh
and English, in every words file, the archive's too)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from mailhub.config import default_templates_dir
from mailhub.web import session
from mailhub.web.clients import client_id
from mailhub.web.config import parse_web
from mailhub.web.csrf import csrf_ok, csrf_token
from mailhub.web.layout import WordsError, load_words
from mailhub.web.visitor import choose_lang

KEY = b"k" * 32
OTHER = b"o" * 32


def test_a_signed_value_comes_back_and_nothing_else_does():
    cookie = session.sign(KEY, "session", "abc")
    assert session.unsign(KEY, "session", cookie) == "abc"
    assert session.unsign(OTHER, "session", cookie) is None  # another installation's key
    assert session.unsign(KEY, "pre", cookie) is None  # another purpose
    assert session.unsign(KEY, "session", "abd" + cookie[3:]) is None  # value changed
    assert session.unsign(KEY, "session", cookie[:-1]) is None
    for junk in (None, "", ".", "abc", ".abc", "x" * 500):
        assert session.unsign(KEY, "session", junk) is None


def test_csrf_is_bound_to_its_holder_and_key():
    token = csrf_token(KEY, "pre:1")
    assert csrf_ok(KEY, "pre:1", token)
    assert not csrf_ok(KEY, "pre:2", token)
    assert not csrf_ok(OTHER, "pre:1", token)
    assert not csrf_ok(KEY, "pre:1", None) and not csrf_ok(KEY, "pre:1", "")


def test_a_session_ends_after_its_lifetime_or_when_idle():
    life = session.Lifetime(0.0, 0.0, session.SESSION_SECONDS)
    assert session.alive(life, session.IDLE_SECONDS - 1)
    assert not session.alive(life, session.IDLE_SECONDS)  # unused for a week
    used = session.Lifetime(0.0, session.SESSION_SECONDS - 10, session.SESSION_SECONDS)
    assert session.alive(used, session.SESSION_SECONDS - 1)
    assert not session.alive(used, session.SESSION_SECONDS)  # in use, but 30 days are up
    assert not session.needs_touch(life, session.TOUCH_SECONDS - 1)
    assert session.needs_touch(life, session.TOUCH_SECONDS)


def test_cookie_flags():
    c = session.Cookie(session.SESSION_COOKIE, "v.m", 60)
    header = session.set_cookie_header(c, secure=True, path="/")
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Secure" in header
    assert "Path=/" in header and "Max-Age=60" in header
    plain = session.set_cookie_header(c, secure=False, path="/x")
    assert "Secure" not in plain and "Path=/x" in plain


@pytest.mark.parametrize(
    "peer, forwarded, trust, expected",
    [
        ("203.0.113.5", None, False, "203.0.113.5"),
        ("203.0.113.5", "198.51.100.1", True, "203.0.113.5"),  # not from loopback: ignored
        ("127.0.0.1", "198.51.100.1", False, "127.0.0.1"),  # not trusted: ignored
        ("127.0.0.1", "198.51.100.1", True, "198.51.100.1"),
        ("::1", "198.51.100.1", True, "198.51.100.1"),
        # A client's own X-Forwarded-For is kept in front by the proxy: the last hop counts.
        ("127.0.0.1", "10.9.9.9, 198.51.100.1", True, "198.51.100.1"),
        ("127.0.0.1", "198.51.100.1, 127.0.0.1", True, "198.51.100.1"),
        ("127.0.0.1", "127.0.0.1", True, "127.0.0.1"),
        ("127.0.0.1", "not-an-ip", True, "127.0.0.1"),
        ("127.0.0.1", "2001:db8::1", True, "2001:db8::1"),
        (None, None, True, "-"),
    ],
)
def test_client_id(peer, forwarded, trust, expected):
    assert client_id(peer, forwarded, trust) == expected


def test_trust_forwarded_is_read_and_refused_when_not_a_bool():
    assert parse_web({"web": {"trust_forwarded": True}}).trust_forwarded
    assert not parse_web({"web": {}}).trust_forwarded
    with pytest.raises(Exception, match="trust_forwarded"):
        parse_web({"web": {"trust_forwarded": "yes"}})


def test_prefix_and_secure_come_from_base_url():
    web = parse_web({"web": {"base_url": "https://example.org/lists/"}})
    assert web.secure and web.prefix == "/lists"
    web = parse_web({"web": {"base_url": "http://example.org"}})
    assert not web.secure and web.prefix == ""


@pytest.mark.parametrize(
    "asked, remembered, expected",
    [
        (None, None, ("cy", False)),  # Welsh first by default
        ("en", None, ("en", True)),
        ("en", "en", ("en", False)),
        (None, "en", ("en", False)),
        ("fr", "en", ("en", False)),
        ("fr", None, ("cy", False)),
        ("cy", "en", ("cy", True)),
    ],
)
def test_choose_lang(asked, remembered, expected):
    assert choose_lang(asked, remembered) == expected


def words_files(lang: str) -> dict[str, set[str]]:
    folder = default_templates_dir() / lang / "web" / "words"
    return {
        p.name: set(tomllib.loads(p.read_text(encoding="utf-8")))
        for p in sorted(folder.glob("*.toml"))
    }


def test_every_words_file_has_the_same_keys_in_welsh_and_english():
    cy, en = words_files("cy"), words_files("en")
    assert {"common.toml", "signin.toml", "me.toml"} <= set(cy)
    assert set(cy) == set(en), "a words file in one language only"
    for name in cy:
        assert cy[name] - en[name] == set(), f"{name}: only in Welsh"
        assert en[name] - cy[name] == set(), f"{name}: only in English"
    # And they load (no key given by two files, every value text).
    for lang in ("cy", "en"):
        load_words(default_templates_dir(), lang)


def test_a_key_in_two_words_files_is_an_error(tmp_path: Path):
    folder = tmp_path / "cy" / "web" / "words"
    folder.mkdir(parents=True)
    (folder / "a.toml").write_text('x = "1"\n')
    (folder / "b.toml").write_text('x = "2"\n')
    with pytest.raises(WordsError, match="another words file"):
        load_words(tmp_path, "cy")
