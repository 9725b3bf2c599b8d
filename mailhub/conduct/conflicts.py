"""Who is named in a report: the conflict-of-interest scan (pure, no I/O).

The promise is that a committee member named in a report never sees it. A miss
leaks a report to the person it is about; a false alarm only means another member
handles it (and `#readmit` can undo it). So the scan fails closed: it reads every
piece of text it can find, undoes common disguises, and treats a possible match
as a match, marked `possible` so that it can be lifted.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email.message import Message

from mailhub.conduct.config import CommitteeMember
from mailhub.parsing import header_values, parse, part_text

ADDRESS_HEADERS = ("from", "reply-to", "to", "cc", "sender", "resent-from", "resent-to")


@dataclass(frozen=True)
class NamedMatch:
    """A member named in a report, and why: `possible` matches may be lifted by `#readmit`."""

    member: str  # CommitteeMember.key
    reason: str
    possible: bool


@dataclass(frozen=True)
class Scan:
    """Everything readable in a message, and the parts that could not be read."""

    texts: tuple[str, ...]
    unscannable: tuple[str, ...]  # content types of parts no one can search by machine


# --- reading every piece of text -------------------------------------------------------

_HTML_ATTRS = re.compile(r"""\b(?:alt|title|href|aria-label)\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.I)


def _ctype(part: Message) -> str:
    try:
        return part.get_content_type()
    except Exception:  # noqa: BLE001 - a broken Content-Type reads as plain text
        return "text/plain"


def _filename(part: Message) -> str:
    try:
        return part.get_filename() or ""
    except Exception:  # noqa: BLE001
        return ""


def _headers(msg: Message) -> Iterator[str]:
    yield from header_values(msg, "subject")
    for name in ADDRESS_HEADERS:
        yield from header_values(msg, name)


def _raw_payload_text(part: Message) -> str:
    try:
        payload = part.get_payload(decode=True)
        charset = part.get_content_charset("utf-8") or "utf-8"
        return payload.decode(charset, "replace") if isinstance(payload, bytes) else ""
    except Exception:  # noqa: BLE001 - unknown charset or broken encoding
        return ""


def _walk(part: Message, texts: list[str], unscannable: list[str], depth: int = 0) -> None:
    if depth > 20:  # a pathological nesting: what is below cannot be read
        unscannable.append("message nested too deeply")
        return
    ctype = _ctype(part)
    name = _filename(part)
    if name:
        texts.append(name)
    if ctype == "message/rfc822" or part.is_multipart():
        children = part.get_payload()
        if ctype == "message/rfc822" and not isinstance(children, list):
            # A forwarded message sent encoded (base64/QP): decode it and read it too.
            payload = part.get_payload(decode=True)
            children = [parse(payload)] if isinstance(payload, bytes) else None
        if not isinstance(children, list):
            unscannable.append(ctype)
            return
        for child in children:
            if not isinstance(child, Message):
                continue
            if ctype == "message/rfc822":
                texts.extend(_headers(child))
            try:
                _walk(child, texts, unscannable, depth + 1)
            except Exception:  # noqa: BLE001 - one broken part: flag it, read the rest
                unscannable.append("unreadable part")
        return
    if ctype.startswith("text/"):
        texts.append(part_text(part))
        if ctype == "text/html":
            # Names can hide in attributes a reader sees on hover (mailto:, alt text).
            html = _raw_payload_text(part)
            texts.extend(a or b for a, b in _HTML_ATTRS.findall(html))
        return
    unscannable.append(ctype)


def scan(report: Message) -> Scan:
    texts: list[str] = list(_headers(report))
    unscannable: list[str] = []
    try:
        _walk(report, texts, unscannable)
    except Exception:  # noqa: BLE001 - broken MIME: what was not read cannot be vouched for
        unscannable.append("unreadable MIME structure")
    return Scan(tuple(t for t in texts if t), tuple(unscannable))


