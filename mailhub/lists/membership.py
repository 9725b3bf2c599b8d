"""The per-mailbox limit on confirmations: mail asking someone to confirm a request nobody
has proved yet (a join, a leave, a delivery setting) goes to one mailbox at most
`CONFIRMATIONS_PER_DAY` times a day, all lists together.

Without it anyone could use a list to flood someone else's inbox, by asking in their
name again and again. Mailboxes are counted by mailhub.mailbox.mailbox_key, so
`victim+1@` and `Victim+2@` are one mailbox. Past the limit a request is logged, and
nothing is sent or changed.
"""

from __future__ import annotations

from mailhub import logs
from mailhub.context import Context, Incoming
from mailhub.lists.config import ListConfig
from mailhub.mailbox import mailbox_key
from mailhub.store import membership as store

CONFIRMATIONS_PER_DAY = 3


async def may_confirm(ctx: Context, mail: Incoming, lst: ListConfig, who: str, action: str) -> bool:
    """May one more confirmation for an unproved request go to `who` today? If not, one
    log line, and the caller sends nothing and changes nothing."""
    key = mailbox_key(who)
    sent = await store.confirmations_since(ctx.tx, key, ctx.now() - 86400)
    if sent < CONFIRMATIONS_PER_DAY:
        return True
    logs.event(
        "membership",
        list=lst.name,
        action=action,
        mailbox=key,
        outcome="rate limited",
        reason=f"{sent} confirmations to this mailbox today",
        queue_id=mail.queue_id,
    )
    return False


async def confirmation_sent(ctx: Context, lst: ListConfig, who: str, purpose: str) -> None:
    """Count a confirmation that went to `who` (for `purpose`) against their mailbox."""
    await store.record_confirmation(
        ctx.tx, mailbox=mailbox_key(who), list_name=lst.name, purpose=purpose, now=ctx.now()
    )
