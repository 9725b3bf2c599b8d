"""Versioned schema migrations on both backends: an empty database and one at the previous
version brought to the current one, nothing applied twice, a node refusing another version
with one line, a file of a release before versioning upgraded, `mailhub migrate` as a real
command, and the PostgreSQL DDL of every module's statements."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import pytest_asyncio

from mailhub.errors import SchemaMismatch
from mailhub.store import Store, Tx, schema
from mailhub.store.schema import CURRENT_VERSION, postgresql_ddl
from tests.test_lists_review_migration import FRAN, old_file

REPO = Path(__file__).resolve().parent.parent
OLDER = (
    f"the database schema is at version {CURRENT_VERSION - 1}; this mailhub needs version "
    f"{CURRENT_VERSION}: run `mailhub migrate`"
)
NEWER = (
    f"the database schema is at version {CURRENT_VERSION + 1}, newer than this mailhub "
    f"({CURRENT_VERSION}): upgrade mailhub on this node"
)
LEASES = {"order_key", "lease_owner", "lease_until"}  # inbound's, at least
LEASE_INDEXES = {re.search(r"EXISTS (\w+)", s).group(1) for s in schema.LEASE_INDEXES}

Opener = Callable[[], Awaitable[Store]]


@pytest_asyncio.fixture
async def open_db(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Opener]:
    """Opens the test's database (SQLite file or PostgreSQL database, per `backend`)
    WITHOUT migrating it, as `mailhub migrate` does; closed after the test."""
    opened: list[Store] = []

    async def open_() -> Store:
        if backend == "postgresql":
            from mailhub.store.postgres import PostgresStore

            store: Store = await PostgresStore.connect(
                request.getfixturevalue("pg_url"), migrate=False
            )
        else:
            store = await Store.open(tmp_path / "mailhub.db", migrate=False)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        await store.close()


# What the database holds, read as each engine tells it (not through schema.py, under test).


async def tables(tx: Tx) -> set[str]:
    if tx.dialect == "postgresql":
        cur = await tx.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
    else:
        cur = await tx.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {row[0] for row in await cur.fetchall()}


async def indexes(tx: Tx) -> set[str]:
    if tx.dialect == "postgresql":
        cur = await tx.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
        )
    else:
        cur = await tx.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
    return {row[0] for row in await cur.fetchall()}


async def column_types(tx: Tx, table: str) -> dict[str, str]:
    if tx.dialect == "postgresql":
        cur = await tx.execute(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = ?",
            (table,),
        )
        return {name: kind for name, kind in await cur.fetchall()}
    cur = await tx.execute(f"PRAGMA table_info({table})")
    return {row[1]: row[2] for row in await cur.fetchall()}


async def recorded(tx: Tx) -> list[tuple[int, str, float]]:
    cur = await tx.execute("SELECT version, name, applied_at FROM schema_migrations ORDER BY 1")
    return [(int(v), n, float(a)) for v, n, a in await cur.fetchall()]


def created_tables(engine: str) -> set[str]:
    """The tables the modules' CREATE statements name, for one engine."""
    pattern = re.compile(r"CREATE\s+(?:VIRTUAL\s+)?TABLE\s+IF\s+NOT\s+EXISTS\s+(\w+)", re.I)
    return {m.group(1) for s in schema.all_statements(engine) for m in [pattern.match(s)] if m}


async def add_queued_mail(tx: Tx) -> int:
    """One inbound message and one outbound one with two recipients, in the columns that
    version 1 has (the store's functions write version 2's); returns the outbound id."""
    await tx.execute(
        "INSERT INTO inbound (queue_id, received_at, mail_from, rcpt_tos, raw, size, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        ("Q1", 1000.5, "ann@example.net", '["dataviz@cop.example.org"]', b"raw\x00\xff", 5, 1000.5),
    )
    cur = await tx.execute(
        "INSERT INTO outbound (message_id, mail_from, raw, kind, created_at, next_attempt_at)"
        " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        ("<m1@cop.example.org>", "bounces@cop.example.org", b"out", "list", 1001.25, 1001.25),
    )
    outbound_id = int((await cur.fetchone())[0])
    await tx.executemany(
        "INSERT INTO outbound_rcpt (outbound_id, rcpt) VALUES (?, ?)",
        [(outbound_id, "bo@example.net"), (outbound_id, "cy@example.net")],
    )
    return outbound_id


