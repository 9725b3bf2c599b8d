"""Outbound delivery against a real SMTP sink: retries, bounces, DSNs, per-recipient state."""

from __future__ import annotations

from tests.support.hub import DOMAIN, message, start_hub


async def recipient_states(hub) -> dict[str, str]:
    async with hub.service.store.read() as tx:
        cur = await tx.execute("SELECT rcpt, state FROM outbound_rcpt")
        return {r: s for r, s in await cur.fetchall()}


async def test_451_then_250_is_retried_and_delivered_once(hub):
    hub.sink.scripts["helper@example.net"] = ["451 4.2.0 try later", "250 OK"]
    await hub.send("sam@example.net", [f"enquiries@{DOMAIN}"], message())
    await hub.sink.wait_count("helper@example.net")
    await hub.idle()
    assert len(hub.sink.to("helper@example.net")) == 1
    assert (await recipient_states(hub))["helper@example.net"] == "sent"


async def test_550_bounces_to_the_envelope_sender_once_and_is_not_retried(hub):
    # The forward to the enquiries handler goes from postmaster@; a 550 there produces one
    # DSN back to that envelope sender, naming the recipient, without the body.
    hub.sink.scripts["helper@example.net"] = ["550 5.1.1 no such user"]
    await hub.send("sam@example.net", [f"enquiries@{DOMAIN}"], message(body="secret body\n"))
    dsns = await hub.sink.wait_count(f"postmaster@{DOMAIN}")
    await hub.idle()
    assert len(dsns) == 1
    dsn = dsns[0]
    assert dsn.mail_from == ""
    m = dsn.message
    assert m.get_content_type() == "multipart/report"
    assert "helper@example.net" in dsn.raw.decode()
    assert b"secret body" not in dsn.raw
    assert (await recipient_states(hub))["helper@example.net"] == "bounced"
    assert hub.sink.to("helper@example.net") == []


async def test_no_dsn_for_a_null_sender(hub):
    # The acknowledgement is sent from <>: its failure must not bounce anywhere.
    hub.sink.scripts["sam@example.net"] = ["550 5.1.1 gone"]
    await hub.send("sam@example.net", [f"enquiries@{DOMAIN}"], message())
    await hub.sink.wait_count("helper@example.net")
    await hub.idle()
    states = await recipient_states(hub)
    assert states["sam@example.net"] == "bounced"
    async with hub.service.store.read() as tx:
        cur = await tx.execute("SELECT COUNT(*) FROM outbound WHERE kind = 'dsn'")
        assert (await cur.fetchone())[0] == 0


async def test_temporary_failures_expire_after_max_age_with_a_dsn(tmp_path):
    hub = await start_hub(tmp_path, extra="")
    try:
        hub.sink.scripts["helper@example.net"] = ["451 4.2.0 try later"]
        cfg = hub.service.delivery.cfg
        # Move the clock past max_age between attempts: the next failure gives up.
        await hub.send("sam@example.net", [f"enquiries@{DOMAIN}"], message())
        await hub.sink.wait_count("sam@example.net")  # the acknowledgement got through
        hub.clock.advance(cfg.max_age_seconds + 1)
        hub.service.delivery.wake.set()
        dsns = await hub.sink.wait_count(f"postmaster@{DOMAIN}")
        await hub.idle()
        assert "helper@example.net" in dsns[0].raw.decode()
        assert (await recipient_states(hub))["helper@example.net"] == "expired"
    finally:
        await hub.service.stop()
        await hub.sink.stop()


async def test_outgoing_mail_has_message_id_date_and_no_queue_internals(hub):
    await hub.send("sam@example.net", [f"enquiries@{DOMAIN}"], message())
    fwd = (await hub.sink.wait_count("helper@example.net"))[0]
    ack = (await hub.sink.wait_count("sam@example.net"))[0]
    for r in (fwd, ack):
        m = r.message
        assert m["Message-ID"] and m["Date"]
        assert b"outbound" not in r.raw.lower() and b"queue" not in r.raw.lower()
    assert ack.message["Auto-Submitted"] == "auto-replied"


async def test_unreachable_relay_keeps_mail_queued(tmp_path):
    from tests.support.sink import Sink

    sink = Sink()
    await sink.start()
    await sink.stop()  # nothing listens on that port any more
    hub = await start_hub(tmp_path, sink=sink)
    try:
        code, _ = await hub.send("sam@example.net", [f"enquiries@{DOMAIN}"], message())
        assert code == 250

        async def attempted() -> bool:
            async with hub.service.store.read() as tx:
                cur = await tx.execute(
                    "SELECT COUNT(*), COALESCE(SUM(CASE WHEN attempts = 0 THEN 1 ELSE 0 END), 0) FROM outbound"
                )
                rows, unattempted = await cur.fetchone()
                return rows > 0 and unattempted == 0  # processed, and every message tried

        await hub.service.wait_until(attempted)
        states = await recipient_states(hub)
        assert set(states.values()) == {"pending"}
    finally:
        await hub.service.stop()


async def test_sigterm_does_not_wait_forever_for_a_silent_relay(tmp_path):
    # A relay that accepts the connection and never says a word: stopping gives the
    # transaction in flight a grace period, then leaves it pending for the restart.
    import asyncio

    from mailhub.store import Store
    from tests.support.sink import Sink

    silent: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        silent.append(writer)

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    sink = Sink()
    sink.port = server.sockets[0].getsockname()[1]
    hub = await start_hub(tmp_path, sink=sink)
    await hub.send("sam@example.net", [f"enquiries@{DOMAIN}"], message())

    async def in_flight() -> bool:
        return bool(hub.service.delivery.in_flight)

    await hub.service.wait_until(in_flight)
    await asyncio.wait_for(hub.service.stop(grace=0.2), 5)
    server.close()
    for w in silent:
        w.close()
    store = await Store.open(tmp_path / "mailhub.db")
    try:
        async with store.read() as tx:
            cur = await tx.execute("SELECT DISTINCT state FROM outbound_rcpt")
            assert [r[0] for r in await cur.fetchall()] == ["pending"]
    finally:
        await store.close()
