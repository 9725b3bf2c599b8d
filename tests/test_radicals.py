"""Welsh initial mutations: radicals/mutations both ways, and names matched in every form."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser

import pytest

from mailhub.conduct.config import CommitteeMember
from mailhub.conduct.conflicts import find_named_members, match_texts
from mailhub.mutations import mutations, radicals

# (mutation, radical, mutated form)
TABLE = [
    ("soft", "pryce", "bryce"),
    ("soft", "tomos", "domos"),
    ("soft", "carys", "garys"),
    ("soft", "bryn", "fryn"),
    ("soft", "dafydd", "ddafydd"),
    ("soft", "gareth", "areth"),
    ("soft", "gwen", "wen"),
    ("soft", "megan", "fegan"),
    ("soft", "llywelyn", "lywelyn"),
    ("soft", "rhys", "rys"),
    ("nasal", "pryce", "mhryce"),
    ("nasal", "tomos", "nhomos"),
    ("nasal", "carys", "ngharys"),
    ("nasal", "bryn", "mryn"),
    ("nasal", "dafydd", "nafydd"),
    ("nasal", "gareth", "ngareth"),
    ("aspirate", "pryce", "phryce"),
    ("aspirate", "tomos", "thomos"),
    ("aspirate", "carys", "charys"),
    ("h-prothesis", "anwen", "hanwen"),
    ("h-prothesis", "iwan", "hiwan"),
]


@pytest.mark.parametrize(("kind", "radical", "mutated"), TABLE)
def test_radicals_and_mutations_both_ways(kind, radical, mutated):
    assert radical in radicals(mutated), (kind, mutated)
    assert mutated in mutations(radical), (kind, radical)


def test_examples():
    assert "tomos" in radicals("nhomos")
    assert "gareth" in radicals("areth")
    assert "llywelyn" in radicals("lywelyn")
    assert "anwen" in radicals("hanwen")
    assert radicals("ddafydd") == {"dafydd"}
    assert radicals("fryn") == {"bryn", "mryn"}
    assert radicals("mhryce") == {"pryce"}
    assert radicals("phryce") == {"pryce"}
    assert radicals("ngareth") == {"gareth"}
    assert radicals("ngharys") == {"carys"}


def test_digraphs_do_not_mutate_as_their_first_letter():
    assert mutations("thomas") == set()  # th is a letter of its own
    assert "tdafydd" not in radicals("ddafydd")
    assert "dhomos" not in radicals("nhomos")
    assert mutations("") == set() and radicals("") == set()
    assert "siân" not in mutations("sian") and mutations("sian") == set()


GARETH = CommitteeMember("gareth-davies", "Gareth Davies", ("gareth@example.cymru",))
MEGAN = CommitteeMember("megan-pritchard", "Megan Pritchard", ("megan@example.cymru",))
RHYS = CommitteeMember("rhys-llywelyn", "Rhys Llywelyn", ("rhys@example.cymru",))
TOMOS = CommitteeMember("tomos-jones", "Tomos Jones", ("tomos@example.cymru",))
BRYN = CommitteeMember("bryn-hughes", "Bryn Hughes", ("bryn@example.net",))
CARYS = CommitteeMember("carys-pryce", "Carys Pryce", ("carys@uni.example",))
DAFYDD = CommitteeMember("dafydd-ap-iwan", "Dafydd ap Iwan", ("dafydd@example.cymru",))
PEREDUR = CommitteeMember("peredur-owen", "Peredur Owen", ("peredur@example.cymru",))
ANWEN = CommitteeMember("anwen-lloyd", "Anwen Lloyd", ("anwen@example.cymru",))
COMMITTEE = (GARETH, MEGAN, RHYS, TOMOS, BRYN, CARYS, DAFYDD, PEREDUR, ANWEN)


def named(text: str) -> dict[str, bool]:
    return {m.member: m.possible for m in match_texts([text], COMMITTEE)}


@pytest.mark.parametrize(
    ("text", "member"),
    [
        ("Cefais neges gan Garys Pryce ddoe.", "carys-pryce"),  # soft c→g
        ("Rhoddais y llyfr i Ddafydd ap Iwan.", "dafydd-ap-iwan"),  # soft d→dd
        ("Siaradais â Fryn Hughes.", "bryn-hughes"),  # soft b→f
        ("Roedd e'n siarad am Areth Davies.", "gareth-davies"),  # soft g dropped
        ("Soniodd am Fegan Pritchard.", "megan-pritchard"),  # soft m→f
        ("Es i gyda Rys Llywelyn.", "rhys-llywelyn"),  # soft rh→r
        ("fy Nhomos Jones annwyl", "tomos-jones"),  # nasal t→nh
        ("fy Ngharys Pryce", "carys-pryce"),  # nasal c→ngh
        ("fy Ngareth Davies", "gareth-davies"),  # nasal g→ng
        ("fy Mryn Hughes", "bryn-hughes"),  # nasal b→m
        ("a Pheredur Owen hefyd", "peredur-owen"),  # aspirate p→ph
        ("a Thomos Jones", "tomos-jones"),  # aspirate t→th
        ("a Charys Pryce", "carys-pryce"),  # aspirate c→ch
        ("ei Hanwen Lloyd hi", "anwen-lloyd"),  # h-prothesis
        # A surname does not mutate after a given name: named, but only possibly.
        ("Gwelais i Rhys Lywelyn yno.", "rhys-llywelyn"),
    ],
)
def test_mutated_full_names_are_definite(text, member):
    found = named(text)
    assert member in found, text
    if "Lywelyn" not in text:
        assert found[member] is False, text


@pytest.mark.parametrize(
    ("text", "member"),
    [
        ("Dywedodd Garys rywbeth cas.", "carys-pryce"),
        ("Roedd Ddafydd yn hwyr.", "dafydd-ap-iwan"),
        ("fy Nhomos i", "tomos-jones"),
        ("Aeth gyda Fryn i'r dref.", "bryn-hughes"),
        ("a Pheredur wedyn", "peredur-owen"),
        ("ei Hanwen hi", "anwen-lloyd"),
        ("gan Bryce", "carys-pryce"),  # mutated surname alone
        ("Tomos oedd yno", "tomos-jones"),  # unmutated given name alone
    ],
)
def test_mutated_given_name_alone_is_possible(text, member):
    assert named(text).get(member) is True, text


def test_mutated_name_reason_quotes_no_report_text():
    (m,) = match_texts(["Cefais neges gan Garys."], (CARYS,))
    assert m.reason == 'given name "Carys", mutated (possible match)'
    (m,) = match_texts(["gan Bryce"], (CARYS,))
    assert m.reason == 'surname "Pryce", mutated (possible match)'


@pytest.mark.parametrize(
    "text",
    [
        "Mae'r cyfarfod nesaf ddydd Iau yn y neuadd.",
        "Diolch am y cyfieithu ar y pryd yn y gynhadledd.",
        "Roedd y tywydd yn braf ar y ffordd i Aberystwyth.",
        "Mae arwydd uniaith ar fryn ger y ganolfan.",  # "ar fryn": on a hill
        "Ewch i'r dudalen we am ragor o wybodaeth.",
        "Cafodd y plant amser da yn y gweithdy celf.",
        "Bydd y gwasanaeth ar gael yn Gymraeg ac yn Saesneg.",
        "Mae angen ateb erbyn diwedd y mis.",
        "The price of tickets went up again.",
        "Our volunteers did an excellent job at the festival.",
    ],
)
def test_neutral_welsh_and_english_recuse_no_one(text):
    assert named(text) == {}, text


def test_vowel_words_do_not_blow_up():
    # Every vowel-initial word may be a soft-mutated g-word: only member names count.
    text = " ".join(["ac", "ar", "am", "o", "i", "yn", "un", "eu", "wedi", "ond"] * 2000)
    assert named(text) == {}


def test_mutated_names_in_a_real_message():
    raw = (
        b"From: r@example.org\r\nTo: conduct@cop.example.org\r\n"
        b"Subject: =?utf-8?q?Cwyn_am_Ddafydd_ap_Iwan?=\r\n\r\nDim byd arall.\r\n"
    )
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    assert [(m.member, m.possible) for m in find_named_members(msg, COMMITTEE)] == [
        ("dafydd-ap-iwan", False)
    ]