# -- an empty database ------------------------------------------------------------------


async def test_an_empty_database_is_migrated_to_the_current_version(open_db, backend):
    store = await open_db()
    async with store.read() as tx:
        assert await schema.version(tx) == 0
    before = time.time()
    async with store.transaction() as tx:
        applied = await schema.migrate(tx)
    assert [(m.version, m.name) for m in applied] == [(1, "baseline"), (2, "leases")]
    assert applied[-1].version == CURRENT_VERSION
    async with store.read() as tx:
        assert await schema.version(tx) == CURRENT_VERSION
        rows = await recorded(tx)
        have = await tables(tx)
        inbound = await column_types(tx, "inbound")
        outbound = await column_types(tx, "outbound")
        have_indexes = await indexes(tx)
        await schema.check(tx)  # the version a node serves: no complaint
    assert [(v, n) for v, n, _ in rows] == [(1, "baseline"), (2, "leases")]
    assert all(before <= at <= time.time() for _, _, at in rows)
    expected = created_tables(backend) | {"schema_migrations"}
    assert len(expected) > 30 and expected <= have, expected - have
    for table, column, _ in schema.LEASE_COLUMNS:
        assert column in {"inbound": inbound, "outbound": outbound}[table], (table, column)
    assert LEASE_INDEXES | {"inbound_state", "outbound_case", "autoreplies_time"} <= have_indexes


# -- a database at the previous version -------------------------------------------------


async def test_a_database_at_the_previous_version_gets_the_leases_and_keeps_its_rows(
    open_db, backend
):
    store = await open_db()
    async with store.transaction() as tx:
        assert [m.name for m in await schema.migrate(tx, target=1)] == ["baseline"]
        outbound_id = await add_queued_mail(tx)
    async with store.read() as tx:
        assert await schema.version(tx) == 1
        # Version 1 is what it was: none of version 2's columns or indexes.
        for table, column, _ in schema.LEASE_COLUMNS:
            assert column not in await column_types(tx, table), (table, column)
        assert not LEASE_INDEXES & await indexes(tx)

    async with store.transaction() as tx:
        applied = await schema.migrate(tx)
    assert [(m.version, m.name) for m in applied] == [(2, "leases")]

    async with store.read() as tx:
        assert await schema.version(tx) == 2
        cur = await tx.execute("SELECT queue_id, raw, state FROM inbound")
        inbound_rows = [(q, bytes(raw), state) for q, raw, state in await cur.fetchall()]
        cur = await tx.execute("SELECT id, raw, state, created_at FROM outbound")
        outbound_rows = [(i, bytes(raw), *rest) for i, raw, *rest in await cur.fetchall()]
        cur = await tx.execute("SELECT rcpt FROM outbound_rcpt ORDER BY rcpt")
        rcpts = [r[0] for r in await cur.fetchall()]
        # The new columns, on the rows that were there: the defaults ('' or NULL).
        added = {}
        for table, column, definition in schema.LEASE_COLUMNS:
            cur = await tx.execute(f"SELECT {column} FROM {table}")
            added[table, column] = ([r[0] for r in await cur.fetchall()], definition)
        inbound = await column_types(tx, "inbound")
        outbound = await column_types(tx, "outbound")
        assert await indexes(tx) >= LEASE_INDEXES
    assert inbound_rows == [("Q1", b"raw\x00\xff", "queued")]
    assert outbound_rows == [(outbound_id, b"out", "queued", 1001.25)]
    assert rcpts == ["bo@example.net", "cy@example.net"]
    for (table, column), (values, definition) in added.items():
        default = "" if "DEFAULT ''" in definition else None
        assert values == [default], (table, column, values)
    assert ("inbound", "order_key") in added and ("outbound", "lease_until") in added
    if backend == "postgresql":  # 8-byte floats, as the other timestamps
        assert inbound["lease_until"] == outbound["lease_until"] == "double precision"
        assert inbound["order_key"] == "text" and inbound["seq"] == "bigint"
    else:
        assert (inbound["lease_until"], inbound["order_key"]) == ("REAL", "TEXT")


async def test_running_migrate_again_applies_nothing(open_db):
    store = await open_db()
    async with store.transaction() as tx:
        assert len(await schema.migrate(tx)) == CURRENT_VERSION
    async with store.read() as tx:
        first = await recorded(tx)
    for _ in range(2):
        async with store.transaction() as tx:
            assert await schema.migrate(tx) == []
    async with store.read() as tx:
        assert await recorded(tx) == first


