"""Who is named in a report: the conflict-of-interest scan (pure, no I/O).

The promise is that a committee member named in a report never sees it. A miss
leaks a report to the person it is about; a false alarm only means another member
handles it (and `#readmit` can undo it). So the scan fails closed: it reads every
piece of text it can find (`mailhub.conduct.reading`), undoes common disguises
(Unicode confusables, small capitals, invisible characters, letter-spacing), knows
Welsh initial mutations (`mailhub.mutations`), and treats a possible match as
a match, marked `possible` so that it can be lifted.

Reasons name the rule and the member, never words of the report: they are stored
and shown in audit trails.

Every pattern here is linear-time: whitespace runs are collapsed before any pattern
looks around them, and patterns that could restart inside a long run are anchored
with a look-behind.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import Message
from importlib import resources

from mailhub.conduct.config import CommitteeMember
from mailhub.conduct.reading import MAX_CHARS, MAX_PARTS, Scan, scan, scan_bytes
from mailhub.mutations import mutations

__all__ = [
    "NamedMatch",
    "Scan",
    "ScanOutcome",
    "find_named_members",
    "match_texts",
    "normalise",
    "scan",
    "scan_report",
    "sender_matches",
    "words",
]

ADDRESS_HEADERS = ("from", "reply-to", "to", "cc", "sender", "resent-from", "resent-to")


@dataclass(frozen=True)
class NamedMatch:
    """A member named in a report, and why: `possible` matches may be lifted by `#readmit`."""

    member: str  # CommitteeMember.key
    reason: str
    possible: bool


@dataclass(frozen=True)
class ScanOutcome:
    """What `scan_report` found: the caller fails closed on over_budget or unscannable."""

    matches: tuple[NamedMatch, ...]
    unscannable: tuple[str, ...]
    over_budget: bool


# --- normalising text so disguises fall away --------------------------------------------

# Default-ignorable code points (Unicode DerivedCoreProperties), variation selectors too.
_IGNORABLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff]"
)
_LATIN_NAME = re.compile(
    r"LATIN (?:SMALL |CAPITAL )?LETTER (?:SMALL CAPITAL |SCRIPT |DOTLESS )?([A-Z])(?: WITH .+)?"
)
_LATIN_BLOCKS = (
    (0x00C0, 0x02AF),
    (0x1D00, 0x1DBF),
    (0x1E00, 0x1EFF),
    (0x2C60, 0x2C7F),
    (0xA720, 0xA7FF),
    (0xAB30, 0xAB6F),
)
_LIGATURES = {"æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE"}


def _plain(s: str) -> str:
    return "".join(
        c
        for c in unicodedata.normalize("NFKD", _IGNORABLE.sub("", s))
        if not unicodedata.combining(c)
    )


@functools.cache
def skeleton_table() -> dict[int, str]:
    """char → ASCII letter/digit, from Unicode's confusables (as shipped by the
    confusable_homoglyphs package) and Unicode character names (small capitals,
    script/dotless letters, letters with a stroke or hook). Built once per process."""
    text = resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8")
    data: dict[str, list[dict[str, str]]] = json.loads(text)
    links: dict[str, set[str]] = {}
    for key, entries in data.items():
        k = _plain(key)
        for entry in entries:
            c = _plain(entry.get("c", ""))
            if len(k) != 1 or len(c) != 1 or k == c:
                continue
            if not k.isascii():
                links.setdefault(k, set()).add(c)
            if not c.isascii():
                links.setdefault(c, set()).add(k)
    named: dict[str, str] = {}
    for lo, hi in _LATIN_BLOCKS:
        for cp in range(lo, hi + 1):
            ch = chr(cp)
            m = _LATIN_NAME.fullmatch(unicodedata.name(ch, ""))
            if m and len(_plain(ch)) == 1 and not _plain(ch).isascii():
                letter = m.group(1)
                named[ch] = letter if "CAPITAL LETTER" in unicodedata.name(ch) else letter.lower()

    def best(ch: str) -> str:
        if ch in named:
            return named[ch]
        seen, frontier, found = {ch}, [ch], set()
        for _ in range(3):  # follow up to three look-alike links to an ASCII letter
            nxt = []
            for c in frontier:
                for d in links.get(c, ()):
                    if d in seen:
                        continue
                    seen.add(d)
                    if d.isascii():
                        if d.isalnum():
                            found.add(d)
                    elif d in named:
                        found.add(named[d])
                    else:
                        nxt.append(d)
            if found:
                break
            frontier = nxt
        if not found:
            return ""
        letters = sorted(f for f in found if f.isalpha())
        if ch.isupper() and len(ch.lower()) == 1 and ch.lower() != ch:
            low = best(ch.lower())
            if low.isalpha():
                return low.upper()
        if letters:
            pick = letters[0]
            return pick.upper() if ch.isupper() else pick.lower() if ch.islower() else pick
        return sorted(found)[0]

    table: dict[int, str] = {}
    for ch in set(links) | set(named):
        if ch.isascii() or len(ch) != 1:
            continue
        b = best(ch)
        if b:
            table[ord(ch)] = b
    for ch, rep in _LIGATURES.items():
        table[ord(ch)] = rep
    return table


_NON_ASCII = re.compile(r"[^\x00-\x7f]+")


def _fold_run(m: re.Match[str]) -> str:
    table = skeleton_table()
    text = unicodedata.normalize("NFKD", m.group(0).translate(table))
    return "".join(c for c in text if not unicodedata.combining(c)).translate(table)


def fold(text: str) -> str:
    """Plain Latin letters, case kept: invisible characters removed, accents stripped,
    compatibility forms (full-width, math, ligatures) and look-alikes folded. ASCII text
    is left as it is; only the non-ASCII runs are looked at."""
    if text.isascii():
        return text
    return _NON_ASCII.sub(_fold_run, _IGNORABLE.sub("", text))


_HSPACE_RUN = re.compile(r"[^\S\n]{2,}")
_HSPACE = re.compile(r"[^\S\n]")
_QUOTE_MARKS = re.compile(r"(?m)^[ >|]+")
# Whitespace is collapsed first (runs of 2+ become two spaces), so ` {0,2}` is bounded.
_AT = re.compile(
    r" {0,2}[\[({<] {0,2}(?:at|@) {0,2}[\])}>] {0,2}| {1,2}at {1,2}(?=[\w-]+ {0,2}(?:\.|[\[({<]? {0,2}dot\b))"
)
_DOT = re.compile(
    r" {0,2}[\[({<] {0,2}(?:dot|\.) {0,2}[\])}>] {0,2}| {1,2}dot {1,2}(?=[a-z]{2,}\b)"
)


def _collapse(text: str) -> str:
    text = _HSPACE_RUN.sub("  ", text)
    return _HSPACE.sub(" ", text) if "\t" in text or "\u00a0" in text or "\r" in text else text


def normalise(text: str) -> str:
    """Lower-case plain Latin letters: accents, invisible characters, look-alikes removed;
    `ada [at] example [dot] net` written as an address."""
    text = _collapse(fold(text).casefold())
    return _DOT.sub(".", _AT.sub("@", text))


_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> list[str]:
    """Unicode words (letters and digits); `_`, apostrophes and punctuation separate them."""
    return _WORD.findall(text)


# Anchored so that a long run of word characters is tried once, not from every position.
_EMAIL = re.compile(r"(?<![\w.+'-])[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")
_HANDLE = re.compile(r"(?<![\w.+'-])@([\w.-]+)")
# A letter-spaced word: single letters with 1-3 separators between (`A d a`, `J.o.n.e.s`).
_SPACED = re.compile(r"(?<![^\W_])[^\W_](?![^\W_])(?:(?:[^\w\n]|_){1,3}[^\W_](?![^\W_])){2,}")
_UPPER = re.compile(r"[A-Z]")
_CAPS = re.compile(r"(?<![^\W_])[A-Z]{2,4}(?![^\W_])")
_GAP = re.compile(r"(?:[^\w\n]|_)+")
_DOMAIN = re.compile(r"[\w-]+(?:\.[\w-]+)+")


# --- the text, prepared once ------------------------------------------------------------


@dataclass(frozen=True)
class _Text:
    words: list[str]
    wordset: frozenset[str]
    pos: dict[str, list[int]]  # positions of words that can start a name
    caps: frozenset[str]  # short words written in capitals (initials), lower-cased
    emails: frozenset[str]
    handles: tuple[str, ...]
    flat: str  # the normalised text, for domains
    cased: str = ""  # the folded text with its capitals, for weak evidence

    def capitalised(self, word: str) -> bool:
        """Whether word is written with a capital somewhere (or the writer never uses
        capitals): the weak evidence (near misses, mutated forms alone) needs it, so that
        "the price" and "ar fryn" (on a hill) do not count but "Price" and "i Fryn" do."""
        if not _UPPER.search(self.cased):
            return True
        for form in {word.capitalize(), word.upper()}:
            if re.search(rf"(?<![^\W_]){re.escape(form)}(?![^\W_])", self.cased):
                return True
        return False


def _spaced_words(text: str) -> list[list[str]]:
    """Letter-spaced runs, split into words where the gap differs from the usual one.
    Only pieces a name could be (at most 64 letters) are kept."""
    out = []
    for m in _SPACED.finditer(text):
        run = m.group(0)
        letters = _WORD.findall(run)
        gaps = _GAP.findall(run)
        common = Counter(gaps).most_common(1)[0][0] if gaps else ""
        cuts = [i + 1 for i, g in enumerate(gaps) if g != common]
        split = [
            "".join(letters[a:b]) for a, b in zip([0, *cuts], [*cuts, len(letters)], strict=True)
        ]
        split = [w for w in split if len(w) <= 64]
        if len(split) > 1:
            out.append(split)
        if len(letters) <= 64:
            out.append(["".join(letters)])
    return out


def _prepare(texts: Iterable[str], starts: frozenset[str] = frozenset()) -> _Text:
    # One text: quoted lines lose their `>` marks and line breaks become spaces, so a
    # name wrapped across lines (or quoted) is still two words in a row.
    folded = _collapse(fold("\n".join(texts)))
    caps = frozenset(w.casefold() for w in _CAPS.findall(folded))
    joined = _QUOTE_MARKS.sub(" ", folded.casefold())
    joined = _DOT.sub(".", _AT.sub("@", joined))
    ws = _WORD.findall(joined)
    for seq in _spaced_words(joined):
        ws.append("\n")  # never a name: keeps runs apart from the text and each other
        ws.extend(seq)
    pos: dict[str, list[int]] = {}
    if starts:
        for i, w in enumerate(ws):
            if w in starts:
                pos.setdefault(w, []).append(i)
    emails = frozenset(e.strip(".'-") for e in _EMAIL.findall(joined))
    handles = tuple(h.strip(".-") for h in _HANDLE.findall(joined))
    return _Text(ws, frozenset(ws), pos, caps, emails, handles, joined, folded)


# --- what a member's name looks like in text --------------------------------------------


def _with_mutations(word: str) -> dict[str, bool]:
    """form → mutated? for a word and its Welsh mutated forms."""
    forms = dict.fromkeys(mutations(word), True)
    forms[word] = False
    return forms


@dataclass(frozen=True)
class _Seq:
    """A run of words whose first word may be mutated (i Ddafydd ap Iwan)."""

    first: tuple[tuple[str, bool], ...]  # (form, mutated?)
    rest: tuple[str, ...]

    @staticmethod
    def of(ws: list[str]) -> _Seq | None:
        if not ws:
            return None
        return _Seq(tuple(_with_mutations(ws[0]).items()), tuple(ws[1:]))

    def find(self, t: _Text) -> bool | None:
        """None if absent, else whether it was found only in a mutated form."""
        n = len(self.rest)
        mutated_hit = False
        for form, mutated in self.first:
            for i in t.pos.get(form, ()):
                if n and (i + 1 >= len(t.words) or t.words[i + 1] != self.rest[0]):
                    continue
                if tuple(t.words[i + 1 : i + 1 + n]) == self.rest:
                    if not mutated:
                        return False
                    mutated_hit = True
        return True if mutated_hit else None


def _edits(word: str) -> set[str]:
    """One substitution, insertion, deletion or adjacent swap, never of the first letter:
    misspellings rarely change it, and requiring it keeps common words ("zones" for
    Jones) from recusing a member."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    out = set()
    for i in range(1, len(word) + 1):
        if i < len(word):
            out.add(word[:i] + word[i + 1 :])
            out.update(word[:i] + c + word[i + 1 :] for c in letters)
            if i + 1 < len(word):
                out.add(word[:i] + word[i + 1] + word[i] + word[i + 2 :])
        out.update(word[:i] + c + word[i:] for c in letters)
    out.discard(word)
    return out


