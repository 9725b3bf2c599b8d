"""The TOML config file, loaded into frozen dataclasses and validated at start.

Every problem is reported as one `ConfigError` naming the key, so `mailhub serve`
and `mailhub check` can print a single line a person can act on.

This module reads the core's sections. An app's sections ([[lists]], [conduct]) are read by
the app's own parser, handed in as a `Section` (mailhub.apps.load_config hands in every
app's): the core never imports an app.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from mailhub.errors import ConfigError
from mailhub.readers import (
    get_addresses,
    get_bool,
    get_int,
    get_language,
    get_str,
    nearest,
    parse_duration,
    section,
)
from mailhub.resolver import DnsConfig, parse_dns
from mailhub.signing import DkimConfig, parse_dkim
from mailhub.web.config import WebConfig, parse_web

if TYPE_CHECKING:
    # For the types of Config's app fields only: the apps' parsers fill them.
    from mailhub.conduct.config import ConductConfig
    from mailhub.lists.config import ListConfig

DEFAULT_CONFIG = Path("config/mailhub.toml")


@dataclass(frozen=True)
class ServerConfig:
    domains: tuple[str, ...]
    host: str = "127.0.0.1"
    port: int = 8025
    lmtp: bool = False
    max_message_bytes: int = 10 * 1024 * 1024
    max_recipients: int = 100
    max_connections: int = 200
    # One client address may hold this many connections at once (past it: 421 4.7.0).
    max_connections_per_peer: int = 20
    # Commands one session may send, NOOP, RSET and unknown ones included (past it: 421
    # 4.7.0 and the connection is closed), and how long one session may last in all.
    max_commands_per_session: int = 1000
    max_session_time: float = 3600.0
    session_timeout: float = 300.0
    hostname: str = ""

    @property
    def domain(self) -> str:
        """The default domain: the first one listed."""
        return self.domains[0]


@dataclass(frozen=True)
class StorageConfig:
    path: Path
    # How long a write waits for another process's write lock (a backup, a CLI command)
    # before it fails and the worker backs off (PRAGMA busy_timeout).
    busy_timeout: float = 10.0
    # PostgreSQL (several nodes on one database) instead of the SQLite file at `path`:
    # "postgresql://USER@HOST:PORT/DB"; the password from `password_file`, or libpq's own
    # PG* environment (PGPASSWORD, PGPASSFILE, ...).
    url: str | None = None
    password_file: Path | None = None
    pool_size: int = 10
    # How long a node's claim on queued work lasts without renewal: a node that dies loses
    # its claims after this, and another node finishes the work.
    lease_seconds: float = 30.0

    def password(self) -> str | None:
        """The password in `password_file` (its first line), or None: libpq's PG* environment
        then applies. OSError if the file cannot be read."""
        if self.password_file is None:
            return None
        lines = self.password_file.read_text().splitlines()
        return lines[0] if lines else ""


@dataclass(frozen=True)
class OutboundConfig:
    maildir: Path | None = None
    relay_host: str | None = None
    relay_port: int = 25
    starttls: bool = False
    username: str | None = None
    password_file: Path | None = None
    batch_size: int = 100
    connections: int = 8
    retry_base_seconds: float = 60.0
    max_age_seconds: float = 5 * 86400.0


@dataclass(frozen=True)
class AutoReplyConfig:
    # Per mailbox (case, +tag and Gmail dots folded: mailhub.mailbox), per sender domain,
    # and for the whole service: a forger varying addresses cannot turn us into a bomb.
    per_hour: int = 3
    per_day: int = 10
    per_domain_per_hour: int = 30
    total_per_hour: int = 500


@dataclass(frozen=True)
class EnquiriesConfig:
    handlers: tuple[str, ...] = ()
    language: str = "cy+en"  # Welsh first unless configured otherwise


@dataclass(frozen=True)
class DmarcConfig:
    """Domains whose posts are always sent From: the list: the administrators' override on
    top of the DMARC policy looked up in DNS (mailhub.dmarc), and what decides alone when
    no lookup was made. A fact about senders' domains, not about any one app: read by the
    core, consulted by the lists as they post."""

    strict_domains: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Config:
    server: ServerConfig
    storage: StorageConfig
    outbound: OutboundConfig
    admins: tuple[str, ...]
    enquiries: EnquiriesConfig
    autoreply: AutoReplyConfig
    templates_dir: Path
    # Filled by the apps' own parsers (Section below); empty when an app is not loaded.
    lists: tuple[ListConfig, ...] = ()
    conduct: ConductConfig | None = None
    # [dmarc]: read once, at start; the lists consult it as they post.
    dmarc: DmarcConfig = DmarcConfig()
    source: Path | None = None
    # [web]: the HTTP side (mailhub.web.config); None when off (no [web] table).
    web: WebConfig | None = None
    # [dkim]: the keys every outgoing message is signed with (none: mail goes out unsigned).
    dkim: DkimConfig = DkimConfig()
    # [dns]: the resolver DMARC policies and posters' DKIM keys are looked up through.
    dns: DnsConfig = DnsConfig()

    @property
    def authserv_id(self) -> str:
        """Who we are in the Authentication-Results we write (RFC 8601 §2.5): this host's
        name (server.hostname, by default the first domain). The ARC seal carries it."""
        return self.server.hostname or self.server.domain


@dataclass(frozen=True)
class Section:
    """A top-level part of the config file that an app reads: `name` is both its key in the
    file and the Config field its value goes in; `parse` reads it from the whole file (it
    gets the server section too, for the domains), and is called even when the key is
    absent, to give the field its value."""

    name: str
    parse: Callable[[dict[str, Any], ServerConfig], object]


# --- the sections of the core ----------------------------------------------------------

# Every key each table may hold (an app's tables: in its own config module). A key not
# listed stops the start: a typo never silently falls back to a default.
SERVER_KEYS = (
    "domains",
    "listen",
    "lmtp",
    "max_message_bytes",
    "max_recipients",
    "max_connections",
    "max_connections_per_peer",
    "max_commands_per_session",
    "max_session_time",
    "session_timeout",
    "hostname",
)
STORAGE_KEYS = ("path", "busy_timeout", "url", "password_file", "pool_size", "lease")
OUTBOUND_KEYS = (
    "maildir",
    "relay",
    "starttls",
    "username",
    "password_file",
    "batch_size",
    "connections",
    "retry_base",
    "max_age",
)
ADMIN_KEYS = ("addresses",)
ENQUIRIES_KEYS = ("handlers", "language")
AUTOREPLY_KEYS = ("per_hour", "per_day", "per_domain_per_hour", "total_per_hour")
DMARC_KEYS = ("strict_domains", "enabled")
# The top level: the core's tables (sections; then the apps' own), then plain keys.
SECTIONS = (
    "server",
    "storage",
    "outbound",
    "admin",
    "enquiries",
    "autoreply",
    "dmarc",
    "web",
    "dkim",
    "dns",
)
TOP_KEYS = ("templates",)


def _top_level(raw: dict[str, Any], app_sections: tuple[str, ...]) -> None:
    known = SECTIONS + app_sections + TOP_KEYS
    for name, value in raw.items():
        if name in known:
            continue
        tables = isinstance(value, dict) or (
            isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)
        )
        if tables:
            raise ConfigError("", f"unknown section `{name}`" + nearest(name, known))
        raise ConfigError(name, "unknown key" + nearest(name, known))


def _positive_duration(t: dict[str, Any], name: str, default: str) -> float:
    seconds = parse_duration(t.get(name, default), f"server.{name}")
    if seconds <= 0:
        raise ConfigError(f"server.{name}", "must be longer than zero")
    return seconds


def _server(raw: dict[str, Any]) -> ServerConfig:
    t = section(raw, "server", SERVER_KEYS)
    domains = t.get("domains")
    if not isinstance(domains, list) or not domains or not all(isinstance(d, str) for d in domains):
        raise ConfigError("server.domains", 'must be a non-empty list, e.g. ["cop.example.org"]')
    for d in domains:
        if not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?", d) or ".." in d:
            raise ConfigError("server.domains", f"{d!r} is not a domain name")
    listen = get_str(t, "listen", "server", "127.0.0.1:8025")
    host, sep, port_text = listen.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError("server.listen", f'expected "host:port", got {listen!r}')
    return ServerConfig(
        domains=tuple(d.lower() for d in domains),
        host=host.strip("[]"),
        port=int(port_text),
        lmtp=get_bool(t, "lmtp", "server", False),
        max_message_bytes=get_int(t, "max_message_bytes", "server", 10 * 1024 * 1024, 1024),
        max_recipients=get_int(t, "max_recipients", "server", 100, 1),
        max_connections=get_int(t, "max_connections", "server", 200, 1),
        max_connections_per_peer=get_int(t, "max_connections_per_peer", "server", 20, 1),
        max_commands_per_session=get_int(t, "max_commands_per_session", "server", 1000, 10),
        max_session_time=_positive_duration(t, "max_session_time", "1h"),
        session_timeout=parse_duration(t.get("session_timeout", 300), "server.session_timeout"),
        hostname=get_str(t, "hostname", "server", domains[0].lower()),
    )


def parse_dmarc(raw: dict[str, Any]) -> DmarcConfig:
    t = section(raw, "dmarc", DMARC_KEYS)
    domains = t.get("strict_domains", [])
    if not isinstance(domains, list) or not all(isinstance(d, str) for d in domains):
        raise ConfigError("dmarc.strict_domains", "must be a list of domain names")
    get_bool(t, "enabled", "dmarc", True)
    return DmarcConfig(frozenset(d.lower() for d in domains))


def _outbound(raw: dict[str, Any], base: Path) -> OutboundConfig:
    t = section(raw, "outbound", OUTBOUND_KEYS)
    maildir, relay = t.get("maildir"), t.get("relay")
    if (maildir is None) == (relay is None):
        raise ConfigError(
            "outbound", 'set exactly one of maildir = "path" or relay = "smtp://host:port"'
        )
    common = dict(
        batch_size=get_int(t, "batch_size", "outbound", 100, 1),
        connections=get_int(t, "connections", "outbound", 8, 1),
        retry_base_seconds=parse_duration(t.get("retry_base", 60), "outbound.retry_base"),
        max_age_seconds=parse_duration(t.get("max_age", "5d"), "outbound.max_age"),
    )
    if maildir is not None:
        return OutboundConfig(maildir=_path(maildir, base, "outbound.maildir"), **common)
    if not isinstance(relay, str):
        raise ConfigError("outbound.relay", 'must be a URL such as "smtp://127.0.0.1:2525"')
    url = urlsplit(relay)
    try:
        port = url.port
    except ValueError:
        port = None
        url = urlsplit("invalid://")
    if url.scheme != "smtp" or not url.hostname:
        raise ConfigError(
            "outbound.relay", f'must be a URL such as "smtp://127.0.0.1:2525", got {relay!r}'
        )
    password_file = t.get("password_file")
    return OutboundConfig(
        relay_host=url.hostname,
        relay_port=port or 25,
        starttls=get_bool(t, "starttls", "outbound", False),
        username=t.get("username") or (unquote(url.username) if url.username else None),
        password_file=_path(password_file, base, "outbound.password_file")
        if password_file
        else None,
        **common,
    )


def _storage(t: dict[str, Any], base: Path) -> StorageConfig:
    url = t.get("url")
    if url is not None and (
        not isinstance(url, str) or urlsplit(url).scheme not in ("postgresql", "postgres")
    ):
        raise ConfigError(
            "storage.url",
            'must be a PostgreSQL URL, e.g. "postgresql://mailhub@db.example:5432/mailhub"',
        )
    password_file = t.get("password_file")
    lease = parse_duration(t.get("lease", "30s"), "storage.lease")
    if lease < 1:
        raise ConfigError("storage.lease", "must be at least 1s")
    return StorageConfig(
        path=_path(t.get("path", "var/mailhub.db"), base, "storage.path"),
        busy_timeout=parse_duration(t.get("busy_timeout", "10s"), "storage.busy_timeout"),
        url=url,
        password_file=_path(password_file, base, "storage.password_file")
        if password_file
        else None,
        pool_size=get_int(t, "pool_size", "storage", 10, minimum=2),
        lease_seconds=lease,
    )


def _path(value: Any, base: Path, key: str) -> Path:
    if not isinstance(value, str) or not value:
        raise ConfigError(key, "must be a path")
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def default_templates_dir() -> Path:
    """The templates that come with mailhub: inside the package when installed from a
    wheel (mailhub/templates), else the checkout's templates/ folder (their source)."""
    package = Path(__file__).resolve().parent
    shipped = package / "templates"
    return shipped if shipped.is_dir() else package.parent / "templates"


