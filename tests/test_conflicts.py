"""find_named_members: names in many forms, fail closed, never inside longer words."""

from __future__ import annotations

import base64
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from mailhub.conduct.config import CommitteeMember
from mailhub.conduct.conflicts import find_named_members, match_texts, normalise, scan

ADA = CommitteeMember("ada-jones", "Ada Jones", ("ada@example.net",), ("AJ", "Ada J"))
BRYN = CommitteeMember("bryn-hughes", "Bryn Hughes", ("bryn@example.net",), ("Brynnie",))
CARYS = CommitteeMember(
    "carys-pryce", "Carys Prycé", ("carys@uni.example",), (), ("Dai Evans", "employer.org")
)
COMMITTEE = (ADA, BRYN, CARYS)


def named(text: str) -> dict[str, bool]:
    """member key → possible?"""
    return {m.member: m.possible for m in match_texts([text], COMMITTEE)}


def parse(raw: str | bytes) -> EmailMessage:
    if isinstance(raw, str):
        raw = raw.replace("\n", "\r\n").encode()
    return BytesParser(policy=policy.default).parsebytes(raw)  # type: ignore[return-value]


@pytest.mark.parametrize(
    "text",
    [
        "It was Ada Jones who said it.",
        "ADA JONES",
        "ada jones",
        "Ada\nJones was there",  # wrapped across lines
        "> I think Ada\n> Jones was there",  # wrapped inside quoted text
        "Ada Jones's comment",  # possessive
        "Ada Jones’ comment",  # curly apostrophe
        "Ádá Jönés",  # accents
        "A\u200bda Jo\u200cnes",  # zero-width characters
        "\u0410d\u0430 J\u043en\u0435s",  # Cyrillic look-alikes
        "Ada-Jones",
        "AdaJones on the forum",
        "the one they call AJ",
        "A.J. was rude",
        "Ada J. said",
        "mail ada@example.net",
        "mail ADA@EXAMPLE.NET",
        "ada [at] example [dot] net",
        "ada (at) example.net",
        "ada at example dot net",
        "@AdaJ on chat",
        "@ada_jones on chat",
        "Ａｄａ Ｊｏｎｅｓ",  # full-width letters
    ],
)
def test_ada_is_named(text):
    assert "ada-jones" in named(text), text


@pytest.mark.parametrize(
    "text",
    [
        "The adamant speaker",
        "Ask the jonesing crowd",  # surname inside a longer word
        "Brynmawr is a town",
        "A Hughesville meeting",
        "an ajar door",
        "We met on Sunday at noon and discussed things.",
        "The zones and bones were fine",  # one letter from Jones, but not its first letter
        "dadaism",
    ],
)
def test_names_inside_longer_words_do_not_match(text):
    assert named(text) == {}, text


def test_possible_matches_fail_closed():
    assert named("Ada was there") == {"ada-jones": True}
    assert named("Mr Hughes was there") == {"bryn-hughes": True}
    assert named("Ms Pryse was there") == {"carys-pryce": True}  # one-letter misspelling
    assert named("Ms Pyrce was there") == {"carys-pryce": True}  # swapped letters
    assert named("BH shouted") == {"bryn-hughes": True}  # initials as a word
    assert named("write to jones.a@example.net") == {"ada-jones": True}  # at her domain


def test_definite_matches_are_not_possible():
    assert named("Brynnie did it") == {"bryn-hughes": False}
    assert named("Carys Pryce did it") == {"carys-pryce": False}
    # A definite reason wins over a possible one for the same member.
    assert named("Ada, that is Ada Jones") == {"ada-jones": False}


def test_reason_says_which_alias_matched():
    (m,) = match_texts(["it was Brynnie"], COMMITTEE)
    assert m.member == "bryn-hughes" and 'alias "Brynnie"' in m.reason and not m.possible


def test_standing_conflicts():
    assert named("My complaint is about Dai Evans") == {"carys-pryce": False}
    assert named("someone from employer.org") == {"carys-pryce": False}
    assert named("mail boss@employer.org") == {"carys-pryce": False}
    assert named("mail boss@hq.employer.org") == {"carys-pryce": False}
    assert named("notemployer.org.uk") == {}


def test_handles():
    assert named("see @brynnie") == {"bryn-hughes": False}
    assert named("see @hughes_fan") == {"bryn-hughes": True}
    assert named("see @carys") == {"carys-pryce": False}  # her address local part
    assert named("see @carys_fan") == {"carys-pryce": True}


