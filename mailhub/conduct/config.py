"""[conduct] in the config → ConductConfig."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from mailhub.config import ServerConfig, check_address, get_addresses, get_str, section


@dataclass(frozen=True)
class CommitteeMember:
    key: str
    name: str
    addresses: tuple[str, ...]
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConductConfig:
    fallback: str
    committee: tuple[CommitteeMember, ...]


def member_key(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")


def parse_conduct(raw: dict[str, Any], server: ServerConfig) -> ConductConfig | None:
    if "conduct" not in raw:
        return None
    t = section(raw, "conduct")
    members = []
    for i, m in enumerate(t.get("committee", [])):
        key = f"conduct.committee[{i}]"
        name = get_str(m, "name", key)
        members.append(
            CommitteeMember(
                member_key(name),
                name,
                get_addresses(m, "addresses", key),
                tuple(m.get("aliases", [])),
            )
        )
    return ConductConfig(
        check_address(get_str(t, "fallback", "conduct"), "conduct.fallback"), tuple(members)
    )
