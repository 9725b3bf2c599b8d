"""Welsh initial mutations: the forms a word takes after certain words, and back.

Used where a Welsh word must be recognised in every form: a name in a conduct report
(mailhub.conduct.conflicts), a word searched for in a list's archive
(mailhub.lists.search_query). Pure and small. Words are expected normalised (lower-case, accents removed), as
`conflicts.normalise` leaves them. `radicals(word)` lists the unmutated forms a word
may come from; `mutations(word)` lists the mutated forms a radical may take. Neither
includes the word itself.

    soft:       p→b  t→d  c→g  b→f  d→dd  g→(dropped)  m→f  ll→l  rh→r
    nasal:      p→mh t→nh c→ngh b→m d→n  g→ng
    aspirate:   p→ph t→th c→ch
    h-prothesis: a vowel gains h (ei henw, ei hanwen)

A "dropped g" means any word that starts with a vowel, w, l or r may be a soft-mutated
g-word (areth ← gareth, wen ← gwen): compare radicals against known words only.
"""

from __future__ import annotations

VOWELS = frozenset("aeiouwy")

# (radical onset, mutated onset, mutation)
_RULES: tuple[tuple[str, str, str], ...] = (
    ("p", "b", "soft"),
    ("t", "d", "soft"),
    ("c", "g", "soft"),
    ("b", "f", "soft"),
    ("d", "dd", "soft"),
    ("g", "", "soft"),
    ("m", "f", "soft"),
    ("ll", "l", "soft"),
    ("rh", "r", "soft"),
    ("p", "mh", "nasal"),
    ("t", "nh", "nasal"),
    ("c", "ngh", "nasal"),
    ("b", "m", "nasal"),
    ("d", "n", "nasal"),
    ("g", "ng", "nasal"),
    ("p", "ph", "aspirate"),
    ("t", "th", "aspirate"),
    ("c", "ch", "aspirate"),
)

# Onsets that are letters of their own in Welsh: a word starting with one of these is
# not a word starting with its first character (no "t" rule for "th", no "d" for "dd").
_DIGRAPHS = ("ch", "dd", "ff", "ng", "ll", "ph", "rh", "th")


def _onset(word: str) -> str:
    for d in _DIGRAPHS:
        if word.startswith(d):
            return d
    return word[:1]


def _radical_applies(radical_onset: str, rest: str) -> bool:
    """A radical onset + rest is a plausible word (no 'tdafydd' for 'ddafydd')."""
    if not rest:
        return False
    candidate = radical_onset + rest
    return _onset(candidate) == radical_onset or radical_onset in _DIGRAPHS


def radicals(word: str) -> set[str]:
    """The possible radical (unmutated) forms of a mutated word; empty if none."""
    out: set[str] = set()
    if not word:
        return out
    onset = _onset(word)
    for radical, mutated, _kind in _RULES:
        if mutated == "":
            # Soft g dropped: gareth → areth, gwen → wen, glyn → lyn, gruffydd → ruffydd.
            if word[0] in VOWELS or word[0] in "lr":
                out.add("g" + word)
            continue
        if not word.startswith(mutated):
            continue
        # The mutated onset must be the whole onset: "ddafydd" is d→dd, not t→d + "dafydd".
        if mutated not in _DIGRAPHS and onset != mutated and len(onset) > len(mutated):
            continue
        if mutated == "n" and word.startswith(("nh", "ng")):
            continue
        if mutated == "m" and word.startswith("mh"):
            continue
        if mutated == "ng" and word.startswith("ngh"):
            continue
        rest = word[len(mutated) :]
        if _radical_applies(radical, rest):
            out.add(radical + rest)
    # h-prothesis: ei henw (enw), ei hanwen (anwen).
    if len(word) > 1 and word[0] == "h" and word[1] in VOWELS:
        out.add(word[1:])
    out.discard(word)
    return out


def mutations(word: str) -> set[str]:
    """Every mutated form a radical can take (soft, nasal, aspirate, h-prothesis)."""
    out: set[str] = set()
    if not word:
        return out
    onset = _onset(word)
    for radical, mutated, _kind in _RULES:
        if onset != radical:
            continue
        rest = word[len(radical) :]
        if not rest:
            continue
        out.add(mutated + rest)
    if word[0] in VOWELS:
        out.add("h" + word)
    out.discard(word)
    out.discard("")
    return out


def mutation_kind(radical: str, form: str) -> str:
    """Which mutation turns radical into form ('soft', 'nasal', 'aspirate', 'h'), or ''."""
    onset = _onset(radical)
    for r, mutated, kind in _RULES:
        if onset == r and form == mutated + radical[len(r) :]:
            return kind
    if radical[:1] in VOWELS and form == "h" + radical:
        return "h"
    return ""
