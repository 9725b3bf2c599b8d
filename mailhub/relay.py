"""Sending to the relay: one SMTP transaction per call, over aiosmtplib (>= 5.1.3).

aiosmtplib opens the connection, says EHLO, starts TLS and logs in. The transaction
is driven command by command with `execute_command`, which refuses CR/LF in what it
writes. The addresses come from our own queue and are checked here before they are
written, so aiosmtplib's address parsing (a third of the CPU of a delivery when
profiled) is skipped, and the DATA bytes are prepared once per message rather than
once per transaction. aiosmtplib reads one reply per command, so PIPELINING is not used.
"""

from __future__ import annotations

import re

import aiosmtplib

from mailhub.config import OutboundConfig
from mailhub.store.outbound import OutboundItem, RecipientResult

TIMEOUT = 60.0
# What an address on the wire may hold: printable, no space, no angle brackets.
_SAFE_ADDRESS = re.compile(r"[^\x00-\x20\x7f<>]+@[^\x00-\x20\x7f<>@]+")
_BARE_LF = re.compile(rb"(?<!\r)\n")
_LEADING_DOT = re.compile(rb"^\.", re.MULTILINE)


def wire_data(raw: bytes) -> bytes:
    """The DATA payload: CRLF line endings, leading dots doubled, the final dot line."""
    if _BARE_LF.search(raw):
        raw = _BARE_LF.sub(b"\r\n", raw)
    raw = _LEADING_DOT.sub(b"..", raw)
    if not raw.endswith(b"\r\n"):
        raw += b"\r\n"
    return raw + b".\r\n"


def _result(rcpt: str, code: int, message: str) -> RecipientResult:
    if 200 <= code < 300:
        return RecipientResult(rcpt, "sent", f"{code} {message}")
    state = "bounced" if 500 <= code < 600 else "pending"
    return RecipientResult(rcpt, state, f"{code} {message}")


class RelayTransport:
    """One persistent connection to the relay, reused across messages."""

    def __init__(self, cfg: OutboundConfig, hostname: str) -> None:
        self.cfg = cfg
        self.hostname = hostname
        self.client: aiosmtplib.SMTP | None = None
        self._prepared: tuple[bytes, bytes] | None = None

    async def _connect(self) -> aiosmtplib.SMTP:
        if self.client is not None and self.client.is_connected:
            return self.client
        client = aiosmtplib.SMTP(
            hostname=self.cfg.relay_host,
            port=self.cfg.relay_port,
            local_hostname=self.hostname,
            start_tls=self.cfg.starttls,
            timeout=TIMEOUT,
        )
        await client.connect()
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
        self.client = client
        return client

    async def close(self) -> None:
        if self.client is not None:
            try:
                await self.client.quit()
            except (aiosmtplib.SMTPException, OSError):
                self.client.close()
            self.client = None

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
            client = await self._connect()
            params = self._mail_params(client, mail_from, rcpts, raw)
            if params is None:
                return results + [
                    RecipientResult(
                        r, "bounced", "553 5.6.7 the relay does not take UTF-8 addresses"
                    )
                    for r in rcpts
                ]
            results += await self._transaction(client, mail_from, params, rcpts, raw)
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            await self._drop()
            results += [
                RecipientResult(r, "pending", f"451 4.4.1 connection failed: {type(exc).__name__}")
                for r in rcpts
            ]
        return results

    @staticmethod
    def _mail_params(
        client: aiosmtplib.SMTP, mail_from: str, rcpts: list[str], raw: bytes
    ) -> str | None:
        params = ""
        if any(not a.isascii() for a in [mail_from, *rcpts]):
            if not client.supports_extension("smtputf8"):
                return None
            params += " SMTPUTF8"
        if not raw.isascii() and client.supports_extension("8bitmime"):
            params += " BODY=8BITMIME"
        return params

    async def _transaction(
        self, client: aiosmtplib.SMTP, mail_from: str, params: str, rcpts: list[str], raw: bytes
    ) -> list[RecipientResult]:
        mail = await client.execute_command(
            f"MAIL FROM:<{mail_from}>{params}".encode(), timeout=TIMEOUT
        )
        if mail.code >= 300:
            await self._reset(client)
            return [_result(r, mail.code, mail.message) for r in rcpts]
        results: list[RecipientResult] = []
        accepted: list[str] = []
        for r in rcpts:
            reply = await client.execute_command(f"RCPT TO:<{r}>".encode(), timeout=TIMEOUT)
            if reply.code < 300:
                accepted.append(r)
            else:
                results.append(_result(r, reply.code, reply.message))
        if not accepted:
            await self._reset(client)
            return results
        final = await client.execute_command(b"DATA", timeout=TIMEOUT)
        if final.code == 354:
            assert client.protocol is not None
            client.protocol.write(self._data(raw))
            final = await client.protocol.read_response(timeout=TIMEOUT)
        if not 200 <= final.code < 300:
            await self._reset(client)
        return results + [_result(r, final.code, final.message) for r in accepted]

    async def _reset(self, client: aiosmtplib.SMTP) -> None:
        try:
            await client.execute_command(b"RSET", timeout=TIMEOUT)
        except (TimeoutError, aiosmtplib.SMTPException, OSError):
            await self._drop()

    async def _drop(self) -> None:
        if self.client is not None:
            self.client.close()
        self.client = None
