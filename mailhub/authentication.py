"""What mailhub knows of an incoming post's authenticity: for the ARC seal on list copies
(RFC 8617: its ARC-Authentication-Results carries this) and for DMARC.

Two sources, in this order of preference:

- `trusted_results`: the `Authentication-Results` header (RFC 8601) that a trusted MTA in
  front of mailhub added (its authserv-id is in `trusted_authserv_ids`);
- `verify`: mailhub's own DKIM verification (dkimpy) and DMARC evaluation, when there is none.

SPF is not checked here, so never claimed: behind an MTA (the normal deployment) the
connecting client mailhub sees is that MTA, not the sender's server, so an SPF check here
would judge the wrong host; and pyspf does its own blocking DNS through a module-global
lookup function, which our resolver cannot serve cleanly. The MTA in front checks SPF; its
results arrive through `trusted_results`. Without SPF, our DMARC result rests on DKIM alone:
a post whose only aligned pass was SPF shows dmarc=fail here (honest about what we checked).

Bounds: at most `MAX_SIGNATURES` (5) DKIM-Signature headers are checked, the topmost first
(signatures are prepended, so the topmost are the most recent hops), each at most
`MAX_SIGNATURE_BYTES` long and naming at most `MAX_SIGNED_HEADERS` headers; their keys are
fetched concurrently through the async `Resolver`; everything else runs in a worker thread,
never on the event loop, with no DNS there (dkimpy's `dnsfunc` answers only from what was
fetched). The body is put in canonical form and hashed by us, in linear time and once for
all the signatures that share a form (dkimpy's relaxed form is quadratic in a line of
spaces); dkimpy then checks each header signature. A 10 MiB post (intake's largest) with
five signatures takes well under a second; a post whose work passes `TIME_LIMIT` gets
dkim=temperror for what was not finished (the worker thread finishes in the background: it
cannot be stopped, but the post does not wait for it).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from email.utils import getaddresses
from enum import StrEnum

import dkim
from dkim.canonicalization import CanonicalizationPolicy, Relaxed

from mailhub.dmarc import Disposition, DmarcPolicy, lookup, organisational_domain
from mailhub.messages import clean_raw_value, head_fields, raw_fields, split_raw
from mailhub.resolver import Outcome, Resolver, TxtAnswer

MAX_SIGNATURES = 5
TIME_LIMIT = 10.0  # seconds of worker-thread time a post's verification may take
MIN_KEY_BITS = 1024  # RFC 8301 §3.2: smaller RSA keys are not accepted
MAX_SIGNATURE_BYTES = 4096  # a DKIM-Signature field longer than this is not read
MAX_SIGNED_HEADERS = 100  # h= entries; each is a search of the header block

# dkimpy reports every bad signature at ERROR: anyone can send those, so they would flood the
# log. Our results carry the reason instead.
_DKIMPY_LOG = logging.getLogger("mailhub.authentication.dkimpy")
_DKIMPY_LOG.setLevel(logging.CRITICAL)


class Result(StrEnum):
    """The result codes of RFC 8601 §2.7.1 (DKIM) and RFC 7489 §11.2 (DMARC) we give."""

    PASS = "pass"
    FAIL = "fail"
    NONE = "none"
    NEUTRAL = "neutral"  # signed in a way we cannot check (ed25519 without PyNaCl)
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


@dataclass(frozen=True)
class DkimResult:
    result: Result
    domain: str = ""  # d= ('' when the signature could not be read)
    selector: str = ""  # s=
    reason: str = ""  # why not pass, in a few words

    def resinfo(self) -> str:
        text = f"dkim={self.result}"
        if self.reason:
            text += f" reason={_quoted(self.reason)}"
        if _is_domain(_ascii(self.domain)):
            text += f" header.d={_ascii(self.domain)}"
        if self.selector and re.fullmatch(r"[A-Za-z0-9._-]+", self.selector):
            text += f" header.s={self.selector}"
        return text


@dataclass(frozen=True)
class AuthResults:
    authserv_id: str
    dkim: tuple[DkimResult, ...]  # one per signature checked; () when unsigned
    dmarc: Result
    from_domain: str = ""  # '' when the From: header names no single domain
    policy: DmarcPolicy | None = None  # the DMARC policy found, for the rewrite decision
    dmarc_reason: str = ""

    @property
    def value(self) -> str:
        """The Authentication-Results value: `id; dkim=… header.d=… header.s=…; dmarc=…`."""
        parts = [self.authserv_id]
        parts += [r.resinfo() for r in self.dkim] or ["dkim=none"]
        dmarc = f"dmarc={self.dmarc}"
        if self.dmarc_reason:
            dmarc += f" reason={_quoted(self.dmarc_reason)}"
        if _is_domain(_ascii(self.from_domain)):
            dmarc += f" header.from={_ascii(self.from_domain)}"
        parts.append(dmarc)
        return "; ".join(parts)


# -- the results of a trusted MTA in front -------------------------------------------------------


def trusted_results(
    source: bytes | Message | Iterable[tuple[str, str]], trusted_authserv_ids: Iterable[str]
) -> str | None:
    """The value of the topmost `Authentication-Results` header whose authserv-id is trusted,
    unfolded and cleaned; None when there is none.

    Only the topmost trusted one: an MTA adds its header at the top, and anyone before it
    (the sender included) can add a header naming our MTA's authserv-id further down; an
    MTA at the boundary should remove those (RFC 8601 §5), but not every one does. The one
    the trusted MTA itself added is the first that names it, reading from the top. (A second
    header the same MTA added, e.g. one milter for DKIM and another for DMARC, is not merged.)
    """
    trusted = {t.strip().lower() for t in trusted_authserv_ids if t.strip()}
    if not trusted:
        return None
    for value in _header_values(source, "authentication-results"):
        text = clean_raw_value(value)
        # The id is at the start; a value made huge is not read to its end to find it.
        if authserv_id(text[:1024]).lower() in trusted:
            return text
    return None


def _header_values(source: bytes | Message | Iterable[tuple[str, str]], name: str) -> list[str]:
    if isinstance(source, bytes | bytearray):
        fields: Iterable[tuple[str, str]] = head_fields(bytes(source))
    elif isinstance(source, Message):
        fields = [(n, str(v)) for n, v in source.items()]
    else:
        fields = source
    return [v for n, v in fields if n.strip().lower() == name]


def authserv_id(value: str) -> str:
    """The authserv-id an Authentication-Results value starts with (RFC 8601 §2.2): a token
    or a quoted string, after any comments; '' when there is none."""
    text = _without_comments(value).strip()
    if text.startswith('"'):
        m = re.match(r'"((?:[^"\\]|\\.)*)"', text)
        return re.sub(r"\\(.)", r"\1", m.group(1)) if m else ""
    m = re.match(r"[^\s;]+", text)
    return m.group(0) if m else ""


def _without_comments(value: str) -> str:
    """RFC 5322 comments (nested, with quoted-pairs) removed; quoted strings kept whole."""
    out: list[str] = []
    depth, quoted, escaped = 0, False, False
    for ch in value:
        if escaped:
            escaped = False
            if depth == 0:
                out.append(ch)
            continue
        if ch == "\\":
            escaped = True
            if depth == 0:
                out.append(ch)
        elif quoted:
            quoted = ch != '"'
            out.append(ch)
        elif ch == "(":
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
            if not depth:
                out.append(" ")
        elif depth == 0:
            quoted = ch == '"'
            out.append(ch)
    return "".join(out)


# -- our own verification ----------------------------------------------------------------------


@dataclass
class _Signature:
    index: int  # among the message's DKIM-Signature headers, topmost 0
    domain: str = ""
    selector: str = ""
    key_name: str = ""  # s._domainkey.d, lower case, no trailing dot
    problem: str = ""  # set: the signature cannot be used (permerror)
    tags: dict[bytes, bytes] = field(default_factory=dict)
    signed: list[bytes] = field(default_factory=list)  # h=, lower case
    header: tuple[bytes, bytes] = (b"", b"")  # the DKIM-Signature field as dkimpy read it


class BodyHashes:
    """The canonical body (RFC 6376 §3.4.3, §3.4.4) made once per canonicalisation and
    hashed once per l=, however many signatures ask for it. SHA-256 only: the signature
    algorithms we accept (rsa-sha256, ed25519-sha256) both hash with it."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self._canonical: dict[bool, bytes] = {}
        self._digests: dict[tuple[bool, int | None], bytes] = {}

    def digest(self, relaxed: bool, length: int | None) -> bytes | None:
        """The body hash, or None when l= asks for more than the body holds."""
        key = (relaxed, length)
        if key not in self._digests:
            if relaxed not in self._canonical:
                self._canonical[relaxed] = canonical_body(self.body, relaxed)
            canonical = self._canonical[relaxed]
            if length is not None and length > len(canonical):
                return None
            data = canonical if length is None else canonical[:length]
            self._digests[key] = hashlib.sha256(data).digest()
        return self._digests[key]


