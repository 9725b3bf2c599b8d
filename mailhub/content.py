"""Bounded content work: untrusted mail is parsed and scanned in a worker process.

Parsing MIME, stripping HTML and matching names are CPU work on text an attacker
chooses. Run on the event loop, one crafted message would stall intake and delivery
for as long as it takes; run in a thread, it would still hold the GIL. So it runs in a
separate process, with a time budget: past the budget the worker is killed (a fresh
one starts for the next job) and the caller gets `None` and decides what failing
closed means for it. The functions run there must be top-level and take and return
picklable values.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from mailhub import logs
from mailhub.parsing import parse

T = TypeVar("T")

DEFAULT_TIMEOUT = 10.0

_pool: ProcessPoolExecutor | None = None


def _executor() -> ProcessPoolExecutor:
    global _pool
    if _pool is None:
        # "spawn": a clean interpreter, not a fork of a process that runs an event loop and
        # SQLite's thread. One worker: the other core serves intake and delivery.
        _pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    return _pool


def _discard_pool() -> None:
    """Kill the worker (it may be stuck in a pathological input) and forget the pool."""
    global _pool
    pool, _pool = _pool, None
    if pool is None:
        return
    # ProcessPoolExecutor cannot cancel a running job; killing its process is the only way
    # to get the CPU back. `_processes` is its table of worker processes.
    for process in list(getattr(pool, "_processes", {}).values()):
        process.kill()
    pool.shutdown(wait=False, cancel_futures=True)


async def run_bounded(
    fn: Callable[..., T], *args: Any, timeout: float = DEFAULT_TIMEOUT, what: str = "content"
) -> T | None:
    """`fn(*args)` in the worker process; None if it ran out of time or crashed."""
    loop = asyncio.get_running_loop()
    try:
        future = loop.run_in_executor(_executor(), fn, *args)
        # asyncio.timeout, not wait_for, which on 3.11 can swallow a cancel (shutdown).
        async with asyncio.timeout(timeout):
            return await future
    except TimeoutError:
        logs.event("content", logging.WARNING, what=what, outcome="over time budget")
        _discard_pool()
        return None
    except BrokenProcessPool:
        logs.event("content", logging.ERROR, what=what, outcome="worker died")
        _discard_pool()
        return None
    except Exception as exc:  # noqa: BLE001 - a bug in the scan must fail closed, not crash
        logs.event("content", logging.ERROR, what=what, outcome="failed", error=type(exc).__name__)
        return None


# --- reading a message ----------------------------------------------------------------------

# MIME parts one message may have: real mail has a handful; the `email` package takes
# ~0.2 ms a part, and handlers walk them again on the event loop.
MAX_PARTS = 1000


def read_message(raw: bytes, max_parts: int = MAX_PARTS) -> tuple[Any, str]:
    """(the parsed message, '') or (None, why it is set aside). Runs in the worker."""
    # Every part boundary starts a line with "--": more of them than parts allowed means
    # the message is refused before the parser spends seconds on it.
    if raw.count(b"\n--") > 2 * max_parts + 2:
        return None, f"more than {max_parts} MIME parts"
    try:
        msg = parse(raw)
        parts = sum(1 for _ in msg.walk())
    except RecursionError:
        return None, "MIME parts nested too deeply"
    if parts > max_parts:
        return None, f"more than {max_parts} MIME parts"
    return msg, ""


def needs_bounded_read(raw: bytes) -> bool:
    """Whether reading this message could take long enough to matter: small single-part
    mail (nearly all of it) is parsed where it is handled, in well under a millisecond."""
    return len(raw) > 64 * 1024 or raw.count(b"\n--") > 20


def shutdown() -> None:
    _discard_pool()
