"""The outbound worker: relay over SMTP (aiosmtplib) or write to a Maildir outbox.

Each message goes in one SMTP transaction with all its pending recipients (up to
`batch_size` at a time); each recipient's answer is recorded in the same commit
that settles the message, straight after the relay answers, so a crash can
resend at most the transactions in flight (and Message-ID stays the same).
4xx and connection failures retry with exponential back-off until `max_age`;
a 5xx, or running out of time, sends one DSN to the envelope sender.

A message queued with `personalise="SCHEME:ARG"` is sent one recipient at a time, each copy
made as it is sent by the personaliser an app registered for SCHEME (the lists' VERP and
member links: "list:NAME"); service.py hands the apps' personalisers in.

Every message is DKIM-signed as it is sent (`[dkim]`; no key for its domain: unsigned), so
the signature covers each member's own List-Unsubscribe and List-Help, and case mail is
signed after it is unsealed. A list copy carrying our Authentication-Results is ARC-sealed
first (RFC 8617). Signing is CPU work: copies are made and signed in a worker thread,
`SIGN_BATCH` at a time, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from email.utils import getaddresses
from pathlib import Path
from typing import Protocol

from mailhub import logs
from mailhub.clock import Clock
from mailhub.config import Config, OutboundConfig
from mailhub.dsn import build_dsn
from mailhub.messages import clean_raw_value, head_fields, to_bytes
from mailhub.parsing import clean
from mailhub.processing import MAX_DEFER_SECONDS, poll_seconds
from mailhub.relay import RelayTransport
from mailhub.sealing import conduct_key, is_conduct_kind, unseal
from mailhub.signing import PER_COPY, Signer
from mailhub.smtp import IntakeLoad
from mailhub.store import Store, Tx, is_storage_error, outbound, secrets
from mailhub.store.batching import GroupCommit
from mailhub.store.outbound import OutboundItem, RecipientResult
from mailhub.store.workers import BACKING_OFF, IDLE, RUNNING, Backoff, WorkerStatus

MAX_BACKOFF = 4 * 3600.0
# A message sealed with a key that is not configured waits at least this long between
# tries (the key comes back with a restart; the row must not spin the worker meanwhile).
UNSEALABLE_RETRY_SECONDS = 300.0
# How long SIGTERM waits for SMTP transactions in flight.
DRAIN_SECONDS = 10.0
# Personalised copies made and signed per trip to a worker thread: enough that the trip's
# cost is small beside the signatures, few enough that a copy is not held long in memory.
SIGN_BATCH = 32
# The kind of a list copy: the only mail whose Authentication-Results is ours (made by
# distribution_copy, which removes every other), and so the only mail we ARC-seal.
LIST_POST = "list.post"
# The headers a personaliser changes in each copy (mailhub.lists.verp). When the ARC
# signature leaves all of them out (signing.PER_COPY), one ARC set, made for an item's
# first copy, is valid on all its copies: two RSA signatures per post instead of per member.
PERSONALISED = frozenset({"list-unsubscribe", "list-unsubscribe-post", "list-help"})
ONE_SEAL_PER_ITEM = set(PER_COPY) >= PERSONALISED
_STATUS = re.compile(r"\d{3}(?:[ -]\d\.\d{1,3}\.\d{1,3})?")


def _status(reply: str) -> str:
    """A reply's status codes ("550 5.1.1") without its text, which may quote an address."""
    m = _STATUS.match(reply.strip())
    return m.group(0) if m else "-"


def next_attempt(created_at: float, attempts: int, now: float, cfg: OutboundConfig) -> float | None:
    """When to try again after `attempts` failures, or None when the message has run out of time."""
    # The exponent is capped: past it the delay is MAX_BACKOFF anyway (and 2**n would
    # overflow a float after ~1000 attempts, as with retry_base = 0 and a dead relay).
    delay = min(cfg.retry_base_seconds * (2 ** min(max(attempts - 1, 0), 32)), MAX_BACKOFF)
    if now + delay > created_at + cfg.max_age_seconds:
        return None
    return now + delay


# (config, the service's secret, ARG of "SCHEME:ARG", the queued bytes, the one recipient)
# → (envelope sender, the bytes of that recipient's copy).
Personalise = Callable[[Config, bytes, str, bytes, str], tuple[str, bytes]]


