"""LMTP answers after DATA once per accepted recipient (RFC 2033 4.2), whatever the answer.

An MTA (Postfix's lmtp client) reads one reply per recipient that RCPT accepted, and waits
for a missing one until it times out: refusals and errors must be repeated too. Spoken over
real LMTP with a raw client, so every line the server writes is seen.
"""

from __future__ import annotations

import asyncio

import pytest

from mailhub.smtp import Intake
from tests.support.hub import DOMAIN, message, running_hub

RCPTS = [f"enquiries@{DOMAIN}", f"postmaster@{DOMAIN}", f"abuse@{DOMAIN}"]


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def reply(self) -> bytes:
        """One whole reply (its last line)."""
        while True:
            line = await asyncio.wait_for(self.reader.readline(), 10)
            if not line:
                raise ConnectionError("closed")
            if line[3:4] != b"-":
                return line

    async def command(self, line: bytes) -> bytes:
        self.writer.write(line + b"\r\n")
        return await self.reply()


async def lmtp_transaction(port: int, rcpts: list[str], data: bytes) -> tuple[list[bytes], bytes]:
    """The replies after the data (one per recipient), and the reply to a NOOP sent after
    them: the NOOP's own 250 shows that no reply was missing and none was extra."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    client = Client(reader, writer)
    try:
        await client.reply()
        assert (await client.command(b"LHLO client.example.net")).startswith(b"250")
        assert (await client.command(b"MAIL FROM:<sam@example.net>")).startswith(b"250")
        for r in rcpts:
            assert (await client.command(f"RCPT TO:<{r}>".encode())).startswith(b"250")
        assert (await client.command(b"DATA")).startswith(b"354")
        writer.write(data + b".\r\n")
        replies = [await client.reply() for _ in rcpts]
        noop = await client.command(b"NOOP")
        return replies, noop
    finally:
        writer.close()


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


ERRORS = {
    "oversize": (crlf(message(body=("x" * 70 + "\n") * 4000)), b"552 5.3.4"),
    "line too long": (crlf(message(body="y" * 1200 + "\n")), b"500 5.5.2"),
    "bare LF": (b"Subject: bare LF\nFrom: sam@example.net\n\nbody\n\r\n", b"550 5.5.2"),
    "bare CR": (b"Subject: bare CR\r\nFrom: sam@example.net\r\n\r\nbo\rdy\r\n", b"550 5.5.2"),
}


@pytest.mark.parametrize("count", [2, 3])
@pytest.mark.parametrize("kind", list(ERRORS))
async def test_refusals_after_data_are_repeated_per_recipient(tmp_path, kind, count):
    data, expected = ERRORS[kind]
    async with running_hub(tmp_path, lmtp=True) as hub:
        replies, noop = await lmtp_transaction(hub.port, RCPTS[:count], data)
        await hub.idle()
        assert hub.sink.received == []
    assert [r[:9] for r in replies] == [expected] * count
    assert noop.startswith(b"250")


@pytest.mark.parametrize("count", [2, 3])
async def test_a_store_failure_is_451_per_recipient(tmp_path, count):
    async with running_hub(tmp_path, lmtp=True) as hub:
        await hub.service.store.conn.close()
        replies, noop = await lmtp_transaction(hub.port, RCPTS[:count], crlf(message()))
    assert [r[:9] for r in replies] == [b"451 4.3.0"] * count
    assert noop.startswith(b"250")


@pytest.mark.parametrize("count", [2, 3])
async def test_an_internal_error_is_451_per_recipient(tmp_path, count, monkeypatch):
    async def broken(self, session, envelope):  # noqa: ANN001
        raise RuntimeError("a bug in intake")

    monkeypatch.setattr(Intake, "_data", broken)
    async with running_hub(tmp_path, lmtp=True) as hub:
        replies, noop = await lmtp_transaction(hub.port, RCPTS[:count], crlf(message()))
    assert [r[:9] for r in replies] == [b"451 4.3.0"] * count
    assert noop.startswith(b"250")


@pytest.mark.parametrize("count", [2, 3])
async def test_accepted_mail_is_250_per_recipient(tmp_path, count):
    async with running_hub(tmp_path, lmtp=True) as hub:
        replies, noop = await lmtp_transaction(hub.port, RCPTS[:count], crlf(message()))
    assert [r[:9] for r in replies] == [b"250 2.0.0"] * count
    assert noop.startswith(b"250")


async def test_smtp_still_answers_once(tmp_path):
    """Plain SMTP: one answer after the data, however many recipients."""
    async with running_hub(tmp_path) as hub:
        reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
        client = Client(reader, writer)
        try:
            await client.reply()
            await client.command(b"EHLO client.example.net")
            await client.command(b"MAIL FROM:<sam@example.net>")
            for r in RCPTS:
                await client.command(f"RCPT TO:<{r}>".encode())
            await client.command(b"DATA")
            writer.write(ERRORS["oversize"][0] + b".\r\n")
            assert (await client.reply()).startswith(b"552 5.3.4")
            assert (await client.command(b"NOOP")).startswith(b"250")
        finally:
            writer.close()
