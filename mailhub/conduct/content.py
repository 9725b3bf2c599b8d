"""Case content at rest: encrypted with Fernet when `[conduct] key_file` is set.

The sealing itself is core (mailhub.sealing): the queues use the same key for case mail.
"""

from __future__ import annotations

from mailhub import sealing
from mailhub.conduct.config import ConductConfig
from mailhub.store.conduct import CaseMessage


def seal(conduct: ConductConfig, raw: bytes) -> tuple[bytes, bool]:
    """(bytes to store, encrypted?)"""
    return sealing.seal(conduct.key, raw)


def unseal(conduct: ConductConfig, message: CaseMessage) -> bytes | None:
    """The original bytes, or None when they are encrypted and the key is missing or wrong."""
    return sealing.unseal(conduct.key, message.raw, message.encrypted)
