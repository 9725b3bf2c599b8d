"""Reading every piece of text in a report, and holding back what cannot be read.

Untrusted mail, so everything here is bounded and linear: MIME is walked line by line
with an explicit stack (any depth, no recursion) under a part-count budget, HTML is
stripped with one linear pattern (no html.parser), and PDFs are read with pypdf up to
a page and character budget. What still cannot be read (images, encrypted PDFs, zips,
audio...) is listed in `Scan.unscannable`, and `withhold(raw)` makes a copy of the
message with each such part replaced by a short bilingual notice.
"""

from __future__ import annotations

import base64
import binascii
import html
import io
import logging
import quopri
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser
from email.policy import SMTP, compat32

from mailhub.parsing import BLOCK_TAGS, clean, header, header_values, parse

MAX_PARTS = 2_000
MAX_CHARS = 5_000_000
PDF_MAX_PAGES = 50
PDF_MAX_CHARS = 1_000_000

# Headers that carry names people write; trace and machine headers are left out.
_SKIP_HEADERS = frozenset(
    {
        "received",
        "dkim-signature",
        "domainkey-signature",
        "authentication-results",
        "received-spf",
        "message-id",
        "references",
        "in-reply-to",
        "date",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "content-id",
        "content-disposition",
        "content-language",
        "x-mailer",
        "user-agent",
        "thread-index",
        "x-originating-ip",
        "precedence",
        "auto-submitted",
        "x-received",
        "x-gm-message-state",
        "feedback-id",
        "x-priority",
        "importance",
    }
)
_SKIP_PREFIXES = ("arc-", "x-ms-", "x-google-", "x-spam", "list-", "x-forefront-", "x-microsoft-")


@dataclass(frozen=True)
class Scan:
    """Everything readable in a message, and the parts that could not be read."""

    texts: tuple[str, ...]
    unscannable: tuple[str, ...]  # descriptions of parts no one can search by machine
    over_budget: bool = False


@dataclass(frozen=True)
class HeldPart:
    filename: str
    content_type: str
    size: int  # bytes of the part as it arrived (encoded)


@dataclass(frozen=True)
class Withheld:
    raw: bytes
    held: tuple[HeldPart, ...] = ()


# --- reading one leaf -----------------------------------------------------------------

_TAG = re.compile(r"<([^<>]*)>")
_TAG_NAME = re.compile(r"/?([A-Za-z][A-Za-z0-9:-]*)")
_BLOCK = BLOCK_TAGS | {
    "article",
    "dd",
    "dt",
    "footer",
    "header",
    "option",
    "section",
    "td",
    "text",
    "th",
    "title",
    "tspan",
}
_HSPACE = re.compile(r"[ \t\f\v]+")
_FOLDED = re.compile(r"\r?\n[ \t]")
_TEXTLIKE = frozenset(
    {
        "application/json",
        "application/xml",
        "application/xhtml+xml",
        "application/rtf",
        "application/ics",
        "application/javascript",
        "image/svg+xml",
        "message/delivery-status",
        "message/disposition-notification",
        "text/rfc822-headers",
    }
)
_MARKUP = frozenset({"text/html", "application/xhtml+xml", "image/svg+xml", "text/xml"})
_CONTROL_BYTES = bytes(b for b in range(32) if b not in b"\t\n\r\f") + b"\x7f"


def html_texts(markup: str) -> list[str]:
    """The text of HTML/XML and, separately, every attribute value (and comment), with
    entities unescaped. Linear: one pass of `<[^<>]*>`, no parser."""
    markup = _HSPACE.sub(" ", markup)
    attrs: list[str] = []

    def tag(m: re.Match[str]) -> str:
        inner = m.group(1)
        name = _TAG_NAME.match(inner)
        if name is None:  # a comment, doctype or stray '<'-'>' pair: read it all
            attrs.append(inner)
            return " "
        rest = inner[name.end() :]
        if rest.strip(" /"):
            attrs.append(rest)
        return "\n" if name.group(1).lower() in _BLOCK else ""

    text = _TAG.sub(tag, markup)
    return [html.unescape(text), html.unescape("\n".join(attrs))]


