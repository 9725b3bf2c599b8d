"""Searching a list's archive: the query syntax (never an FTS5 error from what a visitor
types), diacritics folded both ways, Welsh and English words, phrases, the author filter,
ranking, snippets, paging past the ranked window, and one list never finding another's
posts. On both backends (the `backend` fixture): a real SQLite file (FTS5) and a real
PostgreSQL database (a tsvector made in Python), filled through the store's own functions."""

from __future__ import annotations

import random
import re

import pytest
import pytest_asyncio

from mailhub.lists.search_query import SearchQuery, parse_query
from mailhub.store import archive
from mailhub.store import lists as store
from tests.support.hub import open_test_store

START = 1_750_000_000.0

POSTS = [
    # (list, author, subject, text)
    ("green", "Siân Jones", "Gŵyl Llandudno", "Mae'r ŵyl yn Llandudno eleni, a'r caffî ar agor."),
    ("green", "Dafydd ap Gwilym", "Re: Gŵyl Llandudno", "Bydd y caffi yn cau am bump."),
    ("green", "Ann Smith", "Bus timetable", "The bus to llandudno leaves at noon from the square."),
    ("green", "Ann Smith", "Minutes", "Minutes of the meeting: we agreed the budget."),
    ("green", "Rhodri Ŵyn", "Cyllideb", "Y gyllideb ar gyfer y flwyddyn nesaf: cytunwyd."),
    ("green", "Siân Jones", "Budget", "Budget budget budget: the budget is agreed for the year."),
    ("blue", "Blue Person", "Llandudno too", "Another list also talks about Llandudno."),
]


@pytest_asyncio.fixture
async def db(tmp_path, backend):
    st = await open_test_store(tmp_path)
    ids: dict[int, int] = {}
    async with st.transaction() as tx:
        for n, (list_name, author, subject, text) in enumerate(POSTS):
            mid = f"<p{n}@example.net>"
            aid = await store.archive_post(
                tx, list_name=list_name, message_id=mid, thread_id=mid, sender="x@example.net",
                subject=subject, raw=text.encode(), now=START + n,
            )  # fmt: skip
            ids[n] = aid
            await archive.index_post(
                tx, archive_id=aid, list_name=list_name, message_id=mid, thread=aid, parent=None,
                author=author, subject=subject, posted_at=START + n, text=text, has_html=False,
                attachments=0,
            )  # fmt: skip
    st.ids = ids  # type: ignore[attr-defined]
    yield st
    await st.close()


async def find(db, q: str, author: str = "", list_name: str = "green", limit: int = 10,
               offset: int = 0) -> tuple[list[archive.Hit], int]:  # fmt: skip
    query = parse_query(q, author)
    assert query is not None, q
    async with db.read() as tx:
        return await archive.search(tx, list_name, query, limit, offset)


def numbers(db, hits) -> set[int]:
    by_id = {v: k for k, v in db.ids.items()}
    return {by_id[h.id] for h in hits}


# --- the query ------------------------------------------------------------------------------


def test_parse_query_words_phrases_authors_and_nothing():
    assert parse_query('caffi "yn Llandudno" from:Siân') == SearchQuery(
        ("caffi",), ("yn Llandudno",), "Siân"
    )
    assert parse_query('awdur:"Dafydd ap Gwilym" cyllideb') == SearchQuery(
        ("cyllideb",), (), "Dafydd ap Gwilym"
    )
    assert parse_query("budg*") == SearchQuery(("budg*",), (), "")
    assert parse_query("bud*") == SearchQuery(("bud",), (), "")  # too short to be a prefix
    assert parse_query("cyfa* gwas* hyff*") == SearchQuery(("cyfa*", "gwas*", "hyff"), (), "")
    assert parse_query('"one"') == SearchQuery(("one",), (), "")
    assert parse_query("", author="Ann") == SearchQuery((), (), "Ann")
    assert parse_query("", author="a b c d e f").author == "a b c d"
    for nothing in ("", "   ", '^ : * "" \' -- ()', "from:", 'awdur:""'):
        assert parse_query(nothing) is None, nothing


@pytest.mark.parametrize(
    "q",
    ['"', '""', "*", "NEAR(", "NEAR(a b", "AND OR NOT", "a AND", "OR", "^start", "col:x",
     "subject:budget", "text : x", '"unbalanced phrase', "a*b*", "(((", "-x", "+y", "{a b}",
     "\\", "a'", "\x00", "llandudno NOT caffi", 'from:"', "from:^", "🙂", "ŵ" * 600],
)  # fmt: skip
async def test_fts5_syntax_in_a_query_never_errors(db, q):
    query = parse_query(q)
    if query is None:
        return
    async with db.read() as tx:
        hits, total = await archive.search(tx, "green", query, 10, 0)
    assert total >= len(hits)


