"""Forwarding a message to people (administrators, enquiry handlers, a list's facilitators).

The forward is from our own address (so the sender's DMARC policy cannot make it
bounce), with the sender in Reply-To so that "reply" reaches them, and the original
body resent untouched. Our own mail coming back (our X-Loop) is never forwarded again,
and a forward carries the original's X-Loop values (plus ours), its Received lines and
its hop count plus one, so that two services forwarding to each other stop: at the
first of them to see its own X-Loop come back, or at the hop limit (`messages.MAX_HOPS`)
when something between them drops the X-Loop lines.
"""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.utils import format_datetime

from mailhub import logs
from mailhub.addresses import address as mailhub_address
from mailhub.clock import as_datetime
from mailhub.context import Context, Incoming
from mailhub.messages import (
    MAX_HOPS,
    address,
    head_fields,
    hops,
    new_message_id,
    rewrap,
    safe_text,
    too_many_hops,
)
from mailhub.parsing import addresses, header, header_values


def forward_headers(
    mail: Incoming, *, via: str, to: list[str], label: str, now_header: str
) -> EmailMessage:
    """Headers of a forward: from our address, the sender in Reply-To."""
    msg = mail.message
    sender = addresses(msg, "reply-to") or addresses(msg, "from")
    name, addr = sender[0] if sender else ("", mail.mail_from)
    shown = name or addr or "unknown sender"
    envelope = EmailMessage(policy=policy.SMTP)
    envelope["From"] = address(f"{shown} via {label}", via)
    envelope["To"] = ", ".join(to)
    if addr:
        envelope["Reply-To"] = address(name, addr)
    envelope["Subject"] = safe_text(header(msg, "subject")) or "(no subject)"
    envelope["Date"] = now_header
    original_id = header(msg, "message-id")
    if original_id:
        envelope["X-Original-Message-ID"] = safe_text(original_id[:200])
    return envelope


async def forward(
    ctx: Context,
    mail: Incoming,
    *,
    via: str,
    to: list[str],
    label: str,
    kind: str,
    subject: str = "",
    thread: tuple[str, ...] = (),
) -> str:
    """Queue a forward of `mail` to `to`; returns its Message-ID ('', and nothing sent, for
    our own mail looping). `subject` replaces the original's; `thread` (Message-IDs, the
    first of the thread first) makes it a reply to the last of them in the recipients'
    mailboxes (In-Reply-To and References)."""
    if any(v.lower() == ctx.loop_id.lower() for v in header_values(mail.message, "x-loop")):
        logs.event("forward", queue_id=mail.queue_id, kind=kind, outcome="loop discarded")
        return ""
    fields = head_fields(mail.raw)
    if too_many_hops(fields):
        logs.event(
            "forward",
            queue_id=mail.queue_id,
            kind=kind,
            outcome="loop discarded",
            reason=f"hop limit: {hops(fields)} hops (limit {MAX_HOPS})",
        )
        return ""
    envelope = forward_headers(
        mail, via=via, to=to, label=label, now_header=format_datetime(as_datetime(ctx.now()))
    )
    if subject:
        del envelope["Subject"]
        envelope["Subject"] = safe_text(subject)
    if thread:
        envelope["In-Reply-To"] = thread[-1]
        envelope["References"] = " ".join(dict.fromkeys(thread))
    envelope["Message-ID"] = message_id = new_message_id(ctx.domain)
    await ctx.send(
        rewrap(mail.raw, envelope, loop_id=ctx.loop_id, received=True, fields=fields),
        to,
        kind=kind,
        message_id=message_id,
        mail_from=mailhub_address("postmaster", ctx.domain),
    )
    return message_id