@dataclass(frozen=True)
class _Forms:
    key: str
    display: tuple[str, ...]  # the name's words as configured, for reasons
    words: tuple[str, ...]
    given: dict[str, bool]
    surname: dict[str, bool]
    full: tuple[_Seq, ...]
    compact: dict[str, bool]
    aliases: tuple[tuple[str, _Seq | None, dict[str, bool]], ...]
    conflicts: tuple[tuple[str, str, _Seq | None], ...]
    initials: str
    near: frozenset[str]
    exact: frozenset[str]  # every word form that names this member outright

    @property
    def starts(self) -> frozenset[str]:
        out = {f for s in self.full for f, _ in s.first}
        out.update(f for _, s, _ in self.aliases if s for f, _ in s.first)
        out.update(f for _, _, s in self.conflicts if s for f, _ in s.first)
        for w in self.initials:
            out.add(w)
        return frozenset(out)


@functools.lru_cache(maxsize=256)
def _forms(m: CommitteeMember) -> _Forms:
    nw = words(normalise(m.name))
    shown = words(m.name)
    display = tuple(shown) if len(shown) == len(nw) else tuple(w.title() for w in nw)
    given = _with_mutations(nw[0]) if nw else {}
    surname = _with_mutations(nw[-1]) if len(nw) > 1 else {}
    full: list[_Seq] = []
    compact: dict[str, bool] = {}
    if len(nw) > 1:
        for seq in (nw, [nw[0], nw[-1]]):
            s = _Seq.of(seq)
            if s and s not in full:
                full.append(s)
        for c in ("".join(nw), "".join(reversed(nw))):
            for form, mutated in _with_mutations(c).items():
                compact.setdefault(form, mutated)
    aliases = []
    for alias in m.aliases:
        aw = words(normalise(alias))
        joined = _with_mutations("".join(aw)) if len(aw) > 1 else {}
        aliases.append((alias, _Seq.of(aw), joined))
    conflicts = []
    for conflict in m.conflicts:
        c = normalise(conflict).strip().lstrip("@")
        conflicts.append((conflict, c, None if _DOMAIN.fullmatch(c) else _Seq.of(words(c))))
    near: set[str] = set()
    if len(nw) > 1 and len(nw[-1]) >= 5:
        for variant in _edits(nw[-1]):
            near.add(variant)
            near.update(mutations(variant))
    exact = set(given) | set(surname) | set(compact)
    for _, seq, joined in aliases:
        exact.update(joined)
        if seq is not None:
            exact.update(f for f, _ in seq.first)
            exact.update(seq.rest)
    return _Forms(
        key=m.key,
        display=display,
        words=tuple(nw),
        given=given,
        surname=surname,
        full=tuple(full),
        compact=compact,
        aliases=tuple(aliases),
        conflicts=tuple(conflicts),
        initials="".join(w[0] for w in nw) if len(nw) > 1 else "",
        near=frozenset(near),
        exact=frozenset(exact),
    )


