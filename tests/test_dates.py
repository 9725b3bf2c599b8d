"""Dates in Welsh and English: weekdays, months, UTC, and the template filters."""

from __future__ import annotations

from datetime import UTC, datetime

import jinja2
import pytest

from mailhub.dates import Moment, format_date, format_datetime, install

# Monday 7 December 2026, 14:05 UTC
MONDAY = datetime(2026, 12, 7, 14, 5, tzinfo=UTC).timestamp()


def test_welsh_date_has_lower_case_weekday_and_welsh_month() -> None:
    assert format_date(MONDAY, "cy") == "dydd Llun 7 Rhagfyr 2026"


def test_english_date() -> None:
    assert format_date(MONDAY, "en") == "Monday 7 December 2026"


def test_datetime_says_utc_in_both_languages() -> None:
    assert format_datetime(MONDAY, "cy") == "dydd Llun 7 Rhagfyr 2026, 14:05 UTC"
    assert format_datetime(MONDAY, "en") == "Monday 7 December 2026, 14:05 UTC"


def test_sentence_start_capitalises_the_welsh_weekday() -> None:
    assert format_date(MONDAY, "cy", sentence_start=True) == "Dydd Llun 7 Rhagfyr 2026"


@pytest.mark.parametrize(
    ("day", "cy", "en"),
    [
        (datetime(2026, 1, 1, tzinfo=UTC), "dydd Iau 1 Ionawr 2026", "Thursday 1 January 2026"),
        (
            datetime(2026, 2, 28, tzinfo=UTC),
            "dydd Sadwrn 28 Chwefror 2026",
            "Saturday 28 February 2026",
        ),
        (datetime(2026, 3, 1, tzinfo=UTC), "dydd Sul 1 Mawrth 2026", "Sunday 1 March 2026"),
        (datetime(2026, 6, 3, tzinfo=UTC), "dydd Mercher 3 Mehefin 2026", "Wednesday 3 June 2026"),
        (
            datetime(2026, 7, 31, tzinfo=UTC),
            "dydd Gwener 31 Gorffennaf 2026",
            "Friday 31 July 2026",
        ),
        (datetime(2026, 9, 1, tzinfo=UTC), "dydd Mawrth 1 Medi 2026", "Tuesday 1 September 2026"),
    ],
)
def test_every_weekday_and_sample_months(day: datetime, cy: str, en: str) -> None:
    assert format_date(day.timestamp(), "cy") == cy
    assert format_date(day.timestamp(), "en") == en


def test_bilingual_language_takes_its_first_half() -> None:
    assert format_date(MONDAY, "cy+en") == "dydd Llun 7 Rhagfyr 2026"
    assert format_date(MONDAY, "en+cy") == "Monday 7 December 2026"


def test_a_time_just_before_midnight_utc_stays_on_its_utc_day() -> None:
    late = datetime(2026, 12, 6, 23, 59, tzinfo=UTC).timestamp()
    assert format_datetime(late, "cy") == "dydd Sul 6 Rhagfyr 2026, 23:59 UTC"


def test_template_filters_render_each_half_in_its_language() -> None:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    install(env)
    template = env.from_string(
        "erbyn {{ ts | date(language) }} ({{ ts | datetime(language) }}); {{ none | date(language) }}"
    )
    assert (
        template.render(ts=MONDAY, language="cy", none=None)
        == "erbyn dydd Llun 7 Rhagfyr 2026 (dydd Llun 7 Rhagfyr 2026, 14:05 UTC); -"
    )
    assert template.render(ts=MONDAY, language="en", none=None).startswith(
        "erbyn Monday 7 December"
    )


def test_a_moment_reads_as_plain_text_and_in_the_language_through_the_filter() -> None:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    install(env)
    moment = Moment(MONDAY)
    assert f"{moment}" == "2026-12-07 14:05 UTC"
    template = env.from_string("{{ t | datetime(language) }} / {{ s | date(language) }}")
    assert template.render(t=moment, s="soon", language="cy") == (
        "dydd Llun 7 Rhagfyr 2026, 14:05 UTC / soon"
    )