# --- normalising text so disguises fall away --------------------------------------------

_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u206a-\u206f\ufeff]"
)
# Look-alike letters from other scripts (Unicode confusables, the common ones) → Latin.
_CONFUSABLES = str.maketrans(
    {
        # Cyrillic
        "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o",
        "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i",
        "ј": "j", "ԁ": "d", "һ": "h", "ԛ": "q", "ԝ": "w", "ӏ": "l", "ь": "b", "г": "r",
        "А": "a", "В": "b", "Е": "e", "К": "k", "М": "m", "Н": "h", "О": "o", "Р": "p",
        "С": "c", "Т": "t", "У": "y", "Х": "x", "Ѕ": "s", "І": "i", "Ј": "j", "Ӏ": "l",
        # Greek
        "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o",
        "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "γ": "y", "ω": "w",
        "Α": "a", "Β": "b", "Ε": "e", "Ζ": "z", "Η": "h", "Ι": "i", "Κ": "k", "Μ": "m",
        "Ν": "n", "Ο": "o", "Ρ": "p", "Τ": "t", "Υ": "y", "Χ": "x",
        # Latin look-alikes NFKD leaves alone
        "ı": "i", "ł": "l", "ø": "o", "đ": "d", "ß": "ss", "æ": "ae", "œ": "oe",
    }
)  # fmt: skip
_AT = re.compile(
    r"\s*(?:[\[({<]\s*(?:at|@)\s*[\])}>]|\s(?:at)\s(?=[\w-]+\s*(?:\.|[\[({<]?\s*dot)))\s*", re.I
)
_DOT = re.compile(r"\s*[\[({<]\s*(?:dot|\.)\s*[\])}>]\s*|\s+dot\s+(?=[a-z]{2,}\b)", re.I)


def normalise(text: str) -> str:
    """Lower-case plain Latin letters: accents, invisible characters, look-alikes removed."""
    text = _INVISIBLE.sub("", text).translate(_CONFUSABLES)
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    # Compatibility forms (full-width letters, ligatures) are folded by NFKD above.
    text = text.casefold().translate(_CONFUSABLES)
    # `ada [at] example [dot] net`, `ada (at) example.net`, `ada at example dot net`
    return _DOT.sub(".", _AT.sub("@", text))


def words(text: str) -> list[str]:
    """Unicode words (letters and digits); `_`, apostrophes and punctuation separate them."""
    return re.findall(r"[^\W_]+", text)


_EMAIL = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")
_HANDLE = re.compile(r"(?<![\w.+'-])@([\w.-]+)")


# --- the match rules ---------------------------------------------------------------------