def unfold(text: str) -> str:
    """RFC 5545/6350 unfolding: a line break followed by a space or tab continues the
    line; escaped commas, semicolons and newlines read as themselves."""
    text = _FOLDED.sub("", text)
    return text.replace("\\n", "\n").replace("\\N", "\n").replace("\\,", ",").replace("\\;", ";")


def _decode_text(data: bytes, charset: str | None) -> str:
    for cs in (charset, "utf-8"):
        if not cs:
            continue
        try:
            return data.decode(cs, "replace")
        except (LookupError, UnicodeError, ValueError):
            continue
    return data.decode("utf-8", "replace")


def sniff_text(data: bytes) -> str | None:
    """The text in bytes that are really text (any declared type), else None."""
    if not data:
        return ""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        try:
            return data.decode("utf-16")
        except UnicodeError:
            return None
    n = len(data)
    controls = n - len(data.translate(None, _CONTROL_BYTES))
    if controls and data.count(0) * 3 >= n:  # UTF-16 without a byte order mark
        for enc, zeros in (("utf-16-le", data[1::2]), ("utf-16-be", data[0::2])):
            if zeros.count(0) * 10 >= len(zeros) * 9:
                try:
                    return data.decode(enc)
                except UnicodeError:
                    return None
        return None
    if controls * 100 > n * 2:  # more than 2% control bytes: binary
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    return data.decode("cp1252", "replace")


def _pdf_texts(data: bytes) -> tuple[list[str], str | None]:
    """Text of a PDF with pypdf, bounded; (texts, why not all of it could be read)."""
    try:
        # pypdf is large and only needed when a report carries a PDF: loaded then, and its
        # logger quietened at the same moment.
        from pypdf import PdfReader

        logging.getLogger("pypdf").setLevel(logging.ERROR)
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                ok = reader.decrypt("")
            except Exception:  # noqa: BLE001
                ok = 0
            if not ok:
                return [], "application/pdf (encrypted)"
        texts: list[str] = []
        try:
            meta = reader.metadata or {}
            texts.extend(str(v) for v in meta.values() if isinstance(v, str))
        except Exception:  # noqa: BLE001 - broken metadata: the pages still count
            pass
        total = 0
        pages = reader.pages
        for i, page in enumerate(pages):
            if i >= PDF_MAX_PAGES:
                return texts, f"application/pdf (more than {PDF_MAX_PAGES} pages)"
            text = page.extract_text() or ""
            if not text.strip():
                return texts, "application/pdf (a page without text)"
            texts.append(text)
            total += len(text)
            if total > PDF_MAX_CHARS:
                return texts, "application/pdf (too much text)"
        if not len(pages):
            return texts, "application/pdf (no pages)"
        return texts, None
    except Exception:  # noqa: BLE001 - broken or hostile PDF: unreadable
        return [], "application/pdf (unreadable)"


def read_leaf(ctype: str, charset: str | None, filename: str, data: bytes) -> tuple[list[str], str]:
    """(texts, '' if fully read else a description of what could not be read)."""
    lower_name = filename.lower()
    if (
        ctype == "application/pdf"
        or lower_name.endswith(".pdf")
        or data[:1024].lstrip().startswith(b"%PDF")
    ):
        if b"%PDF" in data[:1024]:
            return _pdf_texts(data)
        if ctype == "application/pdf":
            return [], "application/pdf (unreadable)"
    if ctype.startswith("text/"):
        text: str | None = _decode_text(data, charset)
    else:
        text = sniff_text(data)
        if text is None:
            return [], ctype
    assert text is not None
    text = text.replace("\x00", "")
    head = text[:2048].lstrip().lower()
    if (
        ctype in ("text/calendar", "text/vcard", "text/x-vcard", "text/directory")
        or lower_name.endswith((".ics", ".vcf"))
        or head.startswith(("begin:vcalendar", "begin:vcard"))
    ):
        text = unfold(text)
    if ctype in _MARKUP or (
        ctype not in ("text/plain",)
        and head.startswith(("<!doctype", "<html", "<?xml", "<svg", "<body", "<div"))
    ):
        return html_texts(text), ""
    return [text], ""


