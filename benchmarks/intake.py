"""Intake benchmark, run by hand (not a test): `python benchmarks/intake.py [-n N] [-c M]`.

1. Throughput: N messages over M concurrent loopback SMTP connections to a bare aiosmtpd
   server that accepts and discards (the ceiling for a Python listener), then the same to
   mailhub (durable group commit, routing, delivery to a sink), alternating for R rounds.
   Prints messages/s accepted by each and the median ratio (target: mailhub >= 0.8x).
2. Latency: messages at a steady 100/s to mailhub; the time from the client seeing 250
   to the sink receiving the delivered copy, p50 and p99 (target: p99 < 100 ms).
3. Peak resident memory of the mailhub process (target: < 100 MB).

Every server runs in its own process on 127.0.0.1; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOMAIN = "bench.example.org"
ID = re.compile(rb"X-Original-Message-ID: <b-(\d+)@")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- child roles -------------------------------------------------------------------------


async def serve_bare(port: int) -> None:
    """A bare aiosmtpd server that accepts and discards: the ceiling for a Python listener."""
    from aiosmtpd.smtp import SMTP

    class Discard:
        async def handle_DATA(self, server, session, envelope):  # noqa: ANN001
            return "250 OK"

    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(Discard(), decode_data=False), "127.0.0.1", port)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    server.close()


async def serve_sink(port: int, out: Path) -> None:
    """A sink that notes the arrival time of every delivered message's benchmark id."""
    from aiosmtpd.smtp import SMTP

    arrivals: list[str] = []

    class Note:
        async def handle_DATA(self, server, session, envelope):  # noqa: ANN001
            m = ID.search(envelope.original_content or b"")
            if m:
                arrivals.append(f"{int(m.group(1))} {time.time()}")
            return "250 OK"

    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(Note(), decode_data=False), "127.0.0.1", port)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    server.close()
    out.write_text("\n".join(arrivals) + "\n")


# --- the client ----------------------------------------------------------------------------


def message(n: int) -> bytes:
    return (
        f"From: Bench <bench@example.net>\r\nTo: postmaster@{DOMAIN}\r\nSubject: load {n}\r\n"
        f"Message-ID: <b-{n}@example.net>\r\n\r\n" + "A line of text in the body.\r\n" * 40
    ).encode()


async def client(
    port: int, numbers: list[int], accepted: dict[int, float], interval: float = 0.0
) -> None:
    import aiosmtplib

    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=30)
    await smtp.connect()
    try:
        for n in numbers:
            started = time.monotonic()
            await smtp.sendmail("bench@example.net", [f"postmaster@{DOMAIN}"], message(n))
            accepted[n] = time.time()
            if interval:
                await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))
    finally:
        smtp.close()


async def blast(port: int, n: int, connections: int) -> float:
    """Send n messages over `connections` connections; return messages/s accepted."""
    accepted: dict[int, float] = {}
    shares = [list(range(i, n, connections)) for i in range(connections)]
    started = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(client(port, s, accepted) for s in shares)), 600)
    elapsed = time.perf_counter() - started
    assert len(accepted) == n
    return n / elapsed


async def wait_port(port: int, proc: asyncio.subprocess.Process) -> None:
    for _ in range(400):  # ~20 s
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            if proc.returncode is not None:
                raise SystemExit("a benchmark server failed to start") from None
            await asyncio.sleep(0.05)
    raise SystemExit("a benchmark server did not start")


async def spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(sys.executable, *args, cwd=REPO)


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 60)


async def wait_drained(db: Path, timeout: float) -> float | None:
    """Poll mailhub's database (read-only) until nothing is queued or pending delivery.
    Returns when (perf_counter) the inbound queue was first seen empty (within a poll)."""
    import sqlite3

    processed_at = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
            (queued,) = conn.execute(
                "SELECT COUNT(*) FROM inbound WHERE state = 'queued'"
            ).fetchone()
            (pending,) = conn.execute(
                "SELECT COUNT(*) FROM outbound_rcpt WHERE state = 'pending'"
            ).fetchone()
        if not queued and processed_at is None:
            processed_at = time.perf_counter()
        if not queued and not pending:
            return processed_at
        await asyncio.sleep(0.05)  # another process's database: there is no event to await
    raise SystemExit(f"mailhub did not drain its queues within {timeout:.0f} s")


