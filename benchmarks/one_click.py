"""One-click unsubscribe benchmark (run by hand, not a test): what the HTTP side costs, and
what a flood of forged tokens costs the rest of the service.

Starts the real Service in this process (SQLite file, SMTP intake and HTTP on loopback,
a Maildir outbox), with a list of --members members (default 10,000) and one of 10. The
HTTP (and SMTP) client runs in a child process, so it does not share the service's event
loop. Each phase sends --requests requests over --concurrency connections:

  page-small / page-big   GET of a member's confirmation page (10 / N members)
  forged-big / forged-small  POST One-Click with a well-formed token no member has
  unknown-list            POST for a list that does not exist (no database work)

and, for the time of SMTP intake meanwhile, one message at a time to the enquiries
address alone and during the forged-token flood. It also times the member scan itself
(`leaving.find_leaver`: the SQL read of the members and an HMAC comparison each).

    .venv/bin/python benchmarks/one_click.py [--members 10000] [--requests 2000]

Loopback only, and bounded: every phase is a fixed number of requests.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp  # noqa: E402
import aiosmtplib  # noqa: E402

from mailhub.clock import SystemClock  # noqa: E402
from mailhub.config import load_config  # noqa: E402
from mailhub.lists import verp  # noqa: E402
from mailhub.lists.leaving import find_leaver, one_click_token  # noqa: E402
from mailhub.service import Service  # noqa: E402
from mailhub.store import leaving as leaving_store  # noqa: E402
from mailhub.store import lists as store  # noqa: E402
from mailhub.store import secrets  # noqa: E402

DOMAIN = "cop.example.org"
CONFIG = """
[server]
domains = ["{domain}"]
listen = "127.0.0.1:0"
[storage]
path = "{db}"
[outbound]
maildir = "{outbox}"
[admin]
addresses = ["admin@example.net"]
[autoreply]
total_per_hour = 100000
per_hour = 100000
per_day = 100000
per_domain_per_hour = 100000
[web]
listen = "127.0.0.1:0"
[[lists]]
name = "big"
display_name = "Big list"
[[lists]]
name = "small"
display_name = "Small list"
"""
FORGED_MAC = "a" * 32


async def flood(url: str, method: str, n: int, concurrency: int) -> tuple[float, dict[int, int]]:
    statuses: dict[int, int] = {}
    queue = iter(range(n))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker() -> None:
            for _ in queue:
                async with http.request(method, url, data={"List-Unsubscribe": "One-Click"}) as r:
                    await r.read()
                    statuses[r.status] = statuses.get(r.status, 0) + 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - start, statuses


async def smtp_latencies(port: int, n: int) -> list[float]:
    times = []
    raw = (
        b"From: sam@example.net\r\nTo: enquiries@"
        + DOMAIN.encode()
        + b"\r\nSubject: hi\r\n\r\nhello\r\n"
    )
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=30)
    await client.connect()
    for _ in range(n):
        start = time.perf_counter()
        await client.sendmail("sam@example.net", [f"enquiries@{DOMAIN}"], raw)
        times.append(time.perf_counter() - start)
    await client.quit()
    return times


def ms(values: list[float], q: float) -> str:
    values = sorted(values)
    return f"{values[min(len(values) - 1, int(q * len(values)))] * 1000:.1f}"


async def client_main(
    args: argparse.Namespace, web_port: int, smtp_port: int, tokens: dict
) -> None:
    base = f"http://127.0.0.1:{web_port}/u/"
    phases = [
        ("page-small", "GET", tokens["small"]),
        ("page-big", "GET", tokens["big"]),
        ("forged-small", "POST", f"small.{FORGED_MAC}"),
        ("forged-big", "POST", f"big.{FORGED_MAC}"),
        ("unknown-list", "POST", f"nosuch.{FORGED_MAC}"),
    ]
    for name, method, token in phases:
        seconds, statuses = await flood(base + token, method, args.requests, args.concurrency)
        print(
            f"{name:13} {method:4} {args.requests} requests in {seconds:.2f} s: "
            f"{args.requests / seconds:,.0f} req/s  statuses {statuses}",
            flush=True,
        )
    alone = await smtp_latencies(smtp_port, args.smtp)
    flooding = asyncio.create_task(
        flood(base + f"big.{FORGED_MAC}", "POST", args.requests, args.concurrency)
    )
    during = await smtp_latencies(smtp_port, args.smtp)
    await flooding
    for label, t in (("alone", alone), ("during forged-big flood", during)):
        print(
            f"SMTP 250 latency {label}: p50 {ms(t, 0.5)} ms, p99 {ms(t, 0.99)} ms, "
            f"max {max(t) * 1000:.1f} ms ({len(t)} messages)",
            flush=True,
        )


def run_client(args: argparse.Namespace, web_port: int, smtp_port: int, tokens: dict) -> None:
    asyncio.run(client_main(args, web_port, smtp_port, tokens))


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mailhub.toml"
        path.write_text(
            CONFIG.format(domain=DOMAIN, db=Path(tmp) / "m.db", outbox=Path(tmp) / "outbox")
        )
        service = Service(load_config(path), SystemClock(), run_scheduler=False)
        await service.start()
        try:
            async with service.store.transaction() as tx:
                secret = await secrets.get_or_create(tx, "lists")
                for i in range(args.members):
                    await store.add_member(tx, "big", f"m{i:06d}@example.net", "", 0.0)
                for i in range(10):
                    await store.add_member(tx, "small", f"m{i:06d}@example.net", "", 0.0)
            # The scan itself, in this process: cold (no cached member tokens), then warm.
            for label in ("cold", "warm", "warm"):
                if label == "cold":
                    verp.member_token.cache_clear()
                start = time.perf_counter()
                async with service.store.read() as tx:
                    macs = await leaving_store.member_addresses(tx, "big")
                read = time.perf_counter() - start
                start = time.perf_counter()
                verp.find_member(secret, verp.LEAVE, "big", FORGED_MAC, macs)
                compare = time.perf_counter() - start
                start = time.perf_counter()
                async with service.store.read() as tx:
                    assert await find_leaver(tx, secret, "big", FORGED_MAC) is None
                whole = time.perf_counter() - start
                print(
                    f"scan of {args.members:,} members ({label}): read {read * 1000:.1f} ms, "
                    f"HMAC compare {compare * 1000:.1f} ms, find_leaver {whole * 1000:.1f} ms",
                    flush=True,
                )
            tokens = {
                "big": one_click_token(secret, "big", f"m{args.members - 1:06d}@example.net"),
                "small": one_click_token(secret, "small", "m000009@example.net"),
            }
            proc = mp.get_context("spawn").Process(
                target=run_client, args=(args, service.web.port, service.port, tokens)
            )
            proc.start()
            while proc.is_alive():
                await asyncio.sleep(0.2)
        finally:
            await service.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--smtp", type=int, default=200)
    asyncio.run(main(parser.parse_args()))
