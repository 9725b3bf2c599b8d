"""Every conduct template renders in English, Welsh and both, and the pure case rules."""

from __future__ import annotations

import calendar

import pytest

from mailhub.conduct import notify
from mailhub.conduct.cases import new_ref, subject_tag
from mailhub.conduct.commands import Close, Invalid, Readmit, Recuse, Share, parse_commands
from mailhub.config import default_templates_dir
from mailhub.messages import Templates

REF = "C-7KQ2-9F"
# Each template with exactly the variables it is given (StrictUndefined: no other name may be used).
CONTEXTS: dict[str, dict] = {
    "conduct_ack": dict(
        ref=REF,
        case_address="conduct+C-7KQ2-9F+tok@d",
        due_en="Monday 7 December 2026",
        due_cy="dydd Llun 7 Rhagfyr 2026",
        direct_name="",
        readers=["Ada Jones", "Bryn Hughes"],
        fallback_reads=False,
        not_readers=["Cai Evans"],
        release_now=False,
        release_en="14:30 UTC on Monday 30 November 2026",
        release_cy="14:30 UTC ddydd Llun 30 Tachwedd 2026",
        held=["photo.jpg (image/jpeg)"],
        unscanned=False,
        code_url="https://cop.example.org/code-of-conduct",
    ),
    "conduct_followup": dict(ref=REF, released=True),
    "conduct_reporter_done": dict(
        ref=REF,
        case_address="conduct+C-7KQ2-9F+tok@d",
        excluded=["Cai Evans"],
        unknown=["Zed"],
        sent_now=False,
        already_sent=False,
        release_en="14:30 UTC on Monday 30 November 2026",
        release_cy="14:30 UTC ddydd Llun 30 Tachwedd 2026",
        readers=["Ada Jones"],
        fallback_reads=False,
        unverified=False,
    ),
    "conduct_unverified": dict(ref=REF, committee_address="conduct+C-7KQ2-9F-committee@d"),
    "conduct_held": dict(
        ref=REF,
        held=["photo.jpg (image/jpeg)", "secret.pdf (encrypted)"],
        unscanned=False,
        readers=["Ada Jones", "Bryn Hughes"],
        committee_address="conduct+C-7KQ2-9F-committee+fb@d",
    ),
    "conduct_details": dict(
        ref=REF,
        opened="2026-11-30 14:00 UTC",
        due="2026-12-07 14:00 UTC",
        reporter="r@x",
        subject="s",
        recusals=[{"name": "Bryn", "reason": "alias", "possible": True, "lifted_by": ""}],
        direct_name="",
        shared=False,
        report_missing=False,
        fallback=False,
        committee_address="conduct+C-7KQ2-9F-committee+tok@d",
        case_address="conduct+C-7KQ2-9F+tok@d",
        withheld=["photo.jpg (image/jpeg)"],
        unscanned=False,
        is_fallback=False,
    ),
    "conduct_signature": dict(ref=REF),
    "conduct_answer_copy": dict(ref=REF, author="Ada", text="hello"),
    "conduct_refused": dict(
        ref=REF, committee_address="conduct+C-7KQ2-9F-committee+tok@d", addresses=["bryn@x"]
    ),
    "conduct_command_error": dict(
        ref=REF,
        line="#close x",
        problem="no",
        committee_address="conduct+C-7KQ2-9F-committee+tok@d",
    ),
    "conduct_closed": dict(
        ref=REF, by="ada@x", outcome="reprimand", case_address="conduct+C-7KQ2-9F+tok@d"
    ),
    "conduct_reminder": dict(
        ref=REF,
        opened="2026-11-30 14:00 UTC",
        due="2026-12-07 14:00 UTC",
        case_address="conduct+C-7KQ2-9F+tok@d",
        committee_address="conduct+C-7KQ2-9F-committee+tok@d",
    ),
    "conduct_escalation": dict(
        ref=REF,
        opened="2026-11-30 14:00 UTC",
        due="2026-12-07 14:00 UTC",
        handling=2,
        recused=1,
        committee_address="conduct+C-7KQ2-9F-committee@d",
    ),
}
# Other branches of the templates that take choices.
VARIANTS = [
    ("conduct_ack", {}),
    ("conduct_ack", dict(release_now=True, held=[], not_readers=[])),
    ("conduct_ack", dict(direct_name="Ada Jones", readers=["Ada Jones"])),
    ("conduct_ack", dict(readers=[], fallback_reads=True)),
    ("conduct_ack", dict(readers=[], unscanned=True, held=[])),
    ("conduct_ack", dict(readers=[], not_readers=[], held=[])),
    ("conduct_reporter_done", {}),
    ("conduct_reporter_done", dict(unverified=True)),
    ("conduct_reporter_done", dict(sent_now=True, excluded=[], unknown=[])),
    ("conduct_reporter_done", dict(already_sent=True, release_en="", release_cy="")),
    ("conduct_reporter_done", dict(already_sent=True, excluded=[], release_en="", release_cy="")),
    ("conduct_reporter_done", dict(readers=[], fallback_reads=True)),
    ("conduct_unverified", {}),
    ("conduct_held", {}),
    ("conduct_held", dict(unscanned=True, held=[], readers=[])),
    ("conduct_held", dict(unscanned=True)),
    ("conduct_details", {}),
    ("conduct_details", dict(is_fallback=True, unscanned=True, withheld=[], fallback=True)),
    ("conduct_details", dict(direct_name="Ada Jones", unscanned=True, report_missing=True)),
    ("conduct_details", dict(withheld=[], recusals=[], shared=True, direct_name="Ada")),
] + [(name, {}) for name in CONTEXTS if name not in {"conduct_ack", "conduct_reporter_done"}]
NAMES = list(CONTEXTS)
LANGUAGES = ["en", "cy", "en+cy", "cy+en"]


