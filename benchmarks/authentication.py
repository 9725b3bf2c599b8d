"""DNS, DKIM verification and DMARC cost (run by hand, not a test).

Against the loopback DNS server of the tests: TXT lookups through `mailhub.resolver` (each
name once, then from the cache); `mailhub.authentication.verify` of an ordinary post and of
a 10 MiB one with five signatures, side by side with dkimpy's own `dkim.verify` of the same
bytes in the same run (one signature, its own DNS function, so no DNS cost either side);
a body made to slow dkimpy's relaxed form; and the event loop's longest stall while a
10 MiB post is verified (the work runs in a thread, so it should stay near the tick).

    .venv/bin/python benchmarks/authentication.py [--rounds 5]

Loopback only; every loop is bounded by --rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import sys
import time
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mailhub.authentication import verify  # noqa: E402
from mailhub.resolver import DnsConfig, Resolver  # noqa: E402
from tests.support.dns_server import DnsServer, txt  # noqa: E402

POST = (
    b"From: Sam Jones <sam@mail.example.org>\r\n"
    b"To: practice@cop.example.org\r\n"
    b"Subject: Bilingual forms\r\n"
    b"Message-ID: <post-1@mail.example.org>\r\n"
    b"\r\n"
)
TEXT = b"Has anyone tested the new Welsh forms? Mae'r ffurflenni newydd yn barod.\r\n" * 50
BIG = (b"TGxpbmVsbCBvIGRlc3R1bi9hIGxpbmUgb2YgdGV4dA" * 2 + b"\r\n") * (10 * 1024 * 1024 // 84)
SPACES = (b" " * 990 + b"x\r\n") * (1024 * 1024 // 993)  # 1 MiB: dkimpy takes seconds


def keypair() -> tuple[bytes, str]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem, base64.b64encode(der).decode()


def signature(message: bytes, pem: bytes) -> bytes:
    """The DKIM-Signature header field for `message` (dkimpy returns the field alone)."""
    return dkim.sign(message, b"s2026", b"example.org", pem, canonicalize=(b"relaxed", b"relaxed"))


def report(name: str, seconds: list[float]) -> None:
    print(f"{name:58} median {statistics.median(seconds) * 1000:9.1f} ms  (n={len(seconds)})")


async def timed(coro_factory, rounds: int) -> list[float]:  # noqa: ANN001
    out = []
    for _ in range(rounds):
        started = time.perf_counter()
        await coro_factory()
        out.append(time.perf_counter() - started)
    return out


async def longest_stall(work) -> float:  # noqa: ANN001
    """The longest gap between ticks of a 10 ms ticker while `work` runs."""
    loop = asyncio.get_running_loop()
    worst, stop = 0.0, asyncio.Event()

    async def ticker() -> None:
        nonlocal worst
        last = loop.time()
        while not stop.is_set():
            await asyncio.sleep(0.01)
            now = loop.time()
            worst = max(worst, now - last - 0.01)
            last = now

    task = asyncio.create_task(ticker())
    await work()
    stop.set()
    await task
    return worst


async def main(rounds: int) -> None:
    pem, public = keypair()
    records = {("s2026._domainkey.example.org", "TXT"): [txt(f"v=DKIM1; k=rsa; p={public}")]}
    records[("_dmarc.example.org", "TXT")] = ['"v=DMARC1; p=reject"']
    for n in range(1000):
        records[(f"_dmarc.d{n}.example", "TXT")] = ['"v=DMARC1; p=none"']
    key_record = f"v=DKIM1; k=rsa; p={public}".encode()

    def dnsfunc(name, timeout=5):  # noqa: ANN001, ANN202 - dkimpy's own verify, no DNS cost
        return key_record

    async with DnsServer(records) as server:
        resolver = Resolver(DnsConfig((server.address,), timeout=2.0))
        in_flight = asyncio.Semaphore(20)  # as a busy service might have

        async def ask(n: int) -> None:
            async with in_flight:
                answer = await resolver.txt(f"_dmarc.d{n}.example")
                assert answer.outcome == "records", answer

        started = time.perf_counter()
        await asyncio.gather(*(ask(n) for n in range(1000)))
        cold = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(rounds):
            for n in range(1000):
                await resolver.txt(f"_dmarc.d{n}.example")
        warm = (time.perf_counter() - started) / rounds
        print(
            f"{'1000 TXT lookups, each name once (20 at a time, loopback)':58} {cold * 1000:9.1f} ms"
        )
        print(f"{'1000 TXT lookups from the cache':58} {warm * 1000:9.1f} ms")

        small = signature(POST + TEXT, pem) + POST + TEXT
        auth = "lists.cop.example.org"
        await verify(small, resolver, authserv_id=auth)  # keys and policy now cached
        report(
            "verify: 4 KB post, 1 signature (ours)",
            await timed(lambda: verify(small, resolver, authserv_id=auth), rounds * 4),
        )
        report(
            "dkim.verify: the same post (dkimpy alone)",
            await timed(lambda: asyncio.to_thread(dkim.verify, small, dnsfunc=dnsfunc), rounds * 4),
        )

        header = signature(POST + BIG, pem)
        big_signed = header + POST + BIG
        five = header * 5 + POST + BIG
        report(
            "verify: 10 MiB post, 5 signatures (ours)",
            await timed(lambda: verify(five, resolver, authserv_id=auth), rounds),
        )
        report(
            "dkim.verify: 10 MiB post, 1 signature (dkimpy alone)",
            await timed(
                lambda: asyncio.to_thread(dkim.verify, big_signed, dnsfunc=dnsfunc), rounds
            ),
        )

        spaces_header = signature(POST + SPACES, pem)
        spaces = spaces_header + POST + SPACES
        report(
            "verify: 1 MiB of space lines, 5 signatures (ours)",
            await timed(
                lambda: verify(spaces_header * 5 + POST + SPACES, resolver, authserv_id=auth),
                rounds,
            ),
        )
        report(
            "dkim.verify: 1 MiB of space lines, 1 signature (dkimpy alone)",
            await timed(lambda: asyncio.to_thread(dkim.verify, spaces, dnsfunc=dnsfunc), 1),
        )

        results = await verify(five, resolver, authserv_id=auth)
        assert results.value.count("dkim=pass") == 5, results.value
        assert dkim.verify(big_signed, dnsfunc=dnsfunc)
        stall = await longest_stall(lambda: verify(five, resolver, authserv_id=auth))
        print(f"{'event loop: longest stall while verifying 10 MiB':58} {stall * 1000:9.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    asyncio.run(main(parser.parse_args().rounds))