# -- a node meets another version -------------------------------------------------------


async def test_check_refuses_an_older_schema_with_one_line(open_db):
    store = await open_db()
    async with store.transaction() as tx:
        await schema.migrate(tx, target=CURRENT_VERSION - 1)
    async with store.read() as tx:
        with pytest.raises(SchemaMismatch) as refused:
            await schema.check(tx)
    assert str(refused.value) == OLDER


async def test_an_empty_database_is_refused_too(open_db):
    store = await open_db()
    async with store.read() as tx:
        with pytest.raises(SchemaMismatch, match=r"^the database schema is at version 0; "):
            await schema.check(tx)


async def test_a_newer_schema_is_refused_by_check_and_by_migrate(open_db):
    store = await open_db()
    async with store.transaction() as tx:
        await schema.migrate(tx)
        # What a later release would have recorded.
        await tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            (CURRENT_VERSION + 1, "from-the-future", time.time()),
        )
    async with store.read() as tx:
        with pytest.raises(SchemaMismatch) as refused:
            await schema.check(tx)
    assert str(refused.value) == NEWER
    with pytest.raises(SchemaMismatch) as refused:
        async with store.transaction() as tx:
            await schema.migrate(tx)
    assert str(refused.value) == NEWER
    async with store.read() as tx:
        assert await schema.version(tx) == CURRENT_VERSION + 1


async def test_sqlite_refuses_to_open_a_newer_file(tmp_path):
    """SQLite migrates itself at open: a file of a newer release is refused there."""
    path = tmp_path / "newer.db"
    store = await Store.open(path)
    async with store.transaction() as tx:
        await tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'x', 0)",
            (CURRENT_VERSION + 1,),
        )
    await store.close()
    with pytest.raises(SchemaMismatch) as refused:
        await Store.open(path)
    assert str(refused.value) == NEWER


async def test_a_target_past_the_current_version_is_a_mistake(open_db):
    store = await open_db()
    with pytest.raises(ValueError, match="no schema version"):
        async with store.transaction() as tx:
            await schema.migrate(tx, target=CURRENT_VERSION + 1)


async def test_two_nodes_migrating_at_once_apply_each_migration_once(pg_url):
    """`mailhub migrate` run on two nodes together: the second waits on the advisory lock
    for the first to commit, then finds nothing pending."""
    from mailhub.store.postgres import PostgresStore

    first = await PostgresStore.connect(pg_url, migrate=False)
    second = await PostgresStore.connect(pg_url, migrate=False)
    watcher = await PostgresStore.connect(pg_url, migrate=False)
    try:
        second_done: asyncio.Task | None = None
        async with first.transaction() as tx:
            assert len(await schema.migrate(tx)) == CURRENT_VERSION

            async def migrate_second() -> list[schema.Migration]:
                async with second.transaction() as tx2:
                    return await schema.migrate(tx2)

            second_done = asyncio.create_task(migrate_second())
            # The second waits while the first's transaction is open: for the lock.
            waiting: list[str] = []
            while not waiting:
                assert not second_done.done(), second_done
                async with watcher.read() as w:
                    cur = await w.execute("SELECT locktype FROM pg_locks WHERE NOT granted")
                    waiting = [r[0] for r in await cur.fetchall()]
            assert waiting == ["advisory"]
        assert await second_done == []
        async with watcher.read() as tx:
            assert [v for v, _, _ in await recorded(tx)] == [1, 2]
    finally:
        for store in (first, second, watcher):
            await store.close()


# -- a file of a release before versioning ----------------------------------------------


async def test_an_unversioned_file_from_before_is_brought_to_the_current_version(tmp_path):
    """The file as the last release before versioning left it (its migrate: the baseline,
    nothing recorded), with mail queued: opened by this release, it is at the current
    version, with the mail and the new columns."""
    path = tmp_path / "unversioned.db"
    store = await Store.open(path, migrate=False)
    async with store.transaction() as tx:
        await schema.MIGRATIONS[0].apply(tx)  # what `migrate` was, before versions
        await add_queued_mail(tx)
    await store.close()
    assert "schema_migrations" not in {
        r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")
    }

    store = await Store.open(path)  # SQLite migrates itself when opened, as before
    try:
        async with store.read() as tx:
            assert await schema.version(tx) == CURRENT_VERSION
            assert [(v, n) for v, n, _ in await recorded(tx)] == [(1, "baseline"), (2, "leases")]
            cur = await tx.execute("SELECT queue_id, order_key, lease_until FROM inbound")
            assert [tuple(r) for r in await cur.fetchall()] == [("Q1", "", None)]
            cur = await tx.execute("SELECT count(*) FROM outbound_rcpt")
            assert (await cur.fetchone())[0] == 2
    finally:
        await store.close()