def _one_edit(a: str, b: str) -> bool:
    """True if a and b differ by one substitution, insertion, deletion or adjacent swap."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diffs = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diffs) == 1:
            return True
        i, j = diffs[0], diffs[-1]
        return len(diffs) == 2 and j == i + 1 and a[i] == b[j] and a[j] == b[i]
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


def _contains(haystack: list[str], needle: list[str]) -> bool:
    n = len(needle)
    if not n:
        return False
    return any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


@dataclass(frozen=True)
class _Text:
    words: list[str]
    wordset: frozenset[str]
    emails: frozenset[str]
    handles: tuple[str, ...]
    flat: str  # the normalised text, for domains


def _prepare(texts: Iterable[str]) -> _Text:
    # One text: quoted lines lose their `>` marks and line breaks become spaces, so a
    # name wrapped across lines (or quoted) is still two words in a row.
    joined = normalise("\n".join(texts))
    joined = re.sub(r"(?m)^[ \t>|]+", " ", joined)
    ws = words(joined)
    emails = frozenset(e.strip(".'-") for e in _EMAIL.findall(joined))
    handles = tuple(h.strip(".-") for h in _HANDLE.findall(joined))
    return _Text(ws, frozenset(ws), emails, handles, joined)


def _is_domain(s: str) -> bool:
    return bool(re.fullmatch(r"[\w-]+(?:\.[\w-]+)+", s))


def _compact(s: str) -> str:
    return "".join(words(normalise(s)))


def _member_rules(m: CommitteeMember, t: _Text) -> list[tuple[str, bool]]:
    """(reason, possible) for each way member m is named in text t."""
    found: list[tuple[str, bool]] = []
    name_words = words(normalise(m.name))
    given, surname = (name_words[0], name_words[-1]) if name_words else ("", "")
    if len(name_words) > 1 and (
        _contains(t.words, name_words) or _contains(t.words, [given, surname])
    ):
        found.append((f'full name "{m.name}"', False))
    for alias in m.aliases:
        aw = words(normalise(alias))
        if _contains(t.words, aw) or (len(aw) > 1 and "".join(aw) in t.wordset):
            found.append((f'alias "{alias}"', False))
    for addr in m.addresses:
        if addr.lower() in t.emails:
            found.append((f"address {addr}", False))
    compact_forms = {"".join(name_words), "".join(reversed(name_words))} - {""}
    if len(name_words) > 1 and compact_forms & t.wordset:
        found.append((f'full name "{m.name}" written as one word', False))
    for handle in t.handles:
        h = _compact(handle)
        aliases = {_compact(a) for a in m.aliases} | {a.split("@")[0] for a in m.addresses}
        if h and (h in aliases or any(c in h for c in compact_forms if len(name_words) > 1)):
            found.append((f"handle @{handle}", False))
        elif h and any(len(p) >= 3 and p in h for p in {given, surname}):
            found.append((f"handle @{handle} (possible match)", True))
    for conflict in m.conflicts:
        c = normalise(conflict).strip().lstrip("@")
        if _is_domain(c):
            pattern = rf"(?<![\w.-]){re.escape(c)}(?![\w-])"
            if any(e.endswith("@" + c) or e.endswith("." + c) for e in t.emails) or re.search(
                pattern, t.flat
            ):
                found.append((f'standing conflict "{conflict}"', False))
        elif c in t.emails or _contains(t.words, words(c)):
            found.append((f'standing conflict "{conflict}"', False))
    # Fail closed: the possible matches.
    if len(name_words) > 1:
        if given in t.wordset:
            found.append((f'given name "{given}" (possible match)', True))
        if surname in t.wordset:
            found.append((f'surname "{surname}" (possible match)', True))
        initials = [w[0] for w in name_words]
        if "".join(initials) in t.wordset or _contains(t.words, initials):
            found.append((f'initials "{"".join(initials).upper()}" (possible match)', True))
        if len(surname) >= 5:
            # Misspellings rarely change the first letter; requiring it keeps common
            # words ("zones" for Jones) from recusing a member.
            near = sorted(w for w in t.wordset if w[:1] == surname[0] and _one_edit(w, surname))
            if near:
                found.append((f'"{near[0]}", close to surname "{surname}" (possible match)', True))
    elif given and given in t.wordset:
        found.append((f'name "{given}"', False))
    domains = {a.split("@")[1] for a in m.addresses}
    for email in sorted(t.emails):
        local, _, domain = email.partition("@")
        own = any(email == a.lower() for a in m.addresses)
        if (
            not own
            and domain in domains
            and any(len(p) >= 3 and p in local for p in {given, surname})
        ):
            found.append((f"address {email} at the member's domain (possible match)", True))
    return found


def find_named_members(report: Message, committee: Iterable[CommitteeMember]) -> list[NamedMatch]:
    """The members a report names (or may name), one match each, definite reasons first."""
    return match_texts(scan(report).texts, committee)


def match_texts(texts: Iterable[str], committee: Iterable[CommitteeMember]) -> list[NamedMatch]:
    t = _prepare(texts)
    out = []
    for m in committee:
        found = _member_rules(m, t)
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
