"""The reporter's replies during the release window: `exclude NAME` / `send now`, in Welsh too."""

from __future__ import annotations

import time

import pytest

from mailhub.conduct.reporter_commands import Exclude, SendNow, parse_reporter_commands


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("exclude Ada Jones", [Exclude("Ada Jones")]),
        ("Exclude Ada Jones.", [Exclude("Ada Jones")]),
        ("   EXCLUDE   Ada Jones  ", [Exclude("Ada Jones")]),
        ("exclude: Ada", [Exclude("Ada")]),
        ("exclude Ada Jones, Bryn", [Exclude("Ada Jones"), Exclude("Bryn")]),
        ("exclude Ada and Bryn Hughes", [Exclude("Ada"), Exclude("Bryn Hughes")]),
        ("exclude Ada, Bryn and Cai.", [Exclude("Ada"), Exclude("Bryn"), Exclude("Cai")]),
        ('exclude "Ada Jones"', [Exclude("Ada Jones")]),
        ("exclude A Jones", [Exclude("A Jones")]),  # an initial, not the Welsh "a"
        ("exclude Ada\nexclude ada", [Exclude("Ada")]),
        ("exclude", []),
        ("exclude ,", []),
        ("excluded Ada", []),
        ("please exclude Ada", []),
        ("send now", [SendNow()]),
        ("Send Now.", [SendNow()]),
        ("  send it now", [SendNow()]),
        ("send now please", []),
        ("send now\nsend now", [SendNow()]),
        ("exclude Bryn\nsend now", [Exclude("Bryn"), SendNow()]),
        # Welsh
        ("eithrio Ada Jones", [Exclude("Ada Jones")]),
        ("Eithrio Ada a Bryn", [Exclude("Ada"), Exclude("Bryn")]),
        ("eithrio Bryn ac Elin, Cai.", [Exclude("Bryn"), Exclude("Elin"), Exclude("Cai")]),
        ("eithriwch Ada", [Exclude("Ada")]),
        ("anfon nawr", [SendNow()]),
        ("Anfon yn awr.", [SendNow()]),
        ("anfonwch nawr", [SendNow()]),
        ("ANFON NAWR", [SendNow()]),
        ("Diolch.\n\neithrio Bryn\nanfon nawr\n\nCofion", [Exclude("Bryn"), SendNow()]),
        # Line ends of every kind; non-breaking spaces before a command.
        ("exclude Ada\r\nsend now\r\n", [Exclude("Ada"), SendNow()]),
        ("\u00a0exclude Ada", [Exclude("Ada")]),
    ],
)
def test_commands(text, expected):
    assert parse_reporter_commands(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "> exclude Ada",
        ">> send now",
        "  > anfon nawr",
        "Thanks\n-- \nexclude Ada\nsend now",
        "Thanks\n--\nsend now",
        "On Mon, 30 Nov 2026 at 14:00, Code of conduct committee <conduct@d> wrote:\nsend now",
        "On Mon, 30 Nov 2026 at 14:00, Code of conduct committee <\nconduct@d> wrote:\nsend now",
        "Ar ddydd Llun, 30 Tach 2026 am 14:00, Pwyllgor <conduct@d> ysgrifennodd:\nanfon nawr",
        "-----Original Message-----\nexclude Ada",
        "________________________________\nFrom: x\nexclude Ada",
        "---------- Forwarded message ---------\nsend now",
    ],
)
def test_only_the_reporters_own_text_counts(text):
    assert parse_reporter_commands(text) == []


def test_commands_before_a_quote_or_signature_count():
    text = (
        "Please keep Bryn out.\n"
        "exclude Bryn Hughes\n"
        "\n"
        "Sam\n"
        "-- \n"
        "Sam Smith, exclude everyone\n"
        "exclude Ada\n"
    )
    assert parse_reporter_commands(text) == [Exclude("Bryn Hughes")]
    reply = "eithrio Ada\n\nAr 30 Tach, Pwyllgor y cod ymddygiad ysgrifennodd:\n> anfon nawr\n"
    assert parse_reporter_commands(reply) == [Exclude("Ada")]


def test_prose_mentioning_the_words_is_not_a_command():
    text = "I do not want to exclude Ada, and please do not send now.\nsend it later"
    assert parse_reporter_commands(text) == []


def test_huge_untrusted_input_is_parsed_quickly():
    cases = [
        " " * 1_000_000,
        "exclude " + " " * 1_000_000 + "Ada",
        "exclude " + "a, " * 300_000,
        "On " + " " * 1_000_000 + "wrote",
        ("exclude Ada\n" + "send now\n") * 50_000,
        "x" * 1_000_000 + "\n" + "exclude Bryn",
    ]
    for text in cases:
        start = time.perf_counter()
        parse_reporter_commands(text)
        assert time.perf_counter() - start < 1.0
    assert parse_reporter_commands("x" * 1_000_000 + "\nexclude Bryn") == [Exclude("Bryn")]
    assert parse_reporter_commands(("exclude Ada\nsend now\n") * 1000) == [
        Exclude("Ada"),
        SendNow(),
    ]
