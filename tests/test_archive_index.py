"""The archive's index: what is kept of a post (extraction), which thread it joins, the
backfill of archives made before the index, and that only distributed posts are indexed.
A real service on both backends (the `backend` fixture: a real SQLite file, a real
PostgreSQL database); posts go through `distribute` as the lists app sends them, or over
loopback SMTP end to end."""

from __future__ import annotations

import asyncio
import time
from email.message import EmailMessage

import pytest
import pytest_asyncio

from mailhub import content
from mailhub.cli import main
from mailhub.clock import ManualClock
from mailhub.lists import archive_index
from mailhub.lists.app import LISTS
from mailhub.lists.archive_index import MAX_TEXT_CHARS, extract
from mailhub.lists.config import find_list
from mailhub.lists.distribution import distribute
from mailhub.lists.post_parts import MAX_PARTS
from mailhub.lists.search_query import parse_query
from mailhub.parsing import parse
from mailhub.store import archive, bans
from mailhub.store import lists as store
from tests.support.hub import DOMAIN, message, start_hub
from tests.support.lists import stop_hub

LIST = f"green@{DOMAIN}"
LISTS_TOML = """
[[lists]]
name = "green"
display_name = "Green Team"
language = "en"
facilitators = ["fac@example.net"]
archive = "public"

[[lists]]
name = "blue"
display_name = "Blue Team"
facilitators = ["fac@example.net"]
"""
START = 1_750_000_000.0  # 2025-06-15


@pytest_asyncio.fixture
async def hub(tmp_path, backend):
    h = await start_hub(tmp_path, extra=LISTS_TOML, clock=ManualClock(START))
    async with h.service.store.transaction() as tx:
        for addr in ("ann@example.net", "bob@example.net"):
            await store.add_member(tx, "green", addr, "", h.clock.now())
    yield h
    await stop_hub(h)


def post(mid: str, *, subject: str = "Tea", body: str = "Who is in?\n", headers: str = "",
         sender: str = "Ann Jones <ann@example.net>") -> bytes:  # fmt: skip
    text = (
        f"From: {sender}\nTo: {LIST}\nSubject: {subject}\nMessage-ID: <{mid}@example.net>\n"
        f"{headers}\n{body}"
    )
    return text.replace("\n", "\r\n").encode()


async def distribute_all(hub, *raws: bytes, list_name: str = "green") -> None:
    cfg = find_list(hub.service.runtime.config.lists, list_name)
    for raw in raws:
        async with hub.service.store.transaction() as tx:
            await distribute(hub.service.runtime.context(tx, "test"), cfg, raw)
        hub.clock.advance(60)


async def count(hub, sql: str) -> list[tuple]:
    """Rows of a query on the hub's own database, whichever the backend."""
    async with hub.service.store.read() as tx:
        cur = await tx.execute(sql)
        return [tuple(row) for row in await cur.fetchall()]


async def entries(hub, list_name: str = "green") -> dict[str, archive.ArchiveEntry]:
    """Every indexed post of the list, by the Message-ID's local part."""
    async with hub.service.store.read() as tx:
        last = await archive.latest(tx, list_name, 1000)
    return {e.message_id.strip("<>").split("@")[0]: e for e in last}


# --- threading ----------------------------------------------------------------------------


async def test_a_reply_joins_its_archived_parents_thread(hub):
    await distribute_all(
        hub,
        post("root", subject="Tea"),
        post("r1", subject="Re: Tea", headers="In-Reply-To: <root@example.net>"),
        post("r2", subject="Re: Tea",
             headers="In-Reply-To: <r1@example.net>\nReferences: <root@example.net> <r1@example.net>"),
    )  # fmt: skip
    got = await entries(hub)
    root = got["root"]
    assert root.thread == root.id and root.parent is None
    assert (got["r1"].thread, got["r1"].parent) == (root.id, root.id)
    assert (got["r2"].thread, got["r2"].parent) == (root.id, got["r1"].id)
    async with hub.service.store.read() as tx:
        summary, posts = await archive.thread(tx, "green", root.id)
    assert [p.id for p in posts] == [root.id, got["r1"].id, got["r2"].id]
    assert summary.subject == "Tea" and summary.messages == 3
    assert summary.started_at == START and summary.last_at == START + 120
    assert summary.authors == ("Ann Jones",)


