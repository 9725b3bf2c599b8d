"""The PostgreSQL password: from `[storage] password_file`, or libpq's own PGPASSWORD,
never written in the config. A server of the test's own that asks one role for its
password (scram-sha-256); `mailhub migrate` run for real."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import psycopg
import pytest

from tests.test_schema_migrations import write_config

ROLE, SECRET = "gwen", "Cyfrinair-hir-1"


@pytest.fixture
def url(pg_own_cluster) -> str:
    """A database owned by ROLE, which must give SECRET (the server's other users keep
    trust: only this role is asked)."""
    cluster = pg_own_cluster
    hba = cluster.data / "pg_hba.conf"
    hba.write_text(f"host all {ROLE} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
    with psycopg.connect(cluster.url("postgres"), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{SECRET}'")
        conn.execute(f"CREATE DATABASE cymuned OWNER {ROLE}")
        conn.execute("SELECT pg_reload_conf()")
    address = f"postgresql://{ROLE}@127.0.0.1:{cluster.port}/cymuned"
    # The reload is a signal the server acts on by itself: wait (bounded) until it asks.
    for _ in range(200):
        try:
            psycopg.connect(address, connect_timeout=2).close()
        except psycopg.OperationalError as exc:
            if "password" in str(exc):
                return address
            raise
    raise AssertionError("the server never asked for the password")


async def migrate(config: Path, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mailhub", "migrate", "--config", str(config),
        cwd=config.parent, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def plain_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


async def test_the_password_from_password_file(tmp_path, url):
    secret = tmp_path / "db-password"
    secret.write_text(SECRET + "\n")
    config = write_config(tmp_path, f'url = "{url}"\npassword_file = "{secret}"')
    code, out, err = await migrate(config, plain_env())
    assert (code, err) == (0, ""), err
    assert "schema: version 0" in out and "applied" in out


async def test_the_password_from_pgpassword(tmp_path, url):
    config = write_config(tmp_path, f'url = "{url}"')
    code, out, err = await migrate(config, plain_env() | {"PGPASSWORD": SECRET})
    assert (code, err) == (0, ""), err


async def test_no_password_or_a_wrong_one_is_one_line_and_never_shows_it(tmp_path, url):
    config = write_config(tmp_path, f'url = "{url}"')
    code, out, err = await migrate(config, plain_env())
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "password" in err

    wrong = tmp_path / "wrong"
    wrong.write_text("not-it\n")
    config = write_config(tmp_path, f'url = "{url}"\npassword_file = "{wrong}"')
    code, out, err = await migrate(config, plain_env())
    assert code == 1 and err.count("\n") == 1, err
    assert "password authentication failed" in err and "not-it" not in err
