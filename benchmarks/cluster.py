"""SQLite or PostgreSQL, one node or two: intake, end to end and fan-out, in one run.

Three set-ups, each real `mailhub serve` processes on loopback relaying to a lean SMTP
sink of its own (a child process that counts recipients):

  (a) one node on a SQLite file (the embedded default);
  (b) one node on a PostgreSQL database;
  (c) two nodes on one PostgreSQL database (another one), each on its own port.

For each, in rounds alternating a b c a b c ... (so a change in the machine's speed, as
on a shared VM, hits all three alike):

  intake      N messages (to postmaster@, forwarded to the administrator) over C
              concurrent SMTP connections spread over the set-up's nodes: messages
              accepted (250) per second;
  end to end  the same N messages from the first sent to the last delivered at the sink
              (accepted, processed, relayed): messages per second;
  fan-out     P posts to a list of M members (personalised copies, the default), sent
              over one connection per node: deliveries per second from the first post
              accepted to the last copy at the sink.

It prints the medians per set-up, the ratios b/a, c/a and c/b (median of the per-round
ratios, with their range), and the server CPU per message (mailhub's processes, plus
PostgreSQL's when it is ours): CPU time, unlike wall time, does not grow when a neighbour
takes the machine.

    .venv/bin/python benchmarks/cluster.py                 # a throwaway PostgreSQL
    .venv/bin/python benchmarks/cluster.py -n 2000 -c 16 --members 1000 --posts 5
    .venv/bin/python benchmarks/cluster.py --url postgresql://me@127.0.0.1:5432/postgres

Without --url it starts its own PostgreSQL server (tests/support/postgres.py: initdb in a
temp dir, a loopback port, fsync on; as root the server runs as the `postgres` user) and
stops it by its PID at the end. With --url the server is yours: the benchmark creates two
databases there (mailhub_bench_b, mailhub_bench_c: the user needs CREATEDB) and drops them
at the end. Loopback only; every wait is bounded (--timeout per phase).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

import aiosmtplib  # noqa: E402
import psycopg  # noqa: E402
from fanout import run_sink  # noqa: E402  (the lean counting sink)
from psycopg import sql  # noqa: E402

from mailhub.store import Store  # noqa: E402
from mailhub.store import lists as list_store  # noqa: E402
from mailhub.store.postgres import PostgresStore  # noqa: E402
from tests.support.hub import empty_dns  # noqa: E402
from tests.support.nodes import free_port, start_server, stop_server  # noqa: E402
from tests.support.postgres import Cluster  # noqa: E402

DOMAIN = "bench.example.org"
LIST = "bench"
POSTER = "poster@example.net"  # not a member: the list takes non-members' posts
DATABASES = ("mailhub_bench_b", "mailhub_bench_c")
SETUPS = ("a", "b", "c")
NAMES = {
    "a": "(a) SQLite, 1 node",
    "b": "(b) PostgreSQL, 1 node",
    "c": "(c) PostgreSQL, 2 nodes",
}


def intake_message(n: int) -> bytes:
    return (
        f"From: Bench <bench@example.net>\r\nTo: postmaster@{DOMAIN}\r\nSubject: load {n}\r\n"
        f"Message-ID: <c-{n}-{time.time_ns()}@example.net>\r\n\r\n"
        + "A line of text in the body.\r\n"
        * 40
    ).encode()


def post(n: int) -> bytes:
    return (
        f"From: Poster <{POSTER}>\r\nTo: {LIST}@{DOMAIN}\r\nSubject: Post {n}\r\n"
        f"Message-ID: <p-{n}-{time.time_ns()}@example.net>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        + "A line of a typical list post.\r\n"
        * 40
    ).encode()


# --- processes ---------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class PostgresCpu:
    """CPU of our own PostgreSQL server's processes that work for one database: its
    backends (the nodes' pooled connections) and the server's shared writers (WAL writer,
    checkpointer...), not other databases' backends (another set-up's idle nodes)."""

    def __init__(self, server_url: str) -> None:
        self.conn = psycopg.connect(server_url, autocommit=True)

    def __call__(self, database: str | None) -> float:
        if database is None:
            return 0.0
        rows = self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE (datname = %s OR datname IS NULL)"
            " AND pid <> pg_backend_pid()",
            (database,),
        ).fetchall()
        return sum(cpu_seconds(pid) for (pid,) in rows)

    def close(self) -> None:
        self.conn.close()


@dataclass
class Sink:
    """A counting sink in a child process: recipients delivered, and when the last was."""

    process: mp.process.BaseProcess
    port: int
    count: object  # multiprocessing Value("q")
    last: object  # multiprocessing Value("d"): time.time() of the last delivery

    @classmethod
    def start(cls) -> Sink:
        ctx = mp.get_context("spawn")
        count, last = ctx.Value("q", 0), ctx.Value("d", 0.0)
        receiver, sender = ctx.Pipe(duplex=False)
        process = ctx.Process(target=run_sink, args=(sender, count, last), daemon=True)
        process.start()
        if not receiver.poll(30):
            process.terminate()
            raise SystemExit("the sink did not start")
        return cls(process, receiver.recv(), count, last)

    def reset(self) -> None:
        with self.count.get_lock():  # type: ignore[attr-defined]
            self.count.value = 0  # type: ignore[attr-defined]

    async def wait(self, expected: int, timeout: float) -> float:
        """Until `expected` recipients arrived; returns the wall time of the last."""
        deadline = time.monotonic() + timeout
        while self.count.value < expected:  # type: ignore[attr-defined]
            if time.monotonic() > deadline:
                got = self.count.value  # type: ignore[attr-defined]
                raise SystemExit(f"only {got} of {expected} deliveries within {timeout:.0f} s")
            await asyncio.sleep(0.02)  # another process's counter: no event to await
        return self.last.value  # type: ignore[attr-defined]

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(10)


@dataclass
class Setup:
    key: str
    storage: str  # the [storage] table's lines
    database: str | None  # its PostgreSQL database's name; None: SQLite
    nodes: int
    sink: Sink
    work: Path
    ports: list[int] = field(default_factory=list)
    procs: list[asyncio.subprocess.Process] = field(default_factory=list)

    def config(self, i: int) -> Path:
        path = self.work / f"{self.key}{i}.toml"
        path.write_text(
            f"""
