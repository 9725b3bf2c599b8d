"""archive tables (filled in by the web archive work)."""

from __future__ import annotations

SCHEMA: list[str] = []
