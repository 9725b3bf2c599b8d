"""DKIM (RFC 6376) and ARC (RFC 8617) signatures on the mail mailhub sends.

`[dkim]` in the config names a key for the service's domains (and `[[dkim.keys]]` one per
domain); `Signer` holds the keys, loaded once, and adds the signatures to finished bytes:

- `sign` prepends one DKIM-Signature (rsa-sha256, relaxed/relaxed). The signature is made
  here, with `cryptography` (OpenSSL) doing the RSA: dkimpy's own RSA is pure Python and
  costs ~7 ms a signature (RSA-2048) against ~0.3 ms, and a personalised post makes one
  signature per member (benchmarks/signing.py). dkimpy is the verifier the tests use, so
  every signature made here is checked by an independent implementation.
- `seal` prepends an ARC set made by dkimpy's `arc_sign`, from the Authentication-Results
  header the caller put on the copy. Its ARC-Message-Signature leaves out the headers that
  differ per member (`PER_COPY`), so `seal_many` makes one set per post, not per copy.

Everything here is pure CPU work on bytes, thread-safe (nothing is shared but the immutable
keys), meant to run off the event loop. A message that cannot be signed is returned
unchanged and the reason logged (its type only: never a header or the body), never raised.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dkim
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mailhub.clock import Clock, SystemClock
from mailhub.errors import ConfigError, UserError
from mailhub.readers import refuse_unknown

log = logging.getLogger("mailhub")

# Signed where present (each instance): what a reader sees and what RFC 8058 requires the
# signature to cover (List-Unsubscribe and List-Unsubscribe-Post).
SIGNED = (
    "from",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "reply-to",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "list-id",
    "list-post",
    "list-help",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "auto-submitted",
    "x-loop",
)
# Named once more than they occur (present or not), so none can be added after signing:
# a second From or Subject shown by a mail client, or an unsubscribe link of someone else's.
OVERSIGNED = ("from", "subject", "list-unsubscribe", "list-unsubscribe-post")
# Headers that differ between the copies of one post (the member's own unsubscribe token and
# command address, mailhub.lists.verp.personalise). The ARC-Message-Signature leaves them
# out, so one ARC set is valid on every copy; the DKIM signature, made per copy, covers them.
PER_COPY = ("list-help", "list-unsubscribe", "list-unsubscribe-post")

DEFAULT_SELECTOR = "mailhub"
KEY_BITS = 2048
MIN_KEY_BITS = 1024  # RFC 8301: verifiers refuse smaller keys

DKIM_KEYS = ("selector", "key_file", "trusted_authserv_ids", "keys")
DOMAIN_KEY_KEYS = ("domain", "selector", "key_file")

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_SELECTOR = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_DOMAIN = re.compile(rf"(?:{_LABEL}\.)+{_LABEL}")
_AUTHSERV_ID = re.compile(r"[!-:<-~]+")  # a token: no space, no ';'

WIDTH = 78  # folded header lines, as RFC 5322 recommends


# --- config ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DkimKey:
    """One signing key: its selector and file, and the key read from it at start."""

    selector: str
    key_file: Path
    # The private key, PKCS#1 PEM, read and checked once at start; never in a repr.
    pem: bytes = field(repr=False)
    domain: str = ""  # "" for the [dkim] key, which signs for the service's own domains


@dataclass(frozen=True)
class DkimConfig:
    default: DkimKey | None = None  # [dkim] selector, key_file
    keys: tuple[DkimKey, ...] = ()  # [[dkim.keys]]: one domain each
    # Authentication-Results of these authserv-ids (an MTA in front of us) are trusted to
    # seal list copies with; otherwise mailhub's own results are used.
    trusted_authserv_ids: tuple[str, ...] = ()


def _selector(table: Mapping[str, Any], key: str) -> str:
    value = table.get("selector")
    if value is None:
        raise ConfigError(f"{key}.selector", "is required (the name under _domainkey in DNS)")
    if not isinstance(value, str) or not _SELECTOR.fullmatch(value):
        raise ConfigError(
            f"{key}.selector", f"must be a DNS label such as {DEFAULT_SELECTOR!r}, got {value!r}"
        )
    return value


def read_key(value: Any, base: Path, key: str) -> tuple[Path, bytes]:
    """The key file's path (relative to `base`) and its RSA key as PKCS#1 PEM; any problem
    is one ConfigError naming `key`."""
    if not isinstance(value, str) or not value:
        raise ConfigError(key, "must be the path of a PEM private key file")
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = base / path
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(key, f"cannot read {path} ({exc.strerror or exc})") from None
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ConfigError(
            key,
            f"{path} is not an unencrypted PEM private key "
            "(make one with: mailhub dkim keygen DOMAIN)",
        ) from None
    if not isinstance(private, rsa.RSAPrivateKey):
        raise ConfigError(key, f"{path} is not an RSA key (DKIM signing here is rsa-sha256)")
    if private.key_size < MIN_KEY_BITS:
        raise ConfigError(
            key,
            f"{path} is a {private.key_size}-bit key; receivers refuse keys under "
            f"{MIN_KEY_BITS} bits (make a {KEY_BITS}-bit one with: mailhub dkim keygen DOMAIN)",
        )
    return path, _pkcs1(private)


def _pkcs1(private: rsa.RSAPrivateKey) -> bytes:
    # PKCS#1 PEM with LF line ends: the form dkimpy's own key reader expects (ARC).
    return private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _domain_key(t: Any, i: int, base: Path) -> DkimKey:
    key = f"dkim.keys[{i}]"
    if not isinstance(t, Mapping):
        raise ConfigError(key, "must be a table with domain, selector and key_file")
    refuse_unknown(dict(t), key, DOMAIN_KEY_KEYS)
    domain = t.get("domain")
    if not isinstance(domain, str) or not _DOMAIN.fullmatch(domain):
        raise ConfigError(f"{key}.domain", f"must be a domain name, got {domain!r}")
    selector = _selector(t, key)
    if "key_file" not in t:
        raise ConfigError(f"{key}.key_file", "is required")
    path, pem = read_key(t["key_file"], base, f"{key}.key_file")
    return DkimKey(selector, path, pem, domain.lower())


def parse_dkim(section: Mapping[str, Any] | None, base: Path) -> DkimConfig:
    """The [dkim] table → DkimConfig; key files are read (and checked) here, once.
    Relative key_file paths resolve against `base` (the config file's folder)."""
    if section is None:
        return DkimConfig()
    if not isinstance(section, Mapping):
        raise ConfigError("dkim", "must be a table, e.g. [dkim]")
    refuse_unknown(dict(section), "dkim", DKIM_KEYS)
    default = None
    if "selector" in section or "key_file" in section:
        selector = _selector(section, "dkim")
        if "key_file" not in section:
            raise ConfigError("dkim.key_file", "is required with dkim.selector")
        path, pem = read_key(section["key_file"], base, "dkim.key_file")
        default = DkimKey(selector, path, pem)
    tables = section.get("keys", [])
    if not isinstance(tables, list):
        raise ConfigError("dkim.keys", "must be an array of tables, [[dkim.keys]]")
    keys = tuple(_domain_key(t, i, base) for i, t in enumerate(tables))
    seen = [k.domain for k in keys]
    for domain in seen:
        if seen.count(domain) > 1:
            raise ConfigError("dkim.keys", f"the domain {domain!r} has two keys")
    ids = section.get("trusted_authserv_ids", [])
    if isinstance(ids, str):
        ids = [ids]
    if not isinstance(ids, list) or not all(
        isinstance(v, str) and _AUTHSERV_ID.fullmatch(v) for v in ids
    ):
        raise ConfigError(
            "dkim.trusted_authserv_ids",
            'must be a list of authserv-ids, e.g. ["mx.example.org"] (the first word of '
            "your MTA's Authentication-Results header)",
        )
    return DkimConfig(default, keys, tuple(ids))


def missing(config_domains: Iterable[str], dkim_config: DkimConfig) -> list[str]:
    """The service's domains whose mail would go out unsigned (for `mailhub check`)."""
    if dkim_config.default is not None:
        return []
    keyed = {k.domain for k in dkim_config.keys}
    return [d for d in config_domains if d.lower() not in keyed]


# --- the header block, as bytes ----------------------------------------------------------


class Unsignable(Exception):
    """A message whose header block is not a list of header fields."""


@dataclass(frozen=True)
class Field:
    name: bytes  # lower case, as compared
    raw: bytes  # the field as it stands, continuation lines and line end included


def split_message(raw: bytes) -> tuple[list[Field], bytes, bytes]:
    """(header fields, the empty line that ends them, body). Line ends are kept as they are;
    anything in the header block that is not a field raises Unsignable."""
    if raw.startswith((b"\r\n", b"\n")):
        head, sep, body = b"", raw[: raw.index(b"\n") + 1], raw[raw.index(b"\n") + 1 :]
    elif m := re.search(rb"\n(\r?\n)", raw):
        head, sep, body = raw[: m.start() + 1], m.group(1), raw[m.end() :]
    else:
        head, sep, body = raw, b"", b""
        if head and not head.endswith(b"\n"):
            raise Unsignable("no line end after the header block")
    fields: list[tuple[bytes, list[bytes]]] = []
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):
            if not fields:
                raise Unsignable("a continuation line before any field")
            fields[-1][1].append(line)
        elif m := _FIELD_NAME.match(line):
            fields.append((m.group(1).lower(), [line]))
        else:
            raise Unsignable("a line in the header block that is not a field")
    return [Field(name, b"".join(lines)) for name, lines in fields], sep, body


