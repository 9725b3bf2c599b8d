"""Sending to the relay: one SMTP transaction per call.

aiosmtplib (>= 5.1.3) opens the connection, says EHLO, starts TLS and logs in: the
parts where a mistake costs security. The transaction itself (MAIL, RCPT, DATA) is then
written on the same transport by `ReplyReader`, because aiosmtplib reads exactly one
reply per command and drops replies that arrive early, so it cannot use PIPELINING
(RFC 2920). With a relay that advertises PIPELINING the envelope goes in one write and
a transaction costs two round trips however many recipients it has (instead of 2 + one
per recipient); without it, commands go one at a time, as before.

Nothing is written that was not checked here first: the addresses come from our own
queue and must match `_SAFE_ADDRESS` (no CR, LF, space, control characters or angle
brackets), so no command can be injected. The DATA bytes are prepared once per message
rather than once per transaction.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque

import aiosmtplib

from mailhub.config import OutboundConfig
from mailhub.messages import needs_smtputf8
from mailhub.store.outbound import OutboundItem, RecipientResult

TIMEOUT = 60.0
QUIT_TIMEOUT = 5.0
# A relay's unparsed reply bytes past this are a broken or hostile relay.
MAX_REPLY_BYTES = 1 << 20
# What an address on the wire may hold: printable, no space, no angle brackets.
_SAFE_ADDRESS = re.compile(r"[^\x00-\x20\x7f<>]+@[^\x00-\x20\x7f<>@]+")
_BARE_LF = re.compile(rb"(?<!\r)\n")
_LEADING_DOT = re.compile(rb"^\.", re.MULTILINE)


def wire_data(raw: bytes) -> bytes:
    """The DATA payload: CRLF line endings, leading dots doubled, the final dot line."""
    # The searches are skipped when a cheap count shows there is nothing to change,
    # as is almost always the case: this runs once per personalised copy.
    if raw.count(b"\n") != raw.count(b"\r\n"):
        raw = _BARE_LF.sub(b"\r\n", raw)
    if raw.startswith(b".") or b"\n." in raw:
        raw = _LEADING_DOT.sub(b"..", raw)
    if not raw.endswith(b"\r\n"):
        raw += b"\r\n"
    return raw + b".\r\n"


def _result(rcpt: str, code: int, message: str) -> RecipientResult:
    if 200 <= code < 300:
        return RecipientResult(rcpt, "sent", f"{code} {message}")
    state = "bounced" if 500 <= code < 600 else "pending"
    return RecipientResult(rcpt, state, f"{code} {message}")


class RelayError(Exception):
    """The relay connection broke, or the relay spoke something that is not SMTP."""


class ReplyReader(asyncio.Protocol):
    """SMTP replies off a connection, in order, however many arrive in one read."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self._buffer = bytearray()
        self._lines: list[str] = []
        self._replies: deque[tuple[int, str]] = deque()
        self._error: RelayError | None = None
        self._waiter: asyncio.Future[None] | None = None
        transport.set_protocol(self)

    def data_received(self, data: bytes) -> None:
        self._buffer.extend(data)
        while (end := self._buffer.find(b"\n")) >= 0:
            line = bytes(self._buffer[: end + 1]).rstrip(b"\r\n")
            del self._buffer[: end + 1]
            if len(line) < 3 or not line[:3].isdigit() or line[3:4] not in (b"", b" ", b"-"):
                self._fail(RelayError("malformed reply from the relay"))
                return
            self._lines.append(line[4:].decode("utf-8", "replace"))
            if line[3:4] != b"-":
                self._replies.append((int(line[:3]), "\n".join(self._lines)))
                self._lines = []
        if len(self._buffer) > MAX_REPLY_BYTES:
            self._fail(RelayError("reply from the relay too long"))
        self._wake()

    def eof_received(self) -> bool:
        self._fail(RelayError("the relay closed the connection"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(RelayError("connection to the relay lost"))

    def _fail(self, error: RelayError) -> None:
        if self._error is None:
            self._error = error
        self._wake()
        if not self.transport.is_closing():
            self.transport.close()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def replies(self, count: int) -> list[tuple[int, str]]:
        """The next `count` replies. A pipelined group's replies usually arrive in one
        read, so this wakes once per group, not once per command."""
        if len(self._replies) < count:
            async with asyncio.timeout(TIMEOUT):
                while len(self._replies) < count:
                    if self._error is not None:
                        raise self._error
                    self._waiter = asyncio.get_running_loop().create_future()
                    try:
                        await self._waiter
                    finally:
                        self._waiter = None
        return [self._replies.popleft() for _ in range(count)]

    async def reply(self) -> tuple[int, str]:
        return (await self.replies(1))[0]

    def write(self, data: bytes) -> None:
        if self._error is not None:
            raise self._error
        if self.transport.is_closing():
            raise RelayError("connection to the relay lost")
        self.transport.write(data)


class Session:
    """One connection to the relay after the handshake, and what the relay offers."""

    def __init__(self, client: aiosmtplib.SMTP) -> None:
        assert client.protocol is not None and client.protocol.transport is not None
        self.pipelining = client.supports_extension("pipelining")
        self.smtputf8 = client.supports_extension("smtputf8")
        self.eightbit = client.supports_extension("8bitmime")
        self.reader = ReplyReader(client.protocol.transport)

    async def exchange(self, commands: list[bytes]) -> list[tuple[int, str]]:
        """Each command's reply. Pipelined when the relay allows it (RFC 2920 lets a group
        end with DATA); otherwise one at a time."""
        if self.pipelining:
            self.reader.write(b"".join(c + b"\r\n" for c in commands))
            return await self.reader.replies(len(commands))
        replies = []
        for command in commands:
            self.reader.write(command + b"\r\n")
            replies.append(await self.reader.reply())
        return replies

    @property
    def open(self) -> bool:
        return self.reader._error is None and not self.reader.transport.is_closing()

    def close(self) -> None:
        self.reader.transport.close()


class RelayTransport:
    """One persistent connection to the relay, reused across messages."""

    def __init__(self, cfg: OutboundConfig, hostname: str) -> None:
        self.cfg = cfg
        self.hostname = hostname
        self.session: Session | None = None
        self._prepared: tuple[bytes, bytes] | None = None

    async def _connect(self) -> Session:
        if self.session is not None and self.session.open:
            return self.session
        client = aiosmtplib.SMTP(
            hostname=self.cfg.relay_host,
            port=self.cfg.relay_port,
            local_hostname=self.hostname,
            start_tls=self.cfg.starttls,
            timeout=TIMEOUT,
        )
        await client.connect()
        try:
            if client.is_ehlo_or_helo_needed:
                try:
                    await client.ehlo()
                except aiosmtplib.SMTPHeloError:
                    await client.helo()
            if self.cfg.username:
                password = ""
                if self.cfg.password_file:
                    password = self.cfg.password_file.read_text().strip()
                await client.login(self.cfg.username, password)
        except BaseException:
            client.close()
            raise
        self.session = Session(client)
        return self.session

    async def close(self) -> None:
        if self.session is not None:
            try:
                if self.session.open:
                    await asyncio.wait_for(self.session.exchange([b"QUIT"]), QUIT_TIMEOUT)
            except (TimeoutError, RelayError, OSError):
                pass
            self.session.close()
            self.session = None

    def _data(self, raw: bytes) -> bytes:
        # Bulk mail sends the same bytes in many transactions: prepare them once.
        if self._prepared is None or self._prepared[0] is not raw:
            self._prepared = (raw, wire_data(raw))
        return self._prepared[1]

    async def send(
        self, mail_from: str, rcpts: list[str], raw: bytes, item: OutboundItem
    ) -> list[RecipientResult]:
        unsafe = [r for r in rcpts if not _SAFE_ADDRESS.fullmatch(r)]
        results = [RecipientResult(r, "bounced", "553 5.1.3 invalid address") for r in unsafe]
        rcpts = [r for r in rcpts if r not in unsafe]
        if mail_from and not _SAFE_ADDRESS.fullmatch(mail_from):
            return results + [
                RecipientResult(r, "bounced", "553 5.1.3 invalid sender") for r in rcpts
            ]
        if not rcpts:
            return results
        try:
            session = await self._connect()
            params = self._mail_params(session, mail_from, rcpts, raw)
            if params is None:
                return results + [
                    RecipientResult(
                        r,
                        "bounced",
                        "553 5.6.7 the relay does not offer SMTPUTF8, which this message's"
                        " internationalised (UTF-8) addresses need",
                    )
                    for r in rcpts
                ]
            results += await self._transaction(session, mail_from, params, rcpts, raw)
        except (TimeoutError, aiosmtplib.SMTPException, RelayError, OSError) as exc:
            self._drop()
            results += [
                RecipientResult(r, "pending", f"451 4.4.1 connection failed: {type(exc).__name__}")
                for r in rcpts
            ]
        except BaseException:
            # Cancelled mid-transaction (shutdown): the relay may be waiting for the rest
            # of DATA, so this connection can carry nothing more, not even QUIT.
            self._drop()
            raise
        return results

    @staticmethod
    def _mail_params(session: Session, mail_from: str, rcpts: list[str], raw: bytes) -> str | None:
        """The MAIL parameters, or None when the message needs SMTPUTF8 (a UTF-8 address in
        the envelope or its headers) and the relay does not offer it."""
        params = ""
        if any(not a.isascii() for a in [mail_from, *rcpts]) or needs_smtputf8(raw):
            if not session.smtputf8:
                return None
            params += " SMTPUTF8"
        if not raw.isascii() and session.eightbit:
            params += " BODY=8BITMIME"
        return params

    async def _transaction(
        self, session: Session, mail_from: str, params: str, rcpts: list[str], raw: bytes
    ) -> list[RecipientResult]:
        commands = [f"MAIL FROM:<{mail_from}>{params}".encode()]
        commands += [f"RCPT TO:<{r}>".encode() for r in rcpts]
        commands.append(b"DATA")
        replies = await session.exchange(commands)
        mail, rcpt_replies, data = replies[0], replies[1:-1], replies[-1]
        if mail[0] >= 300:
            # The relay refused the sender: every RCPT and the DATA were refused with it.
            if data[0] == 354:
                await self._end_empty_data(session)
            await self._reset(session)
            return [_result(r, *mail) for r in rcpts]
        accepted = [r for r, reply in zip(rcpts, rcpt_replies, strict=True) if reply[0] < 300]
        results = [
            _result(r, *reply)
            for r, reply in zip(rcpts, rcpt_replies, strict=True)
            if reply[0] >= 300
        ]
        if data[0] == 354 and not accepted:
            await self._end_empty_data(session)  # RFC 2920: a 354 with no recipients
        if data[0] != 354 or not accepted:
            await self._reset(session)
            return results + [_result(r, *data) for r in accepted]
        session.reader.write(self._data(raw))
        final = await session.reader.reply()
        if not 200 <= final[0] < 300:
            await self._reset(session)
        return results + [_result(r, *final) for r in accepted]

    @staticmethod
    async def _end_empty_data(session: Session) -> None:
        session.reader.write(b".\r\n")
        await session.reader.reply()

    async def _reset(self, session: Session) -> None:
        try:
            await session.exchange([b"RSET"])
        except (TimeoutError, RelayError, OSError):
            self._drop()

    def _drop(self) -> None:
        if self.session is not None:
            self.session.close()
        self.session = None
