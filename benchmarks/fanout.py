"""List fan-out benchmark (run by hand, not a test).

Starts the real Service in this process (SQLite file, SMTP intake on loopback, relay
delivery), with a lean SMTP sink in a child process so the sink does not share the
service's CPU. Creates a list of 1,000 members, sends 200 posts over SMTP, and
measures recipient deliveries per second from the first post accepted to the last
delivery counted at the sink, in both delivery modes. Prints the peak resident
memory of the service process.

    .venv/bin/python benchmarks/fanout.py [--members 1000] [--posts 200] [--mode both]
    .venv/bin/python benchmarks/fanout.py --profile personalised   # cProfile, top 25
    .venv/bin/python benchmarks/fanout.py --mode personalised --dkim both --posts 20
        # without and with a DKIM key (DKIM on every copy, ARC on list copies), side by side

With a key, posts are looked up on a DNS server on loopback (no DMARC record), as the
lists.post preparer does for every post.

Loopback only, and bounded: each mode stops after --timeout seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import multiprocessing as mp
import pstats
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiosmtplib  # noqa: E402

from mailhub.apps import load_config  # noqa: E402
from mailhub.clock import SystemClock  # noqa: E402
from mailhub.service import Service  # noqa: E402
from mailhub.signing import keygen  # noqa: E402
from mailhub.store import lists as store  # noqa: E402
from tests.support.dns_server import DnsServer  # noqa: E402

DOMAIN = "cop.example.org"
CONFIG = """
[server]
domains = ["{domain}"]
listen = "127.0.0.1:0"
max_recipients = 100

[storage]
path = "{db}"

[outbound]
relay = "smtp://127.0.0.1:{sink_port}"
batch_size = {batch_size}
connections = {connections}

[admin]
addresses = ["admin@example.net"]

[[lists]]
name = "bench"
display_name = "Bench"
non_member_posts = "accept"
delivery = "{mode}"
"""
SIGNING = """
[dkim]
selector = "mailhub"
key_file = "{key_file}"