_FIELD_NAME = re.compile(rb"([!-9;-~]+)[ \t]*:")


def _canonical_header(raw_field: bytes) -> bytes:
    """RFC 6376 §3.4.2 relaxed: lower-case name, unfolded, runs of WSP as one SP, no WSP
    around the colon or at the end."""
    name, _, value = raw_field.partition(b":")
    value = _WSP_RUN.sub(b" ", _LINE_END.sub(b"", value)).strip(b" \t")
    return name.rstrip(b" \t").lower() + b":" + value + b"\r\n"


_LINE_END = re.compile(rb"\r?\n")
_WSP_RUN = re.compile(rb"[ \t]+")
_WSP_TO_SHORTEN = re.compile(rb"\t[ \t]*| [ \t]+")  # runs that are not already one SP


def canonical_body(body: bytes) -> bytes:
    """RFC 6376 §3.4.4 relaxed: no WSP at line ends, runs of WSP as one SP, no empty lines
    at the end. Lines end in CRLF, and the last one is ended as SMTP will end it."""
    # Each step is skipped when it would change nothing: a regex over 100 KB costs about
    # as much as the RSA signature, and a plain substring search far less.
    if body.count(b"\n") != body.count(b"\r\n"):
        body = _LINE_END.sub(b"\r\n", body)
    if body and not body.endswith(b"\r\n"):
        body += b"\r\n"  # DATA always ends the text with CRLF: verifiers hash that
    if b"\t" in body or b"  " in body:
        body = _WSP_TO_SHORTEN.sub(b" ", body)
    body = body.replace(b" \r\n", b"\r\n")
    end = len(body)
    while end >= 2 and body[end - 2 : end] == b"\r\n":
        end -= 2
    return body[:end] + b"\r\n" if end else b""