async def test_diacritics_fold_both_ways_and_case_is_ignored(db):
    assert numbers(db, (await find(db, "Llandudno"))[0]) == {0, 1, 2}  # 1: in its subject
    assert numbers(db, (await find(db, "LLANDUDNO"))[0]) == {0, 1, 2}
    assert numbers(db, (await find(db, "caffi"))[0]) == {0, 1}  # finds "caffî"
    assert numbers(db, (await find(db, "caffî"))[0]) == {0, 1}  # finds "caffi"
    assert numbers(db, (await find(db, "wyl"))[0]) == {0}  # "ŵyl"; not "Gŵyl", another word
    assert numbers(db, (await find(db, "gwyl"))[0]) == {0, 1}  # "Gŵyl" in both subjects
    assert numbers(db, (await find(db, "ŵ"))[0]) == set()  # a word, not a letter
    assert numbers(db, (await find(db, "ŵyn"))[0]) == {4}  # the author's name
    assert numbers(db, (await find(db, "Wyn"))[0]) == {4}


async def test_welsh_and_english_words(db):
    assert numbers(db, (await find(db, "gyllideb"))[0]) == {4}
    assert numbers(db, (await find(db, "cytunwyd"))[0]) == {4}
    assert numbers(db, (await find(db, "agreed"))[0]) == {3, 5}
    assert numbers(db, (await find(db, "bus timetable"))[0]) == {2}


async def test_phrase_needs_its_words_together_in_order(db):
    assert numbers(db, (await find(db, '"yn Llandudno"'))[0]) == {0}
    assert numbers(db, (await find(db, '"Llandudno yn"'))[0]) == set()
    assert numbers(db, (await find(db, '"to llandudno"'))[0]) == {2}


async def test_author_filter_by_name_words_in_either_language(db):
    assert numbers(db, (await find(db, "budget from:Ann"))[0]) == {3}
    assert numbers(db, (await find(db, "budget awdur:sian"))[0]) == {5}
    assert numbers(db, (await find(db, "", author="Siân Jones"))[0]) == {0, 5}
    assert numbers(db, (await find(db, 'awdur:"ap gwilym"'))[0]) == {1}
    assert numbers(db, (await find(db, "budget", author="Nobody"))[0]) == set()


async def test_ranking_puts_the_post_about_it_first(db):
    hits, total = await find(db, "budget")
    assert total == 2
    assert numbers(db, hits[:1]) == {5}  # in the subject and four times in the text


async def test_snippets_mark_the_matched_words(db):
    (hit,), _ = await find(db, "timetable square")
    assert f"{archive.MARK_START}square{archive.MARK_END}" in hit.snippet
    (hit,), _ = await find(db, "cytunwyd")
    assert f"{archive.MARK_START}cytunwyd{archive.MARK_END}" in hit.snippet
    assert hit.author == "Rhodri Ŵyn" and hit.subject == "Cyllideb"


async def test_another_lists_posts_are_never_found(db):
    assert numbers(db, (await find(db, "another list"))[0]) == set()
    hits, total = await find(db, "another list", list_name="blue")
    assert total == 1 and numbers(db, hits) == {6}
    async with db.read() as tx:
        blue = db.ids[6]
        assert await archive.entry(tx, "green", blue) is None
        assert await archive.raw(tx, "green", blue) is None
        assert await archive.thread(tx, "green", blue) is None
        assert (await archive.entry(tx, "blue", blue)).author == "Blue Person"
        assert await archive.raw(tx, "blue", blue) == POSTS[6][3].encode()


