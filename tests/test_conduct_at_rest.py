"""Case content at rest: sealed from intake on, in both queues, gone after retention, and
never in the logs. Real server, real SQLite file, real SMTP sink.

Where a test needs mail to sit in the inbound queue, the inbound worker is stopped (as it
would be by a crash between the 250 and processing); where it needs a key that does not
match, the service is restarted on the same database with another `key_file`.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import sqlite3
from email import policy
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

from cryptography.fernet import Fernet

from mailhub.apps import load_config
from mailhub.cli import main
from mailhub.service import Service
from mailhub.store import Store, inbound
from mailhub.store import conduct as store
from mailhub.store.inbound import UNSEALABLE
from tests.support.hub import DOMAIN, Hub, message, start_hub
from tests.support.sink import Sink

CONDUCT = f"conduct@{DOMAIN}"
ENQUIRIES = f"enquiries@{DOMAIN}"
ADA, BRYN, CARYS = "ada@example.net", "bryn@example.net", "carys@example.net"
COMMITTEE = (ADA, BRYN, CARYS)
REPORTER = "rhian@reporter.example"
TOKEN = b"ZQX7-unique-report-marker"


def conduct_toml(key: Path | None) -> str:
    # release_after = "0": the report goes to the committee at once (no reporter's window).
    key_line = f'key_file = "{key}"\n' if key is not None else ""
    return f"""