def body_hash(body: bytes) -> bytes:
    """bh=: base64 SHA-256 of the relaxed body."""
    return base64.b64encode(hashlib.sha256(canonical_body(body)).digest())


def header_list(
    fields: Sequence[Field], names: Iterable[str], oversigned: Iterable[str]
) -> list[bytes]:
    """h=: each present field named in `names`, in message order, then each of `oversigned`
    once more."""
    wanted = {n.encode() for n in names}
    out = [f.name for f in fields if f.name in wanted]
    return out + [n.encode() for n in oversigned]


def _selected(fields: Sequence[Field], h: Sequence[bytes]) -> list[bytes]:
    """The fields h= names, in h= order, each name taking its instances from the bottom up
    (RFC 6376 §5.4.2); a name with no instance left selects nothing."""
    left: dict[bytes, list[Field]] = {}
    for f in fields:
        left.setdefault(f.name, []).append(f)
    out = []
    for name in h:
        stack = left.get(name)
        if stack:
            out.append(stack.pop().raw)
    return out


def _fold(start: int, tokens: Sequence[tuple[bytes, bytes]], linesep: bytes) -> bytes:
    """Tokens (glue, text) joined by their glue, or by a line break where a line would pass
    WIDTH; `start` is the column the first token begins at."""
    out = bytearray()
    col = start
    for glue, text in tokens:
        if out and col + len(glue) + len(text) > WIDTH:
            out += linesep + b" "
            col = 1
        elif out or glue:
            out += glue
            col += len(glue)
        out += text
        col += len(text)
    return bytes(out)


