"""Keeping a node's claims on queued work alive while it works (PostgreSQL, several nodes).

A node claims inbound and outbound items with a lease (`lease_until`): if it dies, the
lease runs out and another node takes the work. A live node working longer than a lease
(a long delivery to thousands of members, a slow batch) renews it every third of the
lease, so its work is never taken from under it. On SQLite nothing runs: one process owns
the file and claims nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection

from mailhub.clock import Clock
from mailhub.store import Store, Tx

Renew = Callable[[Tx, str, list[int], float], Awaitable[None]]


class LeaseKeeper:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        owner: str,
        seconds: float,
        renew: Renew,
        held: Callable[[], Collection[int]],
    ) -> None:
        self.store = store
        self.clock = clock
        self.owner = owner
        self.seconds = seconds
        self.renew = renew
        self.held = held

    async def run(self) -> None:
        """Renew until cancelled. A failed renewal is tried again at the next turn (a third
        of a lease later): one failure leaves two thirds of the lease."""
        while True:
            await asyncio.sleep(self.seconds / 3)
            ids = sorted(self.held())
            if not ids:
                continue
            try:
                async with self.store.transaction() as tx:
                    await self.renew(tx, self.owner, ids, self.clock.now() + self.seconds)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the next turn tries again
                logging.getLogger("mailhub").debug("lease renewal failed", exc_info=True)