def connections_for(units: list[int], free: int) -> list[int]:
    """How many of `free` connections each message gets: one each, then the spare ones to
    the messages with the most transactions per connection (a large list post), never more
    than a message has transactions. `len(units) <= free`."""
    shares = [1] * len(units)
    spare = free - len(units)
    while spare > 0:
        best = max(range(len(units)), key=lambda i: units[i] / shares[i], default=None)
        if best is None or shares[best] >= units[best]:
            break
        shares[best] += 1
        spare -= 1
    return shares


def signing_domain(raw: bytes, mail_from: str, domains: Sequence[str]) -> str:
    """The d= of a message we send (pure): its From: domain when that is one of ours (every
    notice, and a list copy From: the list); else its envelope sender's when ours (a copy
    on a list that shows addresses keeps the poster's From:, and goes from LIST-bounces@D);
    else the service's domain. d= is always ours: a copy that keeps a poster's From: is then
    not DMARC-aligned, which is why such a copy's From: is rewritten when the poster's
    domain publishes p=reject or quarantine."""
    ours = [d.lower() for d in domains]
    values = [v for n, v in head_fields(raw) if n.strip().lower() == "from"]
    pairs = getaddresses([clean_raw_value(v) for v in values[:1]])
    from_domain = pairs[0][1].rpartition("@")[2].strip().lower() if pairs else ""
    if from_domain in ours:
        return from_domain
    envelope_domain = mail_from.rpartition("@")[2].lower()
    return envelope_domain if envelope_domain in ours else ours[0]


class Transport(Protocol):
    async def send(
        self, mail_from: str, rcpts: list[str], raw: bytes, item: OutboundItem
    ) -> list[RecipientResult]: ...

    async def close(self) -> None: ...


