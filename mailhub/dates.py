"""Dates as people read them, in Welsh and in English.

Pure functions, no locale: the process locale is the server's, not the reader's, and
Welsh locales are often not installed. Every time is shown in UTC and says so, since
readers are in one time zone for half the year and another for the rest.

Welsh follows the house style of `welsh-review.md`: weekdays lower case mid-sentence
("erbyn dydd Llun 7 Rhagfyr 2026"), months capitalised. Templates use the jinja filters
`date` and `datetime` (registered by `install`), passing the language of the half they
render: `{{ expires_at | date(language) }}`.
"""

from __future__ import annotations

from datetime import UTC, datetime

import jinja2

WEEKDAYS = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "cy": (
        "dydd Llun",
        "dydd Mawrth",
        "dydd Mercher",
        "dydd Iau",
        "dydd Gwener",
        "dydd Sadwrn",
        "dydd Sul",
    ),
}

MONTHS = {
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
    "cy": (
        "Ionawr",
        "Chwefror",
        "Mawrth",
        "Ebrill",
        "Mai",
        "Mehefin",
        "Gorffennaf",
        "Awst",
        "Medi",
        "Hydref",
        "Tachwedd",
        "Rhagfyr",
    ),
}


def _lang(language: str) -> str:
    """The language of one half: "cy", "en", or the first of "cy+en"/"en+cy"."""
    first = (language or "en").split("+")[0].strip().lower()
    return first if first in WEEKDAYS else "en"


def format_date(ts: float, language: str, *, sentence_start: bool = False) -> str:
    """ "Monday 7 December 2026" / "dydd Llun 7 Rhagfyr 2026" (UTC).

    `sentence_start=True` capitalises the Welsh weekday ("Dydd Llun …") for a date
    that opens a sentence or stands alone as a heading."""
    when = datetime.fromtimestamp(ts, UTC)
    lang = _lang(language)
    weekday = WEEKDAYS[lang][when.weekday()]
    if sentence_start:
        weekday = weekday[:1].upper() + weekday[1:]
    return f"{weekday} {when.day} {MONTHS[lang][when.month - 1]} {when.year}"


def format_datetime(ts: float, language: str, *, sentence_start: bool = False) -> str:
    """ "Monday 7 December 2026, 14:05 UTC" / "dydd Llun 7 Rhagfyr 2026, 14:05 UTC"."""
    when = datetime.fromtimestamp(ts, UTC)
    return f"{format_date(ts, language, sentence_start=sentence_start)}, {when:%H:%M} UTC"


class Moment(str):
    """A time handed to templates: where text is expected (a log line, an f-string, a
    template that does not use the filters) it reads "2026-12-07 14:05 UTC", the same in
    every language; through the `date`/`datetime` filters it reads in the half's language.
    So callers can pass one value to a bilingual render."""

    ts: float

    def __new__(cls, ts: float) -> Moment:
        moment = super().__new__(
            cls, datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")
        )
        moment.ts = ts
        return moment


def _when(value: float | str | None, language: str, sentence_start: bool, full: bool) -> str:
    # A missing time (a request never reminded, say) reads as a dash, not as 1970; text
    # that is already words ("soon", a date someone wrote) is shown as it is.
    if value is None:
        return "-"
    if isinstance(value, Moment):
        value = value.ts
    elif isinstance(value, str):
        return value
    fmt = format_datetime if full else format_date
    return fmt(value, language, sentence_start=sentence_start)


def _date_filter(value: float | str | None, language: str, sentence_start: bool = False) -> str:
    return _when(value, language, sentence_start, full=False)


def _datetime_filter(value: float | str | None, language: str, sentence_start: bool = False) -> str:
    return _when(value, language, sentence_start, full=True)


def install(env: jinja2.Environment) -> None:
    """Register the `date` and `datetime` filters on a template environment."""
    env.filters["date"] = _date_filter
    env.filters["datetime"] = _datetime_filter
