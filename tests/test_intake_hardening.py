"""Intake under abuse (issue 9), over loopback against the real server: pipelined input
past one read after DATA, connection and command budgets, aiosmtpd's log lines, and an
unwritable database."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from mailhub import logs
from mailhub.logs import LIBRARY_LINES, LIBRARY_LINES_PER_MINUTE, LibraryLines
from tests.support.hub import DOMAIN, message, running_hub

ENQ = f"enquiries@{DOMAIN}"


def server_keys(**keys: object) -> str:
    """Extra `[server]` keys, passed through start_hub's `max_connections` slot (the one
    start_hub writes inside `[server]`)."""
    lines = [f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {v}" for k, v in keys.items()]
    return "\n".join(["50", *lines])


class Client:
    """One raw SMTP connection: what we write is exactly what the server reads."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int, local: str | None = None) -> Client:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, local_addr=(local, 0) if local else None, limit=1 << 20
        )
        return cls(reader, writer)

    async def reply(self) -> bytes:
        """One whole reply (continuation lines skipped): its last line."""
        while True:
            line = await asyncio.wait_for(self.reader.readuntil(b"\r\n"), 10)
            if line[3:4] != b"-":
                return line

    async def command(self, line: bytes) -> bytes:
        self.writer.write(line + b"\r\n")
        return await self.reply()

    async def closed(self) -> bool:
        """True once the server has closed the connection (everything before is read)."""
        await asyncio.wait_for(self.reader.read(), 10)
        return self.reader.at_eof()

    def close(self) -> None:
        self.writer.close()


async def greeted(port: int, local: str | None = None) -> Client:
    client = await Client.connect(port, local)
    assert (await client.reply()).startswith(b"220")
    return client


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


async def inbound_raws(hub) -> list[bytes]:
    async with hub.service.store.read() as tx:
        cur = await tx.execute("SELECT raw FROM inbound ORDER BY seq")
        return [r for (r,) in await cur.fetchall()]


# --- pipelining past one read after DATA -------------------------------------------------


async def test_100_kib_pipelined_after_data_are_answered_in_order(hub):
    client = await greeted(hub.port)
    await client.command(b"EHLO client.example.net")
    transaction = f"MAIL FROM:<sam@example.net>\r\nRCPT TO:<{ENQ}>\r\nDATA\r\n".encode()
    # The first message is ~140 KB, so the server reads in large pieces; the others ~3.6 KB.
    messages = [
        crlf(message(subject=f"n{i}", body=f"{i}\n" + ("z" * 70 + "\n") * (50 if i else 2000)))
        for i in range(26)
    ]
    # After the first message's end line: 25 NOOPs (each with a 400-byte argument) and 25
    # more transactions, well over 100 KiB, all in one write with the first. The piece
    # of the stream that holds the first end line is followed by more than one read's
    # worth of what the client pipelined.
    after = b"".join(
        b"NOOP " + b"p" * 400 + b"\r\n" + transaction + m + b".\r\n" for m in messages[1:]
    )
    assert len(after) > 100 * 1024
    client.writer.write(transaction + messages[0] + b".\r\n" + after)
    replies = [await client.reply() for _ in range(4 + 5 * 25)]
    codes = [r[:3] for r in replies]
    assert codes == [b"250", b"250", b"354", b"250"] + [b"250", b"250", b"250", b"354", b"250"] * 25
    # The session is still usable, and every message was stored whole, in order.
    assert (await client.command(b"NOOP")).startswith(b"250")
    assert (await client.command(b"QUIT")).startswith(b"221")
    client.close()
    assert await inbound_raws(hub) == messages


# --- connections per client address ---------------------------------------------------


async def test_one_address_cannot_hold_every_connection(tmp_path):
    async with running_hub(
        tmp_path, max_connections=server_keys(max_connections_per_peer=3)
    ) as hub:
        held = [await greeted(hub.port) for _ in range(3)]
        fourth = await Client.connect(hub.port)
        assert (await fourth.reply()).startswith(b"421 4.7.0")
        assert await fourth.closed()
        # Another address is still welcome.
        other = await greeted(hub.port, local="127.0.0.2")
        other.close()
        # Once one closes (the server has seen it when the client sees the close), the
        # address may connect again.
        assert (await held[0].command(b"QUIT")).startswith(b"221")
        assert await held.pop(0).closed()
        again = await greeted(hub.port)
        held.append(again)
        for c in held:
            c.close()