def _compact(s: str) -> str:
    return "".join(words(normalise(s)))


def _mut(mutated: bool) -> str:
    return ", mutated" if mutated else ""


def _hit(forms: dict[str, bool], wordset: frozenset[str]) -> bool | None:
    """None if no form is present, False if the plain form is, True if only mutated."""
    found = [mutated for form, mutated in forms.items() if form in wordset]
    if not found:
        return None
    return all(found)


def _weak_hit(forms: dict[str, bool], t: _Text) -> bool | None:
    """Like _hit, but a mutated form alone counts only where it is capitalised."""
    present = [(form, mutated) for form, mutated in forms.items() if form in t.wordset]
    if any(not mutated for _, mutated in present):
        return False
    if any(t.capitalised(form) for form, _ in present):
        return True
    return None


# --- the match rules ---------------------------------------------------------------------


def _member_rules(
    m: CommitteeMember, f: _Forms, t: _Text, others_exact: frozenset[str]
) -> list[tuple[str, bool]]:
    """(reason, possible) for each way member m is named in text t."""
    found: list[tuple[str, bool]] = []
    name = " ".join(f.display)
    multi = len(f.words) > 1
    for seq in f.full:
        hit = seq.find(t)
        if hit is not None:
            found.append((f'full name "{name}"{_mut(hit)}', False))
            break
    for alias, seq, joined in f.aliases:
        hit = seq.find(t) if seq else None
        if hit is None:
            hit = _hit(joined, t.wordset)
        if hit is not None:
            found.append((f'alias "{alias}"{_mut(hit)}', False))
    for addr in m.addresses:
        if addr.lower() in t.emails:
            found.append((f"address {addr}", False))
    hit = _hit(f.compact, t.wordset)
    if hit is not None:
        found.append((f'full name "{name}" written as one word{_mut(hit)}', False))
    compact_plain = [c for c, mutated in f.compact.items() if not mutated]
    alias_compacts = {_compact(a) for a in m.aliases} | {a.split("@")[0] for a in m.addresses}
    name_parts = [p for p in (f.words[0], f.words[-1]) if len(p) >= 3] if f.words else []
    for handle in t.handles:
        h = _compact(handle)
        if not h:
            continue
        if h in alias_compacts:
            found.append(("handle matching an alias or address", False))
        elif multi and any(c in h for c in compact_plain):
            found.append(("handle containing the full name", False))
        elif any(p in h for p in name_parts):
            found.append(("handle containing a name (possible match)", True))
    for conflict, c, seq in f.conflicts:
        if seq is None:  # a domain
            pattern = rf"(?<![\w.-]){re.escape(c)}(?![\w-])"
            if any(e.endswith("@" + c) or e.endswith("." + c) for e in t.emails) or re.search(
                pattern, t.flat
            ):
                found.append((f'standing conflict "{conflict}"', False))
        elif c in t.emails or seq.find(t) is not None:
            found.append((f'standing conflict "{conflict}"', False))
    # Fail closed: the possible matches.
    if multi:
        given, surname = f.display[0], f.display[-1]
        hit = _weak_hit(f.given, t)
        if hit is not None:
            found.append((f'given name "{given}"{_mut(hit)} (possible match)', True))
        hit = _weak_hit(f.surname, t)
        if hit is not None:
            found.append((f'surname "{surname}"{_mut(hit)} (possible match)', True))
        initials = f.initials
        if initials in t.caps or (
            len(initials) > 1
            and _Seq(((initials[0], False),), tuple(initials[1:])).find(t) is not None
        ):
            found.append((f'initials "{initials.upper()}" (possible match)', True))
        # A near miss that is another member's name names that member, not this one.
        near = (t.wordset & f.near) - others_exact - f.exact
        if any(t.capitalised(w) for w in sorted(near)[:20]):
            found.append((f'near miss of surname "{surname}" (possible match)', True))
    else:
        hit = _hit(f.given, t.wordset)
        if hit is not None:
            found.append((f'name "{f.display[0] if f.display else m.name}"{_mut(hit)}', False))
    domains = {a.split("@")[1] for a in m.addresses}
    for email in t.emails:
        local, _, domain = email.partition("@")
        if domain in domains and not m.owns(email) and any(p in local for p in name_parts):
            found.append(("an address at the member's domain (possible match)", True))
            break
    return found