async def test_a_reply_to_an_unknown_parent_starts_its_own_thread(hub):
    await distribute_all(
        hub,
        post("root"),
        post("stray", subject="Re: elsewhere", headers="In-Reply-To: <never-here@example.net>"),
    )
    got = await entries(hub)
    assert got["stray"].thread == got["stray"].id != got["root"].thread
    assert got["stray"].parent is None


async def test_a_reply_whose_parent_is_missing_joins_by_the_references_root(hub):
    await distribute_all(
        hub,
        post("root"),
        post("late", headers="In-Reply-To: <missing@example.net>\n"
                             "References: <root@example.net> <missing@example.net>"),
    )  # fmt: skip
    got = await entries(hub)
    assert got["late"].thread == got["root"].id and got["late"].parent == got["root"].id


async def test_a_parent_in_another_list_is_not_a_parent(hub):
    await distribute_all(hub, post("elsewhere"), list_name="blue")
    await distribute_all(hub, post("reply", headers="In-Reply-To: <elsewhere@example.net>"))
    got = await entries(hub)
    assert got["reply"].thread == got["reply"].id


async def test_distribute_keeps_its_text_thread_ids_for_mutes_and_digests(hub):
    await distribute_all(
        hub,
        post("root"),
        post("r1", headers="In-Reply-To: <root@example.net>\nReferences: <root@example.net>"),
    )
    async with hub.service.store.read() as tx:
        posts = await store.archived_since(tx, "green", 0)
    assert [p.thread_id for p in posts] == ["<root@example.net>", "<root@example.net>"]


# --- months ---------------------------------------------------------------------------------


async def test_months_newest_first_and_month_threads_by_latest_activity(hub):
    day = 86400.0
    await distribute_all(hub, post("june-a", subject="A"))  # 2025-06-15
    await distribute_all(hub, post("june-b", subject="B"))
    hub.clock.advance(30 * day)  # July
    await distribute_all(hub, post("july-re-a", headers="In-Reply-To: <june-a@example.net>"))
    await distribute_all(hub, post("july-c", subject="C"))
    async with hub.service.store.read() as tx:
        months = await archive.months(tx, "green")
        june = await archive.month_threads(tx, "green", 2025, 6)
        july = await archive.month_threads(tx, "green", 2025, 7)
        assert await archive.month_threads(tx, "green", 2025, 13) == []
        assert await archive.months(tx, "blue") == []
    assert [(m.year, m.month, m.messages) for m in months] == [(2025, 7, 2), (2025, 6, 2)]
    # June: A had a reply in July (newest activity), then B.
    assert [t.subject for t in june] == ["A", "B"]
    assert [t.subject for t in july] == ["C", "A"]
    assert june[0].messages == 2


# --- extraction -----------------------------------------------------------------------------


def test_multipart_alternative_gives_the_plain_text_and_notes_the_html():
    msg = EmailMessage()
    msg["From"] = "Siân Jones <sian@example.net>"
    msg["Subject"] = "Caffi"
    msg.set_content("Plain words here.\n")
    msg.add_alternative("<p>HTML <b>words</b></p>", subtype="html")
    found = extract(msg)
    assert found.text == "Plain words here."
    assert found.has_html and found.attachments == 0
    assert found.author == "Siân Jones" and found.subject == "Caffi"


def test_html_only_is_stripped_to_its_text():
    msg = EmailMessage()
    msg["From"] = "cai@example.net"
    msg.set_content(
        "<html><head><style>p{color:red}</style><script>alert('x')</script></head>"
        "<body><p>Croeso i&#8217;r <a href='https://x.example'>caffi</a> &amp; mwy</p></body></html>",
        subtype="html",
    )
    found = extract(msg)
    assert found.text == "Croeso i\u2019r caffi & mwy"
    msg = EmailMessage()
    msg.set_content("<p>one</p><p>two<br>three</p><table><tr><td>a</td><td>b</td></tr></table>",
                    subtype="html")  # fmt: skip
    assert extract(msg).text.split() == ["one", "two", "three", "a", "b"]
    assert found.has_html and found.author == ""  # no name: never the address