class MaildirTransport:
    """One file per recipient in `maildir/new`, as a local delivery agent would leave it.

    The file name is fixed by (message, recipient), so writing it again after a
    crash replaces the first copy instead of adding a duplicate.
    """

    def __init__(self, root: Path, hostname: str) -> None:
        self.root = root
        self.hostname = hostname.replace("/", "_").replace(":", "_")
        for sub in ("tmp", "new", "cur"):
            (root / sub).mkdir(parents=True, exist_ok=True)

    async def send(
        self, mail_from: str, rcpts: list[str], raw: bytes, item: OutboundItem
    ) -> list[RecipientResult]:
        await asyncio.to_thread(self._write_all, mail_from, rcpts, raw, item)
        return [RecipientResult(r, "sent", "250 written to maildir") for r in rcpts]

    def _write_all(self, mail_from: str, rcpts: list[str], raw: bytes, item: OutboundItem) -> None:
        for rcpt in rcpts:
            safe = "".join(c if c.isalnum() else "_" for c in rcpt)[:80]
            name = f"{int(item.created_at)}.M{item.id}_{safe}.{self.hostname}"
            head = f"Return-Path: <{clean(mail_from)}>\r\nDelivered-To: {clean(rcpt)}\r\n"
            tmp = self.root / "tmp" / name
            with open(tmp, "wb") as f:
                f.write(head.encode() + raw)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.root / "new" / name)
        fd = os.open(self.root / "new", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    async def close(self) -> None:
        return None


@dataclass(frozen=True)
class Attempt:
    """One SMTP transaction's outcome, recorded as soon as the relay has answered."""

    item: OutboundItem
    mail_from: str
    raw: bytes
    results: list[RecipientResult]
    # On the last transaction of a delivery run: the run's earlier attempts. The message is
    # then settled (done, retry time, or expired) in the same commit as this answer.
    earlier: tuple[Attempt, ...] | None = None


class Delivery:
    def __init__(
        self,
        store: Store,
        config: Config,
        clock: Clock,
        on_change: Callable[[], None] = lambda: None,
        load: IntakeLoad | None = None,
        personalisers: Mapping[str, Personalise] | None = None,
        signer: Signer | None = None,
        owner: str = "",
    ) -> None:
        self.store = store
        # This node's name on the leases of the messages it sends (several nodes, one
        # PostgreSQL database; unused on SQLite).
        self.owner = owner
        self.lease_seconds = config.storage.lease_seconds
        self.config = config
        self.cfg = config.outbound
        # The [dkim] keys, read once; with none configured every message goes out as it is.
        self.signer = signer or Signer(config.dkim, config.server.domains, clock)
        # Outbound id → the ARC set of its copies, while it is being delivered.
        self._arc_sets: dict[int, bytes] = {}
        # SCHEME → the app's personaliser (see the module's docstring).
        self.personalisers = dict(personalisers or {})
        self.clock = clock
        self.on_change = on_change
        self.load = load or IntakeLoad()
        self.wake = asyncio.Event()
        self.in_flight: set[int] = set()
        self.stopping = False
        self.conduct_key = conduct_key(config)
        self._secret: bytes | None = None
        self._slots = asyncio.Queue[Transport]()
        hostname = config.server.hostname or socket.getfqdn()
        for _ in range(self.cfg.connections):
            if self.cfg.maildir is not None:
                self._slots.put_nowait(MaildirTransport(self.cfg.maildir, hostname))
            else:
                self._slots.put_nowait(RelayTransport(self.cfg, hostname))
        self._tasks: set[asyncio.Task] = set()
        # Connections share commits: each waits for its own answer to be on disk
        # before its next transaction, so a crash resends at most one per connection.
        self.recorder = GroupCommit(store, self._record_attempts)
        # Connections holding relay answers that could not be recorded yet (see _record).
        self.parked = 0
        self.status = WorkerStatus(store, clock, "delivery", on_change)

    async def run(self, status: WorkerStatus | None = None) -> None:
        """Hand due messages to free connections until stopped. A database or disk error
        here (reading what is due, the first write) is logged, and the worker backs off
        (bounded) and tries again; it never ends by itself."""
        self.status = status or self.status
        while not self.stopping:
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - nothing is lost: the queue is in the store
                await asyncio.sleep(self.status.failed(exc))

    async def _step(self) -> None:
        status = self.status
        if not status.backoff.failures:  # else: backing off, until a step goes through
            status.set(self._state(), note=self._note())
        await status.flush()
        if self._secret is None:
            async with self.store.transaction() as tx:
                self._secret = await secrets.get_or_create(tx, "lists")
        self.wake.clear()
        free = self._slots.qsize()
        if free:
            await self.load.quiet(MAX_DEFER_SECONDS)
        items: list[OutboundItem] = []
        next_at = None
        if free:
            now = self.clock.now()
            # Several nodes claim what they send (a write); one SQLite process only reads.
            opened = self.store.transaction() if self.store.shared else self.store.read()
            async with opened as tx:
                items = await outbound.due(
                    tx, now, free, self.in_flight, self.owner, now + self.lease_seconds
                )
                next_at = await outbound.next_due_at(tx) if not items else None
        status.succeeded(self._state(bool(items)))
        shares = connections_for(
            [self._units_estimate(item) for item in items], self._slots.qsize()
        )
        for item, share in zip(items, shares, strict=True):
            self.in_flight.add(item.id)
            transports = [self._slots.get_nowait() for _ in range(share)]
            task = asyncio.create_task(self._deliver(item, transports))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if items:
            self.on_change()  # waiters (Service.wait_until) may watch what is in flight
            return
        # Woken at once by processing; the timeout picks up mail the CLI queued from
        # another process (`mailhub cases close`, `mailhub members --invite`...), and keeps
        # the heartbeat going.
        timeout = poll_seconds(self.store, self.lease_seconds)
        if free and next_at is not None:
            timeout = max(0.01, min(timeout, next_at - self.clock.now()))
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancel that
        # arrives as the wake does, and the stopping service would wait for this loop forever.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.wake.wait()

    def _state(self, working: bool = False) -> str:
        if self.parked:
            return BACKING_OFF
        return RUNNING if working or self.in_flight else IDLE

    def _note(self) -> str:
        if not self.parked:
            return ""
        return f"{self.parked} connection(s) parked: relay answers not yet recorded"

    async def drain(self, grace: float = DRAIN_SECONDS) -> None:
        """SIGTERM: finish the SMTP transactions in flight and record them, then close.

        A relay that stops answering must not hold the shutdown for its whole timeout:
        after `grace` seconds what is still in flight is abandoned. Those recipients stay
        pending and are sent after the restart (the same window as a crash).
        """
        self.stopping = True
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self.recorder.drain()
        while not self._slots.empty():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._slots.get_nowait().close(), grace)

    def _units_estimate(self, item: OutboundItem) -> int:
        """How many SMTP transactions the message will take (before it is unsealed)."""
        size = 1 if self._personaliser(item) else self.cfg.batch_size
        return max(1, -(-len(item.pending) // size))

    def _transactions(self, item: OutboundItem) -> list[list[str]]:
        """The recipients of each SMTP transaction for this message: one each when the
        copy is personalised, otherwise up to `batch_size`."""
        rcpts = list(item.pending)
        size = 1 if self._personaliser(item) else self.cfg.batch_size
        return [rcpts[i : i + size] for i in range(0, len(rcpts), size)]

    def _personaliser(self, item: OutboundItem) -> tuple[Personalise, str] | None:
        """The personaliser for the item's SCHEME and its ARG; None for a plain message (or a
        scheme no app registered: then every recipient gets the queued bytes)."""
        scheme, sep, arg = (item.personalise or "").partition(":")
        hook = self.personalisers.get(scheme) if sep else None
        return (hook, arg) if hook is not None else None

    def _envelope(self, item: OutboundItem, rcpts: list[str]) -> tuple[str, bytes]:
        """Envelope sender and bytes for one transaction. Personalised copies are made one
        at a time, as they are sent, so a large list never holds them all in memory."""
        found = self._personaliser(item)
        if found is None:
            return item.mail_from, item.raw
        personalise, arg = found
        return personalise(self.config, self._secret or b"", arg, item.raw, rcpts[0])

    def _domain(self, item: OutboundItem) -> str | None:
        """The domain the item's copies are signed for; None when it has no key."""
        domain = signing_domain(item.raw, item.mail_from, self.config.server.domains)
        return domain if self.signer.key_for(domain) is not None else None

    def _made(
        self, item: OutboundItem, units: Sequence[list[str]], domain: str | None
    ) -> list[tuple[str, bytes]]:
        """Envelope sender and finished bytes for each transaction in `units`: personalised,
        then (list copies) ARC-sealed, then DKIM-signed. CPU work: run in a worker thread
        when there is signing to do. The signer never raises (unsignable mail goes out
        unsigned, logged)."""
        made = [self._envelope(item, rcpts) for rcpts in units]
        if domain is None:
            return made
        raws = [raw for _, raw in made]
        if item.kind == LIST_POST:
            raws = self._sealed(item, raws, domain)
        raws = self.signer.sign_many(raws, domain)
        return [(mail_from, raw) for (mail_from, _), raw in zip(made, raws, strict=True)]

    def _sealed(self, item: OutboundItem, raws: list[bytes], domain: str) -> list[bytes]:
        """The copies with their ARC set on top (none when no Authentication-Results of ours
        is on them). One set per item when it fits every copy (ONE_SEAL_PER_ITEM), else one
        per run of copies with the same sealed content (seal_many)."""
        srv_id = self.config.authserv_id
        if not ONE_SEAL_PER_ITEM:
            return self.signer.seal_many(raws, domain, srv_id)
        arc = self._arc_sets.get(item.id)
        if arc is None:
            arc = self._arc_sets[item.id] = self.signer.arc_set(raws[0], domain, srv_id)
        return [arc + raw for raw in raws]

    async def _copies(self, item: OutboundItem, units: list[list[str]]) -> list[tuple[str, bytes]]:
        """`_made` for a slice of an item's transactions, off the event loop when signing."""
        domain = self._domain(item)
        if domain is None:
            return self._made(item, units, None)  # as before signing: personalising only
        if self._personaliser(item) is None:
            # One copy for every transaction: signed once.
            (made,) = await asyncio.to_thread(self._made, item, units[:1], domain)
            return [made] * len(units)
        return await asyncio.to_thread(self._made, item, units, domain)

    async def _unsealed(self, item: OutboundItem) -> OutboundItem | None:
        """The item with its raw opened (relay and Maildir alike get the plain message), or
        None when it is sealed with a key that is not configured: it then stays queued,
        tried again later, with one error line."""
        if not item.sealed:
            return item
        raw = unseal(self.conduct_key, item.raw, item.sealed)
        if raw is not None:
            return replace(item, raw=raw, sealed=False)
        logs.event(
            "delivery",
            logging.ERROR,
            outbound_id=item.id,
            kind=item.kind,
            **({"ref": item.case_ref} if item.case_ref else {}),
            outcome="sealed",
            error="sealed with a conduct key that is not configured",
        )
        now = self.clock.now()
        retry_at = next_attempt(item.created_at, item.attempts + 1, now, self.cfg) or now
        async with self.store.transaction() as tx:
            await outbound.postpone(tx, item.id, max(retry_at, now + UNSEALABLE_RETRY_SECONDS))
        return None

    async def _deliver(self, item: OutboundItem, transports: list[Transport]) -> None:
        """Send one message on `transports` (one, or several for a message of many SMTP
        transactions: see `_step`), record every answer as it comes, and settle it."""
        try:
            opened = await self._unsealed(item)
            if opened is None:
                return
            item = opened
            units = self._transactions(item)
            if not units:  # everyone was answered before a restart; only the settling is left
                async with self.store.transaction() as tx:
                    await self._settle(tx, item, (), self.clock.now())
            if len(transports) == 1 or len(units) <= 1:
                await self._send_in_turn(item, units, transports[0])
            else:
                await self._send_side_by_side(item, units, transports)
        except Exception as exc:  # noqa: BLE001 - the item stays queued and is tried again
            logs.event(
                "delivery",
                logging.ERROR,
                outbound_id=item.id,
                outcome="error",
                error=type(exc).__name__,
            )
            logging.getLogger("mailhub").debug("delivery failure", exc_info=True)
            # Back off like a 4xx, so a message that trips a bug cannot spin the worker.
            with contextlib.suppress(Exception):
                now = self.clock.now()
                retry_at = next_attempt(item.created_at, item.attempts + 1, now, self.cfg)
                async with self.store.transaction() as tx:
                    await outbound.settle(tx, item.id, retry_at or now)
        finally:
            self._arc_sets.pop(item.id, None)
            for transport in transports:
                self._slots.put_nowait(transport)
            self.in_flight.discard(item.id)
            self.wake.set()
            self.on_change()

    async def _send_in_turn(
        self, item: OutboundItem, units: list[list[str]], transport: Transport
    ) -> None:
        """Every transaction on one connection; the last answer settles the message in the
        same commit (done, or when to try again)."""
        attempts: list[Attempt] = []
        made: list[tuple[str, bytes]] = []
        for i, rcpts in enumerate(units):
            if self.stopping:
                return  # the rest stays pending, due at once after a restart
            if i % SIGN_BATCH == 0:
                made = await self._copies(item, units[i : i + SIGN_BATCH])
            mail_from, raw = made[i % SIGN_BATCH]
            last = i == len(units) - 1
            earlier = tuple(attempts) if last else None
            attempts.append(await self._send_one(item, transport, mail_from, rcpts, raw, earlier))

    async def _send_side_by_side(
        self, item: OutboundItem, units: list[list[str]], transports: list[Transport]
    ) -> None:
        """A message of many transactions (a list post, one per member) on several
        connections at once: each takes the next batch of copies until none is left. Why:
        a list's posts go out one after another (outbound.due keeps members' copies in the
        order of the posts), so one post must use the connections that several posts used
        to. Settled once every answer is recorded."""
        batches = [units[i : i + SIGN_BATCH] for i in range(0, len(units), SIGN_BATCH)]
        batches.reverse()  # popped from the end: in order
        attempts: list[Attempt] = []

        async def work(transport: Transport) -> None:
            while batches and not self.stopping:
                batch = batches.pop()
                made = await self._copies(item, batch)
                for rcpts, (mail_from, raw) in zip(batch, made, strict=True):
                    if self.stopping:
                        return
                    attempts.append(
                        await self._send_one(item, transport, mail_from, rcpts, raw, None)
                    )

        async with asyncio.TaskGroup() as group:  # one failing cancels the others
            for transport in transports:
                group.create_task(work(transport))
        if self.stopping:
            return  # the rest stays pending, due at once after a restart
        async with self.store.transaction() as tx:
            await self._settle(tx, item, tuple(attempts), self.clock.now())

    async def _send_one(
        self,
        item: OutboundItem,
        transport: Transport,
        mail_from: str,
        rcpts: list[str],
        raw: bytes,
        earlier: tuple[Attempt, ...] | None,
    ) -> Attempt:
        """One SMTP transaction, its answer recorded before this connection sends again."""
        results = await transport.send(mail_from, rcpts, raw, item)
        attempt = Attempt(item, mail_from, raw, results, earlier)
        try:
            await self.recorder.submit(attempt)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not is_storage_error(exc):
                raise  # a bug, not the database: reported by _deliver
            await self._park(attempt, exc)
        self._log(attempt)
        return attempt

    async def _park(self, attempt: Attempt, exc: Exception) -> None:
        """The relay's answers could not be recorded (`exc`: the database is locked, the
        disk is full): this connection is parked until they are.

        The relay has taken the message: if the answers were dropped here, the item would
        still be due and go out again, once per retry, for as long as the database fails.
        So the answers stay in memory and recording them is tried again (bounded back-off)
        before this connection sends anything else. Only if the process dies meanwhile does
        the message go out once more after a restart. One log line when a connection parks
        and one when it has recorded.
        """
        backoff = Backoff()
        delay = backoff.failed()
        self.parked += 1
        self.status.noted(exc)
        self.status.set(BACKING_OFF, note=self._note())
        logs.event(
            "delivery",
            logging.ERROR,
            outbound_id=attempt.item.id,
            outcome="parked",
            error=type(exc).__name__,
            answers=len(attempt.results),
            retry_in=f"{delay:g}s",
        )
        try:
            while True:
                await asyncio.sleep(delay)
                try:
                    await self.recorder.submit(attempt)
                except asyncio.CancelledError:
                    raise
                except Exception as again:
                    if not is_storage_error(again):
                        raise
                    self.status.noted(again)
                    delay = backoff.failed()
                    continue
                failures, seconds = backoff.succeeded() or (1, 0.0)
                logs.event(
                    "delivery",
                    outbound_id=attempt.item.id,
                    outcome="recorded",
                    tries=failures + 1,
                    after=f"{seconds:.1f}s",
                )
                return
        finally:
            self.parked -= 1
            self.status.set(self._state(), note=self._note())

    async def _record_attempts(self, tx: Tx, attempts: list[Attempt]) -> None:
        now = self.clock.now()
        # One statement for the whole batch: personalised mail records one recipient per
        # attempt, and each statement is a trip to SQLite's thread.
        await outbound.record_recipients(
            tx, [(a.item.id, r) for a in attempts for r in a.results], now
        )
        for a in attempts:
            await self._bounce(tx, a, [r for r in a.results if r.state == "bounced"], now)
            if a.earlier is not None:
                await self._settle(tx, a.item, (*a.earlier, a), now)

    async def _bounce(self, tx: Tx, a: Attempt, failed: list[RecipientResult], now: float) -> None:
        """One DSN to the envelope sender for the recipients that failed; never to <>."""
        if not failed or not a.mail_from:
            return
        dsn = build_dsn(
            domain=self.config.server.domain,
            hostname=self.config.server.hostname,
            original_raw=a.raw,
            envelope_sender=a.mail_from,
            failures=[(r.rcpt, r.reply) for r in failed],
            now=now,
            loop_id=f"mailhub@{self.config.server.domain}",
        )
        await outbound.insert(
            tx,
            message_id=str(dsn["Message-ID"]),
            mail_from="",
            rcpts=[a.mail_from],
            raw=to_bytes(dsn),
            kind="dsn",
            source=f"outbound:{a.item.id}",
            now=now,
        )
        self.wake.set()

    async def _settle(
        self, tx: Tx, item: OutboundItem, attempts: tuple[Attempt, ...], now: float
    ) -> None:
        """Done, or when to try again; past max_age, give up on the rest and tell the sender."""
        pending = any(r.state == "pending" for a in attempts for r in a.results)
        retry_at = (
            next_attempt(item.created_at, item.attempts + 1, now, self.cfg) if pending else None
        )
        if pending and retry_at is None:
            for a in attempts:
                expired = [
                    RecipientResult(r.rcpt, "expired", r.reply)
                    for r in a.results
                    if r.state == "pending"
                ]
                await outbound.record_recipients(tx, [(item.id, r) for r in expired], now)
                await self._bounce(tx, a, expired, now)
        await outbound.settle(tx, item.id, retry_at)

    def _log(self, a: Attempt) -> None:
        for state in ("sent", "pending", "bounced"):
            group = [r for r in a.results if r.state == state]
            if not group:
                continue
            if is_conduct_kind(a.item.kind):
                # Case mail: the reference and counts only. Who received it would show who
                # was recused, and a relay's reply text can quote the address.
                logs.event(
                    "delivery",
                    outbound_id=a.item.id,
                    kind=a.item.kind,
                    ref=a.item.case_ref or "-",
                    source=a.item.source,
                    count=len(group),
                    outcome=state,
                    attempt=a.item.attempts + 1,
                    reply=_status(group[0].reply),
                )
            else:
                logs.event(
                    "delivery",
                    outbound_id=a.item.id,
                    kind=a.item.kind,
                    source=a.item.source,
                    mail_from=a.mail_from or "<>",
                    rcpts=[r.rcpt for r in group],
                    outcome=state,
                    size=len(a.raw),
                    attempt=a.item.attempts + 1,
                    reply=group[0].reply[:120],
                )
