"""Every conduct template renders in English, Welsh and both, and the pure case rules."""

from __future__ import annotations

import pytest

from mailhub.conduct.cases import (
    Writer,
    classify_writer,
    find_member,
    handler_addresses,
    new_ref,
    reaches_recused,
    subject_tag,
)
from mailhub.conduct.commands import Close, Invalid, Readmit, Recuse, Share, parse_commands
from mailhub.conduct.config import CommitteeMember, ConductConfig
from mailhub.config import default_templates_dir
from mailhub.messages import Templates
from mailhub.store.conduct import Case, Recusal

VARS = dict(
    ref="C-7KQ2-9F",
    case_address="conduct+C-7KQ2-9F@d",
    committee_address="conduct+C-7KQ2-9F-committee@d",
    due_en="Monday 3 June 2024",
    due_cy="Dydd Llun 3 Mehefin 2024",
    direct_name="",
    opened="2024-05-27 10:00 UTC",
    due="2024-06-03 10:00 UTC",
    reporter="r@x",
    subject="s",
    recusals=[{"name": "Bryn", "reason": "alias", "possible": True, "lifted_by": ""}],
    unscannable=True,
    shared=False,
    report_missing=False,
    fallback=False,
    author="Ada",
    text="hello",
    addresses=["bryn@x"],
    line="#close x",
    problem="no",
    outcome="reprimand",
    by="ada@x",
    handling=2,
    recused=1,
)
NAMES = [
    "conduct_ack",
    "conduct_details",
    "conduct_signature",
    "conduct_answer_copy",
    "conduct_refused",
    "conduct_command_error",
    "conduct_closed",
    "conduct_reminder",
    "conduct_escalation",
]


@pytest.mark.parametrize("language", ["en", "cy", "en+cy", "cy+en"])
@pytest.mark.parametrize("name", NAMES)
def test_templates_render(name, language):
    text = Templates(default_templates_dir()).render(name, language, **VARS)
    assert "C-7KQ2-9F" in text.subject and text.body.strip()
    if name == "conduct_ack":
        assert ("3 June 2024" in text.body) == ("en" in language)
        assert ("3 Mehefin 2024" in text.body) == ("cy" in language)


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


ADA = CommitteeMember("ada", "Ada Jones", ("ada@x",), ("AJ",))
BRYN = CommitteeMember("bryn", "Bryn Hughes", ("bryn@x", "b@home"))
CONDUCT = ConductConfig("board@x", (ADA, BRYN))


def case(**kw) -> Case:
    base = dict(
        ref="C-AAAA-22",
        opened_at=0.0,
        state="open",
        reporter="r@x",
        direct_member="",
        shared=False,
        flags=(),
        answered_at=None,
        reminded_at=None,
        escalated_at=None,
        closed_at=None,
        outcome="",
        content_deleted_at=None,
    )
    return Case(**(base | kw))


def rec(member: str, lifted: bool = False) -> Recusal:
    return Recusal(1, "C-AAAA-22", member, "r", True, 0.0, 1.0 if lifted else None, "")


def test_who_may_write():
    c = case()
    recs = [rec("bryn")]
    assert classify_writer(c, recs, CONDUCT, "r@x", "").writer is Writer.REPORTER
    assert classify_writer(c, recs, CONDUCT, "ada@x", "ada@x").writer is Writer.MEMBER
    assert classify_writer(c, recs, CONDUCT, "b@home", "").writer is Writer.OUTSIDER
    # A recused member's envelope behind someone else's From is still an outsider.
    assert classify_writer(c, recs, CONDUCT, "ada@x", "bryn@x").writer is Writer.OUTSIDER
    assert classify_writer(c, [rec("bryn", True)], CONDUCT, "b@home", "").writer is Writer.MEMBER
    assert classify_writer(c, recs, CONDUCT, "board@x", "").writer is Writer.FALLBACK
    assert classify_writer(c, recs, CONDUCT, "x@y", "").writer is Writer.OUTSIDER
    direct = case(direct_member="bryn")
    assert classify_writer(direct, [], CONDUCT, "ada@x", "").writer is Writer.OUTSIDER


def test_where_case_mail_goes():
    assert handler_addresses(case(), [rec("bryn")], CONDUCT) == ["ada@x"]
    assert handler_addresses(case(), [rec("bryn"), rec("ada")], CONDUCT) == ["board@x"]
    assert handler_addresses(case(), [], CONDUCT, exclude="ada@x") == ["bryn@x"]
    assert handler_addresses(case(direct_member="ada"), [], CONDUCT) == ["ada@x"]
    assert reaches_recused(["B@HOME", "ada@x", "r@x"], [rec("bryn")], CONDUCT, "r@x") == [
        "b@home",
        "r@x",
    ]
    assert find_member("ada jones", CONDUCT.committee) is ADA
    assert find_member("aj", CONDUCT.committee) is ADA
    assert find_member("Zed", CONDUCT.committee) is None