async def test_paging_past_the_ranked_window_goes_on_newest_first(tmp_path, monkeypatch, backend):
    monkeypatch.setattr(archive, "RANK_WINDOW", 4)
    st = await open_test_store(tmp_path, name="w.db")
    try:
        async with st.transaction() as tx:
            for n in range(10):
                mid = f"<w{n}@x>"
                aid = await store.archive_post(tx, list_name="g", message_id=mid, thread_id=mid,
                                               sender="", subject="", raw=b"", now=START + n)  # fmt: skip
                await archive.index_post(
                    tx, archive_id=aid, list_name="g", message_id=mid, thread=aid, parent=None,
                    author="", subject=f"post {n}", posted_at=START + n,
                    text="common " * (1 + n % 3), has_html=False, attachments=0,
                )  # fmt: skip
        query = parse_query("common")
        seen = []
        async with st.read() as tx:
            for offset in range(0, 10, 3):
                hits, total = await archive.search(tx, "g", query, 3, offset)
                assert total == 10
                seen += [h.id for h in hits]
        assert sorted(seen) == list(range(1, 11))  # every match once
        assert set(seen[:4]) == {7, 8, 9, 10}  # the newest four, ranked, come first
        assert seen[4:] == [6, 5, 4, 3, 2, 1]  # then the rest, newest first
    finally:
        await st.close()


def test_snippet_marks_words_prefixes_and_phrases_folded_like_the_index():
    m0, m1 = archive.MARK_START, archive.MARK_END
    text = "Mae'r ŵyl yn Llandudno eleni, a'r caffî ar agor."
    assert archive.snippet(text, ["caffi", "yn llandudno"]) == (
        f"Mae'r ŵyl {m0}yn Llandudno{m1} eleni, a'r {m0}caffî{m1} ar agor."
    )
    assert (
        archive.snippet(text, ["lland*"])
        == f"Mae'r ŵyl yn {m0}Llandudno{m1} eleni, a'r caffî ar agor."
    )
    assert archive.snippet(text, ["llandudno yn"]) == text  # a phrase in its order only


def test_snippet_of_a_long_text_is_the_stretch_around_the_match():
    text = " ".join(f"w{n}" for n in range(200)) + " cyfieithu " + " ".join("x" * 50)
    got = archive.snippet(text, ["cyfieithu"])
    assert got.startswith("…") and got.endswith("…")
    assert f"{archive.MARK_START}cyfieithu{archive.MARK_END}" in got
    assert len(got.split()) == archive.SNIPPET_WORDS
    assert archive.snippet(text, ["absent"]).startswith("w0 w1 ")


# --- past PostgreSQL's tsvector limits (FTS5 has none of them) ------------------------------