# Linear-time forms of RFC 6376's relaxed body rules. dkimpy's own, `[\t ]+\r\n`, backtracks
# over every whitespace run that does not end its line: quadratic in the line, about a
# second a megabyte for lines of spaces ending in one letter. The look-behind starts a
# match only at the start of a run, and a run is replaced only when it is not already one
# space. A bare LF becomes CRLF first, as dkimpy's reading of a message does.
_BARE_LF = re.compile(rb"(?<!\r)\n")
_TRAILING_WSP = re.compile(rb"(?<![\t ])[\t ]+\r\n")
_WSP_RUN = re.compile(rb"[\t ]{2,}|\t")
# A regular expression holds the GIL until it is done: the body is worked through in pieces
# of about this size, each ending at a line end, so the event loop's thread gets its turns.
CHUNK_BYTES = 256 * 1024


def _pieces(body: bytes, size: int) -> Iterator[bytes]:
    start = 0
    while start < len(body):
        end = body.find(b"\n", start + size - 1)
        end = len(body) if end < 0 else end + 1
        yield body[start:end]
        start = end


def canonical_body(body: bytes, relaxed: bool, chunk: int = CHUNK_BYTES) -> bytes:
    """A body in DKIM's simple or relaxed canonical form, as dkimpy makes it: bare LFs as
    CRLF, empty lines at the end dropped, one CRLF kept or added; relaxed, whitespace at a
    line's end dropped and runs of it made one space, and an empty body empty. The rules
    are line by line, so pieces cut at line ends give the same result."""
    parts = []
    for piece in _pieces(body, chunk):
        # Each rule only where it has work: a scan by a pattern costs more than a search
        # for a fixed string (most text has no tab, no double space, no bare LF).
        if piece.count(b"\n") != piece.count(b"\r\n"):
            piece = _BARE_LF.sub(b"\r\n", piece)
        if relaxed:
            if b" \r\n" in piece or b"\t\r\n" in piece:
                piece = _TRAILING_WSP.sub(b"\r\n", piece)
            if b"\t" in piece or b"  " in piece:
                piece = _WSP_RUN.sub(b" ", piece)
        parts.append(piece)
    body = b"".join(parts)
    # Whole CRLF pairs at the end, counted from the end without a backtracking search.
    tail = body[len(body.rstrip(b"\r\n")) :]
    pairs = len(re.match(rb"(?:\n\r)*", tail[::-1]).group()) // 2  # type: ignore[union-attr]
    body = body[: len(body) - 2 * pairs] + b"\r\n"
    return b"" if relaxed and body == b"\r\n" else body


