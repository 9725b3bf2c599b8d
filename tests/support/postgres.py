"""A throwaway PostgreSQL cluster for the tests: `initdb` in a temp dir, one server on a
loopback port, stopped by its PID, the dir removed.

Real PostgreSQL, as the tests use a real SQLite file: the server runs with fsync on and
synchronous_commit on, so `250` after a commit means what it means in production. As root
(CI) the server runs as the `postgres` system user (or `nobody`): PostgreSQL refuses root.
"""

from __future__ import annotations

import collections
import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import NoReturn

import psycopg
import pytest
from psycopg import sql

USER = "mailhub"  # the cluster's superuser, the user of every URL
READY_LINE = "database system is ready to accept connections"
START_SECONDS = 60.0  # initdb plus the first start on a slow CI machine
STOP_SECONDS = 20.0  # a fast shutdown writes one checkpoint
REQUIRE_ENV = "MAILHUB_REQUIRE_POSTGRES"

_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class PostgresUnavailable(Exception):
    """PostgreSQL's server programs are not installed: the message is one line saying so."""


def unavailable(reason: str) -> NoReturn:
    """A test that needs PostgreSQL where it cannot run: it skips, saying why, or fails
    when MAILHUB_REQUIRE_POSTGRES=1 (CI, which installs PostgreSQL: a skip would hide it)."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1)", pytrace=False)
    pytest.skip(reason)


def find_bindir(debian: Path = Path("/usr/lib/postgresql"), path: str | None = None) -> Path:
    """The directory of `initdb` and `postgres`: Debian's newest `debian`/N/bin, else
    `pg_config --bindir`, else wherever `initdb` is on `path` (default: PATH)."""

    def usable(d: Path) -> bool:
        return (d / "initdb").is_file() and (d / "postgres").is_file()

    versions = sorted(
        (d for d in debian.glob("*/bin") if usable(d)),
        key=lambda d: _version_key(d.parent.name),
        reverse=True,
    )
    if versions:
        return versions[0]
    pg_config = shutil.which("pg_config", path=path)
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if out.returncode == 0 and usable(Path(out.stdout.strip())):
            return Path(out.stdout.strip())
    initdb = shutil.which("initdb", path=path)
    if initdb and usable(Path(initdb).resolve().parent):
        return Path(initdb).resolve().parent
    raise PostgresUnavailable(
        f"PostgreSQL server programs not found (no {debian}/N/bin/initdb, no "
        "`pg_config --bindir` or initdb on PATH): install Debian's `postgresql` package"
    )


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", name)) or (0,)


def _server_user() -> pwd.struct_passwd | None:
    """Whom the server runs as: None (ourselves) unless we are root, whom PostgreSQL refuses."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise PostgresUnavailable("running as root, and neither a `postgres` nor a `nobody` user")


def _utf8_c_locale() -> str | None:
    """C.UTF-8 as this system names it, or None when it has none (initdb then takes
    --no-locale: the C locale, still with UTF8 encoding)."""
    try:
        out = subprocess.run(["locale", "-a"], capture_output=True, text=True).stdout
    except OSError:
        return None
    names = {n.strip().lower().replace("-", ""): n.strip() for n in out.splitlines()}
    return "C.UTF-8" if "c.utf8" in names else None