def test_addresses_in_the_text_and_subject_are_cut_as_the_pages_show_them():
    raw = (
        b"From: Ann <ann@example.net>\r\nSubject: ask bob@example.org\r\n\r\n"
        b"Write to cai@example.net or <dai@example.com>.\r\n"
    )
    found = extract(parse(raw))
    assert "example" not in found.text + found.subject
    assert "cai@" in found.text and "bob@" in found.subject


def test_an_address_as_display_name_is_no_name():
    msg = parse(b'From: "ann@example.net" <ann@example.net>\r\n\r\nhi\r\n')
    assert extract(msg).author == ""


def test_attachments_are_counted_and_not_text():
    msg = EmailMessage()
    msg["From"] = "Bob <bob@example.net>"
    msg.set_content("See attached.\n")
    msg.add_attachment(b"%PDF-1.4 ...", maintype="application", subtype="pdf", filename="a.pdf")
    msg.add_attachment("notes\n", filename="notes.txt")  # text, but a file
    found = extract(msg)
    assert found.text == "See attached." and found.attachments == 2 and not found.has_html


def test_bad_charsets_are_replaced_not_raised():
    unknown = (
        b"From: A <a@example.net>\r\nContent-Type: text/plain; charset=x-no-such-charset\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\nCaf\xc3\xa9 \xff\r\n"
    )
    assert extract(parse(unknown)).text == "Café \ufffd"
    wrong = (
        b"From: A <a@example.net>\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\nbad \xe9\xff bytes\r\n"
    )
    assert extract(parse(wrong)).text == "bad \ufffd\ufffd bytes"


def test_control_characters_that_would_fake_a_snippet_mark_are_dropped():
    raw = b"From: A <a@example.net>\r\n\r\nmark\x02ed\x03 text\x00\r\n"
    assert extract(parse(raw)).text == "marked text"


def test_a_10_mb_message_of_5000_parts_is_read_within_bounds():
    parts = "".join(
        f"--b\r\nContent-Type: application/octet-stream\r\n\r\n{'x' * 2000}\r\n"
        for _ in range(5000)
    )
    big_text = "gair " * 400_000  # 2 MB of text in the first part
    raw = (
        "From: A <a@example.net>\r\nSubject: big\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
        f"--b\r\nContent-Type: text/plain\r\n\r\n{big_text}\r\n{parts}--b--\r\n"
    ).encode()
    assert len(raw) > 10_000_000
    msg = parse(raw)
    started = time.perf_counter()
    found = extract(msg)
    took = time.perf_counter() - started
    assert found.attachments == MAX_PARTS - 1  # looked at MAX_PARTS parts, no more
    assert len(found.text) <= MAX_TEXT_CHARS and found.text.startswith("gair gair")
    assert took < 0.5, took


def test_parents_nearest_first():
    msg = parse(
        b"From: a@x\r\nMessage-ID: <me@x>\r\nIn-Reply-To: <p@x>\r\n"
        b"References: <root@x> <mid@x> <p@x> <me@x>\r\n\r\n"
    )
    assert extract(msg, "<me@x>").parents == ("<p@x>", "<mid@x>", "<root@x>")


# --- what is indexed ------------------------------------------------------------------------


async def test_held_and_rejected_posts_are_never_indexed(tmp_path, backend):
    h = await start_hub(tmp_path, extra=LISTS_TOML)
    try:
        async with h.service.store.transaction() as tx:
            await store.add_member(tx, "green", "troll@example.org", "", h.clock.now())
            await bans.add(tx, address="troll@example.org", scope="green",
                           starts_at=h.clock.now() - 1, ends_at=None)  # fmt: skip
        # A non-member's post is held; a banned member's is rejected.
        for sender, body in (("stranger@example.org", "zygomorphic held\n"),
                             ("troll@example.org", "zygomorphic rejected\n")):  # fmt: skip
            raw = message(sender=f"Someone <{sender}>", to=LIST, subject="Buy now", body=body)
            code, _ = await h.send(sender, [LIST], raw)
            assert code == 250
        await h.idle()
        async with h.service.store.read() as tx:
            held = await store.held_posts(tx, "green", "held")
            hits, total = await archive.search(tx, "green", parse_query("zygomorphic"), 10, 0)
            assert await store.archived_since(tx, "green", 0) == []
        assert len(held) == 1 and total == 0 and hits == []
        assert await count(h, "SELECT count(*) FROM archive_posts") == [(0,)]
    finally:
        await stop_hub(h)


