"""The distribution copy of a list post (pure): list headers, subject prefix, footer, DMARC,
and the poster's address hidden on lists whose addresses are hidden.

Standards: RFC 2919 (List-Id), RFC 2369 (List-Post, -Help, -Subscribe, -Unsubscribe,
-Archive, -Owner), RFC 2076 (Precedence: list). The copy keeps the poster's own
headers (To, Cc, Date, Message-ID, References...) so replies thread; it never
adds member addresses, so no member sees who else is on the list. Kept headers are
cleaned of control characters and re-folded here, never re-serialised by the email
package (CVE-2024-6923: a decoded CR/LF written out as a line break).

Hidden addresses (`addresses = "hidden"`, the default): a copy goes out
`From: "Name via List" <LIST@D>` with replies to the poster's private relay address
(`LIST-reply+TOKEN@D`, see lists/reply_relay.py), and no field of it carries any of the
poster's addresses: the fields that name them are rewritten (To, Cc) or removed
(Reply-To, Sender, Received, X-Original-From...), and any other field whose value,
encoded words decoded, holds one is removed too. Message-ID, In-Reply-To and References
stay: they are identifiers that threads depend on (a Message-ID is made by the poster's
mail program and names at most their mail host).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, fields
from email import policy
from email.message import EmailMessage, Message

from mailhub.addresses import list_addresses
from mailhub.lists.config import DmarcConfig, ListConfig
from mailhub.lists.footer import with_footer
from mailhub.messages import (
    HOPS_HEADER,
    address,
    clean_fields,
    hops,
    raw_fields,
    safe_text,
    split_raw,
    to_bytes,
)
from mailhub.parsing import addresses, clean, decode_words, header, parse_head

# Headers of the incoming post that must not reach members: envelope traces that name
# the poster's private addresses, read-receipt requests (they would go to every
# member), moderator passwords (Approved), and any list headers of another list.
STRIP = (
    "return-path",
    "delivered-to",
    "x-original-to",
    "envelope-to",
    "bcc",
    "errors-to",
    "sender",
    "approved",
    "approve",
    "disposition-notification-to",
    "return-receipt-to",
    "x-confirm-reading-to",
    "list-id",
    "list-post",
    "list-help",
    "list-subscribe",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "list-archive",
    "list-owner",
    "precedence",
)

# The poster's own signatures and the authentication results of the post's way in. A list
# copy always changes what a DKIM signature covers (the subject prefix, the footer, the list
# headers, From: on hidden lists), so a signature kept would only fail at members' hosts
# and count against the poster's domain; an Authentication-Results field of another host
# says nothing members' hosts can trust (nor can we tell a forged one claiming our own
# id from a real one here). The results we vouch for are added by the caller
# (`authentication_results`), and the ARC seal at delivery carries them.
SIGNATURES = (
    "dkim-signature",
    "domainkey-signature",
    "x-google-dkim-signature",
    "arc-seal",
    "arc-message-signature",
    "arc-authentication-results",
    "authentication-results",
)
# On a hidden list, fields that name the poster's address or the hosts it came through:
# removed whatever they hold (Reply-To and From are set anew; To and Cc are rewritten
# without the poster when they name them).
HIDDEN_STRIP = (
    "reply-to",
    "received",
    "received-spf",
    "x-original-from",
    "x-original-sender",
    "x-sender",
    "x-envelope-from",
    "x-originating-email",
    "x-originating-ip",
    "x-apparently-from",
    "x-authenticated-sender",
    "x-authenticated-user",
    "x-google-original-from",
    "mail-followup-to",
    "mail-reply-to",
    "resent-from",
    "resent-sender",
    "resent-reply-to",
)
# Identifiers: kept even when the poster's mail program wrote an address into one.
_IDENTIFIERS = frozenset({"message-id", "in-reply-to", "references"})
# The poster on a hidden list, in the list's leading language (a From: name has room for
# one language; a "cy+en" list leads in Welsh). Never their address, not even a part of it.
A_MEMBER = {"en": "A member", "cy": "Aelod"}
_VIA = {"en": "{name} via {list}", "cy": "{name} drwy {list}"}


@dataclass(frozen=True)
class ListAddresses:
    """A list's own addresses (mailhub.addresses.list_addresses), as templates name them."""

    post: str
    join: str
    leave: str
    request: str
    owner: str
    bounces: str

    @classmethod
    def of(cls, list_name: str, domain: str) -> ListAddresses:
        return _list_addresses(list_name, domain)


