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

from dataclasses import dataclass
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
    encode_words,
    head_fields,
    header_lines,
    hops,
    new_message_id,
    plain_address,
    rewrap,
    rewrap_lines,
    safe_text,
    too_many_hops,
)
from mailhub.parsing import addresses, header, header_values


@dataclass(frozen=True)
class ForwardHead:
    """What a forward's header block says, before it is written: from our address (`via`),
    the sender in Reply-To."""

    from_name: str
    via: str
    to: tuple[str, ...]
    reply_name: str
    reply_addr: str
    subject: str
    original_id: str
    date: str
    # A reply in the recipients' mailboxes to the last of these (In-Reply-To, References).
    thread: tuple[str, ...] = ()

    @classmethod
    def of(
        cls,
        mail: Incoming,
        *,
        via: str,
        to: list[str],
        label: str,
        now_header: str,
        subject: str = "",
        thread: tuple[str, ...] = (),
    ) -> ForwardHead:
        msg = mail.message
        sender = addresses(msg, "reply-to") or addresses(msg, "from")
        name, addr = sender[0] if sender else ("", mail.mail_from)
        shown = name or addr or "unknown sender"
        original_id = header(msg, "message-id")
        return cls(
            from_name=f"{shown} via {label}",
            via=via,
            to=tuple(to),
            reply_name=name,
            reply_addr=addr,
            subject=safe_text(subject or header(msg, "subject")) or "(no subject)",
            original_id=safe_text(original_id[:200]) if original_id else "",
            date=now_header,
            thread=tuple(dict.fromkeys(safe_text(t) for t in thread if t)),
        )

    def lines(self, message_id: str) -> list[bytes] | None:
        """The header block written by us, in 7-bit; None when an address is not a plain
        ASCII one (or a value will not fold): then `envelope` writes it."""
        from_ = plain_address(self.from_name, self.via)
        to = [plain_address("", a) for a in self.to]
        reply_to = plain_address(self.reply_name, self.reply_addr) if self.reply_addr else ""
        if from_ is None or reply_to is None or None in to:
            return None
        if not all(t.isascii() for t in self.thread):
            return None
        fields = [("From", from_), ("To", ", ".join(to))]  # type: ignore[arg-type]
        if reply_to:
            fields.append(("Reply-To", reply_to))
        fields += [("Subject", encode_words(self.subject)), ("Date", self.date)]
        if self.thread:
            fields += [("In-Reply-To", self.thread[-1]), ("References", " ".join(self.thread))]
        if self.original_id:
            fields.append(("X-Original-Message-ID", encode_words(self.original_id)))
        fields.append(("Message-ID", message_id))
        return header_lines(fields)

    def envelope(self, message_id: str) -> EmailMessage:
        """The header block as an EmailMessage: any address the email package can write
        (internationalised ones in UTF-8, RFC 6532)."""
        envelope = EmailMessage(policy=policy.SMTP)
        envelope["From"] = address(self.from_name, self.via)
        envelope["To"] = ", ".join(self.to)
        if self.reply_addr:
            envelope["Reply-To"] = address(self.reply_name, self.reply_addr)
        envelope["Subject"] = self.subject
        envelope["Date"] = self.date
        if self.thread:
            envelope["In-Reply-To"] = self.thread[-1]
            envelope["References"] = " ".join(self.thread)
        if self.original_id:
            envelope["X-Original-Message-ID"] = self.original_id
        envelope["Message-ID"] = message_id
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
    head = ForwardHead.of(
        mail,
        via=via,
        to=to,
        label=label,
        now_header=format_datetime(as_datetime(ctx.now())),
        subject=subject,
        thread=thread,
    )
    message_id = new_message_id(ctx.domain)
    lines = head.lines(message_id)
    if lines is not None:
        raw = rewrap_lines(mail.raw, lines, loop_id=ctx.loop_id, received=True, fields=fields)
    else:
        envelope = head.envelope(message_id)
        raw = rewrap(mail.raw, envelope, loop_id=ctx.loop_id, received=True, fields=fields)
    await ctx.send(
        raw,
        to,
        kind=kind,
        message_id=message_id,
        mail_from=mailhub_address("postmaster", ctx.domain),
    )
    return message_id
