"""Searching as a Welsh speaker would: a word is found in its mutated forms too (Caerdydd,
yng Nghaerdydd, i Gaerdydd, a Chaerdydd), on a Welsh page by default, as the search form's
box says otherwise. On both backends (a real SQLite file, a real PostgreSQL database),
filled through the store's own functions."""

from __future__ import annotations

import pytest_asyncio

from mailhub.lists.archive_pages import finds_mutations
from mailhub.lists.search_query import parse_query, welsh_forms
from mailhub.store import archive
from mailhub.store import lists as store
from tests.support.hub import open_test_store

START = 1_750_000_000.0
POSTS = [
    ("Cyfarfod", "Mae'r cyfarfod nesaf yng Nghaerdydd ddydd Iau."),
    ("Teithio", "Rydw i'n teithio i Gaerdydd ar y trên."),
    ("Caerdydd", "Caerdydd yw'r brifddinas."),
    ("Rhwng dwy ddinas", "Rhwng Abertawe a Chaerdydd mae'r M4."),
    ("Chat", "Let's chat about the cat and the pen."),
    ("Pen-blwydd", "Pen-blwydd hapus! Dewch i'm mhen-blwydd i."),
]


@pytest_asyncio.fixture
async def db(tmp_path, backend):
    st = await open_test_store(tmp_path)
    async with st.transaction() as tx:
        for n, (subject, text) in enumerate(POSTS):
            mid = f"<m{n}@example.net>"
            aid = await store.archive_post(
                tx, list_name="green", message_id=mid, thread_id=mid, sender="x@example.net",
                subject=subject, raw=text.encode(), now=START + n,
            )  # fmt: skip
            await archive.index_post(
                tx, archive_id=aid, list_name="green", message_id=mid, thread=aid, parent=None,
                author="Siân", subject=subject, posted_at=START + n, text=text, has_html=False,
                attachments=0,
            )  # fmt: skip
    yield st
    await st.close()


async def subjects(db, q: str, mutations: bool) -> set[str]:
    query = parse_query(q, mutations=mutations)
    assert query is not None
    async with db.read() as tx:
        hits, total = await archive.search(tx, "green", query, 20, 0)
    assert total == len(hits)
    return {h.subject for h in hits}


def test_the_forms_of_a_word_both_ways():
    assert set(welsh_forms("Caerdydd")) >= {"gaerdydd", "nghaerdydd", "chaerdydd"}
    assert set(welsh_forms("Nghaerdydd")) >= {"caerdydd", "gaerdydd", "chaerdydd"}
    assert set(welsh_forms("pen")) >= {"ben", "mhen", "phen"}
    assert "tomos" in welsh_forms("Nhomos") and "llyfr" in welsh_forms("lyfr")
    assert welsh_forms("yn") == () and welsh_forms("x2") == ()  # short, or not a word
    assert len(welsh_forms("Dafydd")) <= 8
    # A prefix word and a phrase are searched as written.
    query = parse_query('caer* "yng Nghaerdydd" Caerdydd', mutations=True)
    assert query.forms[0] == () and "nghaerdydd" in query.forms[1]
    assert parse_query("Caerdydd").forms == ()


async def test_a_word_is_found_in_every_mutated_form(db):
    every = {"Cyfarfod", "Teithio", "Caerdydd", "Rhwng dwy ddinas"}
    assert await subjects(db, "Caerdydd", mutations=True) == every
    assert await subjects(db, "nghaerdydd", mutations=True) == every
    assert await subjects(db, "CAERDYDD", mutations=False) == {"Caerdydd"}
    assert await subjects(db, "Gaerdydd", mutations=False) == {"Teithio"}
    # Every word of the query must still be there, in one of its forms.
    assert await subjects(db, "Caerdydd trên", mutations=True) == {"Teithio"}


async def test_the_snippet_marks_the_form_found(db):
    query = parse_query("Caerdydd", mutations=True)
    async with db.read() as tx:
        hits, _ = await archive.search(tx, "green", query, 20, 0)
    marked = {h.subject: h.snippet for h in hits}
    assert "\x02Nghaerdydd\x03" in marked["Cyfarfod"]
    assert "\x02Chaerdydd\x03" in marked["Rhwng dwy ddinas"]


async def test_english_words_are_found_as_written_unless_asked(db):
    # An English word's "mutations" are other English words: searched as written by
    # default on an English page (finds_mutations below).
    assert await subjects(db, "cat", mutations=False) == {"Chat"}
    assert await subjects(db, "pen", mutations=False) == {"Chat", "Pen-blwydd"}
    assert await subjects(db, "pen", mutations=True) == {"Chat", "Pen-blwydd"}  # and mhen


def test_mutations_by_default_on_a_welsh_page_and_as_the_box_says():
    assert finds_mutations({}, "cy") and not finds_mutations({}, "en")
    assert finds_mutations({"form": "1", "mutations": "1"}, "en")
    assert not finds_mutations({"form": "1"}, "cy")  # the box was unticked
    assert finds_mutations({"mutations": "1"}, "cy")
