"""The tests' PostgreSQL (tests/support/postgres.py and the fixtures of conftest.py): a real
server of our own, durable, unprivileged, a fresh database per test, nothing left behind,
and the `backend` fixture really moving the hubs onto it."""

from __future__ import annotations

import asyncio
import os
import pwd
import select
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.support.hub import Hub, open_test_store, start_hub, storage_url
from tests.support.postgres import (
    CREATOR,
    PREFIX,
    REQUIRE_ENV,
    Cluster,
    PostgresUnavailable,
    _children,
    database_name,
    find_bindir,
    sweep_stale,
    unavailable,
)

ROOT = Path(__file__).resolve().parent.parent


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def await_exit(pid: int, seconds: float) -> bool:
    """Whether process `pid` (not our child) exits within `seconds`: its pidfd becomes
    readable when it does, so this waits for the event, not in steps."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(seconds * 1000))
    finally:
        os.close(fd)


def test_a_table_round_trip_in_a_fresh_database(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
        assert tables == (0,)
        conn.execute("CREATE TABLE notes (id BIGINT PRIMARY KEY, body TEXT, raw BYTEA)")
        conn.execute(
            "INSERT INTO notes VALUES (%s, %s, %s)", (1, "Croeso i Gaerdydd — ŵ î", b"\x00\xff")
        )
    with psycopg.connect(pg_url) as conn:  # committed: another connection sees it
        assert conn.execute("SELECT body, raw FROM notes").fetchall() == [
            ("Croeso i Gaerdydd — ŵ î", b"\x00\xff")
        ]


def test_the_server_is_durable_utf8_and_on_loopback_only(pg_cluster: Cluster) -> None:
    with psycopg.connect(pg_cluster.url("postgres")) as conn:

        def show(name: str) -> str:
            return conn.execute(f"SHOW {name}").fetchone()[0]

        assert show("fsync") == "on"
        assert show("synchronous_commit") == "on"
        assert show("listen_addresses") == "127.0.0.1"
        assert show("server_encoding") == "UTF8"
        assert int(show("max_connections")) >= 200


def test_two_databases_are_separate(pg_cluster: Cluster) -> None:
    first = pg_cluster.create_database()
    second = pg_cluster.create_database()
    try:
        assert first != second
        with psycopg.connect(first) as conn:
            conn.execute("CREATE TABLE only_here (x INTEGER)")
        with psycopg.connect(second) as conn:
            found = conn.execute("SELECT to_regclass('only_here')").fetchone()
            assert found == (None,)
    finally:
        pg_cluster.drop_database(database_name(first))
        pg_cluster.drop_database(database_name(second))


def test_the_server_never_runs_as_root(pg_cluster: Cluster) -> None:
    assert pg_cluster.pid is not None
    status = Path(f"/proc/{pg_cluster.pid}/status").read_text()
    real, effective = (int(u) for u in status.split("Uid:")[1].split()[:2])
    if os.geteuid() == 0:
        assert real != 0 and effective != 0
        assert pwd.getpwuid(effective).pw_name in ("postgres", "nobody")
    else:
        assert effective == os.geteuid()


def test_stop_ends_every_process_and_removes_the_files() -> None:
    try:
        cluster = Cluster().start()
    except PostgresUnavailable as exc:
        unavailable(str(exc))
    pid, folder = cluster.pid, cluster.dir
    assert pid is not None and folder is not None
    workers = _children(pid)  # checkpointer, background writer, WAL writer, ...
    assert workers
    cluster.stop()
    # The postmaster has waited for its workers before it exits: nothing to wait for.
    assert not alive(pid)
    assert [w for w in workers if alive(w)] == []
    assert not folder.exists()
    cluster.stop()  # twice is harmless


def test_kill_then_start_keeps_what_was_committed(pg_own_cluster: Cluster) -> None:
    url = pg_own_cluster.create_database("kept")
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE accepted (id INTEGER)")
        conn.execute("INSERT INTO accepted VALUES (250)")
    pid = pg_own_cluster.pid
    assert pid is not None
    pg_own_cluster.kill()
    assert not alive(pid)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=5)
    pg_own_cluster.start()  # crash recovery, same port: the URL still holds
    assert pg_own_cluster.pid != pid
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT id FROM accepted").fetchall() == [(250,)]


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) not installed")
def test_a_test_run_killed_outright_leaves_no_server() -> None:
    """pytest killed with SIGKILL (a CI timeout) runs no clean-up: the server stops by
    itself (its parent-death signal) rather than outliving the run."""
    script = (
        "import sys\n"
        "from tests.support.postgres import Cluster, _children\n"
        "c = Cluster().start()\n"
        "print(c.pid, c.dir, *_children(c.pid), flush=True)\n"
        "sys.stdin.read()\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdin is not None
    line = child.stdout.readline().split()
    if not line:
        child.kill()
        child.wait()
        pytest.fail("the child did not start its cluster")
    pid, folder, workers = int(line[0]), Path(line[1]), [int(w) for w in line[2:]]
    try:
        assert alive(pid)
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert await_exit(pid, 20), "the server outlived the killed test run"
        assert all(await_exit(w, 20) for w in workers)
    finally:
        child.stdin.close()
        child.stdout.close()
        if alive(pid) and not await_exit(pid, 0):
            os.kill(pid, signal.SIGKILL)  # this test's own server, by its PID
        shutil.rmtree(folder, ignore_errors=True)


def test_the_dirs_of_killed_runs_are_swept_and_no_others(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    gone = int(dead.stdout)  # a process that has ended: its PID names nobody now
    killed = tmp_path / f"{PREFIX}killed"
    (killed / "data").mkdir(parents=True)
    (killed / CREATOR).write_text(str(gone))
    running = tmp_path / f"{PREFIX}running"  # its creator is alive: this very test
    running.mkdir()
    (running / CREATOR).write_text(str(os.getpid()))
    serving = tmp_path / f"{PREFIX}serving"  # creator gone, server still up
    (serving / "data").mkdir(parents=True)
    (serving / CREATOR).write_text(str(gone))
    (serving / "data" / "postmaster.pid").write_text(f"{os.getpid()}\n/somewhere\n")
    starting = tmp_path / f"{PREFIX}starting"  # no creator file yet
    starting.mkdir()
    other = tmp_path / "somebody-else"
    other.mkdir()
    (other / CREATOR).write_text(str(gone))
    assert sweep_stale(tmp_path) == [killed]
    assert not killed.exists()
    assert running.exists() and serving.exists() and starting.exists() and other.exists()


def test_without_postgres_a_test_skips_or_fails_under_the_ci_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        unavailable("not installed")
    monkeypatch.setenv(REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match=f"not installed \\({REQUIRE_ENV}=1\\)"):
        unavailable("not installed")


def test_the_newest_installed_version_is_used(tmp_path: Path) -> None:
    for version in ("9.6", "15", "16"):
        bindir = tmp_path / version / "bin"
        bindir.mkdir(parents=True)
        for program in ("initdb", "postgres"):
            (bindir / program).write_text("")
    (tmp_path / "17" / "bin").mkdir(parents=True)  # only the client: no server programs
    assert find_bindir(tmp_path, path="") == tmp_path / "16" / "bin"


def test_absent_programs_are_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(PostgresUnavailable) as caught:
        find_bindir(tmp_path, path="")
    message = str(caught.value)
    assert "\n" not in message
    assert "install Debian's `postgresql` package" in message


async def stop(hub: Hub) -> None:
    # Bounded: a stop that hangs fails this test instead of stalling the run.
    async with asyncio.timeout(30):
        await hub.service.stop()
    await hub.sink.stop()


async def test_start_hub_runs_on_the_chosen_backend(backend: str, tmp_path: Path) -> None:
    hub = await start_hub(tmp_path)
    try:
        config = hub.path.read_text()
        url = storage_url()
        if backend == "postgresql":
            assert url is not None and f'url = "{url}"' in config
        else:
            assert url is None and "url =" not in config
        store = hub.service.store
        assert store.dialect == backend
        async with store.read() as tx:
            assert tx.dialect == backend
    finally:
        await stop(hub)


async def test_the_hub_fixture_follows_backend_whatever_the_order(hub, backend: str) -> None:
    assert hub.service.store.dialect == backend


async def test_open_test_store_opens_the_chosen_backend(backend: str, tmp_path: Path) -> None:
    store = await open_test_store(tmp_path)
    try:
        async with store.transaction() as tx:
            assert tx.dialect == backend
            rows = await (await tx.execute("SELECT ?", (7,))).fetchall()
            assert [tuple(r) for r in rows] == [(7,)]
    finally:
        await store.close()
    assert (tmp_path / "mailhub.db").exists() == (backend == "sqlite")


def test_a_backend_database_is_a_copy_with_the_schema(
    pg_cluster: Cluster, pg_schema_template: str
) -> None:
    url = pg_cluster.create_database(template=pg_schema_template)
    try:
        with psycopg.connect(url) as conn:
            versions = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
            assert versions is not None and versions[0] >= 1
            conn.execute("DELETE FROM schema_migrations")  # a copy: the template is untouched
        with psycopg.connect(pg_cluster.url(pg_schema_template)) as conn:
            assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() == versions
    finally:
        pg_cluster.drop_database(database_name(url))