# --- headers ----------------------------------------------------------------------------


def _decode_word(value: str) -> str:
    try:
        value = str(make_header(decode_header(value)))
    except Exception:  # noqa: BLE001
        pass
    return clean(value)


def _header_texts(msg: Message) -> Iterator[str]:
    """Values of the headers people write in (Subject, From, To, X-anything...)."""
    seen: set[str] = set()
    for key, _ in msg.raw_items():
        name = key.lower()
        if name in seen or name in _SKIP_HEADERS or name.startswith(_SKIP_PREFIXES):
            continue
        seen.add(name)
        yield from header_values(msg, name)


def _part_labels(msg: Message) -> Iterator[str]:
    try:
        name = msg.get_filename() or ""
    except Exception:  # noqa: BLE001
        name = ""
    if not name:
        try:
            name = str(msg.get_param("name") or "")
        except Exception:  # noqa: BLE001
            name = ""
    if name:
        yield _decode_word(name)
    yield from header_values(msg, "content-description")


def _ctype(msg: Message) -> str:
    try:
        return msg.get_content_type()
    except Exception:  # noqa: BLE001
        return "text/plain"


def _charset(msg: Message) -> str | None:
    try:
        return msg.get_content_charset()
    except Exception:  # noqa: BLE001
        return None


# --- the raw MIME walker (bytes in, parts out; no recursion) ---------------------------

_HEADER_LINE = re.compile(rb"[\x21-\x39\x3b-\x7e]+:")


@dataclass(eq=False)
class _Part:
    buf: int
    hstart: int
    depth: int
    parent: _Part | None
    header_lines: list[bytes] = field(default_factory=list)
    bstart: int = -1  # first body line; -1 while headers are being read
    bend: int = -1  # end line (exclusive)
    kind: str = "leaf"  # leaf | multipart | message | encoded-message | broken
    msg: Message | None = None  # compat32 headers only
    children: int = 0
    is_message: bool = False  # a root of a message (top level or forwarded)


def _headers_message(lines: list[bytes]) -> Message:
    m = Message()
    name = ""
    value: list[str] = []
    pending: list[tuple[str, str]] = []
    for raw in lines:
        line = raw.rstrip(b"\r\n").decode("utf-8", "surrogateescape")
        if line[:1] in (" ", "\t") and name:
            value.append(line)
            continue
        if name:
            pending.append((name, "\r\n".join(value)))
        name, _, first = line.partition(":")
        name = name.strip()
        value = [first.lstrip(" \t")]
    if name:
        pending.append((name, "\r\n".join(value)))
    m._headers = pending  # type: ignore[attr-defined]  # raw values, as compat32 keeps them
    return m


def _finish_headers(p: _Part) -> None:
    p.msg = _headers_message(p.header_lines)


