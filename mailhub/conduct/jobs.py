"""Scheduled jobs of the conduct app."""

from __future__ import annotations

JOBS: list = []
