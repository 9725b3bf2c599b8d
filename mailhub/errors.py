"""The errors a person acts on. Imports nothing from mailhub, so any module may use them."""

from __future__ import annotations


class ConfigError(Exception):
    """A config problem, phrased as `key: what is wrong`."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}" if key else problem)
        self.key = key
        self.problem = problem


class UserError(Exception):
    """A problem the user can fix; printed as one line."""


class SchemaMismatch(Exception):
    """The database's schema is older or newer than this mailhub's: one line saying which
    and what to do (`mailhub migrate`, or upgrade this node)."""
