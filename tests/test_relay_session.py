"""The SMTP client side of delivery, against real loopback servers.

aiosmtpd stands in for a relay with and without PIPELINING; two small raw servers
stand in for relays that aiosmtpd cannot imitate: one that answers nothing until the
whole envelope has arrived (so only a pipelining client gets through), and one that
answers with something that is not SMTP. One relay requires STARTTLS.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mailhub.config import OutboundConfig
from mailhub.relay import RelayTransport
from mailhub.store.outbound import OutboundItem
from tests.support.sink import Sink

RAW = b"From: a@example.org\r\nSubject: hi\r\n\r\n.starts with a dot\r\nbody\r\n"
ITEM = OutboundItem(1, "<m@x>", "a@example.org", RAW, "forward", "test", 0.0, 0, ())


def transport_to(port: int) -> RelayTransport:
    return RelayTransport(OutboundConfig(relay_host="127.0.0.1", relay_port=port), "mailhub.test")


@pytest.mark.parametrize("pipelining", [True, False])
async def test_one_transaction_reaches_the_accepted_and_reports_the_refused(pipelining):
    sink = Sink(pipelining=pipelining)
    await sink.start()
    relay = transport_to(sink.port)
    try:
        sink.scripts["gone@example.net"] = ["550 5.1.1 no such user"]
        sink.scripts["later@example.net"] = ["451 4.2.0 try later"]
        rcpts = ["one@example.net", "gone@example.net", "later@example.net", "two@example.net"]
        results = {
            r.rcpt: (r.state, r.reply) for r in await relay.send(ITEM.mail_from, rcpts, RAW, ITEM)
        }
        assert results["one@example.net"][0] == results["two@example.net"][0] == "sent"
        assert results["gone@example.net"] == ("bounced", "550 5.1.1 no such user")
        assert results["later@example.net"] == ("pending", "451 4.2.0 try later")
        assert sink.transactions == 1
        assert {r.rcpt for r in sink.received} == {"one@example.net", "two@example.net"}
        # Dot-stuffing undone by the relay: the body arrives as it was.
        assert sink.received[0].raw.endswith(b".starts with a dot\r\nbody\r\n")
        # The connection is reused: a second message needs no new handshake.
        session = relay.session
        results = await relay.send(ITEM.mail_from, ["one@example.net"], RAW, ITEM)
        assert [r.state for r in results] == ["sent"] and relay.session is session
        # Every recipient refused: no DATA, nothing delivered, the connection still usable.
        results = await relay.send(ITEM.mail_from, ["gone@example.net"], RAW, ITEM)
        assert [r.state for r in results] == ["bounced"] and sink.transactions == 2
        results = await relay.send("", ["two@example.net"], RAW, ITEM)
        assert [r.state for r in results] == ["sent"] and sink.received[-1].mail_from == ""
    finally:
        await relay.close()
        await sink.stop()


async def raw_server(answer: Callable[[bytes], bytes | None]) -> tuple[asyncio.Server, list[bytes]]:
    """A server that greets, then calls `answer(everything received so far)` after each read
    and writes what it returns (None: nothing yet)."""
    seen: list[bytes] = []

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 relay ESMTP\r\n")
        received = b""
        while data := await reader.read(65536):
            received += data
            seen.append(data)
            if (out := answer(received)) is not None:
                writer.write(out)
                received = b""
        writer.close()

    server = await asyncio.start_server(session, "127.0.0.1", 0)
    return server, seen


async def test_a_pipelining_relay_gets_the_whole_envelope_in_one_write():
    # This relay answers the envelope only once all of it (up to DATA) has arrived, as a
    # server may: a client waiting for each RCPT reply would wait forever.
    def answer(received: bytes) -> bytes | None:
        if received.startswith(b"EHLO"):
            return b"250-relay\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
        if received.endswith(b"DATA\r\n"):
            rcpts = received.count(b"RCPT TO:")
            return b"250 sender ok\r\n" + b"250 rcpt ok\r\n" * rcpts + b"354 go ahead\r\n"
        if received.endswith(b"\r\n.\r\n"):
            return b"250 2.0.0 queued as 1\r\n"
        if received.startswith(b"QUIT"):
            return b"221 bye\r\n"
        return None

    server, seen = await raw_server(answer)
    relay = transport_to(server.sockets[0].getsockname()[1])
    try:
        rcpts = [f"member{i}@example.net" for i in range(50)]
        results = await asyncio.wait_for(relay.send("a@example.org", rcpts, RAW, ITEM), 5)
        assert [r.state for r in results] == ["sent"] * 50
        assert results[0].reply == "250 2.0.0 queued as 1"
    finally:
        await relay.close()
        server.close()


async def test_a_relay_speaking_nonsense_leaves_the_mail_pending_and_the_connection_dropped():
    def answer(received: bytes) -> bytes | None:
        if received.startswith(b"EHLO"):
            return b"250-relay\r\n250 PIPELINING\r\n"
        if b"MAIL FROM" in received:
            return b"hello there, this is not SMTP\r\n"
        return None

    server, _ = await raw_server(answer)
    relay = transport_to(server.sockets[0].getsockname()[1])
    try:
        results = await asyncio.wait_for(
            relay.send("a@example.org", ["b@example.net"], RAW, ITEM), 5
        )
        assert [(r.state, r.reply[:9]) for r in results] == [("pending", "451 4.4.1")]
        assert relay.session is None  # the next message starts a fresh connection
    finally:
        await relay.close()
        server.close()


async def test_addresses_that_could_inject_commands_are_never_written():
    sink = Sink()
    await sink.start()
    relay = transport_to(sink.port)
    try:
        evil = "x@example.net>\r\nRCPT TO:<victim@example.com"
        results = await relay.send("a@example.org", [evil, "ok@example.net"], RAW, ITEM)
        states = {r.rcpt: r.state for r in results}
        assert states == {evil: "bounced", "ok@example.net": "sent"}
        assert {r.rcpt for r in sink.received} == {"ok@example.net"}
    finally:
        await relay.close()
        await sink.stop()


def self_signed_certificate(directory: Path) -> tuple[str, str]:
    """A certificate for 127.0.0.1, made here (cryptography is already a dependency)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relay.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "relay.pem", directory / "relay.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


async def test_starttls_relay_carries_pipelined_transactions(tmp_path, monkeypatch):
    # aiosmtplib does the handshake and STARTTLS; the transaction then runs on the TLS
    # transport it hands over. The relay requires TLS, so nothing gets through in clear.
    cert, key = self_signed_certificate(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", cert)  # the client trusts this relay's certificate
    sink = Sink(tls_context=server_tls)
    await sink.start()
    relay = RelayTransport(
        OutboundConfig(relay_host="127.0.0.1", relay_port=sink.port, starttls=True), "mailhub.test"
    )
    try:
        for n in range(2):
            results = await relay.send(ITEM.mail_from, [f"m{n}@example.net"], RAW, ITEM)
            assert [r.state for r in results] == ["sent"], results
        assert relay.session is not None and relay.session.pipelining
        assert relay.session.reader.transport.get_extra_info("sslcontext") is not None
        assert {r.rcpt for r in sink.received} == {"m0@example.net", "m1@example.net"}
    finally:
        await relay.close()
        await sink.stop()