@dataclass
class _Prepared:
    checker: dkim.DKIM | None
    signatures: list[_Signature] = field(default_factory=list)
    from_domain: str = ""
    from_problem: str = ""
    bodies: BodyHashes | None = None


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace").strip()


def _from_domain(fields: list[tuple[str, str]]) -> tuple[str, str]:
    """(the From: domain, '') or ('', what is wrong): DMARC needs exactly one From: field
    naming one domain (RFC 7489 §6.6.1)."""
    values = [v for n, v in fields if n.strip().lower() == "from"]
    if len(values) != 1:
        return "", "no From: field" if not values else "several From: fields"
    domains = {
        a.rpartition("@")[2].strip().rstrip(".").lower()
        for _, a in getaddresses([clean_raw_value(values[0])])
        if "@" in a
    }
    domains.discard("")
    if len(domains) != 1:
        return "", "no From: domain" if not domains else "several From: domains"
    return domains.pop(), ""


def _prepare(raw: bytes, max_signatures: int) -> _Prepared:
    """Read the message once (in a worker thread): its signatures and its From: domain.
    dkimpy is given the header block alone: we hash the body ourselves."""
    head, body = split_raw(raw)
    fields = raw_fields(head)
    from_domain, from_problem = _from_domain(fields)
    count = sum(1 for n, _ in fields if n.strip().lower() == "dkim-signature")
    try:
        checker = dkim.DKIM(head + b"\r\n\r\n", logger=_DKIMPY_LOG, minkey=MIN_KEY_BITS)
    except Exception:  # noqa: BLE001 - a header block dkimpy cannot read: nothing verifies
        problems = [
            _Signature(i, problem="message not readable") for i in range(min(count, max_signatures))
        ]
        return _Prepared(None, problems, from_domain, from_problem)
    prepared = _Prepared(checker, [], from_domain, from_problem, BodyHashes(body))
    values = [v for n, v in checker.headers if n.lower() == b"dkim-signature"]
    for index in range(min(len(values), max_signatures)):
        signature = _Signature(index)
        prepared.signatures.append(signature)
        signature.problem = _read_signature(checker, index, len(values[index]), signature)
    return prepared


