"""[conduct] in the config → ConductConfig."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.fernet import Fernet

from mailhub.errors import ConfigError
from mailhub.readers import (
    check_address,
    get_addresses,
    get_int,
    get_language,
    get_str,
    parse_duration,
    refuse_unknown,
    section,
)

if TYPE_CHECKING:
    from mailhub.config import ServerConfig

# Every key [conduct] and each [[conduct.committee]] table may hold.
CONDUCT_KEYS = (
    "fallback",
    "committee",
    "language",
    "reminder_after",
    "escalate_after",
    "key_file",
    "retention_days",
    "release_after",
    "code_url",
)
MEMBER_KEYS = ("name", "addresses", "aliases", "conflicts", "key")
# The same shape routing.py accepts for `conduct-MEMBER@D`.
_KEY = re.compile(r"[a-z0-9](?:[a-z0-9._]|-(?!-))*")


@dataclass(frozen=True)
class CommitteeMember:
    key: str
    name: str
    addresses: tuple[str, ...]
    aliases: tuple[str, ...] = ()
    # Standing conflicts: names of people or domains (e.g. a spouse, an employer).
    conflicts: tuple[str, ...] = ()

    @property
    def address(self) -> str:
        """Where case mail for this member goes: the first address listed."""
        return self.addresses[0]

    def owns(self, addr: str) -> bool:
        return addr.lower() in {a.lower() for a in self.addresses}


@dataclass(frozen=True)
class ConductConfig:
    fallback: str
    committee: tuple[CommitteeMember, ...]
    language: str = "cy+en"  # Welsh first, as every default (readers.DEFAULT_LANGUAGE)
    reminder_after: float = 5 * 86400.0
    escalate_after: float = 7 * 86400.0
    key_file: Path | None = None
    # The Fernet key read from key_file: case content is encrypted at rest when set.
    key: bytes | None = field(default=None, repr=False)
    # Closed cases' content is deleted this many days after closing; 0 keeps it.
    retention_days: int = 0
    # The reporter's window: the report reaches the committee this long after it arrives
    # (0: at once), so the reporter can `exclude NAME` or `send now` first.
    release_after: float = 30 * 60.0
    # Where the community's code of conduct is published: linked from the reporter's
    # acknowledgement when set.
    code_url: str = ""

    def member(self, key: str) -> CommitteeMember | None:
        for m in self.committee:
            if m.key == key.lower():
                return m
        return None

    def member_for(self, addr: str) -> CommitteeMember | None:
        for m in self.committee:
            if m.owns(addr):
                return m
        return None


def member_key(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")


def _strings(table: dict[str, Any], name: str, key: str) -> tuple[str, ...]:
    value = table.get(name, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{key}.{name}", "must be a list of non-empty strings")
    return tuple(v.strip() for v in value)


def read_key(path: Path) -> bytes:
    """Read and check a Fernet key file (a ConfigError naming conduct.key_file if unusable)."""
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(
            "conduct.key_file", f"cannot read {path} ({exc.strerror or exc})"
        ) from None
    try:
        Fernet(key)
    except (ValueError, TypeError):
        raise ConfigError(
            "conduct.key_file",
            f"{path} does not hold a Fernet key (make one with: python -c "
            '"from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())")',
        ) from None
    return key


def _member(m: Any, i: int) -> CommitteeMember:
    key = f"conduct.committee[{i}]"
    if not isinstance(m, dict):
        raise ConfigError(key, "must be a table with name and addresses")
    refuse_unknown(m, key, MEMBER_KEYS)
    name = get_str(m, "name", key).strip()
    if not name:
        raise ConfigError(f"{key}.name", "must not be empty")
    addresses = get_addresses(m, "addresses", key)
    if not addresses:
        raise ConfigError(f"{key}.addresses", "name at least one email address")
    member = get_str(m, "key", key, member_key(name)).lower()
    if not _KEY.fullmatch(member):
        raise ConfigError(
            f"{key}.key", f"{member!r} cannot be part of an address (use letters, digits, -)"
        )
    return CommitteeMember(
        member,
        name,
        tuple(a.lower() for a in addresses),
        _strings(m, "aliases", key),
        _strings(m, "conflicts", key),
    )


def parse_conduct(raw: dict[str, Any], server: ServerConfig) -> ConductConfig | None:
    if "conduct" not in raw:
        return None
    t = section(raw, "conduct", CONDUCT_KEYS)
    committee = t.get("committee", [])
    if not isinstance(committee, list):
        raise ConfigError("conduct.committee", "must be a list of [[conduct.committee]] tables")
    members = tuple(_member(m, i) for i, m in enumerate(committee))
    seen: dict[str, str] = {}
    for m in members:
        if m.key in seen:
            raise ConfigError(
                "conduct.committee", f"{seen[m.key]!r} and {m.name!r} share the key {m.key!r}"
            )
        seen[m.key] = m.name
    reminder = parse_duration(t.get("reminder_after", "5d"), "conduct.reminder_after")
    escalate = parse_duration(t.get("escalate_after", "7d"), "conduct.escalate_after")
    if escalate < reminder:
        raise ConfigError("conduct.escalate_after", "must not come before conduct.reminder_after")
    release_after = parse_duration(t.get("release_after", "30m"), "conduct.release_after")
    key_file = t.get("key_file")
    path: Path | None = None
    key: bytes | None = None
    if key_file is not None:
        if not isinstance(key_file, str) or not key_file:
            raise ConfigError("conduct.key_file", "must be a path")
        path = Path(key_file).expanduser()
        key = read_key(path)
    return ConductConfig(
        fallback=check_address(get_str(t, "fallback", "conduct"), "conduct.fallback").lower(),
        committee=members,
        language=get_language(t, "language", "conduct"),
        reminder_after=reminder,
        escalate_after=escalate,
        key_file=path,
        key=key,
        retention_days=get_int(t, "retention_days", "conduct", 0),
        release_after=release_after,
        code_url=_url(t.get("code_url", ""), "conduct.code_url"),
    )


def _url(value: Any, key: str) -> str:
    """An optional web address people will open from a mail: http(s), one line, no spaces."""
    if value == "":
        return ""
    if not isinstance(value, str) or not re.fullmatch(r"https?://[^\s<>\"]{1,300}", value.strip()):
        raise ConfigError(key, f"must be a web address starting https://, got {value!r}")
    return value.strip()