# --- the command budget and the session's lifetime --------------------------------------


async def test_noop_rset_and_unknown_commands_count_against_the_budget(tmp_path):
    async with running_hub(
        tmp_path, max_connections=server_keys(max_commands_per_session=10)
    ) as hub:
        client = await greeted(hub.port)
        replies = [await client.command(b"EHLO client.example.net")]
        for line in (b"NOOP", b"RSET", b"XUNKNOWN1", b"NOOP", b"", b"RSET", b"XUNKNOWN2", b"NOOP"):
            replies.append(await client.command(line))
        replies.append(await client.command(b"MAIL FROM:<sam@example.net>"))  # the 10th
        assert [r[:1] for r in replies].count(b"5") == 3  # two unknown, one empty line
        assert replies[-1].startswith(b"250")
        # The 11th command is not run: 421, and the connection is closed.
        assert (await client.command(b"RCPT TO:<" + ENQ.encode() + b">")).startswith(b"421 4.7.0")
        assert await client.closed()


async def test_a_noop_flood_ends_at_the_default_budget_of_1000(hub):
    client = await greeted(hub.port)
    client.writer.write(b"EHLO client.example.net\r\n" + b"NOOP\r\n" * 2000)
    replies = [await client.reply() for _ in range(1001)]
    assert all(r.startswith(b"250") for r in replies[:1000])
    assert replies[1000].startswith(b"421 4.7.0")
    assert await client.closed()


async def test_a_session_cannot_last_past_its_lifetime(tmp_path):
    async with running_hub(tmp_path, max_connections=server_keys(max_session_time=0.3)) as hub:
        client = await greeted(hub.port)
        assert (await client.command(b"NOOP")).startswith(b"250")
        await asyncio.sleep(0.4)  # the lifetime is wall-clock time; NOOPs do not renew it
        assert (await client.command(b"NOOP")).startswith(b"421 4.7.0")
        assert await client.closed()


# --- aiosmtpd's log lines ---------------------------------------------------------------


async def test_unknown_commands_never_put_client_text_in_the_log(hub, caplog):
    marker = "M" + uuid.uuid4().hex.upper()
    verb = "X" * 16 + marker  # the first 16 characters of the verb may be logged
    LIBRARY_LINES.reset()  # a fresh minute, whatever earlier tests logged
    caplog.set_level(logging.DEBUG)

    async def connection() -> None:
        # aiosmtpd closes a session after its fifth unknown command.
        client = await greeted(hub.port)
        client.writer.write(f"{verb} {marker}\r\n".encode() * 5)
        assert await client.closed()

    async def worker() -> None:
        for _ in range(50):
            await connection()

    await asyncio.gather(*(worker() for _ in range(20)))  # 20 x 50 x 5 = 5,000 commands
    assert marker not in caplog.text and marker.lower() not in caplog.text
    library = [r for r in caplog.records if r.name.startswith("mail.")]
    assert len(library) == LIBRARY_LINES_PER_MINUTE
    assert (
        library[0].getMessage() == "library about=unknown-command peer=127.0.0.1 verb=" + "X" * 16
    )


def test_library_lines_are_limited_per_minute_then_summed_up():
    now = [1000.0]
    guard = LibraryLines(per_minute=3, clock=lambda: now[0])
    logger = logging.getLogger("mail.test-library-lines")
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    logger.addHandler(handler)
    logger.addFilter(guard)
    logger.propagate = False
    try:
        for i in range(10):
            logger.warning("%r unrecognised: %s", ("192.0.2.7", 25), f"VERB\x1b[31m{i}\r\nFAKE")
        now[0] += 61
        logger.warning("%r too many bogus commands", ("192.0.2.7", 25), exc_info=ValueError("x"))
    finally:
        logger.removeHandler(handler)
        logger.removeFilter(guard)
    assert seen == [
        "library about=unknown-command peer=192.0.2.7 verb=VERB[31m0FAKE",
        "library about=unknown-command peer=192.0.2.7 verb=VERB[31m1FAKE",
        "library about=unknown-command peer=192.0.2.7 verb=VERB[31m2FAKE",
        "library suppressed=7 per_minute=3",
        "library about=too-many-unknown-commands peer=192.0.2.7",
    ]
    assert logs.VERB_CHARS == 16