def _dkim_header(
    domain: bytes, selector: bytes, timestamp: int, h: Sequence[bytes], bh: bytes, linesep: bytes
) -> bytes:
    """`DKIM-Signature: v=1; ...; bh=...; b=` folded, b= empty (to be signed, then filled)."""
    tokens: list[tuple[bytes, bytes]] = [
        (b" ", t)
        for t in (
            b"v=1;",
            b"a=rsa-sha256;",
            b"c=relaxed/relaxed;",
            b"d=" + domain + b";",
            b"s=" + selector + b";",
            b"t=" + str(timestamp).encode() + b";",
        )
    ]
    # h= may break after any colon (FWS is allowed there); it is unfolded before hashing.
    for i, name in enumerate(h):
        last = i == len(h) - 1
        tokens.append(
            (b" " if i == 0 else b"", (b"h=" if i == 0 else b"") + name + (b";" if last else b":"))
        )
    tokens += [(b" ", b"bh=" + bh + b";"), (b" ", b"b=")]
    return b"DKIM-Signature:" + _fold(len(b"DKIM-Signature:"), tokens, linesep)


def _fold_b(signature: bytes, col: int, linesep: bytes) -> bytes:
    # FWS may go anywhere in b= (RFC 6376 §3.5): chunks that keep lines within WIDTH.
    out = []
    while signature:
        room = max(WIDTH - col, 16)
        out.append(signature[:room])
        signature = signature[room:]
        col = 1
    return (linesep + b" ").join(out)


# --- signing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    selector: str
    private_key: rsa.RSAPrivateKey = field(repr=False)
    pem: bytes = field(repr=False)  # PKCS#1, for dkimpy's arc_sign


