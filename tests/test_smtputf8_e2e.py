"""Internationalised addresses (RFC 6531/6532) out: UTF-8 headers, the SMTPUTF8 parameter.

An enquiry from `rhŷs@example.cymru`: the forward's Reply-To and the acknowledgement's To
carry that address raw in UTF-8, with its display name, never as an RFC 2047 encoded word
(which no one can reply to); the relay gets `MAIL FROM:<…> SMTPUTF8`. A relay that does
not offer SMTPUTF8 gets nothing: the recipient is bounced with a reason that says why.
"""

from __future__ import annotations

import asyncio
from email import message_from_string, policy

import pytest
from aiosmtpd.smtp import SMTP

from mailhub.config import OutboundConfig
from mailhub.messages import address, build_message, to_bytes
from mailhub.relay import RelayTransport
from mailhub.store.outbound import OutboundItem
from tests.support.hub import DOMAIN, running_hub
from tests.support.sink import Sink

# Every test here runs on SQLite and on PostgreSQL (tests/conftest.py: backend).
pytestmark = pytest.mark.usefixtures("backend")

RHYS = "rhŷs@example.cymru"
ENQ = f"enquiries@{DOMAIN}"


class RecordingSink(Sink):
    """A sink that also records each transaction's MAIL parameters (by recipient)."""

    def __init__(self, smtputf8: bool = True) -> None:
        super().__init__()
        self.smtputf8 = smtputf8
        self.mail_options: dict[str, list[str]] = {}

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001
        for rcpt in envelope.rcpt_tos:
            self.mail_options[rcpt.lower()] = list(envelope.mail_options)
        return await super().handle_DATA(server, session, envelope)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self, decode_data=False, enable_SMTPUTF8=self.smtputf8, hostname="sink"),
            host="127.0.0.1",
            port=0,
        )
        self.port = self._server.sockets[0].getsockname()[1]


async def send_utf8(port: int, mail_from: str, rcpt: str, raw: bytes) -> bytes:
    """One transaction with `MAIL FROM:<…> SMTPUTF8`, spoken raw; the reply to the data."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def reply() -> bytes:
        while True:
            line = await asyncio.wait_for(reader.readline(), 10)
            if line[3:4] != b"-":
                return line

    try:
        await reply()
        for line in (
            b"EHLO client.example.net",
            f"MAIL FROM:<{mail_from}> SMTPUTF8".encode(),
            f"RCPT TO:<{rcpt}>".encode(),
            b"DATA",
        ):
            writer.write(line + b"\r\n")
            assert (await reply())[:1] in (b"2", b"3"), line
        writer.write(raw + b".\r\n")
        return await reply()
    finally:
        writer.close()


ENQUIRY = (
    "From: Rhŷs Jones <rhŷs@example.cymru>\r\n"
    f"To: {ENQ}\r\n"
    "Subject: Cwestiwn am y rhestr\r\n"
    "Message-ID: <e1@example.cymru>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "Shwmae! Oes modd ymuno?\r\n"
).encode()


async def test_an_enquiry_from_an_internationalised_address(tmp_path):
    sink = RecordingSink()
    await sink.start()
    async with running_hub(tmp_path, sink=sink) as hub:
        reply = await send_utf8(hub.port, RHYS, ENQ, ENQUIRY)
        assert reply.startswith(b"250")
        (fwd,) = await sink.wait_count("helper@example.net")
        (ack,) = await sink.wait_count(RHYS)
    # The forward: Reply-To is the sender, name and address, raw UTF-8.
    head = fwd.raw.split(b"\r\n\r\n", 1)[0]
    assert "Reply-To: Rhŷs Jones <rhŷs@example.cymru>".encode() in head
    assert b"=?" not in head.split(b"Reply-To:", 1)[1].split(b"\r\n", 1)[0]
    assert "From: Rhŷs Jones via enquiries <enquiries@".encode() in head
    parsed = message_from_string(fwd.raw.decode("utf-8"), policy=policy.SMTPUTF8)
    assert parsed["Reply-To"].addresses[0].addr_spec == RHYS
    assert parsed["Reply-To"].addresses[0].display_name == "Rhŷs Jones"
    assert "SMTPUTF8" in [o.upper() for o in sink.mail_options["helper@example.net"]]
    # The acknowledgement: to that address, from the null sender, with SMTPUTF8.
    ack_head = ack.raw.split(b"\r\n\r\n", 1)[0]
    assert f"To: {RHYS}".encode() in ack_head
    assert ack.mail_from == ""
    assert "SMTPUTF8" in [o.upper() for o in sink.mail_options[RHYS]]
    for line in ack_head.split(b"\r\n") + head.split(b"\r\n"):
        if line.lower().startswith((b"to:", b"from:", b"reply-to:", b"cc:")):
            assert b"@" in line and b"=?" not in line.split(b"<")[-1]
            assert not any(w.startswith(b"=?") and w.endswith(b"@") for w in line.split())


def test_an_ascii_message_stays_seven_bit():
    msg = build_message(
        from_=address("Ymholiadau – Enquiries", ENQ),
        to=address("Siân", "sian@example.net"),
        subject="Diolch – thanks",
        body="x\n",
        domain=DOMAIN,
        now=0,
    )
    out = to_bytes(msg)
    assert out.isascii() and b"<sian@example.net>" in out


def test_display_names_are_kept_with_utf8_addresses():
    assert address("Rhŷs, Jones", RHYS) == '"Rhŷs, Jones" <rhŷs@example.cymru>'
    msg = build_message(
        from_=address("Enquiries", ENQ),
        to=address("Rhŷs", RHYS),
        subject="Diolch – thanks",
        body="x\n",
        domain=DOMAIN,
        now=0,
    )
    out = to_bytes(msg)
    assert "To: Rhŷs <rhŷs@example.cymru>\r\n".encode() in out
    assert "Subject: Diolch – thanks".encode() in out


async def test_a_relay_without_smtputf8_bounces_with_a_reason():
    sink = RecordingSink(smtputf8=False)
    await sink.start()
    relay = RelayTransport(OutboundConfig(relay_host="127.0.0.1", relay_port=sink.port), "t")
    raw = to_bytes(
        build_message(
            from_=address("Enquiries", ENQ),
            to="helper@example.net",
            subject="x",
            body="x\n",
            domain=DOMAIN,
            now=0,
            headers={"Reply-To": address("Rhŷs", RHYS)},
        )
    )
    item = OutboundItem(1, "<m@x>", "", raw, "enquiry.forward", "test", 0.0, 0, ())
    try:
        (result,) = await relay.send(f"postmaster@{DOMAIN}", ["helper@example.net"], raw, item)
        assert result.state == "bounced"
        assert result.reply.startswith("553 5.6.7") and "SMTPUTF8" in result.reply
        # ASCII mail still goes through that relay.
        plain = raw.replace("Rhŷs <rhŷs@example.cymru>".encode(), b"rhys@example.cymru")
        (ok,) = await relay.send(f"postmaster@{DOMAIN}", ["helper@example.net"], plain, item)
        assert ok.state == "sent"
        assert sink.mail_options["helper@example.net"] == []
    finally:
        await relay.close()
        await sink.stop()