[dns]
nameservers = ["{dns}"]
timeout = 2
"""

POST = (
    "From: Poster <poster@example.net>\r\nTo: bench@{domain}\r\nSubject: Post {n}\r\n"
    "Message-ID: <bench-{n}@example.net>\r\nMIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n\r\n" + "A line of a typical list post.\r\n" * 40
)


# --- a lean SMTP sink (child process) ------------------------------------------------


class SinkProtocol(asyncio.Protocol):
    """Just enough SMTP to accept mail: counts recipients of each completed DATA."""

    def __init__(self, count, last) -> None:  # noqa: ANN001 - multiprocessing Values
        self.count = count
        self.last = last
        self.buf = b""
        self.in_data = False
        self.rcpts = 0

    def connection_made(self, transport) -> None:  # noqa: ANN001
        self.transport = transport
        transport.write(b"220 sink ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        self.buf += data
        out = []
        while True:
            if self.in_data:
                end = self.buf.find(b"\r\n.\r\n")
                if end < 0:
                    # Keep only a tail long enough to hold a split terminator.
                    self.buf = self.buf[-4:]
                    break
                self.buf = self.buf[end + 5 :]
                self.in_data = False
                with self.count.get_lock():
                    self.count.value += self.rcpts
                self.last.value = time.time()
                self.rcpts = 0
                out.append(b"250 2.0.0 OK\r\n")
                continue
            nl = self.buf.find(b"\r\n")
            if nl < 0:
                break
            line, self.buf = self.buf[:nl], self.buf[nl + 2 :]
            verb = line[:4].upper()
            if verb == b"EHLO":
                out.append(b"250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 100000000\r\n")
            elif verb == b"RCPT":
                self.rcpts += 1
                out.append(b"250 2.1.5 OK\r\n")
            elif verb == b"DATA":
                self.in_data = True
                self.buf = b"\r\n" + self.buf  # so a message of zero lines still ends
                out.append(b"354 go ahead\r\n")
            elif verb == b"QUIT":
                out.append(b"221 bye\r\n")
                self.transport.write(b"".join(out))
                self.transport.close()
                return
            elif verb == b"RSET":
                self.rcpts = 0
                out.append(b"250 OK\r\n")
            else:  # HELO, MAIL, NOOP
                out.append(b"250 OK\r\n")
        if out:
            self.transport.write(b"".join(out))


def run_sink(port_out, count, last) -> None:  # noqa: ANN001
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: SinkProtocol(count, last), "127.0.0.1", 0)
        port_out.send(server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()

    asyncio.run(main())


# --- the benchmark -------------------------------------------------------------------


async def run_mode(  # noqa: ANN001
    mode: str, args: argparse.Namespace, sink_port: int, count, last, signed: bool = False
) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix=f"fanout-{mode}-"))
    path = tmp / "mailhub.toml"
    text = CONFIG.format(
        domain=DOMAIN,
        db=tmp / "mailhub.db",
        sink_port=sink_port,
        mode=mode,
        batch_size=args.batch_size,
        connections=args.connections,
    )
    dns = DnsServer()  # knows no names: no DMARC record, no poster key
    await dns.start()
    if signed:
        key_file, _ = keygen(DOMAIN, "mailhub", tmp / "dkim")
        text += SIGNING.format(key_file=key_file, dns=dns.address)
    path.write_text(text)
    config = load_config(path)
    service = Service(config, SystemClock(), run_scheduler=False)
    await service.start()
    try:
        async with service.store.transaction() as tx:
            for i in range(args.members):
                await store.add_member(tx, "bench", f"member{i:05d}@example.net", "", 0.0)
        expected = args.members * args.posts
        with count.get_lock():
            count.value = 0
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=service.port, timeout=30)
        await client.connect()
        first_accepted = None
        for n in range(args.posts):
            raw = POST.format(domain=DOMAIN, n=n).encode()
            await client.sendmail("poster@example.net", [f"bench@{DOMAIN}"], raw)
            if first_accepted is None:
                first_accepted = time.time()
        await client.quit()
        deadline = time.monotonic() + args.timeout
        while count.value < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        delivered = count.value
        elapsed = max(1e-9, last.value - first_accepted)
        return {
            "mode": mode + (" signed" if signed else ""),
            "delivered": delivered,
            "expected": expected,
            "seconds": elapsed,
            "rate": delivered / elapsed,
            "complete": delivered >= expected,
        }
    finally:
        await service.stop()
        await dns.stop()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--posts", type=int, default=200)
    parser.add_argument("--mode", choices=["both", "bulk", "personalised"], default="both")
    parser.add_argument("--batch-size", type=int, default=100, help="[outbound] batch_size")
    parser.add_argument("--connections", type=int, default=8, help="[outbound] connections")
    parser.add_argument("--timeout", type=float, default=300.0, help="per mode, seconds")
    parser.add_argument("--profile", action="store_true", help="cProfile the service process")
    parser.add_argument(
        "--dkim",
        choices=["off", "on", "both"],
        default="off",
        help="sign with a DKIM key (list copies ARC-sealed too); both: without, then with",
    )
    args = parser.parse_args()

    ctx = mp.get_context("spawn")
    count, last = ctx.Value("q", 0), ctx.Value("d", 0.0)
    receiver, sender = ctx.Pipe(duplex=False)
    sink = ctx.Process(target=run_sink, args=(sender, count, last), daemon=True)
    sink.start()
    sink_port = receiver.recv()
    modes = ["bulk", "personalised"] if args.mode == "both" else [args.mode]
    signing = {"off": [False], "on": [True], "both": [False, True]}[args.dkim]
    profiler = cProfile.Profile() if args.profile else None
    try:
        for mode, signed in [(m, s) for m in modes for s in signing]:
            if profiler:
                profiler.enable()
            result = asyncio.run(run_mode(mode, args, sink_port, count, last, signed))
            if profiler:
                profiler.disable()
            print(
                f"{result['mode']:>12}: {result['delivered']:,} of {result['expected']:,}"
                f" deliveries in {result['seconds']:.2f} s = {result['rate']:,.0f} deliveries/s"
                f"{'' if result['complete'] else '  (INCOMPLETE: timed out)'}"
            )
        print(f"peak resident memory of the service process: {peak_rss_mb():.0f} MB")
    finally:
        sink.terminate()
        sink.join()
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    return 0


if __name__ == "__main__":
    sys.exit(main())
