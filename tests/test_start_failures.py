"""`mailhub serve` that cannot start: one line on stderr, a non-zero exit within 2 s, no
traceback and nothing left running (the process is run for real, with a timeout)."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

CONFIG = """
[server]
domains = ["cop.example.org"]
listen = "127.0.0.1:{port}"
[storage]
path = "{db}"
[outbound]
maildir = "{tmp}/outbox"
[admin]
addresses = ["admin@example.net"]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(
    tmp_path: Path, *, port: int | None = None, db: Path | None = None, extra: str = ""
) -> Path:
    path = tmp_path / "mailhub.toml"
    text = CONFIG.format(port=port or free_port(), db=db or tmp_path / "m.db", tmp=tmp_path)
    path.write_text(text + extra)
    return path


def serve(path: Path, cwd: Path) -> tuple[int, str, float]:
    """Run `python -m mailhub serve`; (exit code, stderr, seconds it took)."""
    env = {k: v for k, v in os.environ.items() if k != "MAILHUB_CONFIG"}
    env["PYTHONPATH"] = str(REPO)
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "mailhub", "serve", "--config", str(path)],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"mailhub serve did not exit: {exc.stderr!r}") from None
    return done.returncode, done.stderr, time.monotonic() - started


def assert_one_line(result: tuple[int, str, float], *words: str, code: int = 1) -> None:
    returncode, err, seconds = result
    assert returncode == code, err
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("mailhub: ") and "Traceback" not in err
    for word in words:
        assert word in err, err
    assert seconds < 2.0, f"took {seconds:.1f}s"


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_port_in_use(tmp_path, busy_port):
    # The store is opened before the bind; it is closed again, so the process exits.
    result = serve(config(tmp_path, port=busy_port), tmp_path)
    assert_one_line(result, f"cannot listen on 127.0.0.1:{busy_port}", "Address already in use")
    assert "server.listen" in result[1]


def test_a_database_file_that_is_not_a_database(tmp_path):
    db = tmp_path / "m.db"
    db.write_bytes(b"not a database\n" * 1000)
    result = serve(config(tmp_path, db=db), tmp_path)
    assert_one_line(result, f"cannot open the database {db}", "not a database", "storage.path")
    assert db.read_bytes() == b"not a database\n" * 1000  # left as it was


def test_a_database_with_a_damaged_schema(tmp_path):
    # A real SQLite file whose first page (the schema) is overwritten after the header.
    # (Damage deeper in is found when that data is read: the workers log it and back off.)
    db = tmp_path / "m.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    data = bytearray(db.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)
    db.write_bytes(bytes(data))
    result = serve(config(tmp_path, db=db), tmp_path)
    assert_one_line(result, f"cannot open the database {db}", "malformed")


def test_a_database_path_that_is_a_directory(tmp_path):
    db = tmp_path / "m.db"
    db.mkdir()
    assert_one_line(serve(config(tmp_path, db=db), tmp_path), "cannot open the database")


def test_a_database_folder_that_cannot_be_made(tmp_path):
    (tmp_path / "var").write_text("a file where the folder should be")
    result = serve(config(tmp_path, db=tmp_path / "var" / "m.db"), tmp_path)
    assert_one_line(result, "cannot open the database", "storage.path")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_database(tmp_path):
    db = tmp_path / "m.db"
    sqlite3.connect(db).close()
    db.write_bytes(db.read_bytes())
    db.chmod(0)
    try:
        assert_one_line(serve(config(tmp_path, db=db), tmp_path), "cannot open the database")
    finally:
        db.chmod(0o600)


@pytest.mark.parametrize(
    "content, words",
    [(b"not a key", ["does not hold a Fernet key"]), (None, ["cannot read"])],
    ids=["garbage", "missing"],
)
def test_a_bad_key_file(tmp_path, content, words):
    key = tmp_path / "conduct.key"
    if content is not None:
        key.write_bytes(content)
    extra = f'[conduct]\nfallback = "board@example.net"\nkey_file = "{key}"\n'
    result = serve(config(tmp_path, extra=extra), tmp_path)
    assert_one_line(result, "config error: conduct.key_file", *words, code=2)


@pytest.mark.parametrize(
    "extra, words",
    [
        ('[[lists]]\nname = "dataviz"\nsubscripton = "open"\n', ["lists[0].subscripton"]),
        ("[server\n", ["is not valid TOML"]),
        ('[[lists]]\nname = "dataviz"\nsubscription = "sometimes"\n', ["lists[0].subscription"]),
    ],
    ids=["unknown key", "not TOML", "bad value"],
)
def test_a_bad_config(tmp_path, extra, words):
    assert_one_line(serve(config(tmp_path, extra=extra), tmp_path), "config error", *words, code=2)


def test_a_missing_config(tmp_path):
    assert_one_line(serve(tmp_path / "nope.toml", tmp_path), "config error", "nope.toml", code=2)
