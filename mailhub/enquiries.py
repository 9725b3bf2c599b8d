"""`enquiries@D`: forwarded to the handlers, with an acknowledgement to the sender.
`postmaster@D` / `abuse@D` (RFC 2142): forwarded to the administrators.

Its config ([enquiries], [admin]) is the core's: the administrators matter to all apps."""

from __future__ import annotations

from mailhub.app import App
from mailhub.context import Context, Incoming
from mailhub.forwarding import forward
from mailhub.messages import address, build_message
from mailhub.routing import Route


async def handle_admin(ctx: Context, mail: Incoming, route: Route) -> None:
    await forward(
        ctx,
        mail,
        via=route.address,
        to=list(ctx.config.admins),
        label=route.address.split("@")[0],
        kind="admin.forward",
    )


async def handle_enquiry(ctx: Context, mail: Incoming, route: Route) -> None:
    cfg = ctx.config.enquiries
    handlers = list(cfg.handlers) or list(ctx.config.admins)
    if not await forward(
        ctx, mail, via=route.address, to=handlers, label="enquiries", kind="enquiry.forward"
    ):
        return
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


ENQUIRIES = App(
    name="enquiries",
    handlers={"admin": handle_admin, "enquiries": handle_enquiry},
)
APP = ENQUIRIES