async def test_a_file_of_an_older_release_is_renamed_and_versioned(tmp_path):
    """Older still: the tables of the release before the review's rename (the file
    test_lists_review_migration makes), with rows."""
    path = tmp_path / "old.db"
    old_file(path, time.time())
    store = await Store.open(path)
    try:
        async with store.read() as tx:
            assert await schema.version(tx) == CURRENT_VERSION
            have = await tables(tx)
            cur = await tx.execute("SELECT recipient FROM reviews WHERE id = 3")
            assert (await cur.fetchone())[0] == FRAN
            assert set(await column_types(tx, "inbound")) >= LEASES
        assert created_tables("sqlite") <= have and "moderation_digests" not in have
    finally:
        await store.close()


# -- `mailhub migrate` ------------------------------------------------------------------


def write_config(tmp_path: Path, storage: str) -> Path:
    text = (REPO / "config" / "mailhub.toml").read_text()
    text, found = re.subn(r'(?m)^path = "var/mailhub.db"$', storage, text)
    assert found == 1
    config = tmp_path / "c.toml"
    config.write_text(text)
    return config


async def run_migrate(config: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mailhub",
        "migrate",
        *args,
        "--config",
        str(config),
        cwd=config.parent,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_migrate_command(open_db, backend, tmp_path, request):
    if backend == "postgresql":
        config = write_config(tmp_path, f'url = "{request.getfixturevalue("pg_url")}"')
    else:
        config = write_config(tmp_path, f'path = "{tmp_path / "mailhub.db"}"')
    arrow = "\N{RIGHTWARDS ARROW}"

    # A database at the previous version, with mail in it.
    store = await open_db()
    async with store.transaction() as tx:
        await schema.migrate(tx, target=CURRENT_VERSION - 1)
        await add_queued_mail(tx)

    assert await run_migrate(config, "--status") == (
        0,
        "schema: version 1; pending: 2 leases (apply with `mailhub migrate`)\n",
        "",
    )
    async with store.read() as tx:  # --status changed nothing
        assert await schema.version(tx) == CURRENT_VERSION - 1
    assert await run_migrate(config) == (
        0,
        f"schema: version 1 {arrow} 2 (applied: 2 leases)\n",
        "",
    )
    assert await run_migrate(config) == (0, "schema: version 2, up to date\n", "")
    assert await run_migrate(config, "--status") == (0, "schema: version 2, up to date\n", "")
    async with store.read() as tx:
        await schema.check(tx)
        cur = await tx.execute("SELECT queue_id FROM inbound")
        assert [r[0] for r in await cur.fetchall()] == ["Q1"]

    # A newer database: refused in one line, exit 1, nothing changed.
    async with store.transaction() as tx:
        await tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'x', 0)",
            (CURRENT_VERSION + 1,),
        )
    for args in ((), ("--status",)):
        assert await run_migrate(config, *args) == (1, "", f"mailhub: {NEWER}\n")


async def test_the_migrate_command_on_an_empty_sqlite_file(tmp_path):
    config = write_config(tmp_path, f'path = "{tmp_path / "new.db"}"')
    assert await run_migrate(config) == (
        0,
        "schema: version 0 \N{RIGHTWARDS ARROW} 2 (applied: 1 baseline, 2 leases)\n",
        "",
    )


async def test_the_migrate_command_says_when_the_file_is_not_a_database(tmp_path):
    path = tmp_path / "garbage.db"
    path.write_bytes(b"not a database, just some bytes" * 200)
    config = write_config(tmp_path, f'path = "{path}"')
    code, out, err = await run_migrate(config)
    assert (code, out) == (1, "")
    assert err == (
        f"mailhub: cannot open the database {path} (file is not a database); check storage.path\n"
    )


