"""What an app's scheduled job is. The apps name their jobs here without importing the
scheduler; service.py hands the scheduler the jobs of the apps it runs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mailhub.context import Context


@dataclass(frozen=True)
class Job:
    name: str
    run: Callable[[Context], Awaitable[None]]
