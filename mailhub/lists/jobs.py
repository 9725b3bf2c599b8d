"""Scheduled jobs of the lists app."""

from __future__ import annotations

JOBS: list = []