async def test_the_migrate_command_says_when_postgresql_cannot_be_reached(tmp_path, pg_url):
    # The test's database exists; one beside it does not.
    url = pg_url.rsplit("/", 1)[0] + "/no_such_database"
    config = write_config(tmp_path, f'url = "{url}"')
    code, out, err = await run_migrate(config)
    assert (code, out) == (1, "")
    last = err.strip().splitlines()[-1]
    assert last.startswith("mailhub: cannot reach the PostgreSQL database (")
    assert 'database "no_such_database" does not exist' in last
    assert last.endswith("check storage.url and that the server is running")


# -- the PostgreSQL DDL -----------------------------------------------------------------

INBOUND = next(s for s in schema.all_statements("sqlite") if "TABLE IF NOT EXISTS inbound (" in s)


def test_the_types_of_postgresql():
    ddl = postgresql_ddl(INBOUND)
    assert "seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY," in ddl
    assert "received_at DOUBLE PRECISION NOT NULL," in ddl
    assert "raw BYTEA NOT NULL," in ddl
    assert "size BIGINT NOT NULL," in ddl
    assert "state TEXT NOT NULL DEFAULT 'queued'," in ddl
    assert "sealed BIGINT NOT NULL DEFAULT 0," in ddl


def test_what_is_the_same_in_both_is_left_alone():
    for statement in (
        "CREATE INDEX IF NOT EXISTS outbound_case ON outbound (case_ref) WHERE case_ref <> ''",
        schema.LEASE_INDEXES[0],
        "CREATE TABLE IF NOT EXISTS t (a TEXT NOT NULL, b TEXT, PRIMARY KEY (a, b))",
    ):
        assert postgresql_ddl(statement) == statement


def test_a_key_of_several_columns_and_a_foreign_key_keep_their_shape():
    statement = next(
        s for s in schema.all_statements("sqlite") if "TABLE IF NOT EXISTS outbound_rcpt" in s
    )
    ddl = postgresql_ddl(statement)
    assert "outbound_id BIGINT NOT NULL REFERENCES outbound (id) ON DELETE CASCADE" in ddl
    assert "PRIMARY KEY (outbound_id, rcpt)" in ddl and "IDENTITY" not in ddl


def test_quoted_text_and_names_that_contain_type_names_are_not_touched():
    statement = (
        "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, kind TEXT DEFAULT 'REAL BLOB',"
        " interval_seconds INTEGER, blob_hash TEXT, realm TEXT)"
    )
    assert postgresql_ddl(statement) == (
        "CREATE TABLE IF NOT EXISTS t (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
        " kind TEXT DEFAULT 'REAL BLOB', interval_seconds BIGINT, blob_hash TEXT, realm TEXT)"
    )


def test_without_rowid_is_sqlites_own():
    statement = "CREATE TABLE IF NOT EXISTS m (a TEXT, b INTEGER, PRIMARY KEY (a, b)) WITHOUT ROWID"
    assert postgresql_ddl(statement) == (
        "CREATE TABLE IF NOT EXISTS m (a TEXT, b BIGINT, PRIMARY KEY (a, b))"
    )


def test_a_virtual_table_is_refused():
    with pytest.raises(ValueError, match="SCHEMA_SQLITE"):
        postgresql_ddl("CREATE VIRTUAL TABLE IF NOT EXISTS s USING fts5(a, b)")


def test_every_modules_statements_translate():
    """Every portable statement of every module (and the columns and indexes they add)
    comes out in PostgreSQL's types alone; that PostgreSQL accepts them all is what
    migrating an empty database shows."""
    sqlite_types = re.compile(r"\b(INTEGER|REAL|BLOB)\b|WITHOUT ROWID")
    statements = schema.all_statements("postgresql") + [
        postgresql_ddl(f"ALTER TABLE {t} ADD COLUMN {c} {d}") for t, c, d in schema.LEASE_COLUMNS
    ]
    for module in schema._modules():
        statements += [postgresql_ddl(s) for s in getattr(module, "ADDED_INDEXES", ())]
        statements += [
            postgresql_ddl(f"ALTER TABLE {t} ADD COLUMN {c} {d}")
            for t, c, d in getattr(module, "ADDED_COLUMNS", ())
        ]
    portable = [s for s in statements if "USING fts5" not in s]
    assert len(portable) > 60
    for statement in portable:
        outside_quotes = re.sub(r"'(?:[^']|'')*'", "''", statement)
        assert not sqlite_types.search(outside_quotes), statement