def render(name: str, language: str, **overrides):
    return Templates(default_templates_dir()).render(name, language, **(CONTEXTS[name] | overrides))


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(("name", "overrides"), VARIANTS)
def test_templates_render(name, overrides, language):
    text = render(name, language, **overrides)
    assert text.subject.startswith("[C-7KQ2-9F]") and text.body.strip()
    assert "\n\n\n" not in text.body
    if name == "conduct_ack":
        assert ("7 December 2026" in text.body) == ("en" in language)
        assert ("erbyn dydd Llun 7 Rhagfyr 2026" in text.body) == ("cy" in language)


def test_every_conduct_template_is_in_the_table_in_both_languages():
    root = default_templates_dir()
    for language in ("en", "cy"):
        names = {p.stem for p in (root / language).glob("conduct_*.txt")}
        assert names == set(CONTEXTS), language


def test_ack_release_window_and_readers():
    en = render("conduct_ack", "en").body
    assert "14:30 UTC on Monday 30 November 2026" in en
    assert "exclude NAME" in en and "send now" in en
    assert "Ada Jones, Bryn Hughes" in en and "Cai Evans" in en and "photo.jpg" in en
    assert "one week" in en and "confidential" in en and "danger" in en
    cy = render("conduct_ack", "cy").body
    assert "14:30 UTC ddydd Llun 30 Tachwedd 2026" in cy
    assert "eithrio ENW" in cy and "anfon nawr" in cy and "send now" in cy
    assert "Cofion cynnes" in cy and "gyfrinachol" in cy and "perygl" in cy
    for language in ("en", "cy"):
        now = render("conduct_ack", language, release_now=True).body
        assert "send now" not in now and "anfon nawr" not in now
        assert "30 November" not in now and "30 Tachwedd" not in now
    fallback = render("conduct_ack", "en", readers=[], fallback_reads=True).body
    assert "fallback reviewer" in fallback


def test_reporter_texts_never_carry_the_reports_subject():
    # The acknowledgement and the reply to `exclude` are not given the report's subject or
    # text at all: StrictUndefined would fail if a template tried to show them.
    for name in ("conduct_ack", "conduct_reporter_done"):
        assert "subject" not in CONTEXTS[name] and "text" not in CONTEXTS[name]


def test_reporter_done():
    done = render("conduct_reporter_done", "en").body
    assert "Cai Evans" in done and "Zed" in done and "14:30 UTC on Monday" in done
    unverified = render("conduct_reporter_done", "en+cy", unverified=True)
    assert "Nothing was changed" in unverified.subject and "Ni newidiwyd dim" in unverified.subject
    assert "Cai Evans" not in unverified.body and "+tok@" not in unverified.body
    late = render("conduct_reporter_done", "cy", already_sent=True, release_cy="").body
    assert "eisoes wedi mynd at y pwyllgor" in late and "Cai Evans" in late


