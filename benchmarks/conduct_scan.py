"""Conduct scan cost (run by hand, not a test).

Times `examine_raw` (the whole scan of one message: MIME walk, text, names, case
references) on an ordinary report and on pathological ones, side by side with a
baseline in the same run: the standard library's `email` parser reading the same bytes,
which every message pays anyway. Then runs the scan the way the service does, in the
content worker process with its time budget (`mailhub.content.run_bounded`), and times
SMTP intake of other mail on loopback while a 2 MB report is being scanned.

    .venv/bin/python benchmarks/conduct_scan.py [--rounds 5]

Loopback only; every loop is bounded by --rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mailhub import content  # noqa: E402
from mailhub.conduct.config import CommitteeMember  # noqa: E402
from mailhub.conduct.examine import examine_raw  # noqa: E402
from mailhub.parsing import parse  # noqa: E402

COMMITTEE = (
    CommitteeMember("ada-jones", "Ada Jones", ("ada@example.net",), ("AJ", "Ada J")),
    CommitteeMember("bryn-hughes", "Bryn Hughes", ("bryn@example.net",), ("Brynnie",)),
    CommitteeMember("carys-pryce", "Carys Pryce", ("carys@example.net",)),
    CommitteeMember("dafydd-ap-iwan", "Dafydd ap Iwan", ("dafydd@example.cymru",)),
)
HEAD = b"From: r@example.org\r\nTo: conduct@cop.example.org\r\nSubject: report\r\n"


def ordinary() -> bytes:
    text = (
        "Yn y cyfarfod ddydd Llun, roedd un o'r aelodau yn anghwrtais wrth y cyfieithydd.\r\n"
        "At the meeting on Monday one member was rude to the interpreter, twice.\r\n"
    ) * 20
    return HEAD + b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + text.encode()


def markup_2mb() -> bytes:
    junk = ("<b>  <i>" + " " * 120 + "</i>\r\n") * 16000
    return HEAD + b"Content-Type: text/html\r\n\r\n" + (junk + "Brynnie").encode()


def many_parts(n: int = 20000) -> bytes:
    parts = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(n))
    return HEAD + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' + parts + b"--b--\r\n"


def timed(fn, *args) -> float:  # noqa: ANN001
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def in_process(rounds: int) -> None:
    print(f"{'message':24} {'size':>9} {'email parse (baseline)':>24} {'examine_raw':>12} ratio")
    for name, raw in (("ordinary report", ordinary()), ("2 MB spaces+markup", markup_2mb()),
                      ("20,000 MIME parts", many_parts())):  # fmt: skip
        base = statistics.median(timed(parse, raw) for _ in range(rounds))
        scan = statistics.median(timed(examine_raw, raw, COMMITTEE) for _ in range(rounds))
        print(f"{name:24} {len(raw):>9,} {base * 1000:>21.1f} ms {scan * 1000:>9.1f} ms"
              f" {scan / base:5.1f}x")  # fmt: skip


async def in_service(rounds: int) -> None:
    from tests.support.hub import DOMAIN, running_hub
    from tests.test_conduct_e2e import COMMITTEE_TOML

    raw = markup_2mb()
    with tempfile.TemporaryDirectory() as tmp:
        async with running_hub(Path(tmp), extra=COMMITTEE_TOML, max_message_bytes=4_000_000) as hub:
            # The worker process, warm (its first start costs a fresh interpreter).
            await content.run_bounded(examine_raw, ordinary(), COMMITTEE)
            t0 = time.perf_counter()
            await content.run_bounded(examine_raw, raw, COMMITTEE)
            print(f"\nworker round trip, 2 MB report: {(time.perf_counter() - t0) * 1000:.0f} ms")
            quiet = []
            for i in range(rounds):
                t = time.perf_counter()
                await hub.send("s@example.net", [f"enquiries@{DOMAIN}"], f"Subject: q{i}\n\nx\n")
                quiet.append(time.perf_counter() - t)
            await hub.idle()
            busy = []
            t_report = time.perf_counter()
            await hub.send("r@example.net", [f"conduct@{DOMAIN}"], raw)
            for i in range(rounds):
                t = time.perf_counter()
                await hub.send("s@example.net", [f"enquiries@{DOMAIN}"], f"Subject: b{i}\n\nx\n")
                busy.append(time.perf_counter() - t)
            await hub.idle()
            done = time.perf_counter() - t_report
            print(f"enquiry 250 latency, idle service:         median {statistics.median(quiet) * 1000:.1f} ms,"
                  f" max {max(quiet) * 1000:.1f} ms")  # fmt: skip
            print(
                f"enquiry 250 latency, while the 2 MB report is scanned: median"
                f" {statistics.median(busy) * 1000:.1f} ms, max {max(busy) * 1000:.1f} ms"
            )
            print(f"2 MB report: accepted, scanned, case opened and queued in {done:.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    in_process(args.rounds)
    asyncio.run(in_service(args.rounds))
    content.shutdown()


if __name__ == "__main__":
    main()
