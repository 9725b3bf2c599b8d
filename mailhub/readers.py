"""Small validated readers of TOML tables, shared by the core's and the apps' config
parsers. Each problem is one `ConfigError` naming the key. Imports only mailhub.errors."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Any

from email_validator import EmailNotValidError, validate_email

from mailhub.errors import ConfigError

LANGUAGES = ("en", "cy", "en+cy", "cy+en")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(value: Any, key: str) -> float:
    """'90s', '10m', '1h', '5d', '2w' or a number of seconds → seconds."""
    if isinstance(value, bool):
        raise ConfigError(key, f"expected a duration such as '1h' or '5d', got {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ConfigError(key, "a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value.lower())
        if m:
            return float(m.group(1)) * _UNITS[m.group(2)]
    raise ConfigError(key, f"expected a duration such as '1h' or '5d', got {value!r}")


def nearest(name: str, known: Iterable[str]) -> str:
    """`; did you mean `x`?` for the closest known name, else the names there are."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1) or difflib.get_close_matches(
        name.lower(), known, n=1
    )
    if close:
        return f"; did you mean `{close[0]}`?"
    return f"; expected one of: {', '.join(known)}"


def refuse_unknown(table: dict[str, Any], key: str, known: Iterable[str]) -> None:
    """A key the table does not have stops the start, with the nearest one it does have:
    `lists[0].subscripton: unknown key; did you mean `subscription`?`."""
    known = tuple(known)
    for name in table:
        if name not in known:
            raise ConfigError(f"{key}.{name}", "unknown key" + nearest(name, known))


def section(raw: dict[str, Any], key: str, known: Iterable[str] | None = None) -> dict[str, Any]:
    """The table `[key]` ({} when absent); with `known`, its keys are checked first."""
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(key, "must be a table, e.g. [" + key + "]")
    if known is not None:
        refuse_unknown(value, key, known)
    return value


def get_str(table: dict[str, Any], name: str, key: str, default: str | None = None) -> str:
    value = table.get(name, default)
    if value is None:
        raise ConfigError(f"{key}.{name}", "is required")
    if not isinstance(value, str):
        raise ConfigError(f"{key}.{name}", f"must be a string, got {value!r}")
    return value


def get_int(table: dict[str, Any], name: str, key: str, default: int, minimum: int = 0) -> int:
    value = table.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key}.{name}", f"must be a whole number, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{key}.{name}", f"must be at least {minimum}, got {value}")
    return value


def get_bool(table: dict[str, Any], name: str, key: str, default: bool) -> bool:
    value = table.get(name, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{key}.{name}", f"must be true or false, got {value!r}")
    return value


# Welsh first unless a table says otherwise (the Welsh Language Standards: Welsh is not
# to be treated less favourably than English).
DEFAULT_LANGUAGE = "cy+en"


def get_language(
    table: dict[str, Any], name: str, key: str, default: str = DEFAULT_LANGUAGE
) -> str:
    value = get_str(table, name, key, default)
    if value not in LANGUAGES:
        raise ConfigError(f"{key}.{name}", f"must be one of {', '.join(LANGUAGES)}, got {value!r}")
    return value


def check_address(value: Any, key: str) -> str:
    """Validate one email address (syntax only, no DNS) and return it normalised."""
    if not isinstance(value, str):
        raise ConfigError(key, f"must be an email address, got {value!r}")
    try:
        result = validate_email(value, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise ConfigError(key, f"{value!r} is not a valid email address ({exc})") from None
    return result.normalized


def get_addresses(table: dict[str, Any], name: str, key: str) -> tuple[str, ...]:
    value = table.get(name, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ConfigError(f"{key}.{name}", "must be a list of email addresses")
    return tuple(check_address(v, f"{key}.{name}") for v in value)