def _read_signature(checker: dkim.DKIM, index: int, size: int, signature: _Signature) -> str:
    """Fill `signature` from the index-th DKIM-Signature; what makes it unusable, or ''."""
    if size > MAX_SIGNATURE_BYTES:
        # dkimpy's pattern for the b= tag slows down badly on long folded values; real
        # signatures are well under 2 KB.
        return "signature too long"
    try:
        tags, signed, headers = checker.verify_headerprep(index)
    except Exception as exc:  # noqa: BLE001 - dkimpy's parse and field checks
        return _problem(exc, "malformed signature")
    signature.domain = _text(tags[b"d"]).lower()
    signature.selector = _text(tags[b"s"])
    if b"from" not in signed:
        # RFC 6376 §6.1.1: a signature that does not cover From: is not one to use.
        return "From: not signed"
    if tags[b"a"] == b"rsa-sha1":
        return "rsa-sha1 not accepted"  # RFC 8301 §3.1
    if len(signed) > MAX_SIGNED_HEADERS:
        return "too many signed headers"
    try:
        CanonicalizationPolicy.from_c_value(tags.get(b"c", b"simple/simple"))
        if b"l" in tags:
            int(tags[b"l"])
        base64.b64decode(re.sub(rb"\s+", b"", tags[b"bh"]), validate=True)
    except Exception:  # noqa: BLE001
        return "malformed signature"
    signature.key_name = f"{signature.selector}._domainkey.{signature.domain}".lower()
    signature.tags, signature.signed, signature.header = tags, list(signed), headers[index]
    return ""


def _problem(exc: Exception, default: str) -> str:
    """A few words for the reason= of a result: dkimpy's own for its field checks and key
    checks, whose messages start with fixed words and then quote the value after a "(" or
    ":" (never kept: it is the sender's text); `default` for anything else."""
    if not isinstance(exc, dkim.ValidationError | dkim.KeyFormatError):
        return default
    text = re.split(r"[(:\r\n]", str(exc))[0].strip()
    text = re.sub(r"b'([a-z]+)'", r"\1", text)  # "missing b'b'=" (a tag name as bytes)
    return text[:60] if text and re.fullmatch(r"[A-Za-z0-9 =.,'-]+", text) else default


