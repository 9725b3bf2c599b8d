"""Case content at rest: encrypted with Fernet when `[conduct] key_file` is set."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken

from mailhub.conduct.config import ConductConfig
from mailhub.store.conduct import CaseMessage


def seal(conduct: ConductConfig, raw: bytes) -> tuple[bytes, bool]:
    """(bytes to store, encrypted?)"""
    if conduct.key is None:
        return raw, False
    return Fernet(conduct.key).encrypt(raw), True


def unseal(conduct: ConductConfig, message: CaseMessage) -> bytes | None:
    """The original bytes, or None when they are encrypted and the key is missing or wrong."""
    if not message.encrypted:
        return message.raw
    if conduct.key is None:
        return None
    try:
        return Fernet(conduct.key).decrypt(message.raw)
    except InvalidToken:
        return None
