"""`enquiries@D`: forwarded to the handlers, with an acknowledgement to the sender.
`postmaster@D` / `abuse@D` (RFC 2142): forwarded to the administrators."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.utils import format_datetime

from mailhub.clock import as_datetime
from mailhub.context import Context, Incoming
from mailhub.messages import address, build_message, new_message_id, rewrap
from mailhub.parsing import addresses, clean, header
from mailhub.routing import Route


def forward_headers(
    mail: Incoming, *, via: str, to: list[str], label: str, now_header: str
) -> EmailMessage:
    """Headers of a forward: from our address (so DMARC holds), the sender in Reply-To."""
    msg = mail.message
    sender = addresses(msg, "reply-to") or addresses(msg, "from")
    name, addr = sender[0] if sender else ("", mail.mail_from)
    shown = name or addr or "unknown sender"
    envelope = EmailMessage(policy=policy.SMTP)
    envelope["From"] = address(f"{shown} via {label}", via)
    envelope["To"] = ", ".join(to)
    if addr:
        envelope["Reply-To"] = address(name, addr)
    envelope["Subject"] = clean(header(msg, "subject")) or "(no subject)"
    envelope["Date"] = now_header
    original_id = header(msg, "message-id")
    if original_id:
        envelope["X-Original-Message-ID"] = original_id[:200]
    return envelope


async def _forward(
    ctx: Context, mail: Incoming, route: Route, to: list[str], label: str, kind: str
) -> None:
    envelope = forward_headers(
        mail,
        via=route.address,
        to=to,
        label=label,
        now_header=format_datetime(as_datetime(ctx.now())),
    )
    envelope["Message-ID"] = message_id = new_message_id(ctx.domain)
    envelope["X-Loop"] = ctx.loop_id
    await ctx.send(
        rewrap(mail.raw, envelope),
        to,
        kind=kind,
        message_id=message_id,
        mail_from=f"postmaster@{ctx.domain}",
    )


async def handle_admin(ctx: Context, mail: Incoming, route: Route) -> None:
    await _forward(
        ctx, mail, route, list(ctx.config.admins), route.address.split("@")[0], "admin.forward"
    )


async def handle_enquiry(ctx: Context, mail: Incoming, route: Route) -> None:
    cfg = ctx.config.enquiries
    handlers = list(cfg.handlers) or list(ctx.config.admins)
    await _forward(ctx, mail, route, handlers, "enquiries", "enquiry.forward")
    text = ctx.templates.render("enquiry_ack", cfg.language, domain=ctx.domain)
    reply = build_message(
        from_=address("Enquiries", route.address),
        to=mail.mail_from,
        subject=text.subject,
        body=text.body,
        domain=ctx.domain,
        now=ctx.now(),
    )
    await ctx.auto_reply(mail, reply, kind="enquiry.ack")
