"""Archive benchmark (run by hand, not a test): a thread page and a search answer over a list
of 100,000 archived posts, and what indexing adds to a post's processing.

1. Seeds ONE list ("archif", public archive) with --posts posts (default 100,000) straight
   into a real SQLite file (or, with --backend postgresql --url URL, an empty PostgreSQL
   database) through the store's functions (store.lists.archive_post and
   store.archive.index_post), a few thousand a transaction: Welsh and English text of
   200-3,000 bytes, threads of 1-30 posts, authors with Welsh names, dates over three years.
2. Times the store's reads in this process: `thread()` and `entry()` of random threads, and
   `search()` (first page of 20) for a mix of queries: a rare word, a common Welsh and a
   common English word, a phrase, an author filter, Welsh with diacritics; on a Welsh page
   (the default) each word's mutated forms are searched too, on an English page not.
3. Times indexing: `distribute` of the same posts to a 10-member list with and without the
   index call, alternating, side by side in one run; and `archive_index.index_post` alone.
4. Starts a real `mailhub serve` on loopback (a child process on this config) and times
   GET /lists/archif/thread/ID and /lists/archif/search?q=... over HTTP, one at a time.

    .venv/bin/python benchmarks/archive.py [--posts 100000] [--queries 200] [--keep DIR]
        [--backend postgresql --url postgresql://user@127.0.0.1:PORT/DB]

Loopback only, bounded counts; the service it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp  # noqa: E402

from mailhub.apps import load_config  # noqa: E402
from mailhub.clock import SystemClock  # noqa: E402
from mailhub.context import Runtime  # noqa: E402
from mailhub.lists import archive_index  # noqa: E402
from mailhub.lists import distribution as distribution_module  # noqa: E402
from mailhub.lists.config import find_list  # noqa: E402
from mailhub.lists.search_query import parse_query  # noqa: E402
from mailhub.parsing import parse  # noqa: E402
from mailhub.store import Store, archive  # noqa: E402
from mailhub.store import lists as store  # noqa: E402
from mailhub.store.postgres import PostgresStore  # noqa: E402

DOMAIN = "cop.example.org"
LIST = "archif"
CONFIG = """
[server]
domains = ["{domain}"]
listen = "127.0.0.1:{smtp_port}"
[storage]
path = "{db}"
{url}[outbound]
maildir = "{outbox}"
[admin]
addresses = ["admin@example.net"]
[web]
listen = "127.0.0.1:{web_port}"
base_url = "http://127.0.0.1:{web_port}"
searches_per_minute = 0  # the benchmark is one client asking hundreds of times
[[lists]]
name = "{name}"
display_name = "Archif"
archive = "public"
[[lists]]
name = "cost"
display_name = "Indexing cost"
[[lists]]
name = "plain"
display_name = "Indexing cost, without the index call"
"""

WELSH = (  # noqa: SIM905 - words written as prose
    "a ac ar am y yr i o yn mae bydd roedd gyda ni chi nhw hefyd ond felly wedi "
    "cyfarfod nesaf gwaith prosiect cyngor sir gwasanaeth iaith Gymraeg dogfen adroddiad "
    "cyllideb blwyddyn ysgol iechyd data gwybodaeth cymuned cynllun polisi swyddog tîm "
    "diolch croeso heddiw yfory wythnos mis cwestiwn ateb syniad trafod gweithdy hyfforddiant "
    "cyfieithu safonau cydymffurfio ymgynghoriad canllawiau digidol gwefan ffurflen "
    "ŵyl caffî tŷ dŵr gŵr Gŵyl sïo côr"
).split()
ENGLISH = (  # noqa: SIM905 - words written as prose
    "the a and of to in is it that for on with as this be are we you they was will have "
    "meeting next work project council county service language document report budget "
    "year school health data information community plan policy officer team thanks "
    "welcome today tomorrow week month question answer idea discuss workshop training "
    "translation standards compliance consultation guidance digital website form"
).split()
RARE = "Llanfairpwllgwyngyll"  # in about one post in 2,000
FIRST = (  # noqa: SIM905 - words written as prose
    "Siân Dafydd Rhys Eleri Gwenllian Owain Cerys Iolo Nia Gethin Mererid Llŷr Angharad "
    "Bethan Gruffydd Elin Huw Catrin Tomos Heledd Ifan Lowri Aled Mali Dylan Ffion Emyr "
    "Seren Hywel Manon"
).split()
LAST = (  # noqa: SIM905 - words written as prose
    "Jones Davies Williams Evans Thomas Roberts Hughes Lewis Morgan Griffiths Owen Pritchard Rees"
).split()


def make_authors(rng: random.Random) -> list[str]:
    return [f"{rng.choice(FIRST)} {rng.choice(LAST)}" for _ in range(300)]


def post_text(rng: random.Random) -> str:
    words = WELSH if rng.random() < 0.5 else ENGLISH
    size = rng.randint(200, 3000)
    out = " ".join(rng.choices(words, k=size // 6))
    if rng.random() < 0.0005:
        out = f"{RARE} {out}"
    return out[:size]


def raw_post(mid: str, author: str, subject: str, text: str, parent: str | None) -> bytes:
    extra = f"In-Reply-To: {parent}\r\nReferences: {parent}\r\n" if parent else ""
    return (
        f"From: {author} <member@example.net>\r\nTo: {LIST}@{DOMAIN}\r\nSubject: {subject}\r\n"
        f"Message-ID: {mid}\r\n{extra}MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        f"{text}\r\n"
    ).encode()


def plan(n: int, rng: random.Random) -> list[tuple[int, int | None, float]]:
    """(thread number, parent index or None, posted_at) for each post, in time order:
    threads of 1-30 posts, interleaved, over three years."""
    start = time.time() - 3 * 365 * 86400
    step = 3 * 365 * 86400 / n
    open_threads: list[list[int]] = []  # [thread no, posts left, last index]
    out = []
    threads = 0
    for i in range(n):
        if not open_threads or rng.random() < 0.12:
            open_threads.append([threads, rng.choice([1, 1, 2, 3, 5, 8, 12, 20, 30]), -1])
            threads += 1
        slot = rng.randrange(len(open_threads))
        t = open_threads[slot]
        parent = None if t[2] < 0 else t[2]
        out.append((t[0], parent, start + i * step))
        t[1] -= 1
        t[2] = i
        if t[1] <= 0:
            open_threads.pop(slot)
    return out


async def seed(db: Store, n: int, rng: random.Random) -> list[int]:
    """Fill the list; returns the archive ids of the threads (their first posts)."""
    authors = make_authors(rng)
    ids: list[int] = []
    thread_of: dict[int, int] = {}  # thread number -> archive id of its first post
    subjects: dict[int, str] = {}
    started = time.perf_counter()
    schedule = plan(n, rng)
    batch = 5000
    for first in range(0, n, batch):
        async with db.transaction(inline=True) as tx:
            for i in range(first, min(n, first + batch)):
                tno, parent, at = schedule[i]
                subject = subjects.setdefault(tno, " ".join(rng.choices(WELSH + ENGLISH, k=4)))
                author = rng.choice(authors)
                text = post_text(rng)
                mid = f"<p{i}@example.net>"
                parent_mid = f"<p{parent}@example.net>" if parent is not None else None
                shown = subject if parent is None else f"Re: {subject}"
                aid = await store.archive_post(
                    tx, list_name=LIST, message_id=mid, thread_id=parent_mid or mid,
                    sender="member@example.net", subject=shown,
                    raw=raw_post(mid, author, shown, text, parent_mid), now=at,
                )  # fmt: skip
                ids.append(aid)
                thread = thread_of.setdefault(tno, aid)
                await archive.index_post(
                    tx, archive_id=aid, list_name=LIST, message_id=mid, thread=thread,
                    parent=ids[parent] if parent is not None else None, author=author,
                    subject=shown, posted_at=at, text=text, has_html=False, attachments=0,
                )  # fmt: skip
            await archive.set_backfill_mark(tx, LIST, ids[-1])
        print(f"\r  seeded {min(n, first + batch):,} posts", end="", flush=True)
    print(f" in {time.perf_counter() - started:.0f} s")
    return list(thread_of.values())


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1000


def report(label: str, times: list[float], extra: str = "") -> None:
    print(
        f"  {label:34} p50 {pct(times, 0.5):6.1f} ms  p95 {pct(times, 0.95):6.1f} ms"
        f"  p99 {pct(times, 0.99):6.1f} ms  ({len(times)}){extra}",
        flush=True,
    )


QUERIES = {
    "rare word": RARE,
    "common Welsh word (yn)": "yn",
    "common English word (the)": "the",
    "two common words": "cyfarfod nesaf",
    "phrase": '"next meeting"',
    "author filter": "budget from:Siân",
    "Welsh with diacritics (ŵyl)": "ŵyl",
    "folded (caffi finds caffî)": "caffi",
    "prefix (cyfie*)": "cyfie*",
}


async def time_search(db: Store, query, rounds: int) -> tuple[list[float], int]:
    """Seconds each of `rounds` searches took, and how many posts match."""
    times, total = [], 0
    for _ in range(rounds):
        start = time.perf_counter()
        async with db.read() as tx:
            _, total = await archive.search(tx, LIST, query, 20, 0)
        times.append(time.perf_counter() - start)
    return times, total


async def time_store(db: Store, threads: list[int], rounds: int, rng: random.Random) -> None:
    print("store reads (in process):")
    times = []
    for _ in range(rounds):
        tid = rng.choice(threads)
        start = time.perf_counter()
        async with db.read() as tx:
            summary, posts = await archive.thread(tx, LIST, tid)
            await archive.entry(tx, LIST, posts[-1].id)
        times.append(time.perf_counter() - start)
    report("thread() + entry()", times)
    for label, q in QUERIES.items():
        times, total = await time_search(db, parse_query(q), rounds)
        report(f"search {label}", times, f"  {total:,} matches")
    # A Welsh page finds each word's mutated forms too: one more lookup a form.
    for label in (
        "rare word",
        "common Welsh word (yn)",
        "two common words",
        "folded (caffi finds caffî)",
    ):
        times, total = await time_search(db, parse_query(QUERIES[label], mutations=True), rounds)
        report(f"search {label}, mutated forms too", times, f"  {total:,} matches")
    # The choice of RANK_WINDOW: bm25 over every match of a common word instead.
    window = archive.RANK_WINDOW
    archive.RANK_WINDOW = 10**9
    for label in ("common Welsh word (yn)", "phrase"):
        query = parse_query(QUERIES[label])
        times = []
        for _ in range(max(1, rounds // 4)):
            start = time.perf_counter()
            async with db.read() as tx:
                await archive.search(tx, LIST, query, 20, 0)
            times.append(time.perf_counter() - start)
        report(f"  (ranking all matches: {label})", times)
    archive.RANK_WINDOW = window
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        async with db.read() as tx:
            months = await archive.months(tx, LIST)
            m = rng.choice(months)
            await archive.month_threads(tx, LIST, m.year, m.month)
        times.append(time.perf_counter() - start)
    report("months() + month_threads()", times)


async def time_indexing(db: Store, config_path: Path, n: int, rng: random.Random) -> None:
    """distribute() with and without the index call, alternating per post, to a 10-member
    list; then index_post alone (extract and SQL), each in its own inline transaction as
    the processing worker runs them (the commit not counted: it is the batch's)."""
    config = load_config(config_path)
    runtime = Runtime.create(config, SystemClock())
    cfg = find_list(config.lists, "cost")
    plain = find_list(config.lists, "plain")  # its posts are never indexed: no backfill waits
    async with db.transaction() as tx:
        for i in range(10):
            await store.add_member(tx, "cost", f"m{i}@example.net", "", 0.0)
            await store.add_member(tx, "plain", f"m{i}@example.net", "", 0.0)
    authors = make_authors(rng)
    real = distribution_module.archive_index.index_post

    async def no_index(*args: object) -> bool:
        return True

    with_index: list[float] = []
    without: list[float] = []
    for i in range(n):
        text = post_text(rng)
        raw = raw_post(f"<c{i}@example.net>", rng.choice(authors), "Cost", text,
                       f"<c{i - 1}@example.net>" if i % 5 else None)  # fmt: skip
        indexed = i % 2 == 0
        distribution_module.archive_index.index_post = real if indexed else no_index
        async with db.transaction(inline=True) as tx:
            ctx = runtime.context(tx, "bench")
            start = time.perf_counter()
            await distribution_module.distribute(ctx, cfg if indexed else plain, raw)
            (with_index if indexed else without).append(time.perf_counter() - start)
    distribution_module.archive_index.index_post = real
    print(f"indexing cost ({n:,} posts to a 10-member list, alternating):")
    report("distribute without the index call", without)
    report("distribute with the index call", with_index)
    print(
        f"  median difference: {(statistics.median(with_index) - statistics.median(without)) * 1000:.3f} ms a post"
    )
    alone = []
    for i in range(n):
        raw = raw_post(f"<d{i}@example.net>", rng.choice(authors), "Cost", post_text(rng),
                       f"<d{i - 1}@example.net>" if i % 5 else None)  # fmt: skip
        msg = parse(raw)
        async with db.transaction(inline=True) as tx:
            aid = await store.archive_post(tx, list_name="cost", message_id=f"<d{i}@example.net>",
                                           thread_id="", sender="", subject="Cost", raw=raw,
                                           now=time.time())  # fmt: skip
            ctx = runtime.context(tx, "bench")
            start = time.perf_counter()
            await archive_index.index_post(ctx, cfg, aid, msg, f"<d{i}@example.net>", "")
            alone.append(time.perf_counter() - start)
    report("archive_index.index_post alone", alone)


async def database_mb(db: Store, path: Path) -> float:
    if db.dialect == "postgresql":
        async with db.read() as tx:
            cur = await tx.execute("SELECT pg_database_size(current_database())")
            return (await cur.fetchone())[0] / 1e6
    return path.stat().st_size / 1e6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def time_http(web_port: int, threads: list[int], rounds: int, rng: random.Random) -> None:
    base = f"http://127.0.0.1:{web_port}/lists/{LIST}"
    async with aiohttp.ClientSession() as http:
        for _ in range(300):  # until the service answers
            try:
                async with http.get(f"{base}/") as r:
                    if r.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError("the service did not answer")
        print("HTTP (a real `mailhub serve`, one request at a time):")

        async def timed(url: str) -> float:
            start = time.perf_counter()
            async with http.get(url) as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"{url}: {r.status}")
            return time.perf_counter() - start

        times = [await timed(f"{base}/thread/{rng.choice(threads)}") for _ in range(rounds)]
        report("GET thread/ID", times)
        # A page in Welsh (the default) finds mutated forms too; in English, as written.
        for label, q in QUERIES.items():
            times = [await timed(f"{base}/search?q={quote(q)}") for _ in range(rounds)]
            report(f"GET search {label}", times)
        for label in ("common Welsh word (yn)", "two common words", "phrase"):
            q = quote(QUERIES[label])
            times = [await timed(f"{base}/search?q={q}&lang=en") for _ in range(rounds)]
            report(f"GET search {label}, English page", times)
        times = [await timed(f"{base}/") for _ in range(rounds // 4 or 1)]
        report("GET months", times)


async def main(args: argparse.Namespace) -> None:
    rng = random.Random(14)
    tmp = Path(args.keep or tempfile.mkdtemp(prefix="mailhub-archive-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    db_path = tmp / "m.db"
    web_port, smtp_port = free_port(), free_port()
    config_path = tmp / "mailhub.toml"
    config_path.write_text(
        CONFIG.format(
            domain=DOMAIN,
            db=db_path,
            outbox=tmp / "outbox",
            web_port=web_port,
            smtp_port=smtp_port,
            name=LIST,
            url=f'url = "{args.url}"\n' if args.backend == "postgresql" else "",
        )  # fmt: skip
    )
    if args.backend == "postgresql":
        db: Store = await PostgresStore.connect(args.url)
    else:
        db = await Store.open(db_path)
    try:
        async with db.read() as tx:
            have = await archive.last_archived(tx, LIST)
        if have:
            print(f"reusing the archive in {tmp}")
            async with db.read() as tx:
                threads = [t.id for m in await archive.months(tx, LIST)
                           for t in await archive.month_threads(tx, LIST, m.year, m.month)]  # fmt: skip
            threads = sorted(set(threads))
        else:
            print(f"seeding {args.posts:,} posts into {db_path}")
            threads = await seed(db, args.posts, rng)
            if db.dialect == "postgresql":  # what autovacuum does soon after a bulk load
                async with db.transaction() as tx:
                    await tx.execute("ANALYZE")
        print(f"  {len(threads):,} threads; database {await database_mb(db, db_path):,.0f} MB")
        await time_store(db, threads, args.queries, rng)
        await time_indexing(db, config_path, args.index_posts, rng)
        await db.checkpoint()
    finally:
        await db.close()
    if args.no_http:
        return
    log = open(tmp / "serve.log", "wb")  # noqa: SIM115 - closed below
    serve = subprocess.Popen(
        [sys.executable, "-m", "mailhub", "serve", "--config", str(config_path)],
        stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parent.parent,
    )  # fmt: skip
    try:
        await time_http(web_port, threads, args.queries, rng)
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(30)
        except subprocess.TimeoutExpired:
            serve.kill()
        log.close()
    if not args.keep:
        for f in tmp.rglob("*"):
            if f.is_file():
                f.unlink()
        for d in sorted(tmp.rglob("*"), reverse=True):
            d.rmdir()
        tmp.rmdir()
    print(f"CPUs: {os.cpu_count()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200, help="timed requests per kind")
    parser.add_argument("--index-posts", type=int, default=5000, help="posts for the indexing cost")
    parser.add_argument("--keep", metavar="DIR", help="keep (or reuse) the archive in DIR")
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP part")
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--url", help="an empty PostgreSQL database (--backend postgresql)")
    options = parser.parse_args()
    if options.backend == "postgresql" and not options.url:
        parser.error("--backend postgresql needs --url postgresql://user@host:port/db")
    asyncio.run(main(options))
