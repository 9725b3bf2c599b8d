"""Every membership template renders in English, Welsh and both, for every situation."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailhub import dates
from mailhub.lists.requests import SETTINGS
from mailhub.lists.review_commands import UNKNOWN, Problem, parse_reply
from mailhub.messages import Templates

TEMPLATES = Templates(Path(__file__).resolve().parent.parent / "templates")
dates.install(TEMPLATES.env)  # as Runtime.create does
LIST = {
    "name": "dataviz",
    "display_name": "Data Visualisation",
    "description": "Charts and maps.",
    "post": "dataviz@d",
    "join": "dataviz-join@d",
    "leave": "dataviz-leave@d",
    "request": "dataviz-request@d",
    "owner": "dataviz-owner@d",
    "conduct": "conduct@d",
    "addresses": "hidden",
}
SITUATIONS = [
    "already_member",
    "already_pending",
    "pending",
    "not_member",
    "withdrawn",
    "left",
    "invite_only",
    "banned",
    "token_invalid",
    "settings_invalid",
    "rejected",
    "expired",
]
# What the review shows of an entry besides its facts (mailhub.lists.review._entry_vars).
SHOWN = {
    "hidden": False,
    "excerpt": [],
    "more": False,
    "readable": True,
    "attachment": "",
    "size_kb": 0,
}
ENTRIES = [
    {
        "number": 1,
        "kind": "request",
        "name": "Sam",
        "address": "sam@x",
        "when": "2025-01-01",
        "at": 1735732800.0,
        "note": "hi",
        "intro": ["hi"],
        "subject": "",
        "reason": "",
        "reason_cy": "",
        **SHOWN,
    },
    {
        "number": 2,
        "kind": "held",
        "name": "",
        "address": "nora@x",
        "when": "2025-01-01",
        "at": 1735732800.0,
        "note": "",
        "intro": [],
        "subject": "A map",
        "reason": "non-member",
        "reason_cy": "nid yw'n aelod",
        **SHOWN,
        "excerpt": ["A map I made.", "", "> quoted"],
        "more": True,
        "attachment": "held-2.eml",
    },
]
RESULT = {
    "approved": [{"number": 1, "name": "Sam", "address": "sam@x"}],
    "rejected": [],
    "accepted": [],
    "discarded": [{"number": 2, "name": "", "address": "", "subject": "x"}],
    "already": [
        {"number": 3, "name": "Tom", "address": "", "state": "approved", "by": "f@x", "at": 0.0},
        {"number": 4, "name": "", "address": "", "state": "expired", "by": "", "at": 0.0},
    ],
    "not_found": [9],
    "not_allowed": [{"number": 5, "name": "Bo", "address": "", "banned": True, "until": "-"}],
    "problems": [Problem("aprove 1", UNKNOWN, suggest_en="approve 1", suggest_cy="cymeradwyo 1")],
    "acted": True,
}
SUBJECTS = {"en": "[Data Visualisation] 1 request", "cy": "[Delweddu Data] 1 cais"}


def render(name: str, language: str, **kw):  # noqa: ANN003, ANN201
    return TEMPLATES.render(name, language, list=LIST, domain="d", **kw)


@pytest.mark.parametrize("language", ["en", "cy", "en+cy"])
def test_all_membership_templates_render(language):
    for situation in SITUATIONS:
        for reason in ("", "expired", "used", "unknown"):
            text = render(
                "membership_status",
                language,
                situation=situation,
                since="then",
                until="",
                reason=reason,
            )
            assert text.subject and "Data Visualisation" in text.subject
            assert "{{" not in text.body
    for action in ("join", "leave"):
        for flag in (True, False):
            assert render(
                "membership_confirm",
                language,
                action=action,
                again=flag,
                needs_approval=flag,
                expires="soon",
            ).body
    for approved in (True, False):
        body = render("membership_welcome", language, approved=approved).body
        assert "conduct@d" in body and "dataviz-leave@d" in body and "Charts and maps." in body
    assert render("membership_invitation", language).body
    changes = list(SETTINGS)
    text = render(
        "membership_settings_confirm",
        language,
        changes=changes,
        own_address="dataviz-confirm+abc@d",
        expires="soon",
        help_link=True,
    )
    assert "Data Visualisation" in text.subject and "dataviz-confirm+abc@d" in text.body
    assert len([ln for ln in text.body.splitlines() if ln.startswith("- ")]) == len(changes) * (
        2 if language == "en+cy" else 1
    )


@pytest.mark.parametrize("language", ["en", "cy", "en+cy", "cy+en"])
def test_review_templates_render_in_lines_a_phone_shows(language):
    for role in ("facilitator", "champion"):
        for result in (None, RESULT):
            for entries in ([], ENTRIES):
                text = render(
                    "review",
                    language,
                    role=role,
                    entries=entries,
                    disabled=[ENTRIES[0]],
                    has_requests=True,
                    has_held=True,
                    result=result,
                    subjects=SUBJECTS,
                    name_cy="Delweddu Data",
                )
                assert text.subject
                assert all(len(line) <= 72 for line in text.body.splitlines())
    problems = RESULT["problems"]
    for reason in ("sender", "used", "expired", "not-moderator", "no-commands", "unknown"):
        text = render(
            "review_refused", language, reason=reason, problems=problems, name_cy="Delweddu Data"
        )
        assert text.body and all(len(line) <= 72 for line in text.body.splitlines())


def test_review_instructions_never_start_a_line_with_a_command():
    """A digest quoted back without '>' (HTML replies) must not act by itself."""
    for language in ("en", "cy"):
        text = render(
            "review",
            language,
            role="facilitator",
            entries=ENTRIES,
            disabled=[],
            has_requests=True,
            has_held=True,
            result=RESULT,
            subjects=SUBJECTS,
            name_cy="Delweddu Data",
        )
        assert parse_reply(text.body).commands == ()


def test_welsh_review_says_why_a_post_was_held_in_welsh():
    kw = dict(role="facilitator", entries=ENTRIES, disabled=[], has_requests=True, has_held=True)
    kw |= dict(subjects=SUBJECTS, name_cy="Delweddu Data")
    welsh = render("review", "cy", result=None, **kw).body
    english = render("review", "en", result=None, **kw).body
    assert "Rheswm ei dal: nid yw'n aelod" in welsh and "non-member" not in welsh
    assert "non-member" in english


def test_welsh_settings_confirmation_is_all_welsh():
    text = render(
        "membership_settings_confirm",
        "cy",
        changes=["nomail"],
        own_address="x@d",
        expires="y",
        help_link=False,
    )
    assert text.subject.startswith("Cadarnhewch")
    assert "Nothing" not in text.body and "dim negeseuon am y tro" in text.body