@functools.lru_cache(maxsize=256)
def _list_addresses(list_name: str, domain: str) -> ListAddresses:
    every = list_addresses(list_name, domain)
    return ListAddresses(**{f.name: every[f.name] for f in fields(ListAddresses)})


def list_id(list_name: str, domain: str) -> str:
    """The RFC 2919 list identifier (the part between angle brackets)."""
    return f"{list_name}.{domain}".lower()


def list_id_header(cfg: ListConfig, domain: str) -> str:
    label = clean(cfg.display_name).replace('"', "").replace("\\", "")
    return f'"{label}" <{list_id(cfg.name, domain)}>'


def extract_list_ids(values: list[str]) -> tuple[str, ...]:
    """The identifiers in List-Id header values (`"Name" <id>` or a bare id)."""
    out = []
    for value in values:
        m = re.search(r"<([^<>]+)>", value)
        out.append((m.group(1) if m else value).strip().lower())
    return tuple(v for v in out if v)


def prefixed_subject(subject: str, display_name: str, *also: str) -> str:
    """`[Display Name] subject`, without a second prefix on replies (`Re: [X] ...` stays),
    nor when the subject carries the list's name in its other language (`also`): a reply
    from someone whose copy was prefixed in Welsh keeps its one prefix."""
    prefix = f"[{clean(display_name)}]"
    subject = clean(subject)
    names = [prefix, *(f"[{clean(n)}]" for n in also if n)]
    if any(name.lower() in subject.lower() for name in names):
        return subject
    return f"{prefix} {subject}" if subject else f"{prefix} (no subject)"


def needs_dmarc_rewrite(cfg: ListConfig, dmarc: DmarcConfig, from_address: str) -> bool:
    """Would the poster's domain policy make our unchanged From: fail DMARC at members' hosts?

    The policy source is the local `[dmarc] strict_domains` list (no DNS lookups); a
    subdomain of a listed domain counts, as DMARC's organisational domain does.
    """
    if cfg.dmarc_rewrite == "always":
        return True
    if cfg.dmarc_rewrite == "never":
        return False
    domain = from_address.rpartition("@")[2].lower()
    while domain:
        if domain in dmarc.strict_domains:
            return True
        domain = domain.partition(".")[2]
    return False


def leading_language(language: str) -> str:
    return language.split("+", 1)[0]


def poster_name(name: str, language: str) -> str:
    """What a hidden list calls a poster: their display name, or "A member" ("Aelod") when
    they gave none, or one that holds an address (`"ann@x" <ann@x>` is common)."""
    name = clean(name)
    if not name or "@" in name:
        return A_MEMBER.get(leading_language(language), A_MEMBER["en"])
    return name


def display_name_of(raw: bytes) -> str:
    """The From: display name of a post ('' when it gives none, or one holding an address),
    for a hidden list's pages that name posters (a digest's contents)."""
    senders = addresses(parse_head(split_raw(raw)[0]), "from")
    name = clean(senders[0][0]) if senders else ""
    return "" if "@" in name else name


def via(name: str, cfg: ListConfig) -> str:
    """`NAME via LIST` (`NAME drwy LIST`) in the list's leading language."""
    form = _VIA.get(leading_language(cfg.language), _VIA["en"])
    return form.format(name=poster_name(name, cfg.language), list=clean(cfg.shown_name))


@dataclass(frozen=True)
class Hidden:
    """How one post's header block is edited to hide its poster (`hide_poster`)."""

    fields: dict[str, str]  # fields set anew (From, Reply-To, and To/Cc when rewritten)
    drop: frozenset[str]  # lower-case names of the post's fields removed
    addresses: frozenset[str]  # the poster's addresses: no kept field may hold one


def poster_addresses(msg: Message, domain: str) -> frozenset[str]:
    """Every address of the poster a post's header block names (From, Sender, Reply-To,
    Return-Path and their X- relatives), lower-cased; ours (the list's) excepted."""
    names = ("from", "sender", "reply-to", "return-path", "x-original-from", "x-sender")
    own = "@" + domain.lower()
    found = {a.lower() for _, a in addresses(msg, *names)}
    return frozenset(a for a in found if not a.endswith(own))


