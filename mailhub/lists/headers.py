"""The distribution copy of a list post (pure): list headers, subject prefix, footer, DMARC.

Standards: RFC 2919 (List-Id), RFC 2369 (List-Post, -Help, -Subscribe, -Unsubscribe,
-Archive, -Owner), RFC 2076 (Precedence: list). The copy keeps the poster's own
headers (From, To, Cc, Date, Message-ID, References...) so replies thread; it never
adds member addresses, so no member sees who else is on the list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import EmailMessage

from mailhub.lists.config import DmarcConfig, ListConfig
from mailhub.messages import address, new_message_id, rewrap, to_bytes
from mailhub.parsing import addresses, clean, header, parse

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

FOOTER_RULE = "_______________________________________________"
# Encrypted content cannot take a footer without becoming unreadable.
_UNTOUCHABLE = {"multipart/encrypted", "application/pkcs7-mime", "application/x-pkcs7-mime"}


@dataclass(frozen=True)
class ListAddresses:
    post: str
    join: str
    leave: str
    request: str
    owner: str
    bounces: str

    @classmethod
    def of(cls, list_name: str, domain: str) -> ListAddresses:
        return cls(
            post=f"{list_name}@{domain}",
            join=f"{list_name}-join@{domain}",
            leave=f"{list_name}-leave@{domain}",
            request=f"{list_name}-request@{domain}",
            owner=f"{list_name}-owner@{domain}",
            bounces=f"{list_name}-bounces@{domain}",
        )


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


def prefixed_subject(subject: str, display_name: str) -> str:
    """`[Display Name] subject`, without a second prefix on replies (`Re: [X] ...` stays)."""
    prefix = f"[{clean(display_name)}]"
    subject = clean(subject)
    if prefix.lower() in subject.lower():
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


def add_footer(msg: EmailMessage, footer: str) -> None:
    """Append the footer where the reader will see it, without breaking the structure.

    A single text/plain part gets the text appended; multipart/mixed gets one more
    text/plain part; anything else (HTML only, alternative, signed) is wrapped in a
    multipart/mixed with the footer after it, which keeps a signature verifiable.
    Encrypted mail is left as it is.
    """
    if not footer.strip():
        return
    ctype = msg.get_content_type()
    if ctype in _UNTOUCHABLE:
        return
    text = f"\n{FOOTER_RULE}\n{footer.rstrip()}\n"
    disposition = (msg.get("Content-Disposition") or "").lower()
    if ctype == "text/plain" and not disposition.startswith("attachment"):
        body = msg.get_content()
        if not body.endswith("\n"):
            body += "\n"
        msg.set_content(body + text, charset="utf-8", cte="quoted-printable")
        return
    part = EmailMessage()
    part.set_content(text.lstrip("\n"), charset="utf-8", cte="quoted-printable")
    part["Content-Disposition"] = "inline"
    del part["MIME-Version"]
    if ctype != "multipart/mixed":
        msg.make_mixed()
    msg.attach(part)


def distribution_copy(
    raw: bytes,
    *,
    cfg: ListConfig,
    domain: str,
    loop_id: str,
    footer: str,
    dmarc: DmarcConfig,
    message_id: str,
) -> bytes:
    """The bytes every member receives (before per-member personalisation)."""
    msg = parse(raw)
    a = ListAddresses.of(cfg.name, domain)
    senders = addresses(msg, "from")
    name, from_addr = senders[0] if senders else ("", "")
    original_reply_to = addresses(msg, "reply-to")
    subject = prefixed_subject(header(msg, "subject"), cfg.display_name)
    rewrite = bool(from_addr) and needs_dmarc_rewrite(cfg, dmarc, from_addr)

    new: dict[str, str] = {"Subject": subject}
    if rewrite:
        shown = name or from_addr.partition("@")[0]
        new["From"] = address(f"{shown} via {cfg.display_name}", a.post)
    if cfg.reply_to == "list":
        new["Reply-To"] = address(cfg.display_name, a.post)
        if rewrite:
            # Replies go to the list, and the poster is still reachable by "reply all".
            cc = [v for v in (header(msg, "cc"), address(name, from_addr)) if v]
            new["Cc"] = ", ".join(cc)
    elif rewrite and not original_reply_to:
        new["Reply-To"] = address(name, from_addr)
    new.update(list_headers(cfg, domain))

    try:
        for field in (*STRIP, *(n.lower() for n in new)):
            del msg[field]
        for field, value in new.items():
            msg[field] = value
        msg["X-Loop"] = loop_id
        if "Message-ID" not in msg:
            msg["Message-ID"] = message_id
        add_footer(msg, footer)
        return to_bytes(msg)
    except Exception:  # noqa: BLE001 - a broken post still goes out, untouched inside
        return _fallback(raw, msg, new, loop_id, message_id)


def _fallback(raw: bytes, msg: EmailMessage, new: dict[str, str], loop_id: str, mid: str) -> bytes:
    """Resend the body verbatim under clean headers when the parsed form cannot be rebuilt."""
    envelope = EmailMessage()
    source = parse(raw)
    for field in ("From", "To", "Cc", "Date", "In-Reply-To", "References", "Reply-To"):
        value = header(source, field)
        if value and field not in new:
            envelope[field] = value
    for field, value in new.items():
        envelope[field] = value
    envelope["Message-ID"] = header(source, "message-id") or mid or new_message_id("invalid")
    envelope["X-Loop"] = loop_id
    return rewrap(raw, envelope)
