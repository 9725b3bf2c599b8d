from __future__ import annotations

import asyncio
import gc
import os
import sys
import threading
import traceback
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import pytest_asyncio

from mailhub.store.postgres import PostgresStore
from tests.support.hub import start_hub, storage_backend
from tests.support.postgres import Cluster, PostgresUnavailable, database_name, unavailable

# A test (with its fixtures' set-up and tear-down) that runs longer than this has hung:
# every asyncio task's stack and every thread's are written to HANG_REPORT, so the hang can
# be found rather than guessed at (CI would only see the whole run time out).
HANG_SECONDS = float(os.environ.get("MAILHUB_TEST_HANG_SECONDS", "120"))
HANG_REPORT = Path(os.environ.get("MAILHUB_TEST_HANG_REPORT", "/tmp/mailhub-test-hangs.txt"))


def _report_hang(nodeid: str) -> None:
    lines = [f"== {nodeid}: still running after {HANG_SECONDS:.0f} s\n"]
    for obj in gc.get_objects():
        if isinstance(obj, asyncio.Task) and not obj.done():
            lines.append(f"-- task {obj.get_name()}\n")
            # A suspended task shows one frame: follow what each coroutine awaits instead.
            awaited: object = obj.get_coro()
            while awaited is not None:
                frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
                if frame is not None:
                    lines.extend(traceback.format_stack(frame, limit=1))
                else:
                    lines.append(f"  awaiting {awaited!r}\n")
                awaited = getattr(awaited, "cr_await", None) or getattr(
                    awaited, "gi_yieldfrom", None
                )
    for ident, frame in sys._current_frames().items():
        lines.append(f"-- thread {ident}\n")
        lines.extend(traceback.format_stack(frame))
    with HANG_REPORT.open("a") as out:
        out.writelines(lines)
    print(f"\nhung: {nodeid}; stacks in {HANG_REPORT}", file=sys.stderr)


@pytest.fixture(autouse=True)
def _hang_watch(request: pytest.FixtureRequest) -> Iterator[None]:
    timer = threading.Timer(HANG_SECONDS, _report_hang, args=(request.node.nodeid,))
    timer.daemon = True
    timer.start()
    yield
    timer.cancel()


def _started(cluster: Cluster) -> Cluster:
    try:
        return cluster.start()
    except PostgresUnavailable as exc:
        cluster.stop()
        unavailable(str(exc))
    except BaseException:
        cluster.stop()
        raise


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """The run's PostgreSQL server (tests/support/postgres.py), started when a test first
    needs it, stopped by its PID at the end of the run. Without PostgreSQL installed the
    tests that need it skip (fail under MAILHUB_REQUIRE_POSTGRES=1)."""
    yield from _running()


@pytest.fixture
def pg_own_cluster() -> Iterator[Cluster]:
    """A PostgreSQL server of the test's own, for a test that kills or restarts it."""
    yield from _running()


def _running() -> Iterator[Cluster]:
    """A started cluster for as long as the fixture lasts, stopped by its PID after."""
    cluster = _started(Cluster())
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> Iterator[str]:
    """A fresh, empty database on the run's server, dropped after the test (whoever is
    still connected to it is disconnected)."""
    url = pg_cluster.create_database()
    yield url
    pg_cluster.drop_database(database_name(url))


@pytest.fixture(scope="session")
def pg_schema_template(pg_cluster: Cluster) -> str:
    """The name of a database with mailhub's schema, migrated once per run: the `backend`
    fixture's databases are copies of it. Why: a copy takes ~90 ms, migrating an empty
    database ~170 ms more, for every test that runs on PostgreSQL."""
    name = "mailhub_schema"
    url = pg_cluster.create_database(name)

    async def migrate() -> None:
        store = await PostgresStore.connect(url, migrate=True)
        await store.close()  # a template must have no connections when it is copied

    # Its own thread and event loop: a session fixture may be set up while a test's loop
    # is current, and that loop must not be touched.
    with ThreadPoolExecutor(1, thread_name_prefix="pg-template") as pool:
        pool.submit(asyncio.run, migrate()).result()
    return name


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """The test runs twice: on a SQLite file, then on a PostgreSQL database of its own, with
    mailhub's schema already (a copy of `pg_schema_template`; `pg_url` is an empty one),
    dropped after the test. `start_hub`, `start_list_hub` and `open_test_store` use it."""
    if request.param == "sqlite":
        with storage_backend(None):
            yield request.param
        return
    cluster: Cluster = request.getfixturevalue("pg_cluster")
    url = cluster.create_database(template=request.getfixturevalue("pg_schema_template"))
    try:
        with storage_backend(url):
            yield request.param
    finally:
        cluster.drop_database(database_name(url))


@pytest_asyncio.fixture
async def hub(request: pytest.FixtureRequest, tmp_path: Path):
    if "backend" in request.fixturenames:
        request.getfixturevalue("backend")  # set up first, whatever the arguments' order
    h = await start_hub(tmp_path)
    yield h
    await h.service.stop()
    await h.sink.stop()