def hide_poster(msg: Message, cfg: ListConfig, domain: str, reply_address: str = "") -> Hidden:
    """The edit that leaves none of the poster's addresses in a copy of `msg` (pure).

    Replies go to `reply_address` (the poster's relay address) unless the list asks for
    replies to the list (`reply_to = "list"`), or there is none: then to the list, which
    the reader sees in the To: of their reply (never a private reply gone public unseen).
    """
    a = ListAddresses.of(cfg.name, domain)
    hide = poster_addresses(msg, domain)
    senders = addresses(msg, "from")
    shown = via(senders[0][0] if senders else "", cfg)
    fields = {"From": address(shown, a.post)}
    if cfg.reply_to == "sender" and reply_address:
        fields["Reply-To"] = address(shown, reply_address)
    else:
        fields["Reply-To"] = address(cfg.shown_name, a.post)
    drop = set(HIDDEN_STRIP) | {"sender", "return-path"}
    for name in ("To", "Cc"):
        pairs = addresses(msg, name.lower())
        others = [(n, x) for n, x in pairs if x.lower() not in hide]
        if len(others) == len(pairs):
            continue
        drop.add(name.lower())
        if others:
            fields[name] = ", ".join(address("" if "@" in n else n, x) for n, x in others)
    return Hidden(fields, frozenset(drop), hide)


def names_any(value: str, hide: frozenset[str]) -> bool:
    """Does a raw header value hold one of `hide`, as written or in its encoded words
    (a display name, a comment) or percent-encoded (a mailto: URI)?"""
    if not hide:
        return False
    text = value.lower()
    if "=?" in text:
        text += " " + decode_words(value).lower()
    text = text.replace("%40", "@")
    return any(a in text for a in hide)


def list_headers(cfg: ListConfig, domain: str) -> dict[str, str]:
    a = ListAddresses.of(cfg.name, domain)
    out = {
        "List-Id": list_id_header(cfg, domain),
        "List-Post": f"<mailto:{a.post}>",
        "List-Help": f"<mailto:{a.request}?subject=help>",
        "List-Subscribe": f"<mailto:{a.join}>",
        "List-Unsubscribe": f"<mailto:{a.leave}>",
        "List-Owner": f"<mailto:{a.owner}>",
    }
    if cfg.archive_url:
        out["List-Archive"] = f"<{clean(cfg.archive_url)}>"
    out["Precedence"] = "list"
    return out


def kept_fields(
    head: bytes,
    drop: frozenset[str] | set[str] = frozenset(),
    hide: frozenset[str] = frozenset(),
) -> list[bytes]:
    """The post's own header fields a copy keeps: all but STRIP, `drop`, an old hop count
    and (but for identifiers) any that holds an address in `hide`, each cleaned and
    re-folded by us (`messages.clean_fields`)."""
    skip = {*STRIP, *drop, HOPS_HEADER.lower()}
    return clean_fields(
        [
            (n, v)
            for n, v in raw_fields(head)
            if n.lower() not in skip and (n.lower() in _IDENTIFIERS or not names_any(v, hide))
        ]
    )


def _set_fields(fields: dict[str, str] | list[tuple[str, str]]) -> list[bytes]:
    """Fields of ours as header lines, set through the email package from clean values."""
    envelope = EmailMessage(policy=policy.SMTP)
    for field, value in fields.items() if isinstance(fields, dict) else fields:
        envelope[field] = safe_text(value)
    return [ln for ln in split_raw(to_bytes(envelope))[0].split(b"\r\n") if ln]