def test_committee_texts_for_new_behaviour():
    details = render("conduct_details", "en").body
    assert "#release" not in details and "photo.jpg" in details and "your own" in details
    fb = render("conduct_details", "en+cy", is_fallback=True).body
    assert fb.count("#release") >= 2 and "#recuse NAME" in fb and "#recuse ENW" in fb
    held = render("conduct_held", "cy").body
    assert "#release" in held and "#recuse ENW" in held and "secret.pdf" in held
    assert "conduct+C-7KQ2-9F-committee+fb@d" in held
    unverified = render("conduct_unverified", "en").body
    assert "own reply address" in unverified and "conduct+C-7KQ2-9F-committee@d" in unverified


def test_welsh_review_corrections():
    root = default_templates_dir()
    # Each Welsh template's text with its line breaks undone, so phrases can be looked for.
    welsh = {
        p.stem: " ".join(p.read_text("utf-8").split()) for p in (root / "cy").glob("conduct_*.txt")
    }
    everything = "\n".join(welsh.values())
    for wrong in (
        "Yn gywir",
        "unigolyn a adroddodd",
        "Ni anfonwyd",
        "Ni effeithiwyd",
        "Rydym yn cadw pwy ydych chi'n breifat",
        "yn ymuno",
        "wedi'i lofnodi gan y pwyllgor",
        "gadael aelod yn ôl",
        "Peidiwch â chopïo",
        "Dydd ",
        "côd",
    ):
        assert wrong not in everything, wrong
    assert "Cofion cynnes," in render("conduct_signature", "cy").body
    assert "Cofion cynnes," in render("conduct_ack", "cy").body
    assert "y sawl a roddodd wybod" in welsh["conduct_answer_copy"]
    assert "wedi'i llofnodi" in welsh["conduct_answer_copy"]
    assert "Nid anfonwyd" in welsh["conduct_refused"]
    assert "Nid effeithiwyd" in welsh["conduct_command_error"]
    assert "Byddwn yn cadw pwy ydych chi yn gyfrinachol" in welsh["conduct_ack"]
    assert "yn cael ei ychwanegu at eich adroddiad" in welsh["conduct_ack"]
    assert (
        "ailgynnwys aelod a eithriwyd oherwydd cyfatebiaeth bosibl yn unig"
        in (welsh["conduct_details"])
    )
    assert "anfon copi o negeseuon yr achos at neb arall" in welsh["conduct_details"]


def test_dates_and_subjects():
    ts = calendar.timegm((2026, 12, 7, 9, 5, 0))
    assert notify.date_en(ts) == "Monday 7 December 2026"
    assert notify.date_cy(ts) == "dydd Llun 7 Rhagfyr 2026"
    assert notify.when_en(ts) == "09:05 UTC on Monday 7 December 2026"
    assert notify.when_cy(ts) == "09:05 UTC ddydd Llun 7 Rhagfyr 2026"
    sunday = calendar.timegm((2026, 11, 29, 23, 59, 0))
    assert notify.date_cy(sunday) == "dydd Sul 29 Tachwedd 2026"
    subjects = notify._SUBJECTS
    assert subjects["answer"]["cy"] == "Ateb gan bwyllgor y cod ymddygiad"
    assert subjects["reply"]["cy"] == "Ateb gan y sawl a roddodd wybod"
    assert subjects["held"] == {"en": "Held for checking", "cy": "Wedi'i ddal yn ôl i'w wirio"}
    assert subjects["released"]["cy"] == "Wedi'i ryddhau ar ôl ei wirio"


def test_refs_and_tags():
    refs = {new_ref() for _ in range(200)}
    assert len(refs) == 200
    assert all(subject_tag(f"Re: [{r}] Report received") == r for r in refs)
    assert subject_tag("Re: [c-7kq2-9f] x") == "C-7KQ2-9F"
    assert subject_tag("C-7KQ2-9F without brackets") is None


def test_commands():
    text = "Hi\n#recuse\n> #close no-action\n  #share \n#readmit Ada Jones\n#close ban\n#hashtag\n"
    cmds = parse_commands(text)
    assert cmds[:3] == [Recuse(), Share(), Readmit("Ada Jones")]
    assert isinstance(cmds[3], Invalid) and len(cmds) == 4
    (c,) = parse_commands("#close temporary-ban 2w chat <t@x.example>")
    assert c == Close("temporary-ban", 14 * 86400, "chat", ("t@x.example",))
    assert isinstance(parse_commands("#close temporary-ban 7d all")[0], Invalid)
    assert isinstance(parse_commands("#close permanent-ban t@x")[0], Invalid)
    assert parse_commands("#close other see notes")[0] == Close("other", note="see notes")
