"""Reading DATA in large pieces: the end line, dot-stuffing, limits, and what follows."""

from __future__ import annotations

import asyncio

import pytest

from mailhub.smtp_data import read_data, unstuff
from tests.support.hub import DOMAIN, message


def stream(*pieces: bytes, eof: bool = False) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=1001)
    for piece in pieces:
        reader.feed_data(piece)
    if eof:
        reader.feed_eof()
    return reader


async def test_an_empty_message_ends_at_once_and_leaves_the_next_command():
    reader = stream(b".\r\nQUIT\r\n")
    data = await read_data(reader, 1000, 1001)
    assert data.content == b"" and data.problem is None
    assert await reader.readuntil(b"\r\n") == b"QUIT\r\n"


async def test_lines_starting_with_a_dot_lose_one_dot():
    reader = stream(b"..first\r\nmiddle\r\n...two dots\r\n.\r\n")
    data = await read_data(reader, 1000, 1001)
    assert data.content == b".first\r\nmiddle\r\n..two dots\r\n"
    assert unstuff(b".a\r\n..b\r\nc.\r\n") == b"a\r\n.b\r\nc.\r\n"


async def test_the_end_line_split_across_reads_is_found():
    reader = stream(b"Subject: x\r\n\r\nbody\r")
    task = asyncio.create_task(read_data(reader, 1000, 1001))
    for piece in (b"\n", b".", b"\r", b"\nMAIL FROM:<a@b>\r\n"):
        await asyncio.sleep(0)  # let the reader take what is there, so the END arrives split
        reader.feed_data(piece)
    data = await asyncio.wait_for(task, 2)
    assert data.content == b"Subject: x\r\n\r\nbody\r\n"
    assert await reader.readuntil(b"\r\n") == b"MAIL FROM:<a@b>\r\n"


async def test_a_line_ending_in_a_dot_is_not_the_end():
    reader = stream(b"Subject: x\r\n\r\nEnd of sentence.\r\n.\r\n")
    data = await read_data(reader, 1000, 1001)
    assert data.content.endswith(b"End of sentence.\r\n")


async def test_too_much_data_is_drained_then_refused_and_not_kept():
    body = b"x" * 70 + b"\r\n"
    reader = stream(body * 2000 + b".\r\nQUIT\r\n")
    data = await read_data(reader, 10_000, 1001)
    assert data.problem == "too much data" and data.content == b""
    assert await reader.readuntil(b"\r\n") == b"QUIT\r\n"


async def test_a_line_over_the_limit_is_refused():
    reader = stream(b"Subject: x\r\n\r\n" + b"y" * 1000 + b"\r\n.\r\n")
    data = await read_data(reader, 100_000, 1001)
    assert data.problem == "line too long"
    reader = stream(b"Subject: x\r\n\r\n" + b"y" * 998 + b"\r\n.\r\n")
    assert (await read_data(reader, 100_000, 1001)).problem is None


async def test_a_connection_closed_mid_data_is_a_reset():
    with pytest.raises(ConnectionResetError):
        await read_data(stream(b"Subject: x\r\n\r\nhalf a mess", eof=True), 1000, 1001)


async def test_pipelined_transactions_over_smtp_are_each_stored_whole(hub):
    # Two transactions and QUIT in one write, as a PIPELINING client may send them: the
    # reader must stop at the first end line and leave the rest to the session.
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.service.port)
    await reader.readuntil(b"\r\n")
    writer.write(b"EHLO client.example.net\r\n")
    while (await reader.readuntil(b"\r\n"))[3:4] == b"-":
        pass
    one = message(subject="one", body=".dotted first line\n..\n").encode().replace(b"\n", b"\r\n")
    two = b"Subject: two\r\n\r\nsecond\r\n"
    batch = b""
    for m in (one.replace(b"\r\n.", b"\r\n.."), two):  # what a client sends: dot-stuffed
        batch += f"MAIL FROM:<sam@example.net>\r\nRCPT TO:<enquiries@{DOMAIN}>\r\nDATA\r\n".encode()
        batch += m + b".\r\n"
    writer.write(batch + b"QUIT\r\n")
    replies = []
    while not replies or not replies[-1].startswith(b"221"):
        replies.append(await asyncio.wait_for(reader.readuntil(b"\r\n"), 5))
    codes = [r[:3] for r in replies]
    assert codes == [b"250", b"250", b"354", b"250", b"250", b"250", b"354", b"250", b"221"]
    writer.close()
    async with hub.service.store.read() as tx:
        cur = await tx.execute("SELECT raw FROM inbound ORDER BY seq")
        raws = [r for (r,) in await cur.fetchall()]
    assert raws == [one, two]


