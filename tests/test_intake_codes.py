"""Every SMTP reply code of intake, over loopback against the real server."""

from __future__ import annotations

import asyncio

import aiosmtplib
import pytest

from tests.support.hub import DOMAIN, message, start_hub


async def command_replies(port: int, *commands: bytes, ehlo: bool = True) -> list[tuple[int, str]]:
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=5)
    await client.connect()
    try:
        if ehlo:
            await client.ehlo()
        return [await client.execute_command(c) for c in commands]
    finally:
        client.close()


async def raw_replies(port: int, *lines: bytes) -> list[bytes]:
    """Speak SMTP byte by byte: clients refuse to send the malformed commands we test."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    replies = []
    try:
        await asyncio.wait_for(reader.readline(), 5)
        for line in (b"EHLO client", *lines):
            writer.write(line + b"\r\n")
            while True:
                reply = await asyncio.wait_for(reader.readline(), 5)
                if reply[3:4] != b"-":
                    break
            replies.append(reply)
    finally:
        writer.close()
    return replies[1:]


async def rcpt_reply(hub, rcpt: bytes, mail_from: bytes = b"<sam@example.net>") -> tuple[int, str]:
    replies = await command_replies(hub.port, b"MAIL FROM:" + mail_from, b"RCPT TO:" + rcpt)
    return replies[-1]


async def test_accepts_known_address_with_queue_id(hub):
    code, text = await hub.send("sam@example.net", [f"enquiries@{DOMAIN}"], message())
    assert code == 250
    assert text.startswith("2.0.0 OK queued as Q")


async def test_unknown_local_address_is_550_5_1_1(hub):
    code, text = await rcpt_reply(hub, f"<nobody@{DOMAIN}>".encode())
    assert (code, text[:5]) == (550, "5.1.1")


async def test_second_domain_is_local_too(hub):
    code, _ = await rcpt_reply(hub, b"<enquiries@other.example.org>")
    assert code == 250


async def test_foreign_domain_is_relaying_denied(hub):
    code, text = await rcpt_reply(hub, b"<victim@example.com>")
    assert code == 550 and text.startswith("5.7.1")


@pytest.mark.parametrize(
    "rcpt",
    [
        f"<victim%example.com@{DOMAIN}>",
        f"<example.com!victim@{DOMAIN}>",
        f'<"victim@example.com"@{DOMAIN}>',
        f"<enquiries@{DOMAIN}@example.com>",
        "<victim@[127.0.0.1]>",
        "<enquiries@cop.example.org.example.com>",
    ],
)
async def test_open_relay_tricks_are_refused(hub, rcpt):
    code, _ = await rcpt_reply(hub, rcpt.encode())
    assert 550 <= code <= 553


async def test_source_route_is_refused(hub):
    code, text = await rcpt_reply(hub, f"<@relay.example.com:enquiries@{DOMAIN}>".encode())
    assert (code, text[:5]) == (553, "5.1.3")


@pytest.mark.parametrize("bad", [b"\x00", b"\r", b"\x0b"])
async def test_control_characters_in_rcpt_are_553(hub, bad):
    replies = await raw_replies(
        hub.port,
        b"MAIL FROM:<sam@example.net>",
        b"RCPT TO:<enq" + bad + b"uiries@" + DOMAIN.encode() + b">",
    )
    assert replies[1].startswith(b"553 5.1.3")


async def test_control_characters_in_mail_from_are_553(hub):
    (reply,) = await raw_replies(hub.port, b"MAIL FROM:<sam\x00@example.net>")
    assert reply.startswith(b"553 5.1.3")


async def test_local_part_over_64_octets_is_553(hub):
    code, _ = await rcpt_reply(hub, b"<" + b"a" * 65 + b"@" + DOMAIN.encode() + b">")
    assert code == 553


async def test_null_sender_is_accepted(hub):
    code, _ = await rcpt_reply(hub, f"<enquiries@{DOMAIN}>".encode(), mail_from=b"<>")
    assert code == 250


async def test_too_many_recipients_is_452(hub):
    rcpts = [f"<enquiries@{DOMAIN}>".encode()] * 5 + [f"<postmaster@{DOMAIN}>".encode()]
    replies = await command_replies(
        hub.port, b"MAIL FROM:<sam@example.net>", *[b"RCPT TO:" + r for r in rcpts]
    )
    assert [c for c, _ in replies[1:6]] == [250] * 5
    assert replies[6][0] == 452 and replies[6][1].startswith("4.5.3")


async def test_too_large_is_552_5_3_4(hub):
    big = message(body=("x" * 70 + "\n") * 4000)  # ~284 KB, limit is 200 KB
    code, text = await hub.send("sam@example.net", [f"enquiries@{DOMAIN}"], big)
    assert (code, text[:5]) == (552, "5.3.4")
    # The session is still usable and nothing was queued.
    await hub.idle()
    assert hub.sink.received == []


async def test_size_parameter_over_limit_is_552(hub):
    ((code, text),) = await command_replies(hub.port, b"MAIL FROM:<sam@example.net> SIZE=99999999")
    assert code == 552 and text.startswith("5.3.4")


@pytest.mark.parametrize(
    "raw",
    [
        b"Subject: bare LF\nFrom: sam@example.net\n\nbody\n",
        b"Subject: bare CR\r\nFrom: sam@example.net\r\n\r\nbo\rdy\r\n",
        b"Subject: NUL\r\nFrom: sam@example.net\r\n\r\nbo\x00dy\r\n",
    ],
)
async def test_bare_line_endings_and_nul_are_refused_550_5_5_2(hub, raw):
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=hub.port, timeout=5)
    await client.connect()
    try:
        await client.ehlo()
        await client.mail("sam@example.net")
        await client.rcpt(f"enquiries@{DOMAIN}")
        # Write DATA by hand: aiosmtplib would normalise the line endings we want to send.
        code, _ = await client.execute_command(b"DATA")
        assert code == 354
        client.protocol.write(raw + b"\r\n.\r\n")
        response = await client.protocol.read_response(timeout=5)
    finally:
        client.close()
    assert response.code == 550 and response.message.startswith("5.5.2")
    await hub.idle()
    assert hub.sink.received == []


async def test_line_over_998_characters_is_refused_clearly(hub):
    code, text = await hub.send(
        "sam@example.net", [f"enquiries@{DOMAIN}"], message(body="y" * 1200 + "\n")
    )
    assert code == 500 and text.startswith("5.5.2") and "998" in text


async def test_store_failure_answers_451_not_500(hub):
    # The database going away mid-flight is a temporary failure: the sender must retry.
    await hub.service.store.conn.close()
    code, text = await hub.send("sam@example.net", [f"enquiries@{DOMAIN}"], message())
    assert code == 451 and text.startswith("4.3.0")
    assert "Error" not in text and "(" not in text


async def test_connection_cap_answers_421(tmp_path):
    hub = await start_hub(tmp_path, max_connections=2)
    held = []
    try:
        for _ in range(2):
            c = aiosmtplib.SMTP(hostname="127.0.0.1", port=hub.port, timeout=5)
            await c.connect()
            held.append(c)
        reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
        greeting = await asyncio.wait_for(reader.readline(), 5)
        writer.close()
        assert greeting.startswith(b"421 4.3.2")
        # Once one closes, a new connection is welcome again.
        held.pop().close()
        await asyncio.sleep(0)  # let connection_lost run; the next connect proves it
        for _ in range(50):
            reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
            greeting = await asyncio.wait_for(reader.readline(), 5)
            writer.close()
            if greeting.startswith(b"220"):
                break
        assert greeting.startswith(b"220")
    finally:
        for c in held:
            c.close()
        await hub.service.stop()
        await hub.sink.stop()


async def test_lmtp_answers_once_per_recipient(tmp_path):
    hub = await start_hub(tmp_path, lmtp=True)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)

        async def reply() -> list[bytes]:
            lines = []
            while True:
                line = await asyncio.wait_for(reader.readline(), 5)
                lines.append(line)
                if line[3:4] != b"-":
                    return lines

        await reply()  # greeting
        writer.write(b"LHLO client\r\n")
        await reply()
        writer.write(b"MAIL FROM:<sam@example.net>\r\n")
        await reply()
        for r in (f"enquiries@{DOMAIN}", f"postmaster@{DOMAIN}"):
            writer.write(f"RCPT TO:<{r}>\r\n".encode())
            assert (await reply())[0].startswith(b"250")
        writer.write(b"DATA\r\n")
        assert (await reply())[0].startswith(b"354")
        writer.write(message().replace("\n", "\r\n").encode() + b".\r\n")
        first, second = await reply(), await reply()
        writer.close()
        assert first[0].startswith(b"250 2.0.0") and second[0].startswith(b"250 2.0.0")
        await hub.sink.wait_count("admin@example.net")
    finally:
        await hub.service.stop()
        await hub.sink.stop()
