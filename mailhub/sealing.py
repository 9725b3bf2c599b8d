"""Sealing: mail bound for a conduct route, encrypted at rest with the conduct key (Fernet).

Core code (intake, the queues, delivery) seals and unseals here; the conduct app keeps
its case messages the same way (mailhub.conduct.content delegates to this module). The
key is `[conduct] key_file`, read by the conduct app's config into `config.conduct.key`;
this module only takes the key's bytes, so core never imports the app.
"""

from __future__ import annotations

from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from mailhub.store.inbound import UNSEALABLE

# Mail of these kinds is case mail: sealed in the outbound queue, and logged without
# addresses (see Context.send, delivery).
CONDUCT_KIND_PREFIX = "conduct."
# Routes whose mail is case content (mailhub.routing: conduct.new, conduct.reporter, ...).
CONDUCT_ROUTE_PREFIX = "conduct"


class Unsealable(Exception):
    """Sealed bytes that the configured key (or its absence) cannot open."""

    def __init__(self) -> None:
        super().__init__(UNSEALABLE)


def conduct_key(config: Any) -> bytes | None:
    """The conduct key of a Config, or None (no [conduct] section, or no key_file)."""
    return getattr(getattr(config, "conduct", None), "key", None)


def is_conduct_kind(kind: str) -> bool:
    return kind.startswith(CONDUCT_KIND_PREFIX)


def seal(key: bytes | None, raw: bytes) -> tuple[bytes, bool]:
    """(bytes to store, sealed?): encrypted when a key is given, else unchanged."""
    if key is None:
        return raw, False
    return Fernet(key).encrypt(raw), True


def unseal(key: bytes | None, raw: bytes, sealed: bool) -> bytes | None:
    """The original bytes, or None when they are sealed and the key is missing or wrong."""
    if not sealed:
        return raw
    if key is None:
        return None
    try:
        return Fernet(key).decrypt(raw)
    except InvalidToken:
        return None


def unseal_or_raise(key: bytes | None, raw: bytes, sealed: bool) -> bytes:
    """Like `unseal`, raising Unsealable instead of returning None."""
    plain = unseal(key, raw, sealed)
    if plain is None:
        raise Unsealable()
    return plain
