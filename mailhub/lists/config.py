"""[[lists]] in the config → ListConfig records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mailhub.config import ConfigError, ServerConfig, get_addresses, get_language, get_str

SUBSCRIPTION = ("open", "confirm", "approve", "invite")


@dataclass(frozen=True)
class ListConfig:
    name: str
    display_name: str
    subscription: str = "confirm"
    facilitators: tuple[str, ...] = ()
    champions: tuple[str, ...] = ()
    language: str = "en"


def parse_lists(raw: dict[str, Any], server: ServerConfig) -> tuple[ListConfig, ...]:
    tables = raw.get("lists", [])
    if not isinstance(tables, list):
        raise ConfigError("lists", "must be an array of tables, [[lists]]")
    out = []
    for i, t in enumerate(tables):
        key = f"lists[{i}]"
        name = get_str(t, "name", key).lower()
        subscription = get_str(t, "subscription", key, "confirm")
        if subscription not in SUBSCRIPTION:
            raise ConfigError(f"{key}.subscription", f"must be one of {', '.join(SUBSCRIPTION)}")
        out.append(ListConfig(
            name=name,
            display_name=get_str(t, "display_name", key, name),
            subscription=subscription,
            facilitators=get_addresses(t, "facilitators", key),
            champions=get_addresses(t, "champions", key),
            language=get_language(t, "language", key),
        ))
    return tuple(out)