class _Walk:
    """Walks one buffer of MIME lines into parts."""

    def __init__(self, data: bytes, buf: int, budget: list[int]) -> None:
        self.lines = data.split(b"\n")
        self.buf = buf
        self.budget = budget  # [parts left]
        self.parts: list[_Part] = []
        self.loose: list[tuple[int, int]] = []  # preambles and epilogues (line ranges)
        self.over = False

    def _new(self, hstart: int, parent: _Part | None, is_message: bool) -> _Part | None:
        self.budget[0] -= 1
        if self.budget[0] < 0:
            self.over = True
            return None
        p = _Part(self.buf, hstart, parent.depth + 1 if parent else 0, parent)
        p.is_message = is_message
        if parent is not None:
            parent.children += 1
        self.parts.append(p)
        return p

    def run(self) -> None:
        lines = self.lines
        root = self._new(0, None, True)
        if root is None:
            return
        cur: _Part | None = root
        state = "headers"
        loose_start = 0
        stack: list[tuple[bytes, _Part]] = []
        where: dict[bytes, list[int]] = {}
        for i, line in enumerate(lines):
            if stack and line[:2] == b"--":
                tok = line[2:].rstrip(b" \t\r")
                closing = False
                levels = where.get(tok)
                if not levels and tok.endswith(b"--"):
                    levels = where.get(tok[:-2])
                    closing = bool(levels)
                if levels:
                    level = levels[-1]
                    mp = stack[level][1]
                    if state in ("preamble", "epilogue"):
                        self.loose.append((loose_start, i))
                    # End the open part and everything open inside mp.
                    p = cur
                    while p is not None and p is not mp:
                        if p.bstart < 0:
                            _finish_headers(p)
                            p.bstart = i
                        if p.bend < 0:
                            p.bend = i
                        p = p.parent
                    while len(stack) > level + 1:
                        b, q = stack.pop()
                        where[b].pop()
                        if q.bend < 0:
                            q.bend = i
                    if closing:
                        b, q = stack.pop()
                        where[b].pop()
                        q.bend = i
                        state, cur, loose_start = "epilogue", q.parent, i + 1
                    else:
                        cur = self._new(i + 1, mp, False)
                        if cur is None:
                            return
                        state = "headers"
                    continue
            if state != "headers" or cur is None:
                continue
            bare = line.rstrip(b"\r")
            if bare and (bare[:1] in (b" ", b"\t") or _HEADER_LINE.match(bare)):
                if bare[:1] in (b" ", b"\t") and not cur.header_lines:
                    pass  # a continuation with nothing to continue: body starts here
                else:
                    cur.header_lines.append(line)
                    continue
            # End of headers: a blank line (skipped) or a line that is no header (kept).
            _finish_headers(cur)
            cur.bstart = i if bare else i + 1
            assert cur.msg is not None
            ctype = _ctype(cur.msg)
            state = "body"
            if ctype.startswith("multipart/"):
                boundary = _boundary(cur.msg)
                if boundary:
                    cur.kind = "multipart"
                    where.setdefault(boundary, []).append(len(stack))
                    stack.append((boundary, cur))
                    state, loose_start = "preamble", cur.bstart
                else:
                    cur.kind = "broken"
            elif ctype in ("message/rfc822", "message/global"):
                cte = str(cur.msg.get("content-transfer-encoding", "")).strip().lower()
                if cte in ("base64", "quoted-printable"):
                    cur.kind = "encoded-message"
                elif not bare:  # the forwarded message's own headers follow
                    cur.kind = "message"
                    cur = self._new(i + 1, cur, True)
                    if cur is None:
                        return
                    state = "headers"
        end = len(lines)
        if state in ("preamble", "epilogue"):
            self.loose.append((loose_start, end))
        for p in self.parts:
            if p.bstart < 0:
                _finish_headers(p)
                p.bstart = end
            if p.bend < 0:
                p.bend = end
        for p in self.parts:
            if p.kind == "multipart" and p.children == 0:
                p.kind = "broken"

    def body(self, p: _Part) -> bytes:
        data = b"\n".join(self.lines[p.bstart : p.bend])
        return data[:-1] if data.endswith(b"\r") else data


def _boundary(msg: Message) -> bytes:
    try:
        b = msg.get_param("boundary")
    except Exception:  # noqa: BLE001
        return b""
    if not isinstance(b, str):
        return b""
    b = b.strip().strip('"')
    return b.encode("utf-8", "surrogateescape") if b else b""


