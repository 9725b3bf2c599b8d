"""`[web]`: where the HTTP side listens and the public URL its links are written with.

The HTTP side runs when the config has a `[web]` table (and `enabled` is not false). A
config without one, as every config before it was, opens no HTTP port: an upgrade never
starts listening on a port nobody asked for, and two services on one machine (tests,
benchmarks) never collide on 8080. The shipped `config/mailhub.toml` has the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from mailhub.errors import ConfigError
from mailhub.readers import get_bool, get_int, get_str, section

WEB_KEYS = ("enabled", "listen", "base_url", "trust_forwarded", "searches_per_minute")
DEFAULT_LISTEN = "127.0.0.1:8080"
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True)
class WebConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    # The public URL links are written with (`BASE_URL/u/TOKEN`), without a trailing `/`.
    base_url: str = "http://127.0.0.1:8080"
    # False when base_url was not set and is only derived from `listen` (check warns).
    base_url_given: bool = False
    # Take the client's address for rate limits from X-Forwarded-For (its last hop that is
    # not loopback), but only from a peer on loopback: the reverse proxy on this machine.
    trust_forwarded: bool = False
    # Archive searches one client may make a minute (each may keep the store busy for tens
    # of milliseconds); 0: no limit.
    searches_per_minute: int = 30

    @property
    def secure(self) -> bool:
        """Cookies carry `Secure`: the public side is https (a TLS proxy in front)."""
        return self.base_url.startswith("https://")

    @property
    def prefix(self) -> str:
        """The path base_url puts before every page's path ("" or e.g. "/lists-web")."""
        return urlsplit(self.base_url).path.rstrip("/")


def parse_listen(value: str, key: str) -> tuple[str, int]:
    """`host:port` (`[::1]:8080` for IPv6) → (host, port); port 0 picks a free one."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(key, f'expected "host:port", got {value!r}')
    return host.strip("[]"), int(port_text)


def parse_base_url(value: str, key: str) -> str:
    """An http(s) URL with a host and nothing after the path; kept without a final `/`."""
    try:
        url = urlsplit(value)
        _ = url.port  # raises ValueError for a port that is not a number
    except ValueError:
        url = urlsplit("invalid://")
    if url.scheme not in ("http", "https") or not url.hostname or url.query or url.fragment:
        raise ConfigError(key, f'must be a URL such as "https://lists.example.org", got {value!r}')
    return value.rstrip("/")


def parse_web(raw: dict[str, Any]) -> WebConfig | None:
    """The `[web]` table, or None when the HTTP side is off (no table, or enabled = false)."""
    if "web" not in raw:
        return None
    t = section(raw, "web", WEB_KEYS)
    if not get_bool(t, "enabled", "web", True):
        return None
    host, port = parse_listen(get_str(t, "listen", "web", DEFAULT_LISTEN), "web.listen")
    trust = get_bool(t, "trust_forwarded", "web", False)
    searches = get_int(t, "searches_per_minute", "web", 30, 0)
    given = t.get("base_url")
    if given is None:
        shown = f"[{host}]" if ":" in host else host
        return WebConfig(host, port, f"http://{shown}:{port}", False, trust, searches)
    base_url = parse_base_url(get_str(t, "base_url", "web"), "web.base_url")
    return WebConfig(host, port, base_url, True, trust, searches)


def warnings(web: WebConfig | None, has_lists: bool) -> list[str]:
    """What `mailhub check` should point out about the HTTP side (pure)."""
    if web is None:
        if has_lists:
            return [
                "no [web] section: list mail can offer no one-click unsubscribe link "
                "(RFC 8058), which large mailbox providers expect of bulk mail"
            ]
        return []
    found = []
    if not web.base_url_given:
        found.append(
            f"web.base_url is not set: links use {web.base_url}, which only this machine "
            "can open; set it to the public https URL of the reverse proxy"
        )
    elif not web.base_url.startswith("https://"):
        found.append(
            "web.base_url is not https: RFC 8058 one-click links must be https "
            "(put a TLS reverse proxy in front)"
        )
    if web.host not in _LOOPBACK:
        found.append(
            f"web.listen is {web.host}, not loopback: mailhub speaks plain HTTP; "
            "let a TLS reverse proxy face the internet"
        )
    return found
