"""`mailhub serve` on PostgreSQL that cannot start: one line on stderr, a non-zero exit,
no traceback (the process is run for real). And one that can: a node on a migrated
database starts and takes mail."""

from __future__ import annotations

import asyncio
from pathlib import Path

from mailhub.store import schema
from mailhub.store.postgres import PostgresStore
from tests.support.nodes import free_port, start_server, stop_server
from tests.test_start_failures import CONFIG, assert_one_line, serve


def pg_config(tmp_path: Path, url: str, extra: str = "") -> Path:
    path = tmp_path / "mailhub.toml"
    text = CONFIG.format(port=free_port(), db=tmp_path / "unused.db", tmp=tmp_path)
    path.write_text(text.replace("[storage]\n", f'[storage]\nurl = "{url}"\n') + extra)
    return path


def with_storage(text_path: Path, line: str) -> None:
    text = text_path.read_text()
    text_path.write_text(text.replace("[storage]\n", f"[storage]\n{line}\n"))


def test_a_url_that_is_not_postgresql_is_one_line(tmp_path):
    path = pg_config(tmp_path, "mysql://mailhub@127.0.0.1/mailhub")
    assert_one_line(serve(path, tmp_path), "storage.url", "PostgreSQL URL", code=2)


def test_an_unreachable_server_is_one_line(tmp_path):
    url = f"postgresql://mailhub@127.0.0.1:{free_port()}/mailhub"  # nothing listens there
    assert_one_line(
        serve(pg_config(tmp_path, url), tmp_path),
        "cannot reach the PostgreSQL database",
        url,
        "check storage.url",
    )


def test_an_unreadable_password_file_is_one_line(tmp_path, pg_url):
    path = pg_config(tmp_path, pg_url)
    with_storage(path, f'password_file = "{tmp_path / "absent"}"')
    assert_one_line(serve(path, tmp_path), "cannot read storage.password_file", "absent")


def test_a_database_never_migrated_is_refused_with_what_to_do(tmp_path, pg_url):
    assert_one_line(
        serve(pg_config(tmp_path, pg_url), tmp_path),
        "schema is at version 0",
        "run `mailhub migrate`",
    )


async def test_a_database_one_version_behind_is_refused_and_nothing_changes(tmp_path, pg_url):
    store = await PostgresStore.connect(pg_url, migrate=False)
    try:
        async with store.transaction() as tx:
            await schema.migrate(tx, target=1)
    finally:
        await store.close()
    result = await asyncio.to_thread(serve, pg_config(tmp_path, pg_url), tmp_path)
    assert_one_line(result, "schema is at version 1", "needs version 2", "mailhub migrate")
    store = await PostgresStore.connect(pg_url, migrate=False)
    try:
        async with store.read() as tx:
            assert await schema.version(tx) == 1
    finally:
        await store.close()


async def test_a_node_on_a_migrated_database_starts_and_takes_mail(tmp_path, pg_url):
    await (await PostgresStore.connect(pg_url)).close()  # `mailhub migrate`
    port = free_port()
    path = tmp_path / "mailhub.toml"
    path.write_text(
        CONFIG.format(port=port, db=tmp_path / "unused.db", tmp=tmp_path).replace(
            "[storage]\n", f'[storage]\nurl = "{pg_url}"\n'
        )
    )
    proc = await start_server(path, port)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert (await reader.readline()).startswith(b"220")
        writer.close()
    finally:
        await stop_server(proc)
    assert proc.returncode == 0
