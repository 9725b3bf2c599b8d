"""Why a post was held, in Welsh: the facilitators' digest of a Welsh or bilingual list
names the rule that held each post (as Mailman's rule hits do) in the list's language.

The stored reason is the English text `decide_post` gives; each of its forms has a
Welsh pattern here (a test runs every hold rule through this, so a new rule without
a translation fails). Anything unrecognised is shown as it is rather than hidden.
"""

from __future__ import annotations

import re

_WELSH = [
    (re.compile(r"non-member"), "nid yw'n aelod"),
    (re.compile(r"a member command \(([\w-]+)\)"), r"gorchymyn aelod (\1)"),
    (re.compile(r"too large \((\d+) bytes; limit (\d+)\)"), r"rhy fawr (\1 beit; terfyn \2)"),
    (
        re.compile(r"too many recipients \((\d+); limit (\d+)\)"),
        r"gormod o dderbynwyr (\1; terfyn \2)",
    ),
    (
        re.compile(r"new member's first posts \(post (\d+)\)"),
        r"negeseuon cyntaf aelod newydd (neges \1)",
    ),
]


def held_reason_cy(reason: str) -> str:
    for pattern, welsh in _WELSH:
        if pattern.fullmatch(reason):
            return pattern.sub(welsh, reason)
    return reason
