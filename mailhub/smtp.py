"""Intake: the aiosmtpd handler (SMTP or LMTP) and its policy at RCPT and DATA.

The handler is thin: it checks addresses against the router, refuses what it must
with a clear enhanced status code, and hands accepted mail to the group committer,
answering 250 only once the message is on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import MISSING, SMTP, Envelope, Session, syntax

from mailhub import logs
from mailhub.addresses import ordering_key
from mailhub.clock import Clock
from mailhub.config import Config
from mailhub.routing import AddressBook, is_local, resolve
from mailhub.sealing import CONDUCT_ROUTE_PREFIX, conduct_key, seal
from mailhub.smtp_data import read_data
from mailhub.store.batching import GroupCommit
from mailhub.store.inbound import NewInbound, new_queue_id

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SOURCE_ROUTE = re.compile(r"<\s*@")


def has_bare_line_ends_or_nul(raw: bytes) -> bool:
    """A CR or LF that is not part of a CRLF, or a NUL (counted rather than searched with
    a look-behind: this runs on every message)."""
    crlf = raw.count(b"\r\n")
    return b"\x00" in raw or raw.count(b"\n") != crlf or raw.count(b"\r") != crlf


# aiosmtpd's own replies, given the enhanced status codes senders act on.
_DATA_PROBLEMS = {
    "too much data": "552 5.3.4 Message too big for this server",
    "line too long": "500 5.5.2 Line too long: at most 998 characters (RFC 5321 4.5.3.1.6)",
}
_REWRITES = (
    ("552 Error: Too much mail data", "552 5.3.4 Message too big for this server"),
    ("552 Error: message size exceeds", "552 5.3.4 Message too big for this server"),
    ("500 Line too long", "500 5.5.2 Line too long: at most 998 characters (RFC 5321 4.5.3.1.6)"),
)


TEMPORARY_FAILURE = "451 4.3.0 Temporary server error, please try again later"

# How long intake must stay quiet before deferred work starts (see IntakeLoad.quiet).
SETTLE_SECONDS = 0.002
# Larger messages are sealed off the event loop (Fernet takes ~10 ms per MB).
SEAL_INLINE_BYTES = 256 * 1024


class IntakeLoad:
    """How many SMTP transactions are open (from MAIL to the end of DATA).

    The workers (processing, delivery) defer to intake while senders are mid-transaction,
    for at most a bounded time: a burst is accepted at full speed and worked off after,
    the way an MTA's smtpd and queue manager share a machine.
    """

    def __init__(self) -> None:
        self.open = 0
        self._quiet = asyncio.Event()
        self._quiet.set()

    def begin(self, session: Session) -> None:
        if not getattr(session, "mailhub_open", False):
            session.mailhub_open = True  # type: ignore[attr-defined]
            self.open += 1
            self._quiet.clear()

    def end(self, session: Session | None) -> None:
        if session is not None and getattr(session, "mailhub_open", False):
            session.mailhub_open = False  # type: ignore[attr-defined]
            self.open -= 1
            if not self.open:
                self._quiet.set()

    async def quiet(self, max_wait: float) -> None:
        """Return when no transaction has been open for `SETTLE_SECONDS`, or after `max_wait`
        seconds at the latest.

        The settling time matters in a burst: a group commit answers many sessions at once,
        the count drops to zero for the instant before their senders' next MAIL arrives,
        and work started in that instant would hold them all up.
        """
        if not self.open:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max_wait):
                while True:
                    await self._quiet.wait()
                    await asyncio.sleep(SETTLE_SECONDS)
                    if not self.open:
                        return


class Intake:
    """The aiosmtpd handler."""

    def __init__(
        self,
        config: Config,
        clock: Clock,
        committer: GroupCommit[NewInbound],
        load: IntakeLoad | None = None,
    ) -> None:
        self.config = config
        self.book = AddressBook.from_config(config)
        self.clock = clock
        self.committer = committer
        self.load = load or IntakeLoad()
        self.connections = 0
        self.peers: dict[str, int] = {}  # open connections per client address
        self.conduct_key = conduct_key(config)

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if _CONTROL.search(address):
            return "553 5.1.3 Control characters are not allowed in an address"
        if len(address.rpartition("@")[0].encode()) > 64:
            return "553 5.1.3 Local part longer than 64 octets"
        # Kept as "<>" in the session (aiosmtpd treats an empty mail_from as "no MAIL yet");
        # the queue stores the null sender as "".
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        self.load.begin(session)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if _CONTROL.search(address):
            return "553 5.1.3 Control characters are not allowed in an address"
        local, at, domain = address.rpartition("@")
        if not at or not local:
            return "553 5.1.3 Address must be user@domain"
        if len(local.encode()) > 64:
            return "553 5.1.3 Local part longer than 64 octets"
        if not is_local(address, self.book):
            return "550 5.7.1 Relaying denied"
        if len(envelope.rcpt_tos) >= self.config.server.max_recipients:
            return "452 4.5.3 Too many recipients"
        if resolve(address, self.book) is None:
            return "550 5.1.1 No such address here"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_RSET(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.load.end(session)
        return "250 2.0.0 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        try:
            return await self._data(session, envelope)
        finally:
            self.load.end(session)

    async def _data(self, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        rcpts = tuple(envelope.rcpt_tos)
        mail_from = "" if envelope.mail_from in (None, "<>") else envelope.mail_from
        resolved = [r for r in (resolve(a, self.book) for a in rcpts) if r]
        routes = [r.name for r in resolved]
        # Mail for a conduct case: sealed before it is stored, and logged without sender
        # or recipients (they would tie a reporter, or a recused member, to the case).
        conduct = any(name.startswith(CONDUCT_ROUTE_PREFIX) for name in routes)
        if has_bare_line_ends_or_nul(raw):
            who = (
                {"route": "conduct"}
                if conduct
                else {"mail_from": mail_from or "<>", "rcpts": rcpts, "size": len(raw)}
            )
            logs.event("received", **who, outcome="refused", reason="bare CR/LF or NUL")
            return self._per_rcpt(
                rcpts, "550 5.5.2 Bare CR, bare LF or NUL in message; send lines ending in CRLF"
            )
        queue_id = new_queue_id()
        peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer)
        try:
            stored, sealed = raw, False
            if conduct:
                stored, sealed = await self._seal(raw)
            await self.committer.submit(
                NewInbound(
                    queue_id,
                    self.clock.now(),
                    mail_from,
                    rcpts,
                    stored,
                    peer,
                    sealed=sealed,
                    conduct=conduct,
                    size=len(raw),
                    order_key=ordering_key(resolved),
                )
            )
        except Exception as exc:  # noqa: BLE001 - whatever kept it off the disk, 451
            # The write lock held by another process past busy_timeout, a full disk, a
            # closed database: nothing was stored, so the sender must try again later. The
            # answer is per recipient (LMTP), and the session goes on (a later MAIL works).
            logs.event(
                "received",
                logging.WARNING,
                queue_id=queue_id,
                outcome="deferred",
                reason="store",
                error=type(exc).__name__,
            )
            return self._per_rcpt(rcpts, TEMPORARY_FAILURE)
        if conduct:
            logs.event(
                "received", queue_id=queue_id, route="conduct", sealed=sealed, outcome="queued"
            )
        else:
            logs.event(
                "received",
                queue_id=queue_id,
                mail_from=mail_from or "<>",
                rcpts=rcpts,
                routes=routes,
                size=len(raw),
                outcome="queued",
            )
        return self._per_rcpt(rcpts, f"250 2.0.0 OK queued as {queue_id}")

    async def _seal(self, raw: bytes) -> tuple[bytes, bool]:
        """Encrypt with the conduct key, if one is configured (mailhub.sealing)."""
        if self.conduct_key is None or len(raw) <= SEAL_INLINE_BYTES:
            return seal(self.conduct_key, raw)
        return await asyncio.to_thread(seal, self.conduct_key, raw)

    def _per_rcpt(self, rcpts: tuple[str, ...], status: str) -> str:
        # LMTP answers once per recipient (RFC 2033 §4.2); the whole message is
        # committed together, so each recipient gets the same answer.
        if self.config.server.lmtp:
            return "\r\n".join([status] * len(rcpts))
        return status

    async def handle_exception(self, error: Exception) -> str:
        logs.event("session", logging.ERROR, outcome="error", error=type(error).__name__)
        return TEMPORARY_FAILURE


class _Hardened:
    """What aiosmtpd leaves open by default, closed.

    Connections are capped in all and per client address. Each session has a budget of
    commands between accepted messages, and a lifetime: every command line counts, the ones aiosmtpd answers itself
    (unknown verbs, bad syntax, lines too long) included, because NOOP or RSET would
    otherwise reset the idle timer forever. Past either, the session gets `421 4.7.0`
    before the command runs, and is closed.
    """

    event_handler: Intake

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        server: Any = self
        server._smtp_methods = {
            verb: self._budgeted(method) for verb, method in server._smtp_methods.items()
        }
        self._commands = 0
        self._in_command = False  # a command's method is running (its replies are its own)
        self._greeted = False
        self._done = False  # closed by us: nothing more is said or run
        self._started = 0.0
        self._peer_ip = ""

    def connection_made(self, transport: Any) -> None:
        handler = self.event_handler
        server = handler.config.server
        peer = transport.get_extra_info("peername")
        ip = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        refusal = None
        if handler.connections >= server.max_connections:
            refusal = b"421 4.3.2 Too many connections, try again later\r\n"
        elif handler.peers.get(ip, 0) >= server.max_connections_per_peer:
            refusal = b"421 4.7.0 Too many connections from your address, try again later\r\n"
        if refusal is not None:
            transport.write(refusal)
            transport.close()
            self._refused = True
            return
        self._refused = False
        handler.connections += 1
        handler.peers[ip] = handler.peers.get(ip, 0) + 1
        self._peer_ip = ip
        self._started = time.monotonic()
        super().connection_made(transport)  # type: ignore[misc]

    def connection_lost(self, error: Exception | None) -> None:
        if getattr(self, "_refused", True):
            return
        handler = self.event_handler
        handler.connections -= 1
        left = handler.peers.get(self._peer_ip, 1) - 1
        if left > 0:
            handler.peers[self._peer_ip] = left
        else:
            handler.peers.pop(self._peer_ip, None)
        handler.load.end(getattr(self, "session", None))
        super().connection_lost(error)  # type: ignore[misc]

    def _budgeted(self, method: Callable[[Any], Awaitable[None]]) -> Callable:
        @functools.wraps(method)  # keeps the syntax aiosmtpd's HELP reads from it
        async def run(arg: Any) -> None:
            reason = self._count()
            if reason:
                await self._close(reason)
                return
            self._in_command = True
            try:
                await method(arg)
            finally:
                self._in_command = False

        return run

    def _count(self) -> str:
        """Count one command: why the session must end now, or '' (no await: this runs for
        every command, and intake's speed is counted in microseconds)."""
        if self._done:
            return "closed"
        self._commands += 1
        server = self.event_handler.config.server
        if self._commands > server.max_commands_per_session:
            return "Too many commands in one session"
        if time.monotonic() - self._started > server.max_session_time:
            return "Session lasted too long"
        return ""

    async def _close(self, reason: str) -> None:
        """Say 421 and close (once)."""
        if self._done:
            return
        self._done = True
        logs.event("session", peer=self._peer_ip, outcome="closed", reason=reason.lower())
        await super().push(f"421 4.7.0 {reason}, closing connection")  # type: ignore[misc]
        transport: Any = getattr(self, "transport", None)
        if transport is not None:
            transport.close()

    async def push(self, status: Any) -> None:
        if self._done:
            return
        # aiosmtpd's own answer to a line that reached no command (an unknown verb, bad
        # syntax, a line too long): the line counts like any command.
        if self._greeted and not self._in_command:
            reason = self._count()
            if reason:
                await self._close(reason)
                return
        self._greeted = True
        if isinstance(status, str):
            for prefix, replacement in _REWRITES:
                if status.startswith(prefix):
                    status = replacement
                    break
        await super().push(status)  # type: ignore[misc]

    async def smtp_MAIL(self, arg: str | None) -> None:
        if await self._refuse_address(arg):
            return
        await super().smtp_MAIL(arg)  # type: ignore[misc]

    async def smtp_RCPT(self, arg: str | None) -> None:
        if await self._refuse_address(arg):
            return
        await super().smtp_RCPT(arg)  # type: ignore[misc]

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA, with the message read in large pieces (see smtp_data)."""
        server: Any = self
        if await server.check_helo_needed() or await server.check_auth_needed("DATA"):
            return
        if not server.envelope.rcpt_tos:
            await self.push("503 5.5.1 Error: need RCPT command")
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        # Every answer after the data is given once per accepted recipient under LMTP
        # (RFC 2033 4.2), refusals and errors included: an MTA waits for each of them.
        rcpts = tuple(server.envelope.rcpt_tos)
        try:
            data = await read_data(server._reader, server.data_size_limit, server.line_length_limit)
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception as exc:  # noqa: BLE001 - where the data ends is unknown: close
            server._set_post_data_state()
            logs.event("session", logging.ERROR, outcome="error", error=type(exc).__name__)
            await self.push(self.event_handler._per_rcpt(rcpts, TEMPORARY_FAILURE))
            self._done = True  # the rest of the stream cannot be read as commands
            transport: Any = getattr(self, "transport", None)
            if transport is not None:
                transport.close()
            return
        if data.problem is not None:
            server._set_post_data_state()
            await self.push(self.event_handler._per_rcpt(rcpts, _DATA_PROBLEMS[data.problem]))
            return
        server.envelope.content = server.envelope.original_content = data.content
        try:
            status = await server._call_handler_hook("DATA")
        except Exception as exc:  # noqa: BLE001 - nothing stored: try again later
            status = await self.event_handler.handle_exception(exc)
            status = self.event_handler._per_rcpt(rcpts, status)
        server._set_post_data_state()
        if isinstance(status, str) and "250 2.0.0" in status:
            # The budget is for commands that carry no mail: an MTA that keeps one session
            # for thousands of messages (Postfix's connection cache) is never cut off.
            self._commands = 0
        await self.push("250 OK" if status is MISSING else status)

    async def _refuse_address(self, arg: str | None) -> bool:
        if arg is None:
            return False
        if _CONTROL.search(arg):
            await self.push("553 5.1.3 Control characters are not allowed in an address")
            return True
        # A source route (<@relay:user@domain>) asks us to relay; we never do.
        if _SOURCE_ROUTE.search(arg):
            await self.push("553 5.1.3 Source routes are not accepted")
            return True
        return False


class HardenedSMTP(_Hardened, SMTP):
    pass


class HardenedLMTP(_Hardened, LMTP):
    pass


def protocol_factory(config: Config, intake: Intake) -> Callable[[], SMTP]:
    cls = HardenedLMTP if config.server.lmtp else HardenedSMTP

    def factory() -> SMTP:
        return cls(
            intake,
            data_size_limit=config.server.max_message_bytes,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=config.server.hostname,
            ident="mailhub",
            timeout=config.server.session_timeout,
        )

    return factory
