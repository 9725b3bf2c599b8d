"""What DKIM and ARC cost per copy: RSA-2048, a 2 KB and a 100 KB list copy.

Run by hand: `.venv/bin/python benchmarks/signing.py [COPIES]` (default 200). Each row is
microseconds per copy, the median of 5 runs over COPIES personalised copies of one post
(the copies differ in their List-Unsubscribe token only):

- `dkimpy dkim.sign`: dkimpy's own signer (pure-Python RSA), for comparison only;
- `sign`: Signer.sign, one copy at a time (RSA by OpenSSL through `cryptography`);
- `sign_many`: the copies of the post at once, the body hashed once;
- `seal`: Signer.seal per copy (dkimpy's arc_sign: two pure-Python RSA signatures);
- `sign+seal`: both per copy;
- `seal_many+sign_many`: one ARC set for the post, one DKIM signature per copy.

Then the event loop's worst lag (a 1 ms timer's lateness) while the 100 KB post's copies are
sealed and signed in a thread (`asyncio.to_thread`), as the service would run it.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import dkim

from mailhub.signing import OVERSIGNED, SIGNED, Signer, keygen, parse_dkim

DOMAIN = "cop.example.org"
SRV_ID = "mailhub.test"
LINE = b"Bore da. This is a line of an ordinary list post, in a paragraph of such lines.\r\n"


def copies(size: int, count: int) -> list[bytes]:
    body = LINE * (size // len(LINE))
    head = (
        b"Authentication-Results: mailhub.test; dkim=pass header.d=example.net\r\n"
        b"From: Sam Jones <sam@example.net>\r\nTo: services@cop.example.org\r\n"
        b"Subject: [Bilingual services] Translation at the next meeting\r\n"
        b"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\nMessage-ID: <post-1@example.net>\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n"
        b'List-Id: "Bilingual services" <services.cop.example.org>\r\n'
        b"List-Post: <mailto:services@cop.example.org>\r\nX-Loop: services@cop.example.org\r\n"
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    )
    return [
        head + b"List-Unsubscribe: <https://lists.example.org/u/tok%06d>\r\n\r\n" % i + body
        for i in range(count)
    ]


def per_copy(run: Callable[[], object], count: int) -> float:
    times = []
    for _ in range(5):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) / count * 1e6)
    return statistics.median(times)


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    with tempfile.TemporaryDirectory() as tmp:
        path, _ = keygen(DOMAIN, "mailhub", Path(tmp))
        config = parse_dkim({"selector": "mailhub", "key_file": str(path)}, Path(tmp))
    signer = Signer(config, [DOMAIN])
    pem = signer.key_for(DOMAIN).pem  # type: ignore[union-attr]
    include = [n.encode() for n in SIGNED + OVERSIGNED]
    print(f"RSA-2048, {count} copies, microseconds per copy (median of 5 runs)")
    print(f"{'':22}{'2 KB':>10}{'100 KB':>10}")
    slow = max(count // 10, 10)  # dkimpy's pure-Python RSA: fewer copies, same per-copy cost
    rows: dict[str, list[float]] = {}
    for size in (2 * 1024, 100 * 1024):
        raws = copies(size, count)
        few = raws[:slow]
        measured = {
            "dkimpy dkim.sign": per_copy(
                lambda few=few: [
                    dkim.sign(r, b"mailhub", DOMAIN.encode(), pem, include_headers=include)
                    for r in few
                ],
                slow,
            ),
            "sign": per_copy(lambda raws=raws: [signer.sign(r, DOMAIN) for r in raws], count),
            "sign_many": per_copy(lambda raws=raws: signer.sign_many(raws, DOMAIN), count),
            "seal": per_copy(lambda few=few: [signer.seal(r, DOMAIN, SRV_ID) for r in few], slow),
            "sign+seal": per_copy(
                lambda few=few: [signer.sign(signer.seal(r, DOMAIN, SRV_ID), DOMAIN) for r in few],
                slow,
            ),
            "seal_many+sign_many": per_copy(
                lambda raws=raws: signer.sign_many(signer.seal_many(raws, DOMAIN, SRV_ID), DOMAIN),
                count,
            ),
        }
        for name, us in measured.items():
            rows.setdefault(name, []).append(us)
    for name, (small, large) in rows.items():
        print(f"{name:22}{small:10.0f}{large:10.0f}")
    lag = asyncio.run(loop_lag(signer, copies(100 * 1024, count)))
    print(f"event loop: worst lag {lag * 1000:.1f} ms while {count} copies are signed in a thread")


async def loop_lag(signer: Signer, raws: list[bytes]) -> float:
    work = asyncio.create_task(
        asyncio.to_thread(lambda: signer.sign_many(signer.seal_many(raws, DOMAIN, SRV_ID), DOMAIN))
    )
    worst = 0.0
    while not work.done():
        start = time.perf_counter()
        await asyncio.sleep(0.001)
        worst = max(worst, time.perf_counter() - start - 0.001)
    await work
    return worst


if __name__ == "__main__":
    main()
