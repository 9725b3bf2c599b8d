"""Sending an accepted post to a list: archive it, and queue one copy for every member who
takes each post (a post accepted at once, or a held post a facilitator releases), and
which thread a message belongs to (for the archive and for `mute`)."""

from __future__ import annotations

import re
from email.message import EmailMessage

from mailhub import logs
from mailhub.context import Context, Incoming
from mailhub.lists import archive_index, notices, reply_relay
from mailhub.lists.authenticity import Authenticity, rewrite_from
from mailhub.lists.config import ListConfig
from mailhub.lists.headers import ListAddresses, distribution_copy
from mailhub.messages import MAX_HOPS, head_fields, hops, new_message_id
from mailhub.parsing import header, sender_address
from mailhub.store import lists as store


async def distribute(
    ctx: Context, cfg: ListConfig, raw: bytes, authenticity: Authenticity | None = None
) -> int:
    """Archive the post and queue it for every member who takes each post. Returns the
    number of recipients. A post past the hop limit is a loop (two lists, or a list and a
    forwarder, sending to each other with something between them that drops X-Loop and
    List-Id): it is neither archived nor sent, with one log line.

    `authenticity` (found by the lists.post preparer): the Authentication-Results the copies
    carry, for delivery's ARC seal, and the poster's DMARC policy, which decides From:."""
    fields = head_fields(raw)
    if hops(fields) + 1 > MAX_HOPS:
        logs.event("list.post", list=cfg.name, outcome="loop discarded", hops=hops(fields))
        return 0
    msg = Incoming("", "", (), raw, ctx.now()).message
    sender = sender_address(msg)
    message_id = header(msg, "message-id") or new_message_id(ctx.domain)
    thread = thread_id(msg) or message_id
    archive_id = await store.archive_post(
        ctx.tx,
        list_name=cfg.name,
        message_id=message_id,
        thread_id=thread,
        sender=sender,
        subject=header(msg, "subject"),
        raw=raw,
        now=ctx.now(),
    )
    # The web archive's index of it, in the same transaction: never archived unindexed.
    await archive_index.index_post(ctx, cfg, archive_id, msg, message_id, thread)
    muted = await store.muted_by(ctx.tx, cfg.name, thread)
    rcpts = [
        addr
        for addr, own in await store.each_recipients(ctx.tx, cfg.name)
        if (own or addr != sender) and addr not in muted
    ]
    if not rcpts:
        return 0
    footer = notices.render(ctx, cfg, "posting_footer").body
    # On a hidden list, replies to a copy go to the poster's private relay address.
    reply_address = await reply_relay.copy_reply_address(ctx, cfg, sender)
    copy = distribution_copy(
        raw,
        cfg=cfg,
        domain=ctx.domain,
        loop_id=ctx.loop_id,
        footer=footer,
        dmarc=ctx.config.dmarc,
        message_id=message_id,
        reply_address=reply_address,
        rewrite_from=rewrite_from(cfg, authenticity, ctx.config.dmarc.strict_domains),
        authentication_results=authenticity.results if authenticity else None,
    )
    personalised = cfg.delivery == "personalised"
    await ctx.send(
        copy,
        rcpts,
        kind="list.post",
        mail_from=ListAddresses.of(cfg.name, ctx.domain).bounces,
        message_id=message_id,
        personalise=f"list:{cfg.name}" if personalised else None,
        # Members get a list's posts in the order they were accepted, from any node.
        order_key=f"list:{cfg.name}",
    )
    return len(rcpts)


def message_ids(value: str) -> list[str]:
    return re.findall(r"<[^<>\s]+>", value)


def thread_id(msg: EmailMessage) -> str:
    """The first message of the thread, as far as the headers tell (References' first id,
    else In-Reply-To); '' for a message that starts a thread."""
    refs = message_ids(header(msg, "references"))
    if refs:
        return refs[0]
    replies = message_ids(header(msg, "in-reply-to"))
    return replies[0] if replies else ""