def _orphan_guard() -> list[str]:
    """A prefix for the server's command that stops the server (SIGQUIT: immediate
    shutdown) when the thread that started it dies, e.g. pytest killed by a CI timeout:
    without it the server would outlive the run. setpriv (util-linux) sets the parent-death
    signal and execs the server, so the server keeps the PID we started."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "QUIT", "--"] if setpriv else []


PREFIX = "mailhub-pg-"
CREATOR = "creator.pid"  # the PID of the process that made the dir (a test run)


def _pid_alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def sweep_stale(parent: Path | None = None) -> list[Path]:
    """Remove the dirs of test runs that were killed before they could (SIGKILL, a CI
    timeout: their servers stopped themselves, see `_orphan_guard`, but ~50 MB stays per
    run). Only a dir whose creator is gone and whose server is not running; returns them."""
    removed = []
    for folder in Path(parent or tempfile.gettempdir()).glob(PREFIX + "*"):
        try:
            creator = int((folder / CREATOR).read_text())
        except (OSError, ValueError):
            continue  # not ours, or still being made
        if _pid_alive(creator):
            continue
        try:
            server = int((folder / "data" / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            server = None
        if server is not None and _pid_alive(server):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    """The PIDs of `pid`'s child processes (the postmaster's backends and workers)."""
    found = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            text = Path(stat).read_text()
        except OSError:
            continue  # gone meanwhile
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[1]) == pid:
            found.append(int(text.split(" ", 1)[0]))
    return found


class Cluster:
    """One PostgreSQL server of our own: `start()`, `create_database()`, `stop()`.

    The data, the unix socket and the server's log live in one temp dir, owned by the
    server's user. Clients connect over TCP to 127.0.0.1:`port` as `mailhub` (trust)."""

    def __init__(self, *, bindir: Path | None = None) -> None:
        self.bindir = bindir
        self.dir: Path | None = None
        self.port: int | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._user = None
        self._log_tail: collections.deque[str] = collections.deque(maxlen=40)
        self._ready = threading.Event()
        self._admin: psycopg.Connection | None = None
        self._admin_lock = threading.Lock()
        self._names = 0

    # -- life ---------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def data(self) -> Path:
        assert self.dir is not None, "the cluster was never started"
        return self.dir / "data"

    def start(self) -> Cluster:
        """initdb (the first time) and start the server; returns once it accepts
        connections. Raises PostgresUnavailable without the programs, RuntimeError when the
        server fails (with the end of its log). Again after `kill()`: the same data and port."""
        if self.process is not None and self.process.poll() is None:
            return self
        if self.bindir is None:
            self.bindir = find_bindir()
        if self.dir is None:
            self._user = _server_user()
            sweep_stale()
            self.dir = Path(tempfile.mkdtemp(prefix=PREFIX))
            (self.dir / CREATOR).write_text(str(os.getpid()))
            (self.dir / "sock").mkdir()
            if self._user is not None:
                for p in (self.dir, self.dir / "sock"):
                    os.chown(p, self._user.pw_uid, self._user.pw_gid)
            try:
                self._initdb()
            except BaseException:
                self._remove_dir()
                raise
            self.port = _free_port()
        self._launch()
        return self

    def _run_as(self) -> dict[str, object]:
        """Popen's arguments that make the child the server's user, when we are root."""
        if self._user is None:
            return {}
        return {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}

    def _env(self) -> dict[str, str]:
        # The caller's PG* settings (PGDATA, PGPORT, PGOPTIONS...) must not steer our server.
        return {k: v for k, v in os.environ.items() if not k.startswith("PG")}

    def _initdb(self) -> None:
        assert self.bindir is not None and self.dir is not None
        locale = _utf8_c_locale()
        args = [
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "--auth=trust",
            "-U",
            USER,
            "--encoding=UTF8",
            f"--locale={locale}" if locale else "--no-locale",
            # The files initdb writes are not flushed one by one: nothing is accepted yet,
            # and the dir dies with the test run. The server itself runs with fsync on.
            "--no-sync",
        ]
        done = subprocess.run(
            args,
            capture_output=True,
            text=True,
            cwd=self.dir,
            env=self._env(),
            timeout=START_SECONDS,
            **self._run_as(),  # type: ignore[arg-type]
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}): {done.stderr.strip()}")

    def _launch(self) -> None:
        assert self.bindir is not None and self.dir is not None and self.port is not None
        args = [*_orphan_guard(), str(self.bindir / "postgres"), "-D", str(self.data)]
        args += ["-p", str(self.port)]
        args += ["-k", str(self.dir / "sock")]
        for setting in (
            "listen_addresses=127.0.0.1",
            "fsync=on",  # commits reach the disk, as in production: 250 means durable
            "synchronous_commit=on",
            "full_page_writes=on",
            "max_connections=200",
            "shared_buffers=64MB",
            "lc_messages=C",  # READY_LINE is read in English
            "log_min_messages=warning",
            "log_checkpoints=off",  # DROP DATABASE checkpoints: one log line each otherwise
        ):
            args += ["-c", setting]
        self._ready.clear()
        self._log_tail.clear()
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=self.dir,
            env=self._env(),
            **self._run_as(),  # type: ignore[arg-type]
        )
        reader = threading.Thread(
            target=self._read_log, args=(self.process,), name="postgres-log", daemon=True
        )
        reader.start()
        ready = self._ready.wait(START_SECONDS)
        if not ready or self.process.poll() is not None:
            code = self.process.poll()
            self._terminate(self.process)
            reader.join(5)
            why = f"exited with {code}" if code is not None else f"not ready in {START_SECONDS}s"
            raise RuntimeError(f"postgres {why}: {' | '.join(self._log_tail)}")
        # The server says it is ready: one connection proves it.
        with psycopg.connect(self.url("postgres"), connect_timeout=10):
            pass

    def _read_log(self, process: subprocess.Popen[bytes]) -> None:
        """Drain the server's stderr (a full pipe would stop the server) into server.log,
        and tell `_launch` when the server is ready, or gone (end of the pipe)."""
        assert process.stderr is not None and self.dir is not None
        with (self.dir / "server.log").open("ab") as log:
            for raw in process.stderr:
                log.write(raw)
                log.flush()
                line = raw.decode(errors="replace").rstrip()
                self._log_tail.append(line)
                if READY_LINE in line:
                    self._ready.set()
        self._ready.set()  # exited: _launch sees poll() is not None

    def stop(self) -> None:
        """Stop the server by its PID (fast shutdown, then SIGKILL after STOP_SECONDS) and
        remove the dir. Safe to call twice."""
        self._close_admin()
        if self.process is not None:
            self._terminate(self.process)
            self.process = None
        self._remove_dir()

    def kill(self) -> None:
        """The server gone at once, as in a crash: immediate shutdown (SIGQUIT: the
        postmaster and every backend stop without a checkpoint), SIGKILL if that is not
        enough. The data stays: `start()` brings it back (with crash recovery)."""
        self._close_admin()
        if self.process is None:
            return
        self._signal_and_wait(self.process, signal.SIGQUIT, STOP_SECONDS)
        self.process = None

    def _terminate(self, process: subprocess.Popen[bytes]) -> None:
        # SIGINT, not SIGTERM: SIGTERM is PostgreSQL's "smart" shutdown, which waits for
        # every client to leave (one leaked pool would hold it for the whole bound); SIGINT
        # is the "fast" one: clients are disconnected, one checkpoint, exit.
        self._signal_and_wait(process, signal.SIGINT, STOP_SECONDS)

    @staticmethod
    def _signal_and_wait(process: subprocess.Popen[bytes], sig: int, seconds: float) -> None:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, sig)
            try:
                process.wait(seconds)
            except subprocess.TimeoutExpired:
                children = _children(process.pid)
                for pid in [process.pid, *children]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                process.wait()
        if process.stderr is not None:
            process.stderr.close()

    def _remove_dir(self) -> None:
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- databases ----------------------------------------------------------------------

    def url(self, database: str) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None, *, template: str = "template1") -> str:
        """A fresh, empty database (a copy of `template`); returns its URL. Without a name,
        a new one (t1, t2, ...)."""
        if name is None:
            self._names += 1
            name = f"t{self._names}"
        if not _NAME.fullmatch(name):
            raise ValueError(f"database name {name!r}: lower case letters, digits, _")
        self._admin_execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop `name`, disconnecting whoever is still connected to it."""
        self._admin_execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )

    def _admin_execute(self, statement: sql.Composed) -> None:
        # One connection to `postgres` for the whole run (a connection costs a fork on the
        # server): CREATE/DROP DATABASE cannot run in a transaction, hence autocommit.
        with self._admin_lock:
            if self._admin is None or self._admin.closed or self._admin.broken:
                self._admin = psycopg.connect(self.url("postgres"), autocommit=True)
            self._admin.execute(statement)

    def _close_admin(self) -> None:
        with self._admin_lock:
            if self._admin is not None:
                with contextlib.suppress(psycopg.Error):
                    self._admin.close()
                self._admin = None


@contextlib.contextmanager
def running_cluster() -> Iterator[Cluster]:
    """A cluster of one's own, stopped however the block ends (for a test that kills it)."""
    cluster = Cluster()
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def database_name(url: str) -> str:
    """The database a URL of `Cluster.url` names."""
    return url.rsplit("/", 1)[1]