def stripped_copy(
    raw: bytes, *, cfg: ListConfig | None = None, domain: str = "", reply_address: str = ""
) -> bytes:
    """A post as a member digest embeds it: the header cleaning and stripping a list copy
    gets, the body untouched (the digest is the list's, so no list headers or footer). On
    a hidden list (`cfg`), the poster hidden as in a copy (`hide_poster`), replies to
    `reply_address`."""
    head, body = split_raw(raw)
    if cfg is None or cfg.addresses != "hidden":
        return b"\r\n".join(kept_fields(head)) + b"\r\n\r\n" + body
    hidden = hide_poster(parse_head(head), cfg, domain, reply_address)
    drop = hidden.drop | set(SIGNATURES) | {n.lower() for n in hidden.fields}
    lines = kept_fields(head, drop, hidden.addresses) + _set_fields(hidden.fields)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def distribution_copy(
    raw: bytes,
    *,
    cfg: ListConfig,
    domain: str,
    loop_id: str,
    footer: str,
    dmarc: DmarcConfig,
    message_id: str,
    rewrite_from: bool | None = None,
    authentication_results: str | None = None,
    reply_address: str = "",
) -> bytes:
    """The bytes every member receives (before per-member personalisation).

    Edited, not rebuilt: the post's own fields are kept (cleaned and re-folded by us, see
    `kept_fields`), the list's fields are set through the email package from clean values
    only, and the body is the original's bytes with the footer put in (`with_footer`).

    The poster's DKIM signatures, ARC sets and Authentication-Results fields are always
    removed (`SIGNATURES`: every copy changes signed content). `authentication_results`:
    our own verdict on the post, added as the copy's first field (for the ARC seal).

    On a hidden list the poster is hidden (`hide_poster`), replies to `reply_address`
    (`LIST-reply+TOKEN@D`, made by the caller: lists/reply_relay.py). On a shown list
    From: is kept unless DMARC asks for a rewrite: `rewrite_from` when the caller decided
    (by DNS), else `needs_dmarc_rewrite` from `[dmarc] strict_domains`."""
    head, body = split_raw(raw)
    msg = parse_head(head)
    # The list's Welsh name when Welsh comes first (ListConfig.shown_name).
    subject = prefixed_subject(
        header(msg, "subject"), cfg.shown_name, cfg.display_name, cfg.display_name_cy
    )
    new: dict[str, str] = {"Subject": subject}
    drop: set[str] = set(SIGNATURES)
    hide: frozenset[str] = frozenset()
    if cfg.addresses == "hidden":
        hidden = hide_poster(msg, cfg, domain, reply_address)
        new.update(hidden.fields)
        drop |= hidden.drop
        hide = hidden.addresses
    else:
        new.update(_shown_fields(msg, cfg, domain, dmarc, rewrite_from))
    new.update(list_headers(cfg, domain))

    mime, replaced, body = with_footer(msg, raw, body, footer)
    kept = kept_fields(head, drop | {n.lower() for n in new} | replaced, hide)
    trace = [("X-Loop", loop_id), (HOPS_HEADER, str(hops(raw_fields(head)) + 1))]
    if not any(line[:11].lower() == b"message-id:" for line in kept):
        trace.append(("Message-ID", message_id))
    ours = _set_fields([*new.items(), *trace])
    results = (
        _set_fields({"Authentication-Results": authentication_results})
        if (authentication_results)
        else []
    )
    return b"\r\n".join(results + kept + ours + (mime or [])) + b"\r\n\r\n" + body


def _shown_fields(
    msg: Message, cfg: ListConfig, domain: str, dmarc: DmarcConfig, rewrite_from: bool | None
) -> dict[str, str]:
    """From/Reply-To/Cc of a copy on a list whose addresses are shown: the poster's own,
    unless their domain's DMARC policy makes us send it From: the list."""
    a = ListAddresses.of(cfg.name, domain)
    senders = addresses(msg, "from")
    name, from_addr = senders[0] if senders else ("", "")
    if rewrite_from is None:
        rewrite = bool(from_addr) and needs_dmarc_rewrite(cfg, dmarc, from_addr)
    else:
        rewrite = rewrite_from and bool(from_addr)
    out: dict[str, str] = {}
    if rewrite:
        shown = name or from_addr.partition("@")[0]
        out["From"] = address(f"{shown} via {cfg.display_name}", a.post)
    if cfg.reply_to == "list":
        out["Reply-To"] = address(cfg.shown_name, a.post)
        if rewrite:
            # Replies go to the list, and the poster is still reachable by "reply all".
            cc = [address(n, addr) for n, addr in addresses(msg, "cc")]
            out["Cc"] = ", ".join([*cc, address(name, from_addr)])
    elif rewrite and not addresses(msg, "reply-to"):
        out["Reply-To"] = address(name, from_addr)
    return out
