"""What a visitor typed in the archive's search box, as a query: pure, no I/O.

The syntax is small and the same in both languages: words (all must match, accents and
case ignored), `"a phrase"` in double quotes, a word ending in `*` for words that start
with it (after four letters or more), and `from:Name` / `awdur:Name` (or the form's
author field) to keep one author's posts. Everything else is a word: FTS5's own operators (AND, OR, NOT, NEAR, ^, column
filters) are never passed through, so no input can make a query that fails to parse;
the store quotes every word and phrase (`mailhub.store.archive`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailhub.mutations import mutations, radicals
from mailhub.store.archive import fold

MAX_QUERY_CHARS = 500  # a search box's worth; more is cut, not refused
MAX_WORDS = 8  # words and phrases together: each one is a lookup in the index (16 common
# words took 65 ms over 100,000 posts)
# A prefix search merges the index entries of every word that starts with it: "cy*"
# took 250 ms over 100,000 posts (the store is busy meanwhile), "cyfa*" 20 ms.
MIN_PREFIX = 4  # letters before a `*`; a shorter one is searched as a word
MAX_PREFIXES = 2  # prefix words a query; past these, a `*` is ignored
MAX_NAME_WORDS = 4  # words of an author's name searched for
# Welsh mutations searched for a word (`welsh_forms`): each is one more lookup; a word of
# fewer letters is searched as it is (a 2-letter word's mutations are other words).
MAX_FORMS = 8
MIN_MUTATED = 3

# `from:` / `awdur:` followed by a quoted name or one word.
_AUTHOR = re.compile(r'(?i)(?<!\S)(?:from|awdur):(?:"([^"]*)"?|(\S*))')
_PHRASE = re.compile(r'"([^"]*)"?')


@dataclass(frozen=True)
class SearchQuery:
    terms: tuple[str, ...]  # words; one ending in "*" matches words that start with it
    phrases: tuple[str, ...]  # each matches its words next to each other, in order
    author: str = ""  # the author's name (its words all in the From: name); "" any author
    # For each of `terms`, the other forms it is found in too (its Welsh mutations: any
    # one of them matches for the word); empty when mutations are not searched.
    forms: tuple[tuple[str, ...], ...] = ()


def welsh_forms(word: str) -> tuple[str, ...]:
    """The other forms of `word` a Welsh text may hold (pure): its radical(s) and every
    mutation of them — `caerdydd` → gaerdydd, nghaerdydd, chaerdydd; `nghaerdydd` →
    caerdydd, gaerdydd, chaerdydd. At most MAX_FORMS, shortest first."""
    folded = fold(word)
    if len(folded) < MIN_MUTATED or not folded.isalpha():
        return ()
    family = {folded, *radicals(folded)}
    for radical in list(family):
        family |= mutations(radical)
    family.discard(folded)
    return tuple(sorted(family, key=lambda w: (len(w), w))[:MAX_FORMS])


def searchable(word: str) -> bool:
    """Whether the index could hold a word of it: the tokenizer keeps letters and digits
    only, so `^`, `:` or `--` alone would be an empty lookup (which matches nothing)."""
    return any(ch.isalnum() for ch in word)


def parse_query(q: str, author: str = "", mutations: bool = False) -> SearchQuery | None:
    """The query of the search box `q` (and the author field); None when nothing in them
    can be searched for. `mutations`: each word is found in its Welsh mutated forms too
    (not a prefix word, not a phrase's words)."""
    q = q[:MAX_QUERY_CHARS]
    authors = [author.strip()] if author.strip() else []

    def take_author(m: re.Match[str]) -> str:
        authors.append((m.group(1) if m.group(1) is not None else m.group(2)).strip())
        return " "

    q = _AUTHOR.sub(take_author, q)
    phrases: list[str] = []

    def take_phrase(m: re.Match[str]) -> str:
        words = m.group(1).split()
        if len(words) > 1:
            phrases.append(" ".join(words))
            return " "
        return f" {m.group(1)} "  # one quoted word is a word

    q = _PHRASE.sub(take_phrase, q)
    terms = [_term(w) for w in q.split()]
    terms = [t for t in dict.fromkeys(terms) if t]
    prefixes = [t for t in terms if t.endswith("*")]
    for extra in prefixes[MAX_PREFIXES:]:
        terms[terms.index(extra)] = extra.rstrip("*")
    terms = list(dict.fromkeys(terms))
    phrases = [p for p in dict.fromkeys(phrases) if searchable(p)]
    phrases = phrases[:MAX_WORDS]
    terms = terms[: MAX_WORDS - len(phrases)]
    # A name is a few words; each is one more lookup.
    author_name = " ".join(" ".join(a for a in authors if searchable(a)).split()[:MAX_NAME_WORDS])
    if not phrases and not terms and not author_name:
        return None
    forms = tuple(() if t.endswith("*") else welsh_forms(t) for t in terms) if mutations else ()
    return SearchQuery(terms=tuple(terms), phrases=tuple(phrases), author=author_name, forms=forms)


def _term(word: str) -> str:
    """A word as searched for: '' when it has nothing searchable; a trailing `*` kept
    (prefix search) only after MIN_PREFIX letters or more."""
    prefix = word.endswith("*")
    word = word.strip("*")
    if not searchable(word):
        return ""
    if prefix and sum(ch.isalnum() for ch in word) >= MIN_PREFIX:
        return word + "*"
    return word