def queue_counts(db: Path) -> str:
    """How far the workers got: inbound processed, and recipients delivered."""
    import sqlite3

    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
        (done,) = conn.execute("SELECT COUNT(*) FROM inbound WHERE state = 'done'").fetchone()
        (total,) = conn.execute("SELECT COUNT(*) FROM inbound").fetchone()
        (sent,) = conn.execute("SELECT COUNT(*) FROM outbound_rcpt WHERE state = 'sent'").fetchone()
    return f"{done} of {total} processed, {sent} delivered"


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (all its threads): unlike wall time, a
    neighbour on the machine taking the CPU away does not inflate it."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def span(values: list[float]) -> str:
    values = sorted(values)
    return f"{statistics.median(values):6.0f} (range {values[0]:.0f}-{values[-1]:.0f})"


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


async def main(
    n: int, connections: int, latency_seconds: float, rounds: int, profile: Path | None = None
) -> None:
    me = str(Path(__file__).resolve())
    work = Path(tempfile.mkdtemp(prefix="mailhub-bench-"))
    # The bare server and mailhub both stay up; the client alternates between them, round
    # after round, so that a change in the machine's speed (a shared VM varies by +-30 %
    # from minute to minute) hits both sides of each ratio alike.
    bare_port = free_port()
    bare = await spawn(me, "--role", "bare", "--port", str(bare_port))
    await wait_port(bare_port, bare)
    sink_port, hub_port = free_port(), free_port()
    arrivals_file = work / "arrivals.txt"
    sink = await spawn(me, "--role", "sink", "--port", str(sink_port), "--out", str(arrivals_file))
    await wait_port(sink_port, sink)
    config = work / "mailhub.toml"
    config.write_text(
        f'[server]\ndomains = ["{DOMAIN}"]\nlisten = "127.0.0.1:{hub_port}"\n'
        f'max_connections = 1000\nmax_connections_per_peer = 1000\n[storage]\npath = "{work / "mailhub.db"}"\n'
        f'[outbound]\nrelay = "smtp://127.0.0.1:{sink_port}"\n'
        f'[admin]\naddresses = ["admin@example.net"]\n'
    )
    # --profile: mailhub's main thread under cProfile (its event loop: intake, processing
    # and delivery; SQLite's own work runs in aiosqlite's thread and shows as waits).
    prof = ("-m", "cProfile", "-o", str(profile)) if profile else ()
    serve = ("-m", "mailhub", "serve", "--config", str(config), "--log-level", "WARNING")
    hub = await spawn(*prof, *serve)
    await wait_port(hub_port, hub)
    await blast(bare_port, min(200, n), connections)  # warm-up
    await blast(hub_port, min(200, n), connections)
    await wait_drained(work / "mailhub.db", timeout=300)

    # 1. throughput, alternating; mailhub's backlog is worked off between rounds (timed
    # separately: that is the end-to-end rate).
    bare_rates: list[float] = []
    hub_rates: list[float] = []
    sustained: list[float] = []
    processing: list[float] = []  # after the burst, until the inbound queue is empty
    done_in_burst = ""
    bare_cpu = hub_cpu = drain_cpu = 0.0
    for _ in range(rounds):
        before = cpu_seconds(bare.pid)
        bare_rates.append(await blast(bare_port, n, connections))
        bare_cpu += cpu_seconds(bare.pid) - before
        started = time.perf_counter()
        before = cpu_seconds(hub.pid)
        hub_rates.append(await blast(hub_port, n, connections))
        hub_cpu += cpu_seconds(hub.pid) - before
        done_in_burst = queue_counts(work / "mailhub.db")
        before = cpu_seconds(hub.pid)
        burst_end = time.perf_counter()
        processed_at = await wait_drained(work / "mailhub.db", timeout=300) or burst_end
        processing.append(n / max(processed_at - burst_end, 0.05))
        sustained.append(n / (time.perf_counter() - started))
        drain_cpu += cpu_seconds(hub.pid) - before
    await stop(bare)
    ratios = sorted(h / b for h, b in zip(hub_rates, bare_rates, strict=True))

    # 2. latency at a steady 100 messages/s (ids from 10**6 so they don't mix with the above)
    count = int(100 * latency_seconds)
    accepted: dict[int, float] = {}
    ids = list(range(10**6, 10**6 + count))
    shares = [ids[i::4] for i in range(4)]  # 4 connections, 25 msgs/s each
    await asyncio.wait_for(
        asyncio.gather(*(client(hub_port, s, accepted, interval=0.04) for s in shares)),
        latency_seconds * 3 + 30,
    )
    await wait_drained(work / "mailhub.db", timeout=60)
    rss = peak_rss_mb(hub.pid)
    await stop(hub)
    await stop(sink)
    arrived = {}
    for line in arrivals_file.read_text().split("\n"):
        if line:
            key, at = line.split()
            arrived.setdefault(int(key), float(at))
    latencies = [(arrived[k] - accepted[k]) * 1000 for k in ids if k in arrived]
    missing = [k for k in ids if k not in arrived]

    print(f"messages: {n} over {connections} connections, {rounds} alternating rounds")
    print(f"bare aiosmtpd (accept and discard): {span(bare_rates)} msgs/s")
    print(f"mailhub (durable, routed, relayed): {span(hub_rates)} msgs/s")
    print(
        f"ratio mailhub/bare per round:       median {statistics.median(ratios):.2f}"
        f" (range {ratios[0]:.2f}-{ratios[-1]:.2f}; target >= 0.80)"
    )
    print(
        f"server CPU per accepted message:    bare {bare_cpu / (n * rounds) * 1e6:.0f} us,"
        f" mailhub {hub_cpu / (n * rounds) * 1e6:.0f} us (all threads, during the bursts)"
    )
    print(f"when the last 250 was given:        {done_in_burst} (last round)")
    print(f"mailhub end to end (accepted, processed, relayed): {span(sustained)} msgs/s")
    print(
        f"processing after the burst (last 250 -> inbound queue empty, polled every 50 ms):"
        f" {span(processing)} msgs/s"
    )
    kept = sorted(p / h for p, h in zip(processing, hub_rates, strict=True))
    print(
        f"ratio processing/intake per round:  median {statistics.median(kept):.2f}"
        f" (range {kept[0]:.2f}-{kept[-1]:.2f})"
    )
    e2e = sorted(s / h for s, h in zip(sustained, hub_rates, strict=True))
    print(
        f"ratio end to end/intake per round: median {statistics.median(e2e):.2f}"
        f" (range {e2e[0]:.2f}-{e2e[-1]:.2f})"
    )
    print(
        f"server CPU per message after the burst (processing and delivery of what the burst"
        f" left): {drain_cpu / (n * rounds) * 1e6:.0f} us"
    )
    if latencies:
        print(
            f"250 -> sink at 100 msgs/s ({count} messages): p50 {statistics.median(latencies):.1f} ms,"
            f" p99 {percentile(latencies, 99):.1f} ms  (target p99 < 100 ms)"
        )
    print(f"not delivered within the run: {len(missing)}")
    print(f"mailhub peak resident memory: {rss:6.1f} MB  (target < 100 MB)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=5000, help="messages in the throughput run")
    parser.add_argument("-c", type=int, default=20, help="concurrent connections")
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=5, help="alternating throughput rounds")
    parser.add_argument("--profile", type=Path, help="write mailhub's cProfile stats here")
    parser.add_argument("--role", choices=["bare", "sink"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "bare":
        asyncio.run(serve_bare(args.port))
    elif args.role == "sink":
        asyncio.run(serve_sink(args.port, args.out))
    else:
        if not (1 <= args.n <= 100_000 and 1 <= args.c <= 200 and 1 <= args.rounds <= 20):
            raise SystemExit("choose -n in 1..100000, -c in 1..200 and --rounds in 1..20")
        os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
        latency = min(args.latency_seconds, 60.0)
        asyncio.run(main(args.n, args.c, latency, args.rounds, args.profile))