async def test_a_post_past_the_index_limits_is_indexed_and_found(tmp_path, backend):
    """A word of 3,000 letters (a tsvector takes 2,047 bytes), a word after the 16,383rd
    position, and a post of 100,000 distinct words of two four-byte letters (more than a
    tsvector's 1 MB): each post is indexed, and found by its words, on both backends."""
    long_word = "cyfrinach" * 334  # 3,006 letters
    many = " ".join(chr(0x20000 + n // 200) + chr(0x20000 + n % 200) for n in range(100_000))
    posts = [
        ("Long word", f"start {long_word} end"),
        ("Far in", "gair " * 20_000 + "zebra diwedd"),
        ("Many words", f"dechrau {many}"),
    ]
    st = await open_test_store(tmp_path)
    try:
        async with st.transaction() as tx:
            for n, (subject, text) in enumerate(posts):
                mid = f"<big{n}@x>"
                aid = await store.archive_post(tx, list_name="g", message_id=mid, thread_id=mid,
                                               sender="", subject=subject, raw=b"", now=START + n)  # fmt: skip
                await archive.index_post(
                    tx, archive_id=aid, list_name="g", message_id=mid, thread=aid, parent=None,
                    author="Siân", subject=subject, posted_at=START + n, text=text,
                    has_html=False, attachments=0,
                )  # fmt: skip

        async def subjects(q: str) -> set[str]:
            async with st.read() as tx:
                hits, total = await archive.search(tx, "g", parse_query(q), 10, 0)
            assert total == len(hits)
            return {h.subject for h in hits}

        assert await subjects("start end") == {"Long word"}
        assert await subjects("cyfrinachcyfrinach*") == {"Long word"}
        assert await subjects("zebra") == {"Far in"}
        assert await subjects("dechrau") == {"Many words"}
        assert await subjects('"many words" from:Siân') == {"Many words"}
        assert await subjects(many.split()[0]) == {"Many words"}
    finally:
        await st.close()


@pytest.mark.parametrize(
    "q",
    ["a'b", "a:*", "a & b", "a | b", "!a", "a <-> b", "a <2> b", "a\\'b", "x:A",
     '"o\'r caffi"', "awdur:o'brien", "caer* \\'*"],
)  # fmt: skip
def test_a_tsquery_holds_only_quoted_words_and_its_own_operators(q):
    """What a visitor types reaches PostgreSQL as quoted lexemes only: with every quoted
    lexeme taken out, what is left is the operators the store writes itself."""
    query = parse_query(q, mutations=True)
    text = archive.tsquery(query)
    assert text is not None
    rest = re.sub(r"'(?:[^'\\]|''|\\.)*'", "", text)
    assert set(rest) <= set("()&|<->:*B "), (text, rest)
    assert archive.tsquery(parse_query("o'brien")) == "('o' <-> 'brien')"
    assert archive.tsquery(parse_query("from:O'Brien caffî")) == "'caffi' & ('o':B <-> 'brien':B)"


def test_a_document_holds_each_column_at_its_weight_with_a_gap_between():
    assert archive.document("Gŵyl Llandudno", "Siân", "yn Llandudno") == (
        "'gwyl':1A 'llandudno':2A,7 'sian':4B 'yn':6"
    )
    assert archive.document("", "", "") == ""
    assert archive.document("a'b", "", "") == "'a':1A 'b':2A"


# --- the two backends side by side --------------------------------------------------------

WORDS = (  # noqa: SIM905 - words written as prose
    "mae'r ŵyl yn Llandudno caffî caffi Caerdydd Nghaerdydd Gaerdydd Chaerdydd cyfarfod "
    "nesaf cyfieithu cyfieithydd gwaith tŷ dŵr côr the meeting next budget agreed o'r "
    "e-mail naïve café Gŵyl y a'r"
).split()
NAMES = ["Siân Jones", "Dafydd ap Gwilym", "Ann O'Brien", "Rhodri Ŵyn", ""]
QUERIES = [
    "ŵyl", "wyl", "gwyl", "Llandudno", "caffi", "caffî", "cafe", "naive", "cyfie*", "cyfieithu*",
    "Caerdydd", "nghaerdydd", '"yn Llandudno"', '"next meeting"', '"mae\'r ŵyl"', "o'r",
    "e-mail", "e-mai*", "budget from:Siân", "awdur:\"ap gwilym\"", "from:O'Brien", "from:wyn",
    "the y", "tŷ dŵr", '"côr the"', "Gŵyl Caerdydd", "a'r*", "agreed -x", "NOT budget",
]  # fmt: skip


async def test_both_backends_find_the_same_posts_in_the_same_order_past_the_window(
    tmp_path, pg_url, monkeypatch
):
    """The same 300 posts in a SQLite file and in PostgreSQL: every query finds the same
    posts (and counts them the same), with and without Welsh mutated forms; past the
    ranked window (made 5 here) the order is the same too, newest first. Only the order
    within the window may differ: bm25 and ts_rank weigh a little differently."""
    monkeypatch.setattr(archive, "RANK_WINDOW", 5)
    rng = random.Random(15)
    stores = [await open_test_store(tmp_path), await open_test_store(tmp_path, pg_url)]
    try:
        posts = [
            (" ".join(rng.choices(WORDS, k=3)), rng.choice(NAMES),
             " ".join(rng.choices(WORDS, k=rng.randint(3, 40))))
            for _ in range(300)
        ]  # fmt: skip
        for st in stores:
            async with st.transaction() as tx:
                for n, (subject, author, text) in enumerate(posts):
                    mid = f"<s{n}@x>"
                    aid = await store.archive_post(tx, list_name="g", message_id=mid,
                                                   thread_id=mid, sender="", subject=subject,
                                                   raw=b"", now=START + n)  # fmt: skip
                    await archive.index_post(
                        tx, archive_id=aid, list_name="g", message_id=mid, thread=aid,
                        parent=None, author=author, subject=subject, posted_at=START + n,
                        text=text, has_html=False, attachments=0,
                    )  # fmt: skip
        found_any = 0
        for q in QUERIES:
            for mutations in (False, True):
                query = parse_query(q, mutations=mutations)
                answers = []
                for st in stores:
                    async with st.read() as tx:
                        hits, total = await archive.search(tx, "g", query, 400, 0)
                    answers.append((total, [h.id for h in hits], {h.id: h.snippet for h in hits}))
                (sq_total, sq_ids, sq_snips), (pg_total, pg_ids, pg_snips) = answers
                assert sq_total == pg_total == len(sq_ids), (q, mutations)
                assert set(sq_ids[:5]) == set(pg_ids[:5]) and sq_ids[5:] == pg_ids[5:], q
                assert sq_snips == pg_snips, q  # made in Python from the same text
                found_any += sq_total > 0
        assert found_any >= len(QUERIES) * 2 - 4  # the queries do find posts
    finally:
        for st in stores:
            await st.close()