async def test_more_than_one_read_of_pipelined_commands_keeps_its_order():
    # Past one read's worth (64 KiB) of commands after the end line: the part the reader
    # took must go back in front of the part still buffered, not after it.
    commands = b"".join(b"NOOP %06d\r\n" % i for i in range(20_000))  # 240 KB
    reader = stream(b"Subject: x\r\n\r\nbody\r\n.\r\n" + commands + b"QUIT\r\n")
    data = await read_data(reader, 1000, 1001)
    assert data.content == b"Subject: x\r\n\r\nbody\r\n"
    rest = [await reader.readuntil(b"\r\n") for _ in range(20_001)]
    assert b"".join(rest) == commands + b"QUIT\r\n"


# --- the size limit counts the message, not its dot-stuffed transfer (RFC 1870) -----------


async def test_the_size_limit_counts_the_message_after_unstuffing():
    message_ = b"Subject: dots\r\n\r\n" + b".a\r\n" * 240  # 977 octets, 240 dots stuffed
    stuffed = message_.replace(b"\r\n.", b"\r\n..")
    assert len(message_) <= 1000 < len(stuffed)
    data = await read_data(stream(stuffed + b".\r\n"), 1000, 1001)
    assert data.problem is None and data.content == message_


async def test_a_stuffed_message_just_over_the_limit_is_refused():
    message_ = b"Subject: dots\r\n\r\n" + b".a\r\n" * 240 + b"x" * 24 + b"\r\n"  # 1003 octets
    stuffed = message_.replace(b"\r\n.", b"\r\n..")
    data = await read_data(stream(stuffed + b".\r\n"), 1000, 1001)
    assert data.problem == "too much data" and data.content == b""


async def test_dots_split_across_reads_are_counted_once():
    body = b"Subject: dots\r\n\r\n" + b".a\r\n" * 3000  # 12 017 octets
    wire = body.replace(b"\r\n.", b"\r\n..") + b".\r\n"
    reader = asyncio.StreamReader(limit=1001)
    task = asyncio.create_task(read_data(reader, len(body), 1001))
    for i in range(0, len(wire), 7):  # pieces that split "\r\n." every way
        reader.feed_data(wire[i : i + 7])
        await asyncio.sleep(0)
    data = await task
    assert data.problem is None and data.content == body


def dotted(size: int) -> str:
    """A message of exactly `size` octets (CRLF lines) whose body lines all start with '.'."""
    head = message(body="")
    lines, total = [], len(head.replace("\n", "\r\n"))
    while total + 40 <= size:
        lines.append("." + "d" * 37)  # 40 octets with CRLF
        total += 40
    lines.append("." + "e" * (size - total - 3))
    return head + "\n".join(lines) + "\n"


@pytest.mark.parametrize(("size", "code"), [(200000, 250), (200001, 552)])
async def test_a_dotted_message_at_the_limit_over_smtp(hub, size, code):
    raw = dotted(size)
    assert len(raw.replace("\n", "\r\n").encode()) == size  # ~205 000 octets once stuffed
    got, _ = await hub.send("sam@example.net", [f"enquiries@{DOMAIN}"], raw)
    assert got == code
    if code == 250:
        fwd = (await hub.sink.wait_count("helper@example.net"))[0].raw
        assert fwd.split(b"\r\n").count(b"." + b"d" * 37) > 4900  # one dot each, as sent