def _decode_body(msg: Message, data: bytes) -> bytes:
    cte = str(msg.get("content-transfer-encoding", "")).strip().lower()
    if cte == "base64":
        try:
            return binascii.a2b_base64(data)
        except (binascii.Error, ValueError):
            kept = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
            kept = kept[: len(kept) - len(kept) % 4]
            try:
                return binascii.a2b_base64(kept)
            except (binascii.Error, ValueError):
                return b""
    if cte == "quoted-printable":
        return quopri.decodestring(data)
    return data


@dataclass
class _Job:
    data: bytes
    parent: tuple[int, _Part] | None  # (job index, the encoded message part in it)
    walk: _Walk | None = None


def _walk_all(raw: bytes, max_parts: int) -> tuple[list[_Job], bool]:
    """Every buffer (the message, and each base64/QP-encoded forwarded message)."""
    budget = [max_parts]
    jobs = [_Job(raw, None)]
    over = False
    i = 0
    while i < len(jobs):
        job = jobs[i]
        w = _Walk(job.data, i, budget)
        w.run()
        job.walk = w
        if w.over:
            over = True
            break
        for p in w.parts:
            if p.kind == "encoded-message":
                assert p.msg is not None
                jobs.append(_Job(_decode_body(p.msg, w.body(p)), (i, p)))
        i += 1
    return jobs, over


def _describe(msg: Message | None) -> tuple[str, str]:
    if msg is None:
        return "", "application/octet-stream"
    labels = list(_part_labels(msg))
    try:
        filename = _decode_word(msg.get_filename() or "")
    except Exception:  # noqa: BLE001
        filename = labels[0] if labels else ""
    return filename, _ctype(msg)


def _read_part(w: _Walk, p: _Part) -> tuple[list[str], str]:
    """(texts, unreadable description) of one leaf or broken part of a walk."""
    assert p.msg is not None
    data = _decode_body(p.msg, w.body(p))
    ctype = _ctype(p.msg)
    filename, _ = _describe(p.msg)
    if p.kind == "broken":
        text = sniff_text(data)
        return ([text] if text else []), f"{ctype} (broken MIME structure)"
    return read_leaf(ctype, _charset(p.msg), filename, data)


def scan_bytes(raw: bytes, max_chars: int = MAX_CHARS, max_parts: int = MAX_PARTS) -> Scan:
    """Read every text of a raw message, within budgets (over_budget when exceeded)."""
    texts: list[str] = []
    unscannable: list[str] = []
    chars = 0
    try:
        jobs, over = _walk_all(raw, max_parts)
        for job in jobs:
            w = job.walk
            if w is None:
                break
            loose = iter(sorted(w.loose))
            for p in w.parts:
                assert p.msg is not None
                if p.is_message:
                    texts.extend(_header_texts(p.msg))
                texts.extend(_part_labels(p.msg))
                if p.kind in ("leaf", "broken"):
                    got, why = _read_part(w, p)
                    texts.extend(got)
                    chars += sum(len(t) for t in got)
                    if why:
                        unscannable.append(why)
                if chars > max_chars:
                    over = True
                    break
            for a, b in loose:
                texts.append(b"\n".join(w.lines[a:b]).decode("utf-8", "replace"))
            if over:
                break
    except (RecursionError, MemoryError):
        raise
    except Exception:  # noqa: BLE001 - whatever broke, what was not read is not vouched for
        unscannable.append("unreadable MIME structure")
    if over:
        unscannable.append("message too large to scan in full")
    return Scan(tuple(t for t in texts if t), tuple(unscannable), over)


# --- reading an already parsed message (email.message.Message), no recursion ----------