def find_named_members(report: Message, committee: Iterable[CommitteeMember]) -> list[NamedMatch]:
    """The members a report names (or may name), one match each, definite reasons first."""
    return match_texts(scan(report).texts, committee)


def match_texts(texts: Iterable[str], committee: Iterable[CommitteeMember]) -> list[NamedMatch]:
    members = list(committee)
    forms = [_forms(m) for m in members]
    starts = frozenset().union(*(f.starts for f in forms)) if forms else frozenset()
    t = _prepare(texts, starts)
    out = []
    for i, (m, f) in enumerate(zip(members, forms, strict=True)):
        others = frozenset().union(*(g.exact for j, g in enumerate(forms) if j != i))
        found = _member_rules(m, f, t, others)
        if not found:
            continue
        definite = [r for r, possible in found if not possible]
        reasons = list(dict.fromkeys(definite or [r for r, _ in found]))
        out.append(NamedMatch(m.key, "; ".join(reasons[:3]), possible=not definite))
    return out


def sender_matches(
    addresses: Iterable[str], committee: Iterable[CommitteeMember]
) -> list[NamedMatch]:
    """Members who sent the report themselves (any of their addresses)."""
    addrs = {a.lower() for a in addresses if a}
    return [
        NamedMatch(m.key, "sent the report", possible=False)
        for m in committee
        if addrs & {a.lower() for a in m.addresses}
    ]


def scan_report(
    raw: bytes,
    committee: tuple[CommitteeMember, ...],
    max_chars: int = MAX_CHARS,
    max_parts: int = MAX_PARTS,
) -> ScanOutcome:
    """Parse, read and match a raw report within budgets. Top-level and picklable, to be
    run in a worker process; over_budget means the caller must fail closed."""
    s = scan_bytes(raw, max_chars=max_chars, max_parts=max_parts)
    if s.over_budget:
        return ScanOutcome((), s.unscannable, True)
    matches = match_texts(s.texts, committee)
    return ScanOutcome(tuple(matches), s.unscannable, False)