# --- what smtp.py's DATA takes from aiosmtpd (pinned below 1.5) ---------------------------
# smtp_DATA replaces aiosmtpd's own and calls its internals: check_helo_needed,
# check_auth_needed, _reader, data_size_limit, line_length_limit, _call_handler_hook and
# _set_post_data_state (the envelope's reset). Each answer below depends on one of them.


class Session:
    """One SMTP session over loopback, a command at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, hub) -> Session:
        reader, writer = await asyncio.open_connection("127.0.0.1", hub.service.port)
        await reader.readuntil(b"\r\n")  # the greeting
        return cls(reader, writer)

    async def say(self, line: bytes) -> bytes:
        """Send a line (or a whole message ending in CRLF.CRLF); the last line of the reply."""
        self.writer.write(line if line.endswith(b"\r\n") else line + b"\r\n")
        while True:
            reply = await asyncio.wait_for(self.reader.readuntil(b"\r\n"), 5)
            if reply[3:4] != b"-":
                return reply

    def close(self) -> None:
        self.writer.close()


async def stored_rcpts(hub) -> list[str]:
    async with hub.service.store.read() as tx:
        cur = await tx.execute("SELECT rcpt_tos FROM inbound ORDER BY seq")
        return [r for (r,) in await cur.fetchall()]


async def test_data_before_helo_is_refused_as_aiosmtpd_refuses_it(hub):
    s = await Session.open(hub)
    assert (await s.say(b"DATA")).startswith(b"503 Error: send HELO first")
    assert (await s.say(b"EHLO client.example.net")).startswith(b"250")
    s.close()
    assert await stored_rcpts(hub) == []


async def test_data_without_recipients_or_with_an_argument_is_refused(hub):
    s = await Session.open(hub)
    await s.say(b"EHLO client.example.net")
    assert (await s.say(b"DATA")).startswith(b"503 5.5.1")
    await s.say(b"MAIL FROM:<sam@example.net>")
    await s.say(f"RCPT TO:<enquiries@{DOMAIN}>".encode())
    assert (await s.say(b"DATA now")).startswith(b"501 5.5.4")
    # The transaction is still open: a plain DATA goes on with it.
    assert (await s.say(b"DATA")).startswith(b"354")
    assert (await s.say(b"Subject: x\r\n\r\nbody\r\n.\r\n")).startswith(b"250 2.0.0")
    s.close()
    assert len(await stored_rcpts(hub)) == 1


async def test_each_transaction_of_a_session_starts_with_an_empty_envelope(hub):
    # After a message is stored, and after one is refused, the next transaction's
    # recipients are its own only (aiosmtpd's _set_post_data_state).
    s = await Session.open(hub)
    await s.say(b"EHLO client.example.net")
    for rcpt, body, code in (
        (f"enquiries@{DOMAIN}", b"first", b"250"),
        (f"postmaster@{DOMAIN}", b"x" * 250_000, b"552"),  # over max_message_bytes
        (f"abuse@{DOMAIN}", b"third", b"250"),
    ):
        assert (await s.say(b"MAIL FROM:<sam@example.net>")).startswith(b"250")
        assert (await s.say(f"RCPT TO:<{rcpt}>".encode())).startswith(b"250")
        assert (await s.say(b"DATA")).startswith(b"354")
        lines = b"\r\n".join(body[i : i + 900] for i in range(0, len(body), 900))
        assert (await s.say(b"Subject: x\r\n\r\n" + lines + b"\r\n.\r\n")).startswith(code)
    assert (await s.say(b"QUIT")).startswith(b"221")
    s.close()
    assert await stored_rcpts(hub) == [f'["enquiries@{DOMAIN}"]', f'["abuse@{DOMAIN}"]']
