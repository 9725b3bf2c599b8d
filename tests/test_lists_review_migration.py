"""A database file made before the facilitators' digest was called the review: its tables
(`moderation_digests`, `moderation_digest_entries`) and columns (`digest_id`) are renamed
when the file is opened, and a review sent before the upgrade still works by reply."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from mailhub.clock import ManualClock
from mailhub.lists.tokens import token_hash
from mailhub.store import Store
from mailhub.store import lists as list_store
from mailhub.store import membership as mstore
from tests.support.hub import DOMAIN, message, start_hub
from tests.support.lists import DATAVIZ, stop_hub

# The tables as the release before the rename made them (copied from that release).
OLD_SCHEMA = """
CREATE TABLE membership_requests (
    id INTEGER PRIMARY KEY,
    list_name TEXT NOT NULL,
    address TEXT NOT NULL,
    display_name TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,
    created_at REAL NOT NULL,
    confirmed_at REAL,
    handled_by TEXT NOT NULL DEFAULT '',
    handled_at REAL,
    reason TEXT NOT NULL DEFAULT ''
);
CREATE TABLE membership_tokens (
    id INTEGER PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    purpose TEXT NOT NULL,
    list_name TEXT NOT NULL,
    address TEXT NOT NULL,
    request_id INTEGER,
    digest_id INTEGER,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    used_at REAL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE TABLE moderation_digests (
    id INTEGER PRIMARY KEY,
    list_name TEXT NOT NULL,
    recipient TEXT NOT NULL,
    role TEXT NOT NULL,
    sent_at REAL NOT NULL,
    signature TEXT NOT NULL DEFAULT ''
);
CREATE INDEX moderation_digests_recipient ON moderation_digests (list_name, recipient, sent_at);
CREATE TABLE moderation_digest_entries (
    digest_id INTEGER NOT NULL REFERENCES moderation_digests (id),
    number INTEGER NOT NULL,
    kind TEXT NOT NULL,
    ref_id INTEGER NOT NULL,
    PRIMARY KEY (digest_id, number)
);
"""
TOKEN = "oldreviewtokenoldreviewtokenold2"
FRAN = "fran@example.net"


def old_file(path: Path, now: float) -> None:
    """A file as the old release left it: Sam's request waits, Fran's review lists it as 1."""
    db = sqlite3.connect(path)
    with db:
        db.executescript(OLD_SCHEMA)
        db.execute(
            "INSERT INTO membership_requests (id, list_name, address, display_name, state,"
            " created_at, confirmed_at) VALUES (7, 'dataviz', 'sam@example.net', 'Sam Sender',"
            " 'pending', ?, ?)",
            (now - 60, now - 50),
        )
        db.execute(
            "INSERT INTO moderation_digests (id, list_name, recipient, role, sent_at, signature)"
            " VALUES (3, 'dataviz', ?, 'facilitator', ?, 'r:7')",
            (FRAN, now - 40),
        )
        db.execute("INSERT INTO moderation_digest_entries VALUES (3, 1, 'request', 7)")
        db.execute(
            "INSERT INTO membership_tokens (token_hash, purpose, list_name, address, digest_id,"
            " created_at, expires_at) VALUES (?, 'digest', 'dataviz', ?, 3, ?, ?)",
            (token_hash(TOKEN), FRAN, now - 40, now + 86400),
        )
    db.close()


def schema_of(path: Path) -> dict[str, str]:
    db = sqlite3.connect(path)
    try:
        return dict(db.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL"))
    finally:
        db.close()


async def test_old_tables_and_columns_are_renamed_once_and_keep_their_rows(tmp_path):
    path = tmp_path / "old.db"
    now = time.time()
    old_file(path, now)
    for _ in range(2):  # opening again changes nothing
        store = await Store.open(path)
        try:
            async with store.read() as tx:
                review = await mstore.last_review(tx, "dataviz", FRAN)
                entries = await mstore.review_entries(tx, 3)
                token = await mstore.find_token(tx, token_hash(TOKEN))
        finally:
            await store.close()
        assert review is not None and (review.id, review.signature) == (3, "r:7")
        assert [(e.review_id, e.number, e.kind, e.ref_id) for e in entries] == [
            (3, 1, "request", 7)
        ]
        assert token is not None and token.review_id == 3
    schema = schema_of(path)
    assert "moderation_digests" not in schema and "moderation_digest_entries" not in schema
    assert "moderation_digests_recipient" not in schema and "reviews_recipient" in schema
    assert "digest_id" not in schema["membership_tokens"]
    assert "digest_id" not in schema["review_entries"]
    assert "reviews" in schema["review_entries"].split("REFERENCES", 1)[1]


async def test_a_review_sent_before_the_upgrade_acts_by_reply(tmp_path):
    clock = ManualClock()
    old_file(tmp_path / "mailhub.db", clock.now())  # the file start_hub's config names
    hub = await start_hub(tmp_path, extra=DATAVIZ, clock=clock)
    try:
        raw = message(
            sender=f"Fran <{FRAN}>", to=f"dataviz-confirm+{TOKEN}@{DOMAIN}", body="approve 1\n"
        )
        code, _ = await hub.send(FRAN, [f"dataviz-confirm+{TOKEN}@{DOMAIN}"], raw)
        assert code == 250
        welcome = (await hub.sink.wait_count("sam@example.net", 1))[0].message
        await hub.idle()
        assert "Welcome" in welcome["Subject"]
        async with hub.service.store.read() as tx:
            assert await list_store.get_member(tx, "dataviz", "sam@example.net")
            request = await mstore.get_request(tx, 7)
        assert request is not None and (request.state, request.handled_by) == ("approved", FRAN)
    finally:
        await stop_hub(hub)
