"""`enquiries@D`: forwarded to the handlers, with an acknowledgement to the sender.
`postmaster@D` / `abuse@D` (RFC 2142): forwarded to the administrators.

An enquiry is a thread: it has a reference (`E-7KQ2-9F`, in the subjects), and its
acknowledgement's Reply-To is `enquiries+TOKEN@D`. A reply from the same mailbox, to that
address or carrying one of the thread's Message-IDs in In-Reply-To/References, is forwarded
to the handlers as a reply to the thread's latest forward, and is not acknowledged again:
the acknowledgement promised that replies are added to the enquiry.

Its config ([enquiries], [admin]) is the core's: the administrators matter to all apps."""

from __future__ import annotations

import hashlib
import re
import secrets
from email.message import EmailMessage

from mailhub import logs
from mailhub.addresses import address as mailhub_address
from mailhub.app import App
from mailhub.context import Context, Incoming
from mailhub.forwarding import forward
from mailhub.mailbox import mailbox_key
from mailhub.messages import address, build_message, safe_text
from mailhub.parsing import addresses, header
from mailhub.routing import Route
from mailhub.store import enquiries as store

# No 0/O or 1/I: a reference is read aloud and typed back by people.
_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
_MESSAGE_ID = re.compile(r"<[^<>\s]{1,250}>")
# At most this many of a reply's In-Reply-To/References ids are looked up.
MAX_THREAD_IDS = 30


def new_ref() -> str:
    """A short reference such as E-7KQ2-9F: a label for people, not a capability (joining
    a thread takes the sender's own mailbox as well)."""
    chars = "".join(secrets.choice(_ALPHABET) for _ in range(6))
    return f"E-{chars[:4]}-{chars[4:]}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def senders(mail: Incoming) -> list[str]:
    """The mailboxes a message is from: its From: address and its envelope sender."""
    found = [a for _, a in addresses(mail.message, "from")[:1]] + [mail.mail_from]
    return list(dict.fromkeys(mailbox_key(a) for a in found if a))


def thread_ids(msg: EmailMessage) -> list[str]:
    """The Message-IDs a reply names (In-Reply-To first, then References, newest first)."""
    found = _MESSAGE_ID.findall(header(msg, "in-reply-to"))
    found += reversed(_MESSAGE_ID.findall(header(msg, "references")))
    return list(dict.fromkeys(found))[:MAX_THREAD_IDS]


async def thread_of(ctx: Context, mail: Incoming, route: Route) -> store.Enquiry | None:
    """The enquiry a message replies to, if it is from the mailbox that opened it."""
    who = senders(mail)
    if route.kind == "enquiries+TOKEN":
        found = await store.by_token(ctx.tx, token_hash(route.get("token")))
        if found is not None and found.sender in who:
            return found
    return await store.by_message_ids(ctx.tx, thread_ids(mail.message), who)


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
    # Forwards always come from the plain address: the token address is the sender's.
    via = mailhub_address("enquiries", route.domain)
    own_id = "".join(_MESSAGE_ID.findall(header(mail.message, "message-id"))[:1])
    enquiry = await thread_of(ctx, mail, route)
    if enquiry is not None:
        forward_id = await forward(
            ctx,
            mail,
            via=via,
            to=handlers,
            label="enquiries",
            kind="enquiry.forward",
            subject=f"Re: {enquiry.subject}",
            thread=(enquiry.first_forward, enquiry.last_forward),
        )
        if forward_id:
            await store.followed_up(ctx.tx, enquiry.ref, forward_id, [own_id], ctx.now())
            logs.event("enquiry", queue_id=mail.queue_id, ref=enquiry.ref, outcome="threaded")
        return
    ref = new_ref()
    subject = f"[{ref}] {safe_text(header(mail.message, 'subject')) or '(no subject)'}"
    forward_id = await forward(
        ctx, mail, via=via, to=handlers, label="enquiries", kind="enquiry.forward", subject=subject
    )
    if not forward_id:
        return
    token = secrets.token_urlsafe(16)
    text = ctx.templates.render("enquiry_ack", cfg.language, domain=ctx.domain, ref=ref)
    reply = build_message(
        from_=address("Enquiries", via),
        to=mail.mail_from,
        subject=text.subject,
        body=text.body,
        domain=ctx.domain,
        now=ctx.now(),
        headers={"Reply-To": mailhub_address("enquiries+TOKEN", route.domain, token=token)},
    )
    now = ctx.now()
    opened = store.Enquiry(
        ref, (senders(mail) or [""])[0], subject, forward_id, forward_id, now, now
    )
    ack_id = str(reply["Message-ID"])
    await store.open_enquiry(ctx.tx, opened, token_hash(token), [own_id, forward_id, ack_id])
    await ctx.auto_reply(mail, reply, kind="enquiry.ack")
    logs.event("enquiry", queue_id=mail.queue_id, ref=ref, outcome="opened")


ENQUIRIES = App(
    name="enquiries",
    handlers={"admin": handle_admin, "enquiries": handle_enquiry},
)
APP = ENQUIRIES