[conduct]
fallback = "board@example.net"
retention_days = 30
release_after = "0"
{key_line}
[[conduct.committee]]
name = "Ada Jones"
addresses = ["{ADA}"]
[[conduct.committee]]
name = "Bryn Hughes"
addresses = ["{BRYN}"]
[[conduct.committee]]
name = "Carys Pryce"
addresses = ["{CARYS}"]
"""


def new_key(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.write_bytes(Fernet.generate_key())
    return path


def report(sender: str = REPORTER, to: str = CONDUCT) -> bytes:
    """A report carrying TOKEN in its subject, its text and a base64 attachment."""
    msg = EmailMessage()
    msg["From"] = f"Rhian Report <{sender}>"
    msg["To"] = to
    msg["Subject"] = f"About {TOKEN.decode()} at the meetup"
    msg["Message-ID"] = make_msgid(domain="reporter.example")
    msg.set_content(f"What happened: {TOKEN.decode()}, twice.\n")
    msg.add_attachment(TOKEN + b" in the evidence", maintype="application", subtype="octet-stream")
    return msg.as_bytes(policy=policy.SMTP)


def token_forms() -> list[bytes]:
    """TOKEN as it can appear in stored bytes: plain, and base64 at each alignment (without
    the first and last groups, which depend on the bytes around it)."""
    forms = [TOKEN, TOKEN.lower()]
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + TOKEN + b"\0\0")
        forms.append(encoded[4:-8] if shift else encoded[:-8])
    return forms


def plaintext_in(data: bytes) -> list[bytes]:
    return [f for f in token_forms() if f in data]


async def start(tmp_path: Path, key: Path | None, hub: Hub | None = None) -> Hub:
    """Start the service (again, on the same database, clock and sink when `hub` is given)."""
    if hub is None:
        return await start_hub(tmp_path, extra=conduct_toml(key))
    return await start_hub(tmp_path, extra=conduct_toml(key), clock=hub.clock, sink=hub.sink)


async def stop_processing(hub: Hub) -> None:
    """Stop the inbound worker: what is accepted now stays in the inbound queue."""
    (task,) = [t for t in hub.service._tasks if t.get_name() == "processor"]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def send_report(hub: Hub) -> str:
    code, text = await hub.send(REPORTER, [CONDUCT], report())
    assert code == 250, text
    return text.rsplit(" ", 1)[1]  # "OK queued as Q..."


async def inbound_row(hub: Hub, queue_id: str) -> tuple:
    async with hub.service.store.read() as tx:
        cur = await tx.execute(
            "SELECT state, sealed, conduct, raw, error FROM inbound WHERE queue_id = ?",
            (queue_id,),
        )
        return await cur.fetchone()


async def open_case(hub: Hub) -> str:
    """A report that reaches the committee; returns its reference."""
    await send_report(hub)
    await hub.idle()
    for member in COMMITTEE:
        await hub.sink.wait_count(member, 2)  # the report and the case details
    ack = hub.sink.to(REPORTER)[-1].message
    return str(ack["X-Conduct-Case"])


def files_of(tmp_path: Path) -> dict[str, bytes]:
    paths = [tmp_path / "mailhub.db", tmp_path / "mailhub.db-wal"]
    return {p.name: p.read_bytes() for p in paths if p.exists()}


def lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("mailhub")]


async def test_case_content_never_rests_in_plaintext_nor_reaches_the_logs(tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="mailhub")
    key = new_key(tmp_path, "conduct.key")
    hub = await start(tmp_path, key)
    try:
        ref = await open_case(hub)
        # The committee reads the report in clear, attachment and all.
        copies = [r.raw for m in COMMITTEE for r in hub.sink.to(m)]
        assert any(TOKEN in raw for raw in copies)
        assert any(base64.b64encode(TOKEN)[:32] in raw for raw in copies)
        # More reports from the same person: the fourth acknowledgement is held back by the
        # rate limit, and its log line must not name whom it was for either.
        for _ in range(3):
            await send_report(hub)
        await hub.idle()

        # A second report is accepted while the worker is down, and the service comes back
        # with a key that does not open it: the item fails, sealed, and says why.
        await stop_processing(hub)
        queue_id = await send_report(hub)
        await hub.service.stop()
        hub = await start(tmp_path, new_key(tmp_path, "other.key"), hub)
        await hub.idle()
        state, sealed, conduct, raw, error = await inbound_row(hub, queue_id)
        assert (state, sealed, conduct, error) == ("failed", 1, 1, UNSEALABLE)
        assert TOKEN in Fernet(key.read_bytes()).decrypt(bytes(raw))

        # Nothing of the report in the database or its WAL, running or stopped.
        found = {name: plaintext_in(data) for name, data in files_of(tmp_path).items()}
        assert "mailhub.db-wal" in found
        assert found == {name: [] for name in found}
        await hub.service.stop()
        found = {name: plaintext_in(data) for name, data in files_of(tmp_path).items()}
        assert found == {name: [] for name in found}
    finally:
        await hub.service.stop()
        await hub.sink.stop()

    logged = lines(caplog)
    assert any(ref in line for line in logged)  # the reference is logged...
    assert plaintext_in(caplog.text.encode()) == []  # ...never the content,
    assert not [line for line in logged if REPORTER in line]  # nor who reported,
    received = [line for line in logged if line.startswith("received ")]
    assert received and all("route=conduct" in line for line in received)
    deliveries = [line for line in logged if line.startswith("delivery ")]
    assert any(f"ref={ref}" in line and "outcome=sent" in line for line in deliveries)
    assert not [line for line in deliveries if any(m in line for m in COMMITTEE)]
    autoreplies = [line for line in logged if line.startswith("autoreply ")]
    assert any("rate limit" in line for line in autoreplies)
    assert not [line for line in autoreplies if "to=" in line]


async def test_intake_seals_conduct_mail_before_it_is_stored(tmp_path):
    key = new_key(tmp_path, "conduct.key")
    hub = await start(tmp_path, key)
    try:
        await stop_processing(hub)
        conduct_id = await send_report(hub)
        # A message with one conduct recipient among others is case content as a whole.
        code, text = await hub.send(REPORTER, [ENQUIRIES, CONDUCT], report(to=ENQUIRIES))
        assert code == 250
        mixed_id = text.rsplit(" ", 1)[1]
        code, text = await hub.send(
            "sam@example.net", [ENQUIRIES], message(body=f"{TOKEN.decode()}\n")
        )
        assert code == 250
        other_id = text.rsplit(" ", 1)[1]
        for queue_id in (conduct_id, mixed_id):
            state, sealed, conduct, raw, _ = await inbound_row(hub, queue_id)
            assert (state, sealed, conduct) == ("queued", 1, 1)
            assert plaintext_in(bytes(raw)) == []
            assert TOKEN in Fernet(key.read_bytes()).decrypt(bytes(raw))
        state, sealed, conduct, raw, _ = await inbound_row(hub, other_id)
        assert (state, sealed, conduct) == ("queued", 0, 0) and TOKEN in bytes(raw)
    finally:
        await hub.service.stop()
    # The sealed row is read back when the worker runs again.
    hub = await start(tmp_path, key, hub)
    try:
        await hub.idle()
        assert (await inbound_row(hub, conduct_id))[0] == "done"
        for member in COMMITTEE:
            assert any(TOKEN in r.raw for r in hub.sink.to(member))
    finally:
        await hub.service.stop()
        await hub.sink.stop()


async def outbound_rows(hub: Hub) -> list[tuple]:
    async with hub.service.store.read() as tx:
        cur = await tx.execute("SELECT kind, case_ref, sealed, state FROM outbound ORDER BY id")
        return list(await cur.fetchall())


async def all_recipients(hub: Hub) -> set[str]:
    async with hub.service.store.read() as tx:
        cur = await tx.execute("SELECT rcpt FROM outbound_rcpt")
        return {r for (r,) in await cur.fetchall()}


async def test_retention_removes_a_closed_cases_queue_rows_and_failed_items(tmp_path):
    key = new_key(tmp_path, "conduct.key")
    hub = await start(tmp_path, key)
    try:
        ref = await open_case(hub)
        rows = await outbound_rows(hub)
        assert rows and all(kind.startswith("conduct.") for kind, *_ in rows)
        assert {(case_ref, sealed) for _, case_ref, sealed, _ in rows} == {(ref, 1)}
        assert set(COMMITTEE) | {REPORTER} <= await all_recipients(hub)
        # A report that fails: accepted while the worker is down, then the service restarts
        # without the key.
        await stop_processing(hub)
        failed_id = await send_report(hub)
        await hub.service.stop()
        hub = await start(tmp_path, None, hub)
        await hub.idle()
        assert (await inbound_row(hub, failed_id))[0] == "failed"
        # The case is closed at the console; the committee is told.
        argv = ["cases", "close", ref, "--outcome", "no-action", "--config", str(hub.path)]
        assert await asyncio.to_thread(main, argv) == 0
        hub.clock.advance(60)  # past the CLI's own (system) clock
        hub.service.delivery.wake.set()
        await hub.sink.wait_for(lambda rs: any(r.message["Subject"].endswith("closed") for r in rs))
        await hub.idle()
        assert len(await outbound_rows(hub)) > len(rows)

        hub.clock.advance(29 * 86400)
        await hub.service.scheduler.run_once()
        assert await inbound_row(hub, failed_id) is not None
        assert len(await outbound_rows(hub)) > len(rows)

        hub.clock.advance(2 * 86400)
        await hub.service.scheduler.run_once()
        assert await outbound_rows(hub) == []
        assert await all_recipients(hub) == set()
        assert await inbound_row(hub, failed_id) is None
        async with hub.service.store.read() as tx:
            assert await store.messages(tx, ref) == []
            trail = [e.action for e in await store.audit_trail(tx, ref)]
        assert trail[0] == "opened" and trail[-1] == "content-deleted"
        # The WAL was checkpointed and truncated after the deletion.
        assert (tmp_path / "mailhub.db-wal").stat().st_size == 0
    finally:
        await hub.service.stop()
        await hub.sink.stop()


async def test_outbound_mail_sealed_with_a_missing_key_waits_and_is_sent_when_it_is_back(
    tmp_path, caplog
):
    caplog.set_level(logging.DEBUG, logger="mailhub")
    key = new_key(tmp_path, "conduct.key")
    hub = await start(tmp_path, key)
    ref = await open_case(hub)
    await hub.service.stop()
    # Closed at the console while the service is down: the notices wait, sealed.
    argv = ["cases", "close", ref, "--outcome", "no-action", "--config", str(hub.path)]
    assert await asyncio.to_thread(main, argv) == 0
    before = {m: len(hub.sink.to(m)) for m in COMMITTEE}
    hub.clock.advance(60)
    hub = await start(tmp_path, None, hub)  # the key is missing
    try:
        await hub.idle()
        assert {m: len(hub.sink.to(m)) for m in COMMITTEE} == before
        queued = [r for r in await outbound_rows(hub) if r[3] == "queued"]
        assert queued and all(sealed == 1 for _, _, sealed, _ in queued)
        errors = [line for line in lines(caplog) if "outcome=sealed" in line]
        assert len(errors) == len(queued) and all(UNSEALABLE in line for line in errors)
    finally:
        await hub.service.stop()
    hub = await start(tmp_path, key, hub)  # the key is back
    try:
        hub.clock.advance(3600)
        hub.service.delivery.wake.set()
        await hub.sink.wait_for(lambda _: all(len(hub.sink.to(m)) > before[m] for m in COMMITTEE))
        await hub.idle()
        assert all(r[3] == "done" for r in await outbound_rows(hub))
    finally:
        await hub.service.stop()
        await hub.sink.stop()


async def test_cleared_and_deleted_content_is_zeroed_on_disk(tmp_path):
    # Mail that is not case mail is stored in clear, and its raw cleared once handled:
    # secure_delete zeroes the old bytes (some SQLite builds do by default; the store asks
    # for it on every build), and a checkpoint leaves none in the WAL.
    hub = await start(tmp_path, None)
    try:
        async with hub.service.store.read() as tx:
            assert await (await tx.execute("PRAGMA secure_delete")).fetchone() == (1,)
        body = f"{TOKEN.decode()}\n" + "filler line\n" * 150
        code, _ = await hub.send("sam@example.net", [ENQUIRIES], message(body=body))
        assert code == 250
        await hub.sink.wait_count("helper@example.net")
        await hub.idle()
        assert plaintext_in((tmp_path / "mailhub.db-wal").read_bytes()) != []
        await hub.service.store.checkpoint()
        assert (tmp_path / "mailhub.db-wal").stat().st_size == 0
        assert plaintext_in((tmp_path / "mailhub.db").read_bytes()) == []
    finally:
        await hub.service.stop()
        await hub.sink.stop()


MAILDIR_CONFIG = """
[server]
domains = ["{domain}"]
listen = "127.0.0.1:0"
[storage]
path = "{tmp}/mailhub.db"
[outbound]
maildir = "{tmp}/outbox"
[admin]
addresses = ["admin@example.net"]
"""


async def test_maildir_outbox_gets_case_mail_unsealed(tmp_path):
    key = new_key(tmp_path, "conduct.key")
    path = tmp_path / "mailhub.toml"
    path.write_text(MAILDIR_CONFIG.format(domain=DOMAIN, tmp=tmp_path) + conduct_toml(key))
    service = Service(load_config(path), run_scheduler=False)
    await service.start()
    hub = Hub(service, Sink(), None, path)  # type: ignore[arg-type]
    try:
        await send_report(hub)
        await service.idle()
        async with service.store.read() as tx:
            cur = await tx.execute("SELECT DISTINCT sealed, case_ref <> '' FROM outbound")
            assert await cur.fetchall() == [(1, 1)]
    finally:
        await service.stop()
    files = [f.read_bytes() for f in (tmp_path / "outbox" / "new").iterdir()]
    assert {m for m in COMMITTEE if any(f"Delivered-To: {m}".encode() in f for f in files)} == set(
        COMMITTEE
    )
    assert any(TOKEN in f for f in files)  # the committee's copies, readable
    assert all(b"gAAAAA" not in f for f in files)  # no Fernet token left in any


OLD_QUEUES = """
CREATE TABLE inbound (
    seq INTEGER PRIMARY KEY, queue_id TEXT NOT NULL UNIQUE, received_at REAL NOT NULL,
    mail_from TEXT NOT NULL, rcpt_tos TEXT NOT NULL, peer TEXT NOT NULL DEFAULT '',
    raw BLOB NOT NULL, size INTEGER NOT NULL, state TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0, error TEXT, updated_at REAL NOT NULL);