def test_html_only_base64_body_is_read():
    html = "<html><body><p>It was <b>Bryn</b>nie again</p></body></html>"
    raw = (
        "From: r@example.org\nTo: conduct@cop.example.org\nSubject: hi\nMIME-Version: 1.0\n"
        "Content-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
        + base64.b64encode(html.encode()).decode()
        + "\n"
    )
    assert [m.member for m in find_named_members(parse(raw), COMMITTEE)] == ["bryn-hughes"]


def test_encoded_subject_and_headers():
    raw = (
        "From: =?utf-8?q?Carys_Pryc=C3=A9?= <someone@else.example>\n"
        "To: conduct@cop.example.org\nSubject: =?utf-8?b?QWRhIEpvbmVz?=\n\nnothing here\n"
    )
    assert {m.member for m in find_named_members(parse(raw), COMMITTEE)} == {
        "ada-jones",
        "carys-pryce",
    }


def test_quoted_printable_text_part():
    raw = (
        "From: r@example.org\nSubject: x\nMIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n"
        "It was Ada Jon=\nes, I think.\n"
    )
    assert [m.member for m in find_named_members(parse(raw), COMMITTEE)] == ["ada-jones"]


def test_attachments_filenames_and_forwarded_messages():
    msg = EmailMessage()
    msg["From"] = "r@example.org"
    msg["Subject"] = "report"
    msg.set_content("See attached.")
    msg.add_attachment(b"notes", maintype="application", subtype="pdf", filename="about-AJ.pdf")
    inner = EmailMessage()
    inner["From"] = "Brynnie <someone@else.example>"
    inner["Subject"] = "hello"
    inner.set_content("no names in the body")
    msg.add_attachment(inner)
    msg.add_attachment("Carys Pryce said so", filename="log.txt")
    found = {m.member for m in find_named_members(msg, COMMITTEE)}
    assert found == {"ada-jones", "bryn-hughes", "carys-pryce"}
    s = scan(msg)
    assert s.unscannable == ("application/pdf (unreadable)",)


def test_broken_mime_never_raises():
    raw = b"From: r@example.org\r\nContent-Type: multipart/mixed; boundary=\r\n\r\n\xff\xfe Ada"
    find_named_members(parse(raw), COMMITTEE)


def test_normalise():
    assert normalise("Ádá\u200b JÖNES") == "ada jones"
    assert normalise("ada [at] example [dot] net") == "ada@example.net"


GARETH = CommitteeMember("gareth-davies", "Gareth Davies", ("gareth@example.cymru",))
ELIN = CommitteeMember("elin-davis", "Elin Davis", ("elin@example.cymru",))


def test_near_miss_recuses_the_member_it_is_near_only():
    # "Davis" is one edit from "Davies", but it is Elin's own surname: it names Elin.
    pair = (GARETH, ELIN)
    assert {m.member: m.possible for m in match_texts(["Mrs Davis said"], pair)} == {
        "elin-davis": True
    }
    # One edit from Davies, two from Davis: Gareth only.
    assert {m.member for m in match_texts(["Mr Daviess said"], pair)} == {"gareth-davies"}
    # One edit from Davis, two from Davies: Elin only.
    assert {m.member for m in match_texts(["Ms Dabis said"], pair)} == {"elin-davis"}
    # A mutated form of Elin's surname is hers too, not a near miss of Gareth's.
    assert {m.member for m in match_texts(["i Ddavis"], pair)} == {"elin-davis"}


def test_reasons_never_quote_the_report():
    texts = ["Ms Pryse and @hughes_fan wrote to jones.a@example.net"]
    reasons = " ".join(m.reason for m in match_texts(texts, COMMITTEE))
    for word in ("pryse", "hughes_fan", "jones.a"):
        assert word not in reasons.lower()
    assert 'near miss of surname "Prycé"' in reasons or 'near miss of surname "Pryce"' in reasons


@pytest.mark.parametrize(
    "text",
    [
        "ᴀᴅᴀ ᴊᴏɴᴇs",  # small capitals
        "Adа Jоnеs",  # Cyrillic a, o, e
        "Ada Jones\ufe0f",
        "A\ufe00da J\U000e0100ones",  # variation selectors inside the name
        "A d a  J o n e s",  # letter-spaced
        "A.d.a J.o.n.e.s",
        "𝐀𝐝𝐚 𝐉𝐨𝐧𝐞𝐬",  # mathematical bold
    ],
)
def test_disguises(text):
    assert named(text).get("ada-jones") is False, text


def test_confusables_from_unicode_data():
    assert normalise("ɡareth") == "gareth"  # script g
    assert normalise("Rүs") == "rys"  # Cyrillic straight u
    assert normalise("łøđı") == "lodi"