# --- an unwritable database -------------------------------------------------------------


@asynccontextmanager
async def write_lock(hub) -> AsyncIterator[None]:
    """Another process's write transaction (a backup, a CLI command) on the same file. Taken
    in a thread: blocking the event loop while the service finishes a write of its own
    would wait on ourselves."""
    other = sqlite3.connect(
        hub.service.config.storage.path, isolation_level=None, timeout=30, check_same_thread=False
    )
    try:
        await asyncio.to_thread(other.execute, "BEGIN IMMEDIATE")
        yield
        other.execute("ROLLBACK")
    finally:
        other.close()


async def short_busy_timeout(hub) -> None:
    # Stands in for `[storage] busy_timeout = "300ms"` until Service passes that key to
    # the store: the store's own connection waits 0.3 s for a lock, not 10 s.
    await hub.service.store.execute_atomic("PRAGMA busy_timeout=300")


async def test_a_locked_database_answers_451_to_every_waiting_session(hub):
    await short_busy_timeout(hub)
    async with write_lock(hub):
        results = await asyncio.gather(
            *(hub.send("sam@example.net", [ENQ], message(subject=f"s{i}")) for i in range(5))
        )
    assert [(code, text[:5]) for code, text in results] == [(451, "4.3.0")] * 5
    assert await inbound_raws(hub) == []
    # The lock gone, the same session goes on and the next try is stored.
    client = await greeted(hub.port)
    await client.command(b"EHLO client.example.net")
    async with write_lock(hub):
        assert (await client.command(b"MAIL FROM:<sam@example.net>")).startswith(b"250")
        assert (await client.command(f"RCPT TO:<{ENQ}>".encode())).startswith(b"250")
        assert (await client.command(b"DATA")).startswith(b"354")
        assert (await client.command(crlf(message()) + b".")).startswith(b"451 4.3.0")
    assert (await client.command(b"MAIL FROM:<sam@example.net>")).startswith(b"250")
    assert (await client.command(f"RCPT TO:<{ENQ}>".encode())).startswith(b"250")
    assert (await client.command(b"DATA")).startswith(b"354")
    assert (await client.command(crlf(message()) + b".")).startswith(b"250 2.0.0")
    client.close()
    assert len(await inbound_raws(hub)) == 1


async def test_a_locked_database_answers_451_once_per_lmtp_recipient(tmp_path):
    async with running_hub(tmp_path, lmtp=True) as hub:
        await short_busy_timeout(hub)
        client = await greeted(hub.port)
        await client.command(b"LHLO client.example.net")
        await client.command(b"MAIL FROM:<sam@example.net>")
        for rcpt in (ENQ, f"postmaster@{DOMAIN}"):
            assert (await client.command(f"RCPT TO:<{rcpt}>".encode())).startswith(b"250")
        assert (await client.command(b"DATA")).startswith(b"354")
        async with write_lock(hub):
            client.writer.write(crlf(message()) + b".\r\n")
            first, second = await client.reply(), await client.reply()
        assert first.startswith(b"451 4.3.0") and second.startswith(b"451 4.3.0")
        assert (await client.command(b"NOOP")).startswith(b"250")  # nothing else was said
        client.close()
        assert await inbound_raws(hub) == []


async def test_the_command_budget_counts_from_the_last_accepted_message(tmp_path):
    """An MTA keeping one session for many messages is never cut off by the budget."""
    import aiosmtplib

    keys = server_keys(max_commands_per_session=20)
    async with running_hub(tmp_path, max_connections=keys) as hub:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=hub.port, timeout=10)
        await client.connect()
        try:
            for i in range(30):  # 4 commands a message: 120 in all, 20 allowed between
                await client.sendmail("mta@example.net", [ENQ], f"Subject: m{i}\r\n\r\nx\r\n")
        finally:
            client.close()
        await hub.idle()
        assert len(hub.sink.to("helper@example.net")) == 30