async def test_a_post_sent_over_smtp_lands_in_the_index(hub):
    raw = message(sender="Ann Jones <ann@example.net>", to=LIST, subject="Gŵyl Llandudno",
                  body="Mae'r caffî ar agor.\n")  # fmt: skip
    code, _ = await hub.send("ann@example.net", [LIST], raw)
    assert code == 250
    await hub.sink.wait_count("bob@example.net")
    await hub.idle()
    async with hub.service.store.read() as tx:
        hits, total = await archive.search(tx, "green", parse_query("caffi"), 10, 0)
        (entry,) = await archive.latest(tx, "green", 10)
    assert total == 1 and hits[0].id == entry.id
    assert entry.author == "Ann Jones" and entry.subject == "Gŵyl Llandudno"
    assert entry.text == "Mae'r caffî ar agor."
    assert "ann@example.net" not in repr(entry)


# --- backfill -------------------------------------------------------------------------------


async def archive_without_index(hub, *raws: bytes) -> list[int]:
    """Posts archived as before this version: list_archive rows, no index rows."""
    ids = []
    async with hub.service.store.transaction() as tx:
        for raw in raws:
            msg = parse(raw)
            ids.append(
                await store.archive_post(
                    tx,
                    list_name="green",
                    message_id=msg["message-id"],
                    thread_id=msg["in-reply-to"] or msg["message-id"],
                    sender="ann@example.net",
                    subject=str(msg["subject"]),
                    raw=raw,
                    now=hub.clock.now(),
                )  # fmt: skip
            )
            hub.clock.advance(60)
    return ids


async def run_backfill(hub) -> None:
    """One tick of the job, as the scheduler runs it: read first, then write in a transaction."""
    [job] = [j for j in LISTS.jobs if j.name == "lists.archive_index"]
    step = await job.prepare(hub.service.store, hub.service.runtime)
    async with hub.service.store.transaction() as tx:
        await step(hub.service.runtime.context(tx, "job:test"))


async def backfill_until_done(hub, ticks: int = 5) -> None:
    """Ticks of the backfill until one finds nothing to do: a post read in the content
    worker may take a tick's time (the worker starting), leaving the rest to the next."""
    for _ in range(ticks):
        before = len(await entries(hub))
        await run_backfill(hub)
        if len(await entries(hub)) == before:
            return


async def test_backfill_indexes_an_old_archive_once_oldest_first(hub, monkeypatch):
    monkeypatch.setattr(archive_index, "BACKFILL_BATCH", 3)
    old = [post(f"old{n}", body=f"hen neges {n}\n") for n in range(5)]
    old.append(post("old-re", headers="In-Reply-To: <old0@example.net>"))
    ids = await archive_without_index(hub, *old)
    # A new post while the old ones wait: it waits too (so its parent is indexed first).
    await distribute_all(hub, post("new", headers="In-Reply-To: <old-re@example.net>"))
    assert await entries(hub) == {}
    await run_backfill(hub)
    assert sorted(e.id for e in (await entries(hub)).values()) == ids[:3]
    await run_backfill(hub)
    await run_backfill(hub)
    got = await entries(hub)
    assert len(got) == 7
    assert got["old-re"].thread == got["old0"].id == got["new"].thread
    await run_backfill(hub)  # nothing left: nothing indexed twice
    assert await count(hub, "SELECT count(*) FROM archive_posts") == [(7,)]
    assert await count(hub, "SELECT messages FROM archive_months") == [(7,)]
    async with hub.service.store.read() as tx:
        _, total = await archive.search(tx, "green", parse_query("hen neges"), 10, 0)
    assert total == 5
    # Caught up: a new post is indexed at once again.
    await distribute_all(hub, post("newer"))
    assert "newer" in await entries(hub)


async def test_backfill_indexes_an_unreadable_post_without_text_and_moves_on(hub):
    parts = "".join(f"--b\r\nContent-Type: text/plain\r\n\r\npart {n}\r\n" for n in range(1200))
    raw = post("huge", subject="Too many parts",
               headers="MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b",
               body=parts + "--b--\n")  # fmt: skip
    await archive_without_index(hub, raw, post("after"))
    await backfill_until_done(hub)
    got = await entries(hub)
    assert got["huge"].text == "" and got["huge"].subject == "Too many parts"
    assert "after" in got


