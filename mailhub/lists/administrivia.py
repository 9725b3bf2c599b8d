"""Administrivia: a post to the list that is only a member command ("unsubscribe", "mute",
"gadael os gwelwch yn dda"), sent to the list by mistake. Such a post is held, not sent to
every member, and its writer is told how to do it through `LIST-request@D` (GNU Mailman's
`administrivia` rule is the model).

The test is narrow on purpose, so that a real post is never caught: the whole subject (after
`Re:` and `[List]` prefixes), or the first line a person wrote in a short text, must be the
command and nothing else but polite words. "Help with translation memory" or a post that
discusses unsubscribing is a post. Pure, but for `own_text`, which reads a parsed message.
"""

from __future__ import annotations

import re
from email.message import Message

from mailhub.lists.replies import new_lines, strip_html_quote
from mailhub.lists.requests import COMMAND_WORDS, LANGUAGE_SETTINGS
from mailhub.parsing import html_to_text, part_text

# A command message is short: more lines than this of a person's own text is a letter.
MAX_LINES = 5
# A text part larger than this is not read for a command (it is not one), so the check
# never decodes a large part on the event loop. Outlook's HTML of a one-line reply with
# its quoted thread fits well within it.
MAX_PART_BYTES = 128 * 1024

# Words of the member vocabulary that are everyday subjects on their own ("Post", "Mail",
# "Digest"): alone they are not taken for commands here; "digest on" and the like are.
_EVERYDAY = frozenset({"mail", "post", "digest", "crynodeb"})
_EXTRA = {
    # English and Welsh ways of asking to leave that -request need not know.
    "remove me": "leave",
    "take me off": "leave",
    "un subscribe": "leave",
    "unsub": "leave",
    "datdanysgrifio": "leave",
    "dad tanysgrifio": "leave",
    "dadtanysgrifio": "leave",
    "digest mode": "digest-on",
}
COMMANDS: dict[str, str] = {
    # The language commands ("iaith Gymraeg", "y ddwy iaith", "dwyieithog") are everyday
    # subjects on lists about Welsh and bilingual work: a post, never administrivia.
    **{
        words: verb
        for words, verb in COMMAND_WORDS.items()
        if words not in _EVERYDAY and verb not in LANGUAGE_SETTINGS
    },
    **_EXTRA,
}
# Commands a person asks for themselves ("unsubscribe me", "dad-danysgrifio fi"): only these
# take "me"/"fi" after them, so "help me" is not taken for the command "help".
_SELF = frozenset({"leave", "join"})

# Polite words around a command, as word sequences after punctuation is gone.
_LEADING = ("please", "pls", "plz", "kindly", "plis", "hi", "hello", "helo", "shwmae")
_TRAILING = (
    "please",
    "pls",
    "plz",
    "thanks",
    "thank you",
    "thankyou",
    "cheers",
    "plis",
    "diolch",
    "diolch yn fawr",
    "os gwelwch yn dda",
    "os gwelwch chi n dda",
    "from this list",
    "from the list",
    "from list",
    "from this mailing list",
    "from the mailing list",
    "o r rhestr",
    "o r rhestr hon",
    "o r rhestr yma",
)
_ME = ("me", "fi")
# A person's first line may be a greeting before the command.
_GREETING = re.compile(
    r"^(hi|hello|helo|hiya|dear .{1,40}|shwmae|s mae|bore da|prynhawn da|noswaith dda)$"
)
_PREFIX = re.compile(
    r"^\s*(?:(?:re|fwd?|aw|sv|ynt|ateb)\s*(?:\[\d+\])?\s*:\s*|\[[^\]]{0,100}\]\s*)", re.IGNORECASE
)
_NOT_WORD = re.compile(r"[^\w\s]")


def member_command(subject: str, text: str) -> str | None:
    """The member command a post is (its verb, as lists.requests names it: "leave", "mute",
    "help", "digest-on"...), or None when it is a real post. Pure.

    A post is a command when its subject, without reply and list prefixes, is only a command,
    or when the text its writer typed (quotes and signature skipped) is short and its first
    line, after a greeting, is only a command."""
    lines = new_lines(text)
    short = 0 < len(lines) <= MAX_LINES
    verb = command_line(_without_prefixes(subject))
    # "Help" or "Help please" is also how a real question is titled: only with a short
    # text is it the command. (A leave asked in the subject often carries a long
    # disclaimer, so the other commands hold whatever the text.)
    if verb and (verb != "help" or short or not lines):
        return verb
    if not short:
        return None
    first = 1 if len(lines) > 1 and _GREETING.match(_words(lines[0])) else 0
    return command_line(lines[first])


def command_line(line: str) -> str | None:
    """The verb when `line` is a command and nothing more than polite words; else None."""
    words = _words(line).split()
    if not words or len(words) > 12:
        return None
    while True:
        before = len(words)
        words = _strip(words, _LEADING, at_start=True)
        words = _strip(words, _TRAILING, at_start=False)
        if len(words) > 1 and words[-1] in _ME and COMMANDS.get(" ".join(words[:-1])) in _SELF:
            words = words[:-1]
        if len(words) == before:
            break
    return COMMANDS.get(" ".join(words))


def own_text(msg: Message) -> str:
    """The text a person wrote at the top of a post: its first plain part, or its first
    HTML part read as text without the quoted original; '' when the part is too large to
    be a command (it is then not read at all)."""
    plain: Message | None = None
    html: Message | None = None
    try:
        for part in msg.walk():
            if part.is_multipart():
                continue
            if (part.get("Content-Disposition") or "").lower().startswith("attachment"):
                continue
            ctype = part.get_content_type()
            if ctype == "text/plain" and plain is None:
                plain = part
            elif ctype == "text/html" and html is None:
                html = part
    except Exception:  # noqa: BLE001 - broken MIME: no command read, the post goes on as one
        return ""
    chosen = plain or html
    if chosen is None or len(str(chosen.get_payload())) > MAX_PART_BYTES:
        return ""
    if chosen is html:
        try:
            payload = chosen.get_payload(decode=True) or b""
            source = payload.decode(chosen.get_content_charset() or "utf-8", "replace")
        except (LookupError, UnicodeError, AttributeError, TypeError):
            return ""
        return html_to_text(strip_html_quote(source))
    return part_text(chosen)


def _words(line: str) -> str:
    return " ".join(_NOT_WORD.sub(" ", line.lower()).split())


def _without_prefixes(subject: str) -> str:
    for _ in range(20):  # "Re: [List] Re: Fwd: ..." - each pass removes one prefix
        shorter = _PREFIX.sub("", subject, count=1)
        if shorter == subject:
            break
        subject = shorter
    return subject


def _strip(words: list[str], phrases: tuple[str, ...], *, at_start: bool) -> list[str]:
    for phrase in sorted(phrases, key=len, reverse=True):
        p = phrase.split()
        if len(words) > len(p) and (words[: len(p)] if at_start else words[-len(p) :]) == p:
            return words[len(p) :] if at_start else words[: -len(p)]
    return words
