"""A real SMTP sink on loopback (aiosmtpd) standing in for the relay.

It records every message per recipient and can be scripted to answer RCPT with
a given code for an address (e.g. 451 once, then 250; or 550 always). Like Postfix it
advertises PIPELINING (aiosmtpd reads pipelined commands correctly but does not say
so); `pipelining = False` makes it a relay that does not, so both ways of sending run.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

from aiosmtpd.smtp import SMTP


@dataclass
class Received:
    mail_from: str
    rcpt: str
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        return BytesParser(policy=policy.default).parsebytes(self.raw)  # type: ignore[return-value]


class Sink:
    def __init__(self, pipelining: bool = True, tls_context: ssl.SSLContext | None = None) -> None:
        self.pipelining = pipelining
        self.tls_context = tls_context  # given: STARTTLS offered and required
        self.received: list[Received] = []
        self.transactions = 0
        self._changed = asyncio.Condition()
        # address -> list of replies to give in turn (the last one repeats)
        self.scripts: dict[str, list[str]] = {}
        self.port = 0
        self._server: asyncio.Server | None = None

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: ANN001
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: ANN001
        script = self.scripts.get(address.lower())
        if script:
            reply = script.pop(0) if len(script) > 1 else script[0]
            if not reply.startswith("250"):
                return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001
        async with self._changed:
            self.transactions += 1
            for rcpt in envelope.rcpt_tos:
                sender = "" if envelope.mail_from == "<>" else envelope.mail_from
                self.received.append(Received(sender, rcpt.lower(), envelope.original_content))
            self._changed.notify_all()
        return "250 2.0.0 OK"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(
                self,
                decode_data=False,
                enable_SMTPUTF8=True,
                hostname="sink",
                tls_context=self.tls_context,
                require_starttls=self.tls_context is not None,
            ),
            host="127.0.0.1",
            port=0,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    def to(self, rcpt: str) -> list[Received]:
        return [r for r in self.received if r.rcpt == rcpt.lower()]

    async def wait_for(
        self, predicate: Callable[[list[Received]], bool], timeout: float = 10.0
    ) -> list[Received]:
        """Wait until `predicate(received)` holds; fails the test on timeout."""

        async def wait() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: predicate(self.received))

        await asyncio.wait_for(wait(), timeout)
        return self.received

    async def wait_count(self, rcpt: str, n: int = 1, timeout: float = 10.0) -> list[Received]:
        await self.wait_for(lambda rs: len([r for r in rs if r.rcpt == rcpt.lower()]) >= n, timeout)
        return self.to(rcpt)