def load_config(path: Path | str | None = None, sections: Iterable[Section] = ()) -> Config:
    """Read and validate the config, the apps' `sections` too (any other section is refused
    as unknown). Relative paths resolve against the working directory."""
    if path is None:
        path = os.environ.get("MAILHUB_CONFIG") or DEFAULT_CONFIG
    path = Path(path)
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError("--config", f"no config file at {path}; pass --config PATH") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"is not valid TOML ({exc})") from None
    return parse_config(raw, base=Path.cwd(), source=path, sections=sections)


def parse_config(
    raw: dict[str, Any], base: Path, source: Path | None = None, sections: Iterable[Section] = ()
) -> Config:
    sections = tuple(sections)
    _top_level(raw, tuple(s.name for s in sections))
    server = _server(raw)
    storage = section(raw, "storage", STORAGE_KEYS)
    enquiries = section(raw, "enquiries", ENQUIRIES_KEYS)
    autoreply = section(raw, "autoreply", AUTOREPLY_KEYS)
    admin = section(raw, "admin", ADMIN_KEYS)
    dmarc = parse_dmarc(raw)
    templates = raw.get("templates")
    config = Config(
        server=server,
        storage=_storage(storage, base),
        outbound=_outbound(raw, base),
        admins=get_addresses(admin, "addresses", "admin"),
        enquiries=EnquiriesConfig(
            handlers=get_addresses(enquiries, "handlers", "enquiries"),
            language=get_language(enquiries, "language", "enquiries"),
        ),
        autoreply=AutoReplyConfig(
            per_hour=get_int(autoreply, "per_hour", "autoreply", 3),
            per_day=get_int(autoreply, "per_day", "autoreply", 10),
            per_domain_per_hour=get_int(autoreply, "per_domain_per_hour", "autoreply", 30),
            total_per_hour=get_int(autoreply, "total_per_hour", "autoreply", 500),
        ),
        templates_dir=_path(templates, base, "templates") if templates else default_templates_dir(),
        dmarc=dmarc,
        source=source,
        web=parse_web(raw),
        # Key files resolve against the working directory, as every other path here does.
        dkim=parse_dkim(raw.get("dkim"), base),
        dns=parse_dns(raw.get("dns")),
        **{s.name: s.parse(raw, server) for s in sections},  # type: ignore[arg-type]
    )
    if not config.admins:
        raise ConfigError("admin.addresses", "name at least one administrator address")
    if not config.templates_dir.is_dir():
        raise ConfigError("templates", f"no templates directory at {config.templates_dir}")
    return config