def scan(report: Message, max_chars: int = MAX_CHARS, max_parts: int = MAX_PARTS) -> Scan:
    """Read every text of a parsed message; unreadable parts are listed in unscannable."""
    texts: list[str] = []
    unscannable: list[str] = []
    chars = 0
    over = False
    stack: list[tuple[Message, bool]] = [(report, True)]
    parts = 0
    try:
        while stack:
            part, is_message = stack.pop()
            parts += 1
            if parts > max_parts or chars > max_chars:
                over = True
                break
            try:
                if is_message:
                    texts.extend(_header_texts(part))
                texts.extend(_part_labels(part))
                ctype = _ctype(part)
                if ctype.startswith("multipart/") or ctype in ("message/rfc822", "message/global"):
                    children = part.get_payload()
                    if ctype.startswith("message/") and not isinstance(children, list):
                        payload = part.get_payload(decode=True)
                        if isinstance(payload, bytes):
                            children = [parse(payload)]
                    if isinstance(children, list) and children:
                        nested = ctype.startswith("message/")
                        stack.extend(
                            (c, nested) for c in reversed(children) if isinstance(c, Message)
                        )
                        continue
                    if ctype.startswith("multipart/"):
                        raw_body = part.get_payload()
                        if isinstance(raw_body, str) and raw_body:
                            texts.append(raw_body)
                        unscannable.append(f"{ctype} (broken MIME structure)")
                        continue
                payload = part.get_payload(decode=True)
                data = payload if isinstance(payload, bytes) else b""
                if not data and isinstance(part.get_payload(), str):
                    data = part.get_payload().encode("utf-8", "replace")
                filename, _ = _describe(part)
                got, why = read_leaf(ctype, _charset(part), filename, data)
                texts.extend(got)
                chars += sum(len(t) for t in got)
                if why:
                    unscannable.append(why)
            except (RecursionError, MemoryError):
                raise
            except Exception:  # noqa: BLE001 - one broken part: flag it, read the rest
                unscannable.append("unreadable part")
    except Exception:  # noqa: BLE001
        unscannable.append("unreadable MIME structure")
    if over:
        unscannable.append("message too large to scan in full")
    return Scan(tuple(t for t in texts if t), tuple(unscannable), over)


# --- withholding what cannot be read ----------------------------------------------------

_NOTICE = (
    "Mae atodiad wedi'i ddal yn ôl i'w wirio: {name} ({ctype}, {size} beit).\n"
    "Ni ellid ei ddarllen i weld pwy sy'n cael eu henwi, felly nid yw wedi'i anfon ymlaen.\n"
    "\n"
    "An attachment has been held back for checking: {name} ({ctype}, {size} bytes).\n"
    "It could not be read to see who it names, so it has not been passed on.\n"
)
_WHOLE_NOTICE = (
    "Mae'r neges hon wedi'i dal yn ôl i'w gwirio: ni ellid ei darllen.\n"
    "This message has been held back for checking: it could not be read.\n"
)
_CONTENT_HEADERS = ("content-type:", "content-transfer-encoding:", "content-disposition:")


def _notice(held: HeldPart) -> str:
    name = clean(held.filename) or "(dim enw / no name)"
    return _NOTICE.format(name=name, ctype=held.content_type, size=held.size)


def _placeholder_lines(
    header_lines: list[bytes], text: str, eol: bytes, keep_headers: bool
) -> list[bytes]:
    """A text/plain part (keeping the part's non-Content-* headers) saying text."""
    kept: list[bytes] = []
    if keep_headers:
        dropping = False
        for line in header_lines:
            if line[:1] in (b" ", b"\t"):
                if not dropping:
                    kept.append(line.rstrip(b"\r") + eol)
                continue
            dropping = line.lower().startswith(tuple(h.encode() for h in _CONTENT_HEADERS))
            if not dropping:
                kept.append(line.rstrip(b"\r") + eol)
    body = base64.encodebytes(text.encode("utf-8")).decode("ascii").splitlines()
    new = [
        b'Content-Type: text/plain; charset="utf-8"',
        b"Content-Transfer-Encoding: base64",
        b"Content-Disposition: inline",
        b"X-Mailhub-Held: yes",
        b"",
        *(line.encode("ascii") for line in body),
    ]
    return kept + [line + eol for line in new]