class Signer:
    """The keys of a DkimConfig, loaded once; adds DKIM signatures and ARC sets to bytes."""

    def __init__(
        self, config: DkimConfig, domains: Iterable[str], clock: Clock | None = None
    ) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self._keys: dict[str, SigningKey] = {}
        if config.default is not None:
            default = _loaded(config.default)
            for d in domains:
                self._keys[d.lower()] = default
        for k in config.keys:
            self._keys[k.domain] = _loaded(k)

    def key_for(self, domain: str) -> SigningKey | None:
        """The domain's own [[dkim.keys]] key, else the [dkim] key if it is one of the
        service's domains, else None (its mail goes out unsigned)."""
        return self._keys.get(domain.lower())

    # DKIM

    def sign(self, raw: bytes, domain: str) -> bytes:
        """`raw` with one DKIM-Signature (d=domain) on top; unchanged when the domain has no
        key or the message cannot be signed."""
        return self._sign(raw, domain, None)[0]

    def sign_many(self, raws: Iterable[bytes], domain: str) -> list[bytes]:
        """`sign` for each of the copies of one post: a body the same as the last copy's is
        hashed once (copies of one post differ in their headers only)."""
        out = []
        memo: tuple[bytes, bytes] | None = None
        for raw in raws:
            signed, memo = self._sign(raw, domain, memo)
            out.append(signed)
        return out

    def _sign(
        self, raw: bytes, domain: str, memo: tuple[bytes, bytes] | None
    ) -> tuple[bytes, tuple[bytes, bytes] | None]:
        key = self.key_for(domain)
        if key is None:
            return raw, memo
        try:
            fields, _, body = split_message(raw)
            linesep = _linesep(raw)
            if memo is not None and memo[0] == body:
                bh = memo[1]
            else:
                bh = body_hash(body)
                memo = (body, bh)
            h = header_list(fields, SIGNED, OVERSIGNED)
            unsigned = _dkim_header(
                domain.lower().encode("ascii"),
                key.selector.encode("ascii"),
                int(self.clock.now()),
                h,
                bh,
                linesep,
            )
            signed_data = b"".join(_canonical_header(f) for f in _selected(fields, h))
            # The signature header itself goes last, relaxed, without its line end.
            signed_data += _canonical_header(unsigned).rstrip(b"\r\n")
            signature = base64.b64encode(
                key.private_key.sign(signed_data, padding.PKCS1v15(), hashes.SHA256())
            )
            col = len(unsigned) - unsigned.rfind(b"\n") - 1
            header = unsigned + _fold_b(signature, col, linesep) + linesep
        except Exception as exc:  # noqa: BLE001 - mail goes out unsigned, never stuck
            log.warning("dkim unsigned domain=%s reason=%s", domain, type(exc).__name__)
            return raw, memo
        return header + raw, memo

    # ARC

    def arc_set(self, raw: bytes, domain: str, srv_id: str) -> bytes:
        """The ARC set (ARC-Seal, ARC-Message-Signature, ARC-Authentication-Results) for
        `raw`, from its topmost Authentication-Results header of `srv_id`; b"" when there is
        none, no key, or dkimpy cannot seal it. Valid on any copy of the post that differs
        from `raw` only in PER_COPY headers (and in headers ARC does not cover)."""
        key = self.key_for(domain)
        if key is None:
            return b""
        try:
            fields, sep, body = split_message(raw)
            view = _arc_view(fields, srv_id)
            if view is None:
                log.info("arc unsealed domain=%s reason=no-authentication-results", domain)
                return b""
            chosen_id, view_fields = view
            include = header_list(
                view_fields, [n for n in SIGNED if n not in PER_COPY], ("from", "subject")
            )
            # The body handed over already relaxed (the form is idempotent, so the hash is
            # the same): dkimpy's own relaxed body regex backtracks quadratically on long
            # runs of spaces, holding the GIL; ours is linear.
            lines = dkim.arc_sign(
                b"".join(f.raw for f in view_fields) + sep + canonical_body(body),
                key.selector.encode("ascii"),
                domain.lower().encode("ascii"),
                key.pem,
                chosen_id.encode("ascii"),
                include_headers=include,
                timestamp=int(self.clock.now()),
                linesep=_linesep(raw),
            )
        except Exception as exc:  # noqa: BLE001 - mail goes out unsealed, never stuck
            log.warning("arc unsealed domain=%s reason=%s", domain, type(exc).__name__)
            return b""
        if not lines:
            log.info("arc unsealed domain=%s reason=chain-ended", domain)
        return b"".join(lines)

    def seal(self, raw: bytes, domain: str, srv_id: str) -> bytes:
        """`raw` with an ARC set on top (see arc_set); unchanged when none can be made."""
        return self.arc_set(raw, domain, srv_id) + raw

    def seal_many(self, raws: Iterable[bytes], domain: str, srv_id: str) -> list[bytes]:
        """`seal` for each copy of one post: one ARC set (two RSA signatures) for all the
        copies whose sealed content (body, covered headers, Authentication-Results and
        earlier ARC sets) is the same as the copy before."""
        out = []
        last: tuple[bytes, bytes] | None = None
        for raw in raws:
            content = _sealed_content(raw)
            if last is None or content is None or last[0] != content:
                arc = self.arc_set(raw, domain, srv_id)
                last = (content, arc) if content is not None else None
            else:
                arc = last[1]
            out.append(arc + raw)
        return out


def _loaded(k: DkimKey) -> SigningKey:
    private = serialization.load_pem_private_key(k.pem, password=None)
    assert isinstance(private, rsa.RSAPrivateKey)  # parse_dkim refused anything else
    return SigningKey(k.selector, private, k.pem)


