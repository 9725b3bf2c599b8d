"""The inbound worker: route each accepted message and run its handlers, in order.

For each message, every handler's state changes, every message they produce and
the `done` mark commit in one transaction (one per batch of messages, each message in a
savepoint of its own). A handler that raises rolls back all of its message's work and
nothing of its neighbours', the message moves to `failed` with the error, and the queue
goes on.

The handlers (route name → handler) and preparers are the apps': service.py hands them in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping

from mailhub import content, logs
from mailhub.context import PARSED, SET_ASIDE, Context, Incoming, Runtime
from mailhub.routing import AddressBook, Route, resolve
from mailhub.sealing import conduct_key, unseal, unseal_or_raise
from mailhub.smtp import IntakeLoad
from mailhub.store import Store, inbound, is_storage_error
from mailhub.store.inbound import InboundItem
from mailhub.store.workers import IDLE, RUNNING, WorkerStatus

POLL_SECONDS = 5.0
# Messages handled per commit at most: enough to share a disk flush. A batch stops early,
# after the message in hand, as soon as a sender opens a transaction: intake shares this
# event loop and its commits wait for ours (the store has one writer), so a long batch
# would stall every session.
BATCH = 32
# How long work may wait for a quiet moment in intake (see smtp.IntakeLoad).
MAX_DEFER_SECONDS = 0.25

# What an app gives for each of its routes: the handler, run inside the message's
# transaction, and optionally a preparer, bounded content work run before it (the store has
# one writer: slow work must not hold it). What a preparer finds travels in
# Incoming.prepared.
Handler = Callable[[Context, Incoming, Route], Awaitable[None]]
Preparer = Callable[[Runtime, Incoming], Awaitable[None]]


def poll_seconds(store: Store, lease_seconds: float) -> float:
    """How long an idle worker waits before it looks again. Several nodes: at most half a
    lease, so work a dead node held is taken over soon after its leases run out (no other
    node's intake wakes this one)."""
    return min(POLL_SECONDS, lease_seconds / 2) if store.shared else POLL_SECONDS


def routes_for(rcpt_tos: tuple[str, ...], book: AddressBook) -> list[Route]:
    """One route per distinct destination: postmaster@ and abuse@ on one message forward once."""
    seen: dict[tuple, Route] = {}
    for rcpt in rcpt_tos:
        route = resolve(rcpt, book)
        if route is not None:
            seen.setdefault((route.name, route.captures), route)
    return list(seen.values())


class SetAside(Exception):
    """A message not handled at all (over its budget, or fatal to the process twice): it is
    marked failed with the reason, and `mailhub queue retry` can run it again."""


def one_at_a_time_after_a_crash(items: list[InboundItem]) -> list[InboundItem]:
    """A batch up to the first message that was being processed when the service stopped;
    that one on its own, so a message fatal to the process is found without its neighbours."""
    if items and items[0].starts:
        return items[:1]
    cut = next((i for i, item in enumerate(items) if item.starts), len(items))
    return items[:cut]


class Processor:
    def __init__(
        self,
        store: Store,
        runtime: Runtime,
        on_sent: Callable[[], None],
        load: IntakeLoad | None = None,
        *,
        handlers: Mapping[str, Handler],
        preparers: Mapping[str, Preparer] | None = None,
        owner: str = "",
        lease_seconds: float = 30.0,
    ) -> None:
        self.store = store
        # This node's name on the leases of the messages it claims (several nodes, one
        # PostgreSQL database; unused on SQLite), and how long a claim lasts unrenewed.
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.holding: list[int] = []  # the seqs of the batch in hand (their leases are renewed)
        self.runtime = runtime
        self.handlers = handlers
        self.preparers = preparers or {}
        self.clock = runtime.clock
        self.book = runtime.book
        self.on_sent = on_sent
        self.load = load or IntakeLoad()
        self.wake = asyncio.Event()
        self.busy = False

    async def run(self, status: WorkerStatus | None = None) -> None:
        """Work the inbound queue until cancelled. A database or disk error outside any one
        message (the write lock held past busy_timeout by a backup or a CLI command, a full
        disk at COMMIT) rolls the batch back: it stays queued, the error is logged once per
        try, and the worker backs off (bounded) and tries again. It never ends by itself."""
        status = status or WorkerStatus(self.store, self.clock, "processing")
        while True:
            try:
                await status.flush()
                self.wake.clear()
                items = await self._claim()
                if not items:
                    status.succeeded(IDLE)
                    if self.busy:
                        self.busy = False
                        self.on_sent()  # also tells waiters (Service.idle) that it is empty
                    # Woken at once by intake; the timeout picks up `mailhub queue retry`,
                    # which runs in another process, and keeps the heartbeat going.
                    # asyncio.timeout, not wait_for (which can swallow a cancel: delivery).
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(poll_seconds(self.store, self.lease_seconds)):
                            await self.wake.wait()
                    continue
                self.busy = True
                await self.load.quiet(MAX_DEFER_SECONDS)
                await self.process(items, yield_to_intake=True)
                status.succeeded(RUNNING)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the batch is still queued: try again
                await asyncio.sleep(status.failed(exc))

    async def _claim(self) -> list[InboundItem]:
        """The next batch: on SQLite the oldest queued messages (a read: one process owns
        the file); on PostgreSQL those this node claims, with a lease (inbound.claim)."""
        if not self.store.shared:
            async with self.store.read() as tx:
                return await inbound.next_queued(tx, BATCH)
        now = self.clock.now()
        async with self.store.transaction() as tx:
            return await inbound.claim(tx, self.owner, now, now + self.lease_seconds, BATCH)

    async def _prepare(self, item: InboundItem) -> dict[object, object]:
        """Content work for a message, done before the transaction: the store has one
        writer, and intake's commits must not wait for it. A message that could be slow to
        read is parsed in the content worker with a time and size budget (past it, it is set
        aside); apps' scans (the conduct scan) run there too. The results travel with the
        message to its handlers (Incoming.prepared)."""
        prepared: dict[object, object] = {}
        if item.starts >= 2:
            prepared[SET_ASIDE] = "processing it was cut short twice (the service stopped on it)"
            return prepared
        raw = unseal(conduct_key(self.runtime.config), item.raw, item.sealed)
        if raw is None:
            return prepared  # the handler's turn marks it failed
        if content.needs_bounded_read(raw):
            result = await content.run_bounded(content.read_message, raw, what="message")
            if result is None:
                prepared[SET_ASIDE] = "it could not be read within the time budget"
                return prepared
            msg, problem = result
            if problem:
                prepared[SET_ASIDE] = problem
                return prepared
            prepared[PARSED] = msg
        preparers = [self.preparers[r.name] for r in routes_for(item.rcpt_tos, self.book)
                     if r.name in self.preparers]  # fmt: skip
        mail = Incoming(
            item.queue_id, item.mail_from, item.rcpt_tos, raw, item.received_at, prepared=prepared
        )
        for prepare in dict.fromkeys(preparers):
            await prepare(self.runtime, mail)
        return mail.prepared

    async def process(self, items: list[InboundItem], yield_to_intake: bool = False) -> None:
        """Handle a batch of messages in order, in one commit.

        Each message runs inside its own savepoint: its state changes and its outbound mail
        stand or fall together, and a handler that raises rolls back only that message
        (marked `failed`), never its neighbours. The `done` marks of those that went through
        are written after the last one, in the same transaction. One commit for the batch means
        one disk flush for many messages; a crash before it redoes the whole batch, and
        nothing of it has been sent yet. With `yield_to_intake`, the batch ends after the
        first message during which a sender opened a transaction; the rest stay queued, in
        order, for the next round.
        """
        claimed = [item.seq for item in items]
        self.holding = claimed
        try:
            await self._process(one_at_a_time_after_a_crash(items), claimed, yield_to_intake)
        finally:
            self.holding = []

    async def _process(
        self, items: list[InboundItem], claimed: list[int], yield_to_intake: bool
    ) -> None:
        outcomes: list[tuple[InboundItem, list[Route], int, BaseException | None]] = []
        # Committed before anything is handled: if the process dies on a message, its next
        # round knows (and a message it dies on twice is set aside). Only for mail large or
        # complex enough to matter: small single-part mail (nearly all of it) is spared the
        # extra disk flush.
        counted = [item.seq for item in items if content.needs_bounded_read(item.raw)]
        if counted:
            async with self.store.transaction() as tx:
                await inbound.count_starts(tx, counted)
        prepared = {item.seq: await self._prepare(item) for item in items}
        # Inline: the batch's statements are many and short (content work was done above),
        # and each trip to SQLite's thread would cost more than the statement.
        async with self.store.transaction(inline=True) as tx:
            # Several nodes: only what is still this node's (a lease that ran out may have
            # been taken by another node meanwhile), locked until this commit.
            held = await inbound.still_held(tx, self.owner, [item.seq for item in items])
            for item in items:
                if item.seq not in held:
                    continue
                routes = routes_for(item.rcpt_tos, self.book)
                ctx = self.runtime.context(tx, item.queue_id)
                try:
                    async with tx.savepoint():
                        if SET_ASIDE in prepared[item.seq]:
                            raise SetAside(str(prepared[item.seq][SET_ASIDE]))
                        # Conduct mail is sealed from intake on; Unsealable marks it failed.
                        raw = unseal_or_raise(conduct_key(ctx.config), item.raw, item.sealed)
                        mail = Incoming(
                            item.queue_id,
                            item.mail_from,
                            item.rcpt_tos,
                            raw,
                            item.received_at,
                            prepared=prepared[item.seq],
                        )
                        for route in routes:
                            await self.handlers[route.name](ctx, mail, route)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - one bad message must not stop the queue
                    if is_storage_error(exc):
                        # The database, not the message (a lost connection, a deadlock with
                        # another node): the whole batch rolls back and stays queued.
                        raise
                    # Rolled back to the savepoint already: nothing of this message is kept.
                    # The error text is the exception's type and message: handlers never put
                    # message content into exceptions, so it is safe in `mailhub queue`.
                    error = f"{type(exc).__name__}: {exc}"[:500]
                    await inbound.mark_failed(tx, item.seq, error, self.clock.now())
                    # A traceback of a conduct item could quote case content: type only.
                    conduct = any(r.name.startswith("conduct") for r in routes)
                    logging.getLogger("mailhub").debug("handler failure", exc_info=not conduct)
                    outcomes.append((item, routes, 0, exc))
                else:
                    outcomes.append((item, routes, len(ctx.sent), None))
                if yield_to_intake and self.load.open:
                    break
            done = {item.seq for item, *_ in outcomes}
            await inbound.uncount_starts(tx, [seq for seq in counted if seq not in done])
            # The `done` marks of the batch in one statement, in the same transaction as
            # every handler's changes and mail: they commit together or not at all.
            handled = [item.seq for item, _, _, exc in outcomes if exc is None]
            await inbound.mark_all_done(tx, handled, self.clock.now())
            # Claimed but not reached (the batch was cut short): free for any node at once.
            await inbound.release(tx, self.owner, [seq for seq in claimed if seq not in done])
        for item, routes, sent, exc in outcomes:
            names = [r.name for r in routes] or "none"
            if exc is None:
                logs.event(
                    "processed", queue_id=item.queue_id, routes=names, outcome="done", outbound=sent
                )
            else:
                logs.event(
                    "processed",
                    logging.ERROR,
                    queue_id=item.queue_id,
                    routes=names,
                    outcome="failed",
                    error=type(exc).__name__,
                )
        self.on_sent()
