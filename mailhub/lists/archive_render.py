"""What the archive pages show of a post: pure functions, no I/O.

Everything shown comes from mail an outsider may have written, so nothing of it is
trusted: text is escaped by the templates, and a post's HTML is sanitised here with nh3
(a maintained sanitiser, the Rust `ammonia`) against an allow-list of formatting tags,
then rewritten by us (images become links that load nothing until followed, links are
marked external), then sanitised again, so whatever our rewrite does, what reaches the
page has passed the allow-list last.

No email address appears on any page (`redact`): the archive shows names only, and on a
hidden list an author as "Name via List", as the list's own copies name them.

Reading a raw post (its HTML part, its attachments) is MIME parsing of untrusted bytes:
`message_view` and `attachment` are top-level functions over picklable values so that the
pages run large posts in the bounded content worker (mailhub.content.run_bounded).
"""

from __future__ import annotations

import re
import time
import unicodedata
from dataclasses import dataclass, replace
from email.message import Message
from html import escape
from html.parser import HTMLParser
from urllib.parse import quote

import nh3
from markupsafe import Markup

from mailhub.content import read_message
from mailhub.lists.config import ListConfig
from mailhub.lists.headers import poster_name, stripped_copy, via
from mailhub.lists.post_parts import content_type, split
from mailhub.messages import split_raw

# --- addresses -----------------------------------------------------------------------------