def _linesep(raw: bytes) -> bytes:
    end = raw.find(b"\n")
    return b"\n" if end > 0 and raw[end - 1 : end] != b"\r" else b"\r\n"


_ARC_NAMES = (b"arc-seal", b"arc-message-signature", b"arc-authentication-results")


def authserv_id(f: Field) -> str:
    """The authserv-id of an Authentication-Results field ('' if it has none)."""
    value = f.raw.partition(b":")[2]
    value = re.sub(rb"\([^()]*\)", b" ", value)  # a comment may precede the id
    m = re.match(rb"\s*([^\s;]+)", value)
    return m.group(1).decode("ascii", "replace") if m else ""


def _arc_view(fields: list[Field], srv_id: str) -> tuple[str, list[Field]] | None:
    """What dkimpy is given to seal: the fields with only the topmost Authentication-Results
    of `srv_id` (one further down, with our id, came with the post: RFC 8601 §5 says to
    trust none of those), under the exact name dkimpy looks for."""
    chosen: str | None = None
    out = []
    for f in fields:
        if f.name == b"authentication-results":
            this = authserv_id(f)
            if this.lower() == srv_id.lower():
                if chosen is not None:
                    continue
                chosen = this
                f = Field(f.name, b"Authentication-Results:" + f.raw.partition(b":")[2])
        out.append(f)
    return None if chosen is None else (chosen, out)


def _sealed_content(raw: bytes) -> bytes | None:
    """Everything an ARC set depends on (for seal_many's reuse); None if unparsable."""
    try:
        fields, _, body = split_message(raw)
    except Unsignable:
        return None
    covered = {n.encode() for n in SIGNED if n not in PER_COPY}
    covered |= {b"authentication-results", *_ARC_NAMES}
    return b"".join(f.raw for f in fields if f.name in covered) + b"\0" + body


def trusted_srv_id(raw: bytes, trusted: Iterable[str]) -> str | None:
    """The authserv-id of the message's topmost Authentication-Results header when it is
    one of `trusted` (an MTA in front that has verified the post), else None."""
    try:
        fields, _, _ = split_message(raw)
    except Unsignable:
        return None
    top = next((f for f in fields if f.name == b"authentication-results"), None)
    if top is None:
        return None
    this = authserv_id(top)
    return this if this.lower() in {t.lower() for t in trusted} else None


# --- keys ------------------------------------------------------------------------------


def txt_record(domain: str, selector: str, public_key: rsa.RSAPublicKey) -> str:
    """The zone-file line to publish: `S._domainkey.D. IN TXT ( "v=DKIM1; k=rsa; p=…" )`,
    the value split into strings of at most 255 characters (RFC 1035 §3.3.14)."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    value = "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode("ascii")
    strings = " ".join(f'"{value[i : i + 255]}"' for i in range(0, len(value), 255))
    return f"{selector}._domainkey.{domain}. IN TXT ( {strings} )"


def keygen(domain: str, selector: str, directory: Path) -> tuple[Path, str]:
    """Write a new RSA-2048 key (PEM, mode 0600) as DIRECTORY/DOMAIN.SELECTOR.key and
    return its path and the DNS TXT record to publish. Never overwrites a key: its record
    may already be in DNS, and mail signed with it would stop verifying."""
    if not _DOMAIN.fullmatch(domain):
        raise UserError(f"{domain!r} is not a domain name")
    if not _SELECTOR.fullmatch(selector):
        raise UserError(f"{selector!r} cannot be a selector (letters, digits, -, dots)")
    domain = domain.lower()
    path = directory / f"{domain}.{selector}.key"
    if path.exists():
        raise UserError(
            f"{path} already exists; choose another --selector (keys are never overwritten)"
        )
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        private = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UserError(
            f"{path} already exists; choose another --selector (keys are never overwritten)"
        ) from None
    except OSError as exc:
        raise UserError(f"cannot write {path} ({exc.strerror or exc})") from None
    with os.fdopen(fd, "wb") as f:
        f.write(_pkcs1(private))
    return path, txt_record(domain, selector, private.public_key())
