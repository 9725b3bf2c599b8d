"""Route handlers of the lists app: posting side (posting, requests, bounces, digests) and
membership side (join, leave, confirm, owner)."""

from __future__ import annotations

from mailhub.lists import (
    bounces,
    confirm,
    digest,
    leaving,
    owner,
    posting,
    reply_relay,
    requests,
    subscription,
)

HANDLERS = {
    "lists.post": posting.handle_post,
    "lists.request": requests.handle_request,
    "lists.bounces": bounces.handle_bounce,
    "lists.digest": digest.handle_digest_now,
    "lists.join": subscription.handle_join,
    "lists.leave": leaving.handle_leave,
    "lists.confirm": confirm.handle_confirm,
    "lists.owner": owner.handle_owner,
    "lists.reply": reply_relay.handle_reply,
}