def _check(prepared: _Prepared, keys: dict[str, TxtAnswer], done: list[DkimResult]) -> None:
    """Verify each signature (in a worker thread), appending each result to `done` as it is
    found, so that a time limit keeps those already finished."""
    for signature in prepared.signatures:
        done.append(_check_one(prepared, signature, keys))


def _check_one(
    prepared: _Prepared, signature: _Signature, keys: dict[str, TxtAnswer]
) -> DkimResult:
    def result(code: Result, reason: str = "") -> DkimResult:
        return DkimResult(code, signature.domain, signature.selector, reason)

    checker, bodies = prepared.checker, prepared.bodies
    if signature.problem or checker is None or bodies is None:
        return result(Result.PERMERROR, signature.problem or "message not readable")
    answer = keys.get(signature.key_name)
    if answer is None or answer.outcome is Outcome.FAILURE:
        return result(Result.TEMPERROR, "key lookup failed")
    if answer.outcome is Outcome.NO_RECORD or not answer.records:
        # RFC 6376 §6.1.2: no key record is a permanent failure ("no key for signature").
        return result(Result.PERMERROR, "no key for signature")
    record = answer.records[0]  # several: undefined (RFC 6376 §3.6.2.2); the first, as dkimpy
    try:
        dkim.evaluate_pk(signature.key_name.encode(), record)
    except dkim.NaClNotFoundError:
        return result(Result.NEUTRAL, "ed25519 not supported here")
    except Exception:  # noqa: BLE001 - revoked (empty p=), unparsable, unknown k=
        return result(Result.PERMERROR, "unusable key")

    # The body hash, ours (linear, and once for all signatures that share a form); then
    # dkimpy checks the header signature alone (a tag list without bh= skips its own).
    tags = signature.tags
    policy = CanonicalizationPolicy.from_c_value(tags.get(b"c", b"simple/simple"))
    length = int(tags[b"l"]) if b"l" in tags else None
    digest = bodies.digest(policy.body_algorithm is Relaxed, length)
    if digest is None or digest != base64.b64decode(re.sub(rb"\s+", b"", tags[b"bh"])):
        return result(Result.FAIL, "body hash did not verify")

    def dnsfunc(name: bytes | str, timeout: float = 0) -> bytes | None:
        # Answers only what was fetched before: no DNS from a worker thread.
        asked = (name.decode() if isinstance(name, bytes) else name).rstrip(".").lower()
        return record if asked == signature.key_name else None

    header_only = {k: v for k, v in tags.items() if k != b"bh"}
    try:
        ok = checker.verify_sig(header_only, list(signature.signed), signature.header, dnsfunc)
    except dkim.KeyFormatError as exc:  # e.g. an RSA key under 1024 bits (RFC 8301)
        return result(Result.PERMERROR, _problem(exc, "unusable key"))
    except Exception as exc:  # noqa: BLE001 - e.g. a key for another service (s=tlsrpt)
        return result(Result.PERMERROR, _problem(exc, "malformed signature"))
    return result(Result.PASS) if ok else result(Result.FAIL, "signature did not verify")


def aligned(signing_domain: str, from_domain: str, strict: bool = False) -> bool:
    """DMARC identifier alignment of a DKIM d= with the From: domain (RFC 7489 §3.1.1):
    relaxed, the same organisational domain; strict (adkim=s), the same domain."""
    d, f = signing_domain.lower().rstrip("."), from_domain.lower().rstrip(".")
    if not d or not f:
        return False
    if strict:
        return d == f
    return organisational_domain(d) == organisational_domain(f)


