"""Leaving a list by a member's own token, in one step: the RFC 8058 one-click link
`BASE_URL/u/TOKEN` (mailhub.lists.one_click) and the member's own leave address
`LIST-leave+MAC@D` (`handle_leave`), both in the List-Unsubscribe of personalised copies.

MAC is the member's keyed leave token (`verp.member_token(secret, LEAVE, list,
address)`); the URL's TOKEN is `LIST.MAC`. Nothing is stored per token, it cannot be made
without the service secret, and the URL names its list in the clear so a request for an
unknown list is refused before the database is touched. The web side finds the address
by comparing the MAC with each member's (an HMAC cannot be decoded), which is why a token
is bounded and shape-checked first.

On the web, whoever holds the token may leave on the member's behalf: it reached only
that member's mailbox, and leaving is the one action it grants (a separate purpose from
the command and VERP tokens). By mail the token must also be that of the From: address
(and of the envelope sender when there is one), capability *and* address: a forwarded
copy's button, or a forger who saw a token, starts the usual confirmation instead.
"""

from __future__ import annotations

import re

from mailhub import logs
from mailhub.autoreply import may_auto_reply
from mailhub.context import Context, Incoming
from mailhub.lists import action_log, notices, subscription
from mailhub.lists.config import ListConfig, find_list
from mailhub.lists.verp import LEAVE, find_member, token_matches
from mailhub.lists.verp import one_click_token as one_click_token  # the web side's name
from mailhub.parsing import addresses, header
from mailhub.routing import Route
from mailhub.store import Tx, secrets
from mailhub.store import leaving as store
from mailhub.store import lists as list_store

# A URL path segment longer than this is refused before it is looked at.
MAX_TOKEN = 200
# The MAC: base32 of verp.TOKEN_BYTES (20) bytes, lowercase, without padding.
_MAC = re.compile(r"[a-z2-7]{32}")
# A list name as [[lists]] allows it (mailhub.lists.config).
_LIST = re.compile(r"[a-z0-9](?:[a-z0-9._]|-(?!-))*")
# The subject personalised copies' mailto carried before LIST-leave+MAC@D existed
# (`mailto:LIST-leave@D?subject=leave%20MAC`), still honoured: those copies are in
# people's mailboxes.
_OLD_SUBJECT = re.compile(r"\s*leave\s+([a-z2-7]{32})\s*", re.IGNORECASE)


def read_one_click(token: str) -> tuple[str, str] | None:
    """(list name, MAC) of a well-formed token, else None. List names may hold dots, the
    MAC never does: the last dot splits them."""
    if not token or len(token) > MAX_TOKEN:
        return None
    name, dot, mac = token.lower().rpartition(".")
    if not dot or not _LIST.fullmatch(name) or not _MAC.fullmatch(mac):
        return None
    return name, mac


async def find_leaver(tx: Tx, secret: bytes, list_name: str, mac: str) -> str | None:
    """The member of `list_name` whose leave token `mac` is, or None. Scans the members
    (an HMAC each, cached by verp.member_token): the cost of a forged token."""
    return find_member(secret, LEAVE, list_name, mac, await store.member_addresses(tx, list_name))


async def find_former(tx: Tx, secret: bytes, list_name: str, mac: str) -> str | None:
    """Someone who has left `list_name` (or was removed) and whose leave token `mac` is:
    their link, used again (a mail client may POST twice), has nothing left to do."""
    return find_member(secret, LEAVE, list_name, mac, await store.former_members(tx, list_name))


async def leave_now(ctx: Context, lst: ListConfig, address: str, how: str) -> bool:
    """Remove `address` from `lst` at once, log it and send the usual "you have left"
    notice, all in the caller's transaction. False (nothing done, no mail) when the
    address is no member (already gone)."""
    # The goodbye goes in the language they chose, which leaves with their membership.
    languages = await notices.languages_for(ctx, lst, address)
    if not await list_store.remove_member(ctx.tx, lst.name, address):
        return False
    await action_log.record(
        ctx, lst, address, "left", "member", subject_address=address, detail=how
    )
    await notices.tell(
        ctx, lst, address, "membership_status", situation="left", languages=languages
    )
    return True


# --- by mail: LIST-leave+MAC@D -----------------------------------------------------------


def mailto_mac(route_token: str, subject: str) -> str:
    """The leave token a message to the leave address carries: the address's own
    (`LIST-leave+MAC@D`), else the old form's subject (`leave MAC`); "" for none."""
    if route_token:
        return route_token.lower()
    m = _OLD_SUBJECT.fullmatch(subject)
    return m.group(1).lower() if m else ""


def proves_leaver(from_addresses: list[str], envelope: str, owns_token: bool) -> str:
    """The member a mailto leave proves (pure): the one From: address, when the token is
    that address's own leave token and the envelope sender (when there is one) is that
    address too; "" otherwise (the usual confirmation then decides)."""
    if len(from_addresses) != 1 or not owns_token:
        return ""
    sender = from_addresses[0].lower()
    return sender if envelope.lower() in ("", sender) else ""


async def handle_leave(ctx: Context, mail: Incoming, route: Route) -> None:
    """`LIST-leave@D` and `LIST-leave+MAC@D`. With the From: address's own token: leaves at
    once, with the goodbye. With any other token, or none: `subscription.handle_leave`
    (a confirmation to the envelope sender, or "not a member", rate-limited)."""
    lst = find_list(ctx.config.lists, route.get("list"))
    mac = mailto_mac(route.get("token", ""), header(mail.message, "subject"))
    if lst is None or not mac:
        await subscription.handle_leave(ctx, mail, route)
        return
    fields = {"queue_id": mail.queue_id, "list": lst.name}
    verdict = may_auto_reply(mail.message, mail.mail_from, ctx.loop_id)
    if not verdict:
        # An out-of-office, a bounce or a robot: it leaves nobody and is never answered.
        logs.event("list.leave", **fields, outcome="ignored", reason=verdict.reason)
        return
    secret = await secrets.get_or_create(ctx.tx, "lists")
    senders = [a for _, a in addresses(mail.message, "from")]
    owns = len(senders) == 1 and token_matches(secret, LEAVE, lst.name, senders[0], mac)
    who = proves_leaver(senders, mail.mail_from, owns)
    if who and await leave_now(ctx, lst, who, "mailto"):
        logs.event("list.leave", **fields, member=who, outcome="left")
        return
    # Someone else's token, a forged one, or a member who has already left.
    logs.event("list.leave", **fields, outcome="not proven")
    await subscription.handle_leave(ctx, mail, route)