# An address as people write one, or percent-encoded in a URL. Every quantifier is bounded,
# so a search costs at most ~64 steps a character whatever the text (no quadratic blow-up
# on a long run of letters with no "@").
_ADDRESS = re.compile(
    r"([\w.!#$%&'*+/=?^`{|}~\-]{1,64})(?:@|%40)[\w\-]{1,63}(?:\.[\w\-]{1,63}){0,10}",
    re.IGNORECASE,
)
_ADDRESS_BYTES = re.compile(
    rb"([\w.!#$%&'*+/=?^`{|}~\-]{1,64})(?:@|%40)[\w\-]{1,63}(?:\.[\w\-]{1,63}){0,10}",
    re.IGNORECASE,
)
HIDDEN_DOMAIN = "…"
# The same, in a search snippet whose matched words are between \x0e and \x0f.
_MARKED_ADDRESS = re.compile(
    r"([\w.!#$%&'*+/=?^`{|}~\-\x0e\x0f]{1,66})(?:@|%40)[\x0e\x0f]?"
    r"[\w\-\x0e\x0f]{1,65}(?:\.[\w\-\x0e\x0f]{1,65}){0,10}",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """`text` with every email address cut to its local part: "ann@…"."""
    if "@" not in text and "%40" not in text:
        return text
    return _ADDRESS.sub(lambda m: f"{m.group(1)}@{HIDDEN_DOMAIN}", text)


def redact_bytes(data: bytes, keep: tuple[bytes, ...] = ()) -> bytes:
    """As `redact`, over raw bytes (an mbox's), in ASCII: "ann@...", but for addresses
    that end in one of `keep` (the service's own domains: the list's address). Text inside
    base64 is not seen; nor is it by anyone reading the bytes."""
    if b"@" not in data and b"%40" not in data:
        return data

    def cut(m: re.Match[bytes]) -> bytes:
        if keep and m.group().lower().endswith(keep):
            return m.group()
        return m.group(1) + b"@..."

    return _ADDRESS_BYTES.sub(cut, data)


def list_title(cfg: ListConfig, lang: str) -> str:
    """The list's name in the page's language (its Welsh name when there is one)."""
    if lang == "cy" and cfg.display_name_cy:
        return cfg.display_name_cy
    return cfg.display_name


def list_description(cfg: ListConfig, lang: str) -> str:
    if lang == "cy" and cfg.description_cy:
        return cfg.description_cy
    return cfg.description


def shown_author(name: str, cfg: ListConfig, lang: str) -> str:
    """How a page names a post's author: their name ("A member" when they gave none, or
    only an address); on a hidden list "Name via List", as the list's copies say it."""
    if cfg.addresses == "hidden":
        return via(name, replace(cfg, language=lang, display_name=list_title(cfg, lang)))
    return poster_name(name, lang)


def shown_subject(subject: str, lang: str) -> str:
    subject = redact(subject.strip())
    return subject or NO_SUBJECT[lang]


NO_SUBJECT = {"cy": "(dim pwnc)", "en": "(no subject)"}


def snippet(text: str) -> Markup:
    """A search hit's snippet as HTML: the text escaped, its matched terms (between \\x02
    and \\x03, as the index marks them) in <mark>."""
    text = text.replace("\x02", "\x0e").replace("\x03", "\x0f")
    # An address the marks cut into ("<mark>ann</mark>@example.net") is still one: the
    # marks inside it go with its domain.
    text = _MARKED_ADDRESS.sub(lambda m: re.sub("[\x0e\x0f]", "", m.group(1)) + "@…", text)
    out = escape(text)
    out = out.replace("\x0e", "<mark>").replace("\x0f", "</mark>")
    # Balance the marks whatever the index gave (a cut snippet may open one and never close).
    opened = out.count("<mark>") - out.count("</mark>")
    return Markup(out + "</mark>" * max(opened, 0))


# --- HTML ----------------------------------------------------------------------------------

# Formatting only. Headings become paragraphs (the page has one h1, and a post's headings
# are not the page's outline); no script, style, iframe, object, form, svg, math, img.
TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "dd", "del", "div",
    "dl", "dt", "em", "hr", "i", "ins", "kbd", "li", "ol", "p", "pre", "q", "s", "samp",
    "small", "span", "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead",
    "tr", "u", "ul",
}  # fmt: skip
HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
# Removed with everything inside them (their text is not meant to be read).
DROP_WITH_CONTENT = {
    "script", "style", "iframe", "object", "embed", "svg", "math", "form", "template",
    "noscript", "textarea", "select", "title", "head", "frame", "frameset", "audio", "video",
}  # fmt: skip
ATTRIBUTES = {
    "a": {"href", "title"},
    "abbr": {"title"},
    "img": {"src", "alt"},
    "ol": {"start"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "*": {"lang", "dir"},
}
SCHEMES = {"http", "https"}
LINK_REL = "external nofollow noopener noreferrer"
EXTERNAL = {"cy": "(allanol)", "en": "(external)"}
SHOW_IMAGE = {"cy": "Dangos y ddelwedd", "en": "Show image"}
IMAGE = {"cy": "Delwedd", "en": "Image"}
VOID = {"br", "hr", "img"}


def _first_pass(html: str) -> str:
    return nh3.clean(
        html,
        tags=TAGS | HEADINGS | {"img"},
        clean_content_tags=DROP_WITH_CONTENT,
        attributes=ATTRIBUTES,
        url_schemes=SCHEMES,
        url_relative="deny",
        link_rel=None,
        strip_comments=True,
    )


def _last_pass(html: str) -> str:
    attributes = {k: v for k, v in ATTRIBUTES.items() if k != "img"}
    return nh3.clean(
        html,
        tags=TAGS,
        clean_content_tags=DROP_WITH_CONTENT,
        attributes=attributes,
        allowed_classes={"span": {"external"}},
        url_schemes=SCHEMES,
        url_relative="deny",
        link_rel=LINK_REL,
        strip_comments=True,
    )


class _Rewrite(HTMLParser):
    """Over nh3's output (well-formed, allow-listed): images → links, links marked
    external, addresses redacted from text and URLs, headings → paragraphs."""

    def __init__(self, lang: str) -> None:
        super().__init__(convert_charrefs=True)
        self.lang = lang
        self.out: list[str] = []
        self.links: list[bool] = []  # open <a>s: whether each has an href

    def _attrs(self, attrs: list[tuple[str, str | None]]) -> str:
        return "".join(f' {n}="{escape(redact(v or ""))}"' for n, v in attrs)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self._image(dict(attrs))
            return
        if tag in HEADINGS:
            tag, attrs = "p", []
        if tag == "a":
            self.links.append(any(n == "href" and v for n, v in attrs))
        self.out.append(f"<{tag}{self._attrs(attrs)}>")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if tag in HEADINGS:
            tag = "p"
        if tag == "a" and self.links and self.links.pop():
            self.out.append(f' <span class="external">{EXTERNAL[self.lang]}</span>')
        self.out.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        self.out.append(escape(redact(data)))

    def _image(self, attrs: dict[str, str | None]) -> None:
        """An image loads nothing: it becomes a link to it, "Show image: ALT", which the
        reader may follow (inside another link, or with no usable source: its words)."""
        alt = " ".join((attrs.get("alt") or "").split())
        src = attrs.get("src") or ""
        if src and not self.links:
            label = f"{SHOW_IMAGE[self.lang]}: {alt}" if alt else SHOW_IMAGE[self.lang]
            self.out.append(
                f'<a href="{escape(redact(src))}">{escape(redact(label))}'
                f' <span class="external">{EXTERNAL[self.lang]}</span></a>'
            )
        else:
            label = f"{IMAGE[self.lang]}: {alt}" if alt else IMAGE[self.lang]
            self.out.append(f"[{escape(redact(label))}]")


def sanitise_html(html: str, lang: str) -> str:
    """A post's HTML as safe to put in a page: formatting only, links marked external and
    opened with no referrer, no image loaded, no address."""
    rewrite = _Rewrite(lang)
    rewrite.feed(_first_pass(html))
    rewrite.close()
    return _last_pass("".join(rewrite.out)).strip()


def text_of_html(html: str) -> str:
    """The words of some sanitised HTML (for a test's or a summary's eye)."""
    return re.sub(r"<[^>]*>", "", html)


# --- a raw post ----------------------------------------------------------------------------

# Content types an attachment is served as: what browsers show without running anything.
# Everything else is application/octet-stream (a download).
SAFE_TYPES = {
    "image/png": b"\x89PNG\r\n\x1a\n",
    "image/jpeg": b"\xff\xd8\xff",
    "image/gif": b"GIF8",
    "application/pdf": b"%PDF-",
    "text/plain": b"",
}
OCTET_STREAM = "application/octet-stream"
MAX_FILENAME = 120


@dataclass(frozen=True)
class AttachmentInfo:
    number: int  # 1, 2, … in the order the post holds them (the URL's N)
    filename: str
    content_type: str  # the type it is served as
    size: int  # bytes, decoded


@dataclass(frozen=True)
class MessageView:
    html: str  # the sanitised HTML part ('' when the post has none)
    attachments: tuple[AttachmentInfo, ...]
    problem: str = ""  # why the post could not be read ('' when it could)


@dataclass(frozen=True)
class Download:
    filename: str
    content_type: str
    data: bytes


def _payload(part: Message) -> bytes:
    if part.get_content_maintype() == "message":
        inner = part.get_payload()
        if isinstance(inner, list) and inner:
            return inner[0].as_bytes()
        return str(inner).encode("utf-8", "replace")
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def _text(part: Message) -> str:
    data = _payload(part)
    charset = part.get_content_charset() or "utf-8"
    try:
        return data.decode(charset, "replace")
    except LookupError:  # a charset Python does not know
        return data.decode("utf-8", "replace")


def served_type(declared: str, data: bytes) -> str:
    """The content type an attachment is served as: its declared one when that is on the
    safe list and (for binary types) its first bytes agree; else octet-stream."""
    declared = declared.lower()
    if declared not in SAFE_TYPES or not data.startswith(SAFE_TYPES[declared]):
        return OCTET_STREAM
    return "text/plain; charset=utf-8" if declared == "text/plain" else declared


def safe_filename(name: str | None, number: int) -> str:
    """A name to save an attachment as: no path, no control characters, no address."""
    name = unicodedata.normalize("NFC", name or "")
    name = re.sub(r"[\x00-\x1f\x7f\u2028\u2029\u0085/\\:\"*?<>|]+", "_", name)
    name = redact(name).strip(" .")
    if not name:
        return f"attachment-{number}"
    if len(name) > MAX_FILENAME:
        stem, dot, ext = name.rpartition(".")
        ext = ext[:16] if dot else ""
        name = (stem if dot else name)[: MAX_FILENAME - len(ext) - 1] + (f".{ext}" if ext else "")
    return name


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII fallback name and the real one as RFC 6266/8187 says."""
    fallback = filename.encode("ascii", "replace").decode("ascii").replace("?", "_")
    fallback = re.sub(r'["\\%]', "_", fallback)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def message_view(raw: bytes, lang: str) -> MessageView:
    """The parts of a post its page shows beside its text: the HTML part sanitised, the
    attachments listed. Runs in the content worker for a large post."""
    msg, why = read_message(raw)
    if msg is None:
        return MessageView("", (), why)
    found = split(msg)
    html_part, parts = found.html, found.attachments
    html = sanitise_html(_text(html_part), lang) if html_part is not None else ""
    infos = []
    for number, part in enumerate(parts, 1):
        data = _payload(part)
        ctype = served_type(content_type(part), data)
        if ctype.startswith("text/plain"):
            data = _text(part).encode("utf-8")
        infos.append(
            AttachmentInfo(number, safe_filename(part.get_filename(), number), ctype, len(data))
        )
    return MessageView(html, tuple(infos))


def attachment(raw: bytes, number: int) -> Download | None:
    """Attachment `number` (from 1) of a post, as it is served; None when there is none."""
    msg, _ = read_message(raw)
    if msg is None:
        return None
    parts = split(msg).attachments
    if not 1 <= number <= len(parts):
        return None
    part = parts[number - 1]
    data = _payload(part)
    ctype = served_type(content_type(part), data)
    if ctype.startswith("text/plain"):
        data = _text(part).encode("utf-8")
    return Download(safe_filename(part.get_filename(), number), ctype, data)


def size_text(size: int, lang: str) -> str:
    """ "12 KB" / "12 KB" (Welsh writes the units the same), "1.5 MB"."""
    if size < 1024:
        return f"{size} B" if lang == "en" else f"{size} beit"
    if size < 1024 * 1024:
        return f"{round(size / 1024)} KB"
    return f"{size / (1024 * 1024):.1f} MB"


# --- the month as mbox ---------------------------------------------------------------------

_IDENTIFIERS = (b"message-id:", b"in-reply-to:", b"references:")
_FROM_LINE = re.compile(rb"^(>*From )", re.MULTILINE)


def _redact_head(head: bytes, keep: tuple[bytes, ...]) -> bytes:
    """Every field but the identifiers (Message-IDs look like addresses, and threading
    needs them) with its addresses cut."""
    out: list[bytes] = []
    skip = False
    for line in head.split(b"\r\n"):
        if line[:1] not in (b" ", b"\t"):
            skip = line.lower().startswith(_IDENTIFIERS)
        out.append(line if skip else redact_bytes(line, keep))
    return b"\r\n".join(out)


def mbox_entry(
    raw: bytes, archived_at: float, cfg: ListConfig, domains: tuple[str, ...], *, hide: bool
) -> bytes:
    """One post as an mboxrd entry: the header block a list copy gets (`stripped_copy`, as
    a digest embeds it), the body untouched but for ">From " quoting, LF line ends.
    `hide`: no address at all, the poster hidden as on a hidden list (for a hidden list, and
    for anyone not a member reading a public one), every other address cut to its local
    part but the service's own."""
    if hide:
        copy = stripped_copy(raw, cfg=replace(cfg, addresses="hidden"), domain=domains[0])
        keep = tuple(b"@" + d.lower().encode() for d in domains)
        head, body = split_raw(copy)
        copy = _redact_head(head, keep) + b"\r\n\r\n" + redact_bytes(body, keep)
    else:
        copy = stripped_copy(raw, cfg=cfg, domain=domains[0])
    copy = copy.replace(b"\r\n", b"\n").rstrip(b"\n")
    stamp = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(archived_at)).encode()
    return b"From mailhub " + stamp + b"\n" + _FROM_LINE.sub(rb">\1", copy) + b"\n\n"