def dmarc_result(
    policy: DmarcPolicy | None, signatures: Iterable[DkimResult], from_domain: str
) -> tuple[Result, str]:
    """The DMARC result (RFC 7489 §11.2) from the policy and our DKIM results (pure)."""
    if policy is None:
        return Result.PERMERROR, "no single From: domain"
    if policy.outcome is Disposition.UNKNOWN:
        return Result.TEMPERROR, "policy lookup failed"
    if policy.outcome is Disposition.ABSENT:
        return Result.NONE, ""
    if policy.malformed:
        return Result.PERMERROR, policy.reason
    passing = [s for s in signatures if s.result is Result.PASS]
    if any(aligned(s.domain, from_domain, policy.adkim == "s") for s in passing):
        return Result.PASS, ""
    return Result.FAIL, "no aligned DKIM pass (SPF not checked)"


async def verify(
    raw: bytes,
    resolver: Resolver,
    *,
    authserv_id: str,
    envelope_from: str | None = None,
    max_signatures: int = MAX_SIGNATURES,
    time_limit: float = TIME_LIMIT,
) -> AuthResults:
    """Our own DKIM verification and DMARC evaluation of `raw`. Never raises.

    `envelope_from` is taken for the day SPF is checked here; it is not used now (see the
    module's note), and the results claim nothing about SPF.
    """
    del envelope_from
    try:
        return await _verify(raw, resolver, authserv_id, max_signatures, time_limit)
    except Exception as exc:  # noqa: BLE001 - a surprise is a temperror, never a crash
        reason = f"verifier error {type(exc).__name__}"
        return AuthResults(
            authserv_id, (DkimResult(Result.TEMPERROR, reason=reason),), Result.TEMPERROR
        )


async def _no_policy() -> None:
    return None


async def _verify(
    raw: bytes, resolver: Resolver, authserv_id: str, max_signatures: int, time_limit: float
) -> AuthResults:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + time_limit
    try:
        # asyncio.timeout, not wait_for, which on 3.11 can swallow a cancel (shutdown).
        async with asyncio.timeout(time_limit):
            prepared = await asyncio.to_thread(_prepare, raw, max_signatures)
    except TimeoutError:
        return AuthResults(
            authserv_id, (DkimResult(Result.TEMPERROR, reason="time limit"),), Result.TEMPERROR
        )
    # The keys and the DMARC policy, fetched at once, on the event loop.
    names = sorted({s.key_name for s in prepared.signatures if s.key_name})
    answers, policy = await asyncio.gather(
        asyncio.gather(*(resolver.txt(name) for name in names)),
        lookup(resolver, prepared.from_domain) if prepared.from_domain else _no_policy(),
    )
    keys = dict(zip(names, answers, strict=True))

    done: list[DkimResult] = []
    if prepared.signatures:
        try:
            async with asyncio.timeout(max(deadline - loop.time(), 0.01)):
                await asyncio.to_thread(_check, prepared, keys, done)
        except TimeoutError:
            pass  # what finished is kept; the rest is a temperror below
    results = list(done)
    for signature in prepared.signatures[len(results) :]:
        results.append(
            DkimResult(Result.TEMPERROR, signature.domain, signature.selector, "time limit")
        )
    dmarc, reason = dmarc_result(policy, results, prepared.from_domain)
    if policy is None and prepared.from_problem:
        reason = prepared.from_problem
    return AuthResults(authserv_id, tuple(results), dmarc, prepared.from_domain, policy, reason)


# -- writing values --------------------------------------------------------------------------


def _is_domain(text: str) -> bool:
    return (
        bool(text) and re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?", text) is not None
    )


def _ascii(domain: str) -> str:
    """An internationalised domain as its A-labels (RFC 8601 values are ASCII)."""
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return ""


def _quoted(text: str) -> str:
    """An RFC 5322 quoted-string of printable ASCII (anything else becomes '?')."""
    safe = "".join(ch if " " <= ch <= "~" else "?" for ch in text)
    return '"' + safe.replace("\\", "\\\\").replace('"', '\\"') + '"'