def _placeholder_only(raw: bytes, held: tuple[HeldPart, ...]) -> Withheld:
    try:
        head = BytesHeaderParser(policy=compat32).parsebytes(raw[:200_000])
    except Exception:  # noqa: BLE001
        head = Message()
    msg = EmailMessage(policy=SMTP)
    for name in ("Subject", "From", "To", "Date"):
        try:
            value = header(head, name)
            if value:
                msg[name] = value
        except Exception:  # noqa: BLE001 - a header that will not go in is left out
            continue
    msg.set_content(_WHOLE_NOTICE + "\n" + "\n".join(_notice(h) for h in held))
    try:
        return Withheld(msg.as_bytes(), held)
    except Exception:  # noqa: BLE001
        bare = EmailMessage(policy=SMTP)
        bare.set_content(_WHOLE_NOTICE)
        return Withheld(bare.as_bytes(), held)


def withhold(raw: bytes, max_parts: int = MAX_PARTS) -> Withheld:
    """A copy of the message with every unreadable leaf part replaced by a bilingual
    notice, and what was held. Unchanged bytes when everything could be read. Never
    raises: broken MIME (or too many parts) gives a notice-only message."""
    whole = HeldPart("", "message/rfc822", len(raw))
    try:
        jobs, over = _walk_all(raw, max_parts)
        if over:
            return _placeholder_only(raw, (whole,))
        root = jobs[0].walk.parts[0] if jobs[0].walk and jobs[0].walk.parts else None
        if root is None or root.kind == "broken":
            return _placeholder_only(raw, (whole,))
        held: list[HeldPart] = []
        replaced: dict[int, bytes] = {}  # job index → new bytes
        splices: dict[int, list[tuple[int, int, list[bytes]]]] = {i: [] for i in range(len(jobs))}
        for i, job in enumerate(jobs):
            w = job.walk
            assert w is not None
            eol = b"\r" if w.lines and w.lines[0].endswith(b"\r") else b""
            for p in w.parts:
                if p.kind not in ("leaf", "broken"):
                    continue
                _, why = _read_part(w, p)
                if not why:
                    continue
                filename, ctype = _describe(p.msg)
                size = sum(len(x) + 1 for x in w.lines[p.bstart : p.bend])
                h = HeldPart(filename, ctype, size)
                held.append(h)
                lines = _placeholder_lines(p.header_lines, _notice(h), eol, keep_headers=True)
                splices[i].append((p.hstart, p.bend, lines))
        # Rebuild buffers, innermost (latest) first, re-encoding changed forwarded messages.
        for i in range(len(jobs) - 1, -1, -1):
            w = jobs[i].walk
            assert w is not None
            if not splices[i]:
                continue
            lines = list(w.lines)
            for start, end, new in sorted(splices[i], key=lambda s: s[0], reverse=True):
                lines[start:end] = _joinable(new, end < len(w.lines))
            replaced[i] = b"\n".join(lines)
            parent = jobs[i].parent
            if parent is not None:
                j, p = parent
                pw = jobs[j].walk
                assert pw is not None and p.msg is not None
                peol = b"\r" if pw.lines and pw.lines[0].endswith(b"\r") else b""
                cte = str(p.msg.get("content-transfer-encoding", "")).strip().lower()
                if cte == "base64":
                    enc = base64.encodebytes(replaced[i])
                else:
                    enc = quopri.encodestring(replaced[i])
                body = [line + peol for line in enc.split(b"\n")]
                if body and body[-1] == peol:
                    body.pop()
                splices[j].append((p.bstart, p.bend, body))
        if not held:
            return Withheld(raw, ())
        return Withheld(replaced.get(0, raw), tuple(held))
    except Exception:  # noqa: BLE001 - never raise on mail: hold the lot
        return _placeholder_only(raw, (whole,))


def _joinable(new: list[bytes], before_boundary: bool) -> list[bytes]:
    """Lines to put in place of a part: each ends with its CR (if any); the split on LF
    puts the LF back between them. The last line's line break belongs to the boundary."""
    out = list(new)
    if not before_boundary and out:
        out.append(b"")
    return out
