"""kill -9 the real server process in the middle of a load, restart it, and count.

Every message that got 250 must be delivered (lost = 0). Duplicates are allowed only
for SMTP transactions in flight at the kill: at most one per delivery connection.
"""

from __future__ import annotations

import asyncio
import re
import signal
from collections import Counter
from pathlib import Path

from tests.support.hub import DOMAIN
from tests.support.nodes import free_port, sender, start_server, stop_server
from tests.support.sink import Sink

CONNECTIONS = 4
REPO = Path(__file__).resolve().parent.parent


def write_config(tmp_path: Path, port: int, sink_port: int, busy_timeout: str = "10s") -> Path:
    path = tmp_path / "mailhub.toml"
    path.write_text(f"""
[server]
domains = ["{DOMAIN}"]
listen = "127.0.0.1:{port}"
[storage]
path = "{tmp_path / "mailhub.db"}"
busy_timeout = "{busy_timeout}"
[outbound]
relay = "smtp://127.0.0.1:{sink_port}"
connections = {CONNECTIONS}
retry_base = 0
[admin]
addresses = ["admin@example.net"]
""")
    return path


def raw_message(n: int) -> bytes:
    return (
        f"From: sam@example.net\r\nSubject: load {n}\r\nMessage-ID: <load-{n}@example.net>\r\n"
        f"\r\nmessage {n}\r\n"
    ).encode()


def envelope(n: int) -> tuple[str, list[str], bytes]:
    return "sam@example.net", [f"postmaster@{DOMAIN}"], raw_message(n)


_ORIGINAL = re.compile(rb"^X-Original-Message-ID: <load-(\d+)@", re.MULTILINE)


def delivered_ids(sink: Sink) -> Counter[int]:
    # A regex over the raw bytes: this runs on every delivery, so no full parse.
    ids: Counter[int] = Counter()
    for r in sink.to("admin@example.net"):
        m = _ORIGINAL.search(r.raw)
        if m:
            ids[int(m.group(1))] += 1
    return ids


async def run_load_and_stop(tmp_path: Path, how: signal.Signals) -> tuple[set[int], Counter[int]]:
    sink = Sink()
    await sink.start()
    port = free_port()
    config = write_config(tmp_path, port, sink.port)
    proc = await start_server(config, port)
    accepted: set[int] = set()
    numbers: asyncio.Queue[int] = asyncio.Queue()
    for n in range(400):
        numbers.put_nowait(n)
    try:
        senders = [asyncio.create_task(sender(port, numbers, accepted, envelope)) for _ in range(5)]
        # Stop the server mid-load: once deliveries are flowing and mail is still arriving.
        await sink.wait_for(lambda rs: len(rs) >= 60, timeout=90)
        proc.send_signal(how)
        await asyncio.wait_for(proc.wait(), 30)
        await asyncio.gather(*senders)
        # Mid-load: some accepted mail was still undelivered when the server stopped.
        assert len(set(delivered_ids(sink))) < len(accepted), "the stop did not land mid-load"
        proc = await start_server(config, port)
        await sink.wait_for(lambda rs: accepted <= set(delivered_ids(sink)), timeout=120)
        # Let anything else queued finish too, then count.
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()
        return accepted, delivered_ids(sink)
    finally:
        await stop_server(proc)
        await sink.stop()


async def test_kill_9_mid_load_loses_nothing(tmp_path):
    accepted, delivered = await run_load_and_stop(tmp_path, signal.SIGKILL)
    lost = accepted - set(delivered)
    duplicated = [n for n, count in delivered.items() if count > 1]
    print(f"accepted={len(accepted)} lost={len(lost)} duplicated={len(duplicated)}")
    assert not lost
    assert len(duplicated) <= CONNECTIONS


async def test_sigterm_drains_cleanly_with_no_duplicates(tmp_path):
    accepted, delivered = await run_load_and_stop(tmp_path, signal.SIGTERM)
    assert not accepted - set(delivered)
    assert all(count == 1 for count in delivered.values())


async def test_kill_9_while_connections_are_parked_resends_each_at_most_once(tmp_path):
    """The relay's answers cannot be recorded (another connection holds the write lock), so
    every delivery connection parks with its answer in memory; kill -9 then loses those
    answers. After the restart each of those messages goes out once more, and nothing
    else does: at most one copy too many per connection, none lost."""
    from tests.test_supervision_e2e import LockingSink

    sink = LockingSink(tmp_path / "mailhub.db", together=CONNECTIONS)
    await sink.start()
    port = free_port()
    config = write_config(tmp_path, port, sink.port, busy_timeout="1s")
    proc = await start_server(config, port, "INFO", asyncio.subprocess.PIPE)
    accepted: set[int] = set()
    numbers: asyncio.Queue[int] = asyncio.Queue()
    for n in range(12):
        numbers.put_nowait(n)
    try:
        await asyncio.gather(*(sender(port, numbers, accepted, envelope) for _ in range(3)))
        assert accepted == set(range(12))
        await sink.answer.wait()
        # Wait until every connection has logged that it parked (the server's own words).
        assert proc.stderr is not None
        parked = 0
        async with asyncio.timeout(10):
            while parked < CONNECTIONS:
                line = await proc.stderr.readline()
                assert line, "the server ended"
                parked += b"outcome=parked" in line
        answered = set(delivered_ids(sink))
        proc.kill()
        await proc.wait()
        sink.lock.release()
        if sink.holding is not None:
            sink.holding.cancel()
        proc = await start_server(config, port)
        await sink.wait_for(lambda rs: accepted <= set(delivered_ids(sink)), timeout=30)
    finally:
        await stop_server(proc)
        await sink.stop()
    delivered = delivered_ids(sink)
    duplicated = {n for n, count in delivered.items() if count > 1}
    print(f"accepted={len(accepted)} parked_at_kill={len(answered)} duplicated={len(duplicated)}")
    assert not accepted - set(delivered)
    assert all(count <= 2 for count in delivered.values())
    # Only messages whose answer was parked at the kill went out twice.
    assert duplicated <= answered
    assert len(duplicated) <= CONNECTIONS
