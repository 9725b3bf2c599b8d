"""What an app's scheduled job is. The apps name their jobs here without importing the
scheduler; service.py hands the scheduler the jobs of the apps it runs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mailhub.context import Context, Runtime
from mailhub.store import Store

# What a job does inside its transaction.
Step = Callable[[Context], Awaitable[None]]


@dataclass(frozen=True)
class Job:
    name: str
    run: Step | None = None
    # Instead of `run`, for a job with slow reading to do (bounded content work in the
    # worker process): done first, outside any transaction, so the write lock is never
    # held while it runs (intake would wait); it returns the step to run in the
    # transaction, which writes what it found.
    prepare: Callable[[Store, Runtime], Awaitable[Step]] | None = None

    def __post_init__(self) -> None:
        if (self.run is None) == (self.prepare is None):
            raise ValueError(f"job {self.name}: give it run or prepare, not both or neither")