async def test_the_backfill_reads_a_large_post_without_holding_the_write_lock(hub):
    # The post is read in the content worker (a process that starts on first use, and may
    # take seconds on a crafted post): meanwhile other writers, such as intake, go on.
    parts = "".join(f"--b\r\nContent-Type: text/plain\r\n\r\npart {n}\r\n" for n in range(30))
    raw = post("big", headers="MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b",
               body=parts + "--b--\n")  # fmt: skip
    await archive_without_index(hub, raw)
    content.shutdown()  # a cold worker: its start alone outlasts a transaction
    reading = asyncio.create_task(archive_index.backfill(hub.service.store, hub.service.runtime))
    await asyncio.sleep(0)  # the read has begun
    async with hub.service.store.transaction() as tx:
        await store.add_member(tx, "green", "new@example.net", "New", hub.clock.now())
    assert not reading.done()  # a writer committed while the backfill was still reading
    step = await reading
    async with hub.service.store.transaction() as tx:
        await step(hub.service.runtime.context(tx, "job:test"))
    assert "part 0" in (await entries(hub))["big"].text


async def test_a_batch_read_before_a_reindex_writes_nothing(hub):
    await archive_without_index(hub, post("a"))
    step = await archive_index.backfill(hub.service.store, hub.service.runtime)
    async with hub.service.store.transaction() as tx:  # what a reindex does first
        await archive.set_backfill_mark(tx, "green", 10**9)
    async with hub.service.store.transaction() as tx:
        await step(hub.service.runtime.context(tx, "job:test"))
    assert await entries(hub) == {}  # stale: the next tick reads again


async def test_a_reindex_forgets_the_search_index_and_builds_it_again_once(hub):
    """What `--reindex` runs (archive_index.reindex), on both backends: the full-text rows
    are cleared with the rest, so every post is found once after it, under the same ids."""
    await distribute_all(hub, post("a", body="Gŵyl y gwanwyn\n"), post("b", body="gwyl arall\n"))
    before = await entries(hub)
    assert await archive_index.reindex(hub.service.store, hub.service.runtime, "green") == 2
    assert await entries(hub) == before
    async with hub.service.store.read() as tx:
        hits, total = await archive.search(tx, "green", parse_query("gwyl"), 10, 0)
    assert total == 2 and sorted(h.id for h in hits) == sorted(e.id for e in before.values())


async def test_reindex_from_the_command_line_builds_the_same_index_once(hub, capsys):
    await distribute_all(
        hub,
        post("root", body="Gŵyl y gwanwyn\n"),
        post("r1", headers="In-Reply-To: <root@example.net>"),
        post("other"),
    )
    before = await entries(hub)
    args = ["archive", "green", "--reindex", "--config", str(hub.path)]
    assert await asyncio.to_thread(main, args) == 0
    assert "3 posts of green indexed" in capsys.readouterr().out
    assert await entries(hub) == before
    async with hub.service.store.read() as tx:
        months = await archive.months(tx, "green")
        _, total = await archive.search(tx, "green", parse_query("gwyl"), 10, 0)
    assert [m.messages for m in months] == [3] and total == 1
    # Caught up again: the next post is indexed as it is sent.
    await distribute_all(hub, post("next"))
    assert "next" in await entries(hub)
    none = ["archive", "green", "--config", str(hub.path)]  # neither --mbox nor --reindex
    with pytest.raises(SystemExit):
        main(none)


async def test_a_large_html_only_post_is_indexed_by_the_backfill_with_its_text(hub):
    html = "<p>" + "Geiriau <b>trwm</b> mewn HTML. " * 400 + "</p>"
    assert len(html) > archive_index.INLINE_HTML_BYTES
    raw = post("html", headers="MIME-Version: 1.0\nContent-Type: text/html; charset=utf-8",
               body=html + "\n")  # fmt: skip
    await distribute_all(hub, raw, post("reply", headers="In-Reply-To: <html@example.net>"))
    assert await entries(hub) == {}  # both wait: the second must not go before the first
    await backfill_until_done(hub)
    got = await entries(hub)
    assert got["html"].text.startswith("Geiriau trwm mewn HTML.") and got["html"].has_html
    assert got["reply"].thread == got["html"].id