[server]
domains = ["{DOMAIN}"]
listen = "127.0.0.1:{self.ports[i]}"
max_connections = 1000
max_connections_per_peer = 1000
[storage]
{self.storage}
[outbound]
relay = "smtp://127.0.0.1:{self.sink.port}"
[admin]
addresses = ["admin@example.net"]
[dns]
nameservers = ["{empty_dns()}"]
timeout = 2
[[lists]]
name = "{LIST}"
display_name = "Bench"
non_member_posts = "accept"
"""
        )
        return path

    async def start(self) -> None:
        for i in range(self.nodes):
            self.ports.append(free_port())
            self.procs.append(await start_server(self.config(i), self.ports[i]))

    def cpu(self) -> float:
        return sum(cpu_seconds(p.pid) for p in self.procs)

    async def stop(self) -> None:
        for proc in self.procs:
            await stop_server(proc, grace=60)
        self.sink.stop()


# --- the databases -----------------------------------------------------------------------


async def add_members(store: Store | PostgresStore, members: int) -> None:
    async with store.transaction() as tx:
        for i in range(members):
            await list_store.add_member(tx, LIST, f"member{i:05d}@example.net", "", 0.0)


async def prepare_sqlite(path: Path, members: int) -> None:
    store = await Store.open(path)
    try:
        await add_members(store, members)
    finally:
        await store.close()


async def prepare_postgres(url: str, members: int) -> None:
    store = await PostgresStore.connect(url)  # migrates the empty database
    try:
        await add_members(store, members)
    finally:
        await store.close()


def database_url(server_url: str, name: str) -> str:
    base, _, _ = server_url.rpartition("/")
    return f"{base}/{name}"


def create_databases(server_url: str) -> list[str]:
    with psycopg.connect(server_url, autocommit=True) as conn:
        for name in DATABASES:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return [database_url(server_url, name) for name in DATABASES]


def drop_databases(server_url: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        for name in DATABASES:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


# --- the measurements --------------------------------------------------------------------


async def send(port: int, messages: list[tuple[int, bytes]], rcpt: str, sender: str) -> None:
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=60)
    await smtp.connect()
    try:
        for _, raw in messages:
            await smtp.sendmail(sender, [rcpt], raw)
    finally:
        smtp.close()


@dataclass
class Sample:
    intake: float  # messages accepted per second
    end_to_end: float  # messages delivered per second, first sent to last delivered
    fanout: float  # deliveries per second
    intake_cpu_us: float  # server CPU per intake message (accepted, processed, relayed)
    fanout_cpu_us: float  # server CPU per delivery


async def measure(
    setup: Setup,
    n: int,
    connections: int,
    posts: int,
    members: int,
    timeout: float,
    pg_cpu: Callable[[str | None], float],
) -> Sample:
    sink = setup.sink
    # Intake: C connections, dealt out over the nodes in turn.
    sink.reset()
    numbered = [(i, intake_message(i)) for i in range(n)]
    shares = [numbered[i::connections] for i in range(connections)]
    cpu_before = setup.cpu() + pg_cpu(setup.database)
    started_wall, started = time.time(), time.perf_counter()
    await asyncio.wait_for(
        asyncio.gather(
            *(
                send(
                    setup.ports[i % setup.nodes], share, f"postmaster@{DOMAIN}", "bench@example.net"
                )
                for i, share in enumerate(shares)
            )
        ),
        timeout,
    )
    intake = n / (time.perf_counter() - started)
    last = await sink.wait(n, timeout)
    end_to_end = n / max(last - started_wall, 1e-6)
    intake_cpu = setup.cpu() + pg_cpu(setup.database) - cpu_before

    # Fan-out: P posts, one connection per node, posts dealt out over the nodes in turn.
    sink.reset()
    numbered = [(i, post(i)) for i in range(posts)]
    shares = [numbered[i :: setup.nodes] for i in range(setup.nodes)]
    cpu_before = setup.cpu() + pg_cpu(setup.database)
    first_wall = time.time()
    await asyncio.wait_for(
        asyncio.gather(
            *(
                send(setup.ports[i], share, f"{LIST}@{DOMAIN}", POSTER)
                for i, share in enumerate(shares)
            )
        ),
        timeout,
    )
    last = await sink.wait(posts * members, timeout)
    fanout = posts * members / max(last - first_wall, 1e-6)
    fanout_cpu = setup.cpu() + pg_cpu(setup.database) - cpu_before
    return Sample(
        intake, end_to_end, fanout, intake_cpu / n * 1e6, fanout_cpu / (posts * members) * 1e6
    )


def median_span(values: list[float], digits: int = 0) -> str:
    v = sorted(values)
    return f"{statistics.median(v):.{digits}f} ({v[0]:.{digits}f}-{v[-1]:.{digits}f})"


def report(samples: dict[str, list[Sample]], args: argparse.Namespace, pg_own: bool) -> None:
    metrics: list[tuple[str, Callable[[Sample], float]]] = [
        (f"intake, msgs/s accepted ({args.c} connections)", lambda s: s.intake),
        ("end to end, msgs/s (accepted -> delivered)", lambda s: s.end_to_end),
        (f"fan-out, deliveries/s ({args.members} members)", lambda s: s.fanout),
        ("server CPU per intake message, us", lambda s: s.intake_cpu_us),
        ("server CPU per fan-out delivery, us", lambda s: s.fanout_cpu_us),
    ]
    print(
        f"\n{args.rounds} rounds alternating a b c; per round: {args.n} messages over"
        f" {args.c} connections, then {args.posts} posts to a list of {args.members} members."
    )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} CPUs; load average at the end {load}")
    print("median (range over the rounds)")
    width = 46
    print(f"{'':{width}}" + "".join(f"{NAMES[k]:>26}" for k in SETUPS))
    for label, get in metrics:
        print(
            f"{label:{width}}"
            + "".join(f"{median_span([get(s) for s in samples[k]]):>26}" for k in SETUPS)
        )
    print("\nratios, median of the per-round ratios (range)")
    print(f"{'':{width}}{'b/a':>22}{'c/a':>22}{'c/b':>22}")
    for label, get in metrics:
        cells = []
        for top, bottom in (("b", "a"), ("c", "a"), ("c", "b")):
            ratios = [get(t) / get(b) for t, b in zip(samples[top], samples[bottom], strict=True)]
            cells.append(f"{median_span(ratios, 2):>22}")
        print(f"{label:{width}}" + "".join(cells))
    where = "mailhub + PostgreSQL's backends" if pg_own else "mailhub only (PostgreSQL is yours)"
    print(f"\nserver CPU counts {where}; the client and the sinks are not counted.")


async def main(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="mailhub-cluster-bench-"))
    cluster: Cluster | None = None
    pg_cpu: Callable[[str | None], float] = lambda database: 0.0  # noqa: E731  (--url)
    server_url = args.url
    setups: dict[str, Setup] = {}
    try:
        if server_url is None:
            cluster = Cluster().start()
            server_url = cluster.url("postgres")
        url_b, url_c = create_databases(server_url)
        await prepare_sqlite(work / "a.db", args.members)
        await prepare_postgres(url_b, args.members)
        await prepare_postgres(url_c, args.members)
        storages = {
            "a": f'path = "{work / "a.db"}"',
            "b": f'url = "{url_b}"\npath = "{work / "unused-b.db"}"',
            "c": f'url = "{url_c}"\npath = "{work / "unused-c.db"}"',
        }
        databases = {"a": None, "b": DATABASES[0], "c": DATABASES[1]}
        for key in SETUPS:
            nodes = 2 if key == "c" else 1
            setups[key] = Setup(key, storages[key], databases[key], nodes, Sink.start(), work)
            await setups[key].start()
        if cluster is not None:
            pg_cpu = PostgresCpu(server_url)

        # Warm-up: every node's first messages (imports, templates, pools) go unmeasured.
        for key in SETUPS:
            await measure(
                setups[key], min(100, args.n), args.c, 1, args.members, args.timeout, pg_cpu
            )
        samples: dict[str, list[Sample]] = {k: [] for k in SETUPS}
        for r in range(args.rounds):
            for key in SETUPS:
                s = await measure(
                    setups[key], args.n, args.c, args.posts, args.members, args.timeout, pg_cpu
                )
                samples[key].append(s)
                print(
                    f"round {r + 1} {NAMES[key]:<24} intake {s.intake:6.0f}/s"
                    f"  end to end {s.end_to_end:6.0f}/s  fan-out {s.fanout:6.0f}/s"
                    f"  CPU {s.intake_cpu_us:5.0f} us/msg {s.fanout_cpu_us:4.0f} us/delivery",
                    flush=True,
                )
        report(samples, args, cluster is not None)
    finally:
        for setup in setups.values():
            await setup.stop()
        if isinstance(pg_cpu, PostgresCpu):
            pg_cpu.close()
        if server_url is not None:
            with contextlib.suppress(psycopg.Error):
                drop_databases(server_url)
        if cluster is not None:
            cluster.stop()  # by its PID; removes its temp dir
        for path in sorted(work.glob("*"), reverse=True):
            with contextlib.suppress(OSError):
                path.unlink()
        with contextlib.suppress(OSError):
            work.rmdir()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=1000, help="intake messages per round")
    parser.add_argument("-c", type=int, default=8, help="concurrent intake connections")
    parser.add_argument("--members", type=int, default=1000, help="the list's members")
    parser.add_argument("--posts", type=int, default=3, help="posts per round (fan-out)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds alternating a b c")
    parser.add_argument("--timeout", type=float, default=300.0, help="bound on each phase, s")
    parser.add_argument("--url", help="a PostgreSQL server's URL (its `postgres` database)")
    args = parser.parse_args()
    if not (
        1 <= args.n <= 100_000
        and 1 <= args.c <= 200
        and 1 <= args.members <= 100_000
        and 1 <= args.posts <= 1000
        and 1 <= args.rounds <= 20
    ):
        raise SystemExit(
            "choose -n 1..100000, -c 1..200, --members 1..100000, --posts 1..1000, --rounds 1..20"
        )
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    asyncio.run(main(args))