CREATE TABLE outbound (
    id INTEGER PRIMARY KEY, message_id TEXT NOT NULL, mail_from TEXT NOT NULL, raw BLOB NOT NULL,
    kind TEXT NOT NULL, source TEXT NOT NULL DEFAULT '', personalise TEXT,
    created_at REAL NOT NULL, next_attempt_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, state TEXT NOT NULL DEFAULT 'queued');
INSERT INTO inbound (queue_id, received_at, mail_from, rcpt_tos, raw, size, updated_at)
    VALUES ('QOLD', 1, 'a@example.net', '["enquiries@cop.example.org"]', X'00', 1, 1);
"""


async def test_a_database_from_before_gets_the_new_columns(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_QUEUES)
    st = await Store.open(path)
    try:
        async with st.read() as tx:
            item = await inbound.get(tx, "QOLD")
            cur = await tx.execute("SELECT sealed, case_ref FROM outbound")
            assert await cur.fetchall() == []
        assert item is not None and item.sealed is False
    finally:
        await st.close()
    with sqlite3.connect(path) as db:
        inbound_cols = {r[1] for r in db.execute("PRAGMA table_info(inbound)")}
        outbound_cols = {r[1] for r in db.execute("PRAGMA table_info(outbound)")}
        assert db.execute("PRAGMA secure_delete").fetchone() is not None
    assert {"sealed", "conduct"} <= inbound_cols
    assert {"sealed", "case_ref"} <= outbound_cols


def test_a_conduct_items_error_keeps_the_exception_type_only():
    assert inbound.conduct_error("ValueError: 'ZQX7' in the subject") == "ValueError"
    assert inbound.conduct_error(f"Unsealable: {UNSEALABLE}") == UNSEALABLE
    assert re.fullmatch(r"[A-Za-z]+", inbound.conduct_error("KeyError: 'x: y'"))
