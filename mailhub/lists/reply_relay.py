"""`LIST-reply+TOKEN@D`: private replies between members of a list whose addresses are hidden.

A copy of a post on a hidden list goes out `From: "Name via List" <LIST@D>` with
`Reply-To:` the poster's relay address. Mail to that address, from a member of the list
(From: and the envelope sender), is forwarded to the poster `From: "Sender via List"
<LIST-reply+TOKEN2@D>`, TOKEN2 being the sender's own relay address: the poster can answer
the same way, and neither ever sees the other's address.

The token (160 bits, lowercase base32 like every token in a local part) is
HMAC(service secret, list | person | salt): one per (list, person), given again in every
copy of their posts. One per person rather than one per post: the table grows with the
posters, not with the posts; a member can keep someone's relay address to write again,
as they could keep an address; and it tells nothing a per-post token would not (it names
one person on one list, so it links nobody across lists). It stops working after
`EXPIRY` without use (given out in a copy, or written to), and when its person leaves the
list. Only its hash and salt are stored (store/relay.py).

Forwarding is limited per sender's mailbox (`PER_HOUR`, `PER_DAY`, mailhub.mailbox keys),
so the relay cannot be used to flood a member. Automatic mail (out-of-office, bounces,
lists: RFC 3834, `may_auto_reply`) is dropped in silence; a non-member, an unknown or
expired token, or a sender over the limit gets a short answer (through the RFC 3834 rules
and the automatic-reply limits) and nothing is forwarded.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets as random
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, parsedate_to_datetime

from mailhub import logs
from mailhub.addresses import address as mailhub_address
from mailhub.autoreply import may_auto_reply
from mailhub.clock import as_datetime
from mailhub.context import Context, Incoming
from mailhub.lists import notices
from mailhub.lists.config import ListConfig, find_list
from mailhub.lists.headers import ListAddresses, names_any, poster_addresses, via
from mailhub.lists.tokens import token_hash
from mailhub.mailbox import mailbox_key
from mailhub.messages import address, new_message_id, rewrap, safe_text, split_raw
from mailhub.parsing import addresses, header, parse
from mailhub.routing import Route
from mailhub.store import lists as members
from mailhub.store import relay, secrets
from mailhub.store.relay import RelayToken

TOKEN_BYTES = 20  # 160 bits
EXPIRY = 90 * 86400.0  # a relay address nobody used for this long stops working
PER_HOUR = 20  # messages one sender's mailbox may relay, on all lists together
PER_DAY = 100
_PURPOSE = "reply"

# Why a message to a relay address was not forwarded (each but AUTOMATIC answered by the
# template relay_refused).
AUTOMATIC = "automatic"
UNKNOWN = "unknown"
NOT_MEMBER = "not-member"
LIMIT = "limit"


def make_token(secret: bytes, list_name: str, person: str, salt: str) -> str:
    data = f"{_PURPOSE}|{list_name.lower()}|{person.lower()}|{salt}".encode()
    digest = hmac.new(secret, data, hashlib.sha256).digest()[:TOKEN_BYTES]
    return base64.b32encode(digest).decode("ascii").rstrip("=").lower()


def is_live(token: RelayToken, now: float) -> bool:
    return now - token.used_at < EXPIRY


# --- the decision (pure) ---------------------------------------------------------------


@dataclass(frozen=True)
class RelayFacts:
    """What decides whether one message to a relay address is forwarded."""

    automatic: bool  # out-of-office, bounce, list mail... (RFC 3834)
    known: bool  # the token names a live relay address of this list
    recipient_member: bool  # its person is still a member of the list
    sender_member: bool  # From: is a member of the list
    envelope_matches: bool  # the envelope sender is the From: address
    sent_hour: int  # what the sender's mailbox relayed in the last hour
    sent_day: int  # and in the last day


def relay_problem(facts: RelayFacts) -> str | None:
    """None: forward it; else why not (AUTOMATIC: in silence)."""
    if facts.automatic:
        return AUTOMATIC
    if not facts.known or not facts.recipient_member:
        # A person who left is no longer reachable, and saying so would tell a stranger
        # who was a member: it reads as an unknown address.
        return UNKNOWN
    if not facts.sender_member or not facts.envelope_matches:
        return NOT_MEMBER
    if facts.sent_hour >= PER_HOUR or facts.sent_day >= PER_DAY:
        return LIMIT
    return None


# --- relay addresses -------------------------------------------------------------------


async def relay_address(ctx: Context, cfg: ListConfig, person: str) -> str:
    """The person's relay address on the list, `LIST-reply+TOKEN@D`: the live one, given
    again (its use counted now), or a new one."""
    secret = await secrets.get_or_create(ctx.tx, "lists")
    now = ctx.now()
    row = await relay.token_of(ctx.tx, cfg.name, person)
    if row is not None and is_live(row, now):
        token = make_token(secret, cfg.name, person, row.salt)
        await relay.touch(ctx.tx, cfg.name, person, now)
    else:
        salt = random.token_hex(16)
        token = make_token(secret, cfg.name, person, salt)
        await relay.put(ctx.tx, cfg.name, person, salt, token_hash(token), now)
    return mailhub_address("LIST-reply+TOKEN", ctx.domain, list=cfg.name, token=token)


async def copy_reply_address(ctx: Context, cfg: ListConfig, poster: str) -> str:
    """What a copy of `poster`'s post on `cfg` gives as Reply-To (`headers.distribution_copy`
    `reply_address`): their relay address on a hidden list that sends replies to the
    sender; '' otherwise (shown addresses, replies to the list, no poster)."""
    if cfg.addresses != "hidden" or cfg.reply_to != "sender" or not poster:
        return ""
    return await relay_address(ctx, cfg, poster)


# --- the forward -----------------------------------------------------------------------


def forward(
    raw: bytes,
    *,
    cfg: ListConfig,
    sender_name: str,
    sender_relay: str,
    sender_addresses: frozenset[str],
    to: str,
    loop_id: str,
    now: float,
) -> bytes:
    """The message as its recipient gets it (pure): the sender's body and MIME header
    fields as they are (`messages.rewrap`), under a header block of ours: From: the
    sender's name and relay address, To: the recipient, the subject and date kept, the
    thread's identifiers kept unless the sender's program wrote an address into one; the
    loop trace carried on (X-Loop values and the hop count)."""
    msg = EmailMessage(policy=policy.SMTP)
    parsed = _header_message(raw)
    msg["From"] = address(via(sender_name, cfg), sender_relay)
    msg["To"] = address("", to)
    msg["Subject"] = safe_text(header(parsed, "subject"))
    msg["Date"] = _date(header(parsed, "date"), now)
    # The thread's identifiers are kept (replies thread), unless one names the sender.
    ids = {n: _ids(header(parsed, n), sender_addresses) for n in ("Message-ID", "In-Reply-To")}
    own = ids["Message-ID"]
    msg["Message-ID"] = own[0] if own else new_message_id(sender_relay.rpartition("@")[2])
    if ids["In-Reply-To"]:
        msg["In-Reply-To"] = ids["In-Reply-To"][0]
    references = _ids(header(parsed, "references"), sender_addresses)
    if references:
        msg["References"] = " ".join(references[-20:])
    msg["X-Loop"] = loop_id
    return rewrap(raw, msg, loop_id=loop_id)


def _ids(value: str, hide: frozenset[str]) -> list[str]:
    """The message identifiers in a header value, but for any that names an address hidden."""
    return [i for i in re.findall(r"<[^<>\s]+>", safe_text(value)) if not names_any(i, hide)]


def _date(value: str, now: float) -> str:
    """The sender's Date:, as a valid date; now when it is missing or unreadable."""
    try:
        when = parsedate_to_datetime(value) if value else None
    except (TypeError, ValueError, IndexError):
        when = None
    return format_datetime(when if when is not None else as_datetime(now))


def _header_message(raw: bytes) -> EmailMessage:
    """The header block alone, parsed (values are read from it; nothing is written)."""
    return parse(split_raw(raw)[0] + b"\r\n\r\n")


# --- the handler -----------------------------------------------------------------------


async def handle_reply(ctx: Context, mail: Incoming, route: Route) -> None:
    """Mail to `LIST-reply+TOKEN@D`: forwarded to the token's person, or refused (see the
    module's docstring). All of it in the handler's transaction."""
    cfg = find_list(ctx.config.lists, route.get("list"))
    if cfg is None:
        return
    now = ctx.now()
    msg = mail.message
    froms = addresses(msg, "from")
    sender_name, sender = (froms[0][0], froms[0][1].lower()) if froms else ("", "")
    target = await relay.find(ctx.tx, token_hash(route.get("token")))
    known = target is not None and target.list_name == cfg.name and is_live(target, now)
    recipient = await members.get_member(ctx.tx, cfg.name, target.address) if known else None
    member = await members.get_member(ctx.tx, cfg.name, sender) if sender else None
    key = mailbox_key(sender) if sender else ""
    facts = RelayFacts(
        automatic=not may_auto_reply(msg, mail.mail_from, ctx.loop_id),
        known=known,
        recipient_member=recipient is not None,
        sender_member=member is not None,
        envelope_matches=mail.mail_from.lower() == sender,
        sent_hour=await relay.sent_since(ctx.tx, key, now - 3600) if key else 0,
        sent_day=await relay.sent_since(ctx.tx, key, now - 86400) if key else 0,
    )
    problem = relay_problem(facts)
    fields = {"queue_id": mail.queue_id, "list": cfg.name, "sender": sender or "<>"}
    if problem is not None:
        if problem != AUTOMATIC:
            await notices.answer(
                ctx,
                mail,
                cfg,
                "relay_refused",
                reason=problem,
                per_hour=PER_HOUR,
                per_day=PER_DAY,
                expiry_days=int(EXPIRY // 86400),
            )
        logs.event("list.reply", **fields, outcome="refused", reason=problem)
        return
    assert target is not None and member is not None  # known and a member: see relay_problem
    raw = forward(
        mail.raw,
        cfg=cfg,
        sender_name=sender_name or member.display_name,
        sender_relay=await relay_address(ctx, cfg, sender),
        sender_addresses=poster_addresses(msg, ctx.domain) | {sender, mail.mail_from.lower()},
        to=target.address,
        loop_id=ctx.loop_id,
        now=now,
    )
    await ctx.send(
        raw,
        [target.address],
        kind="lists.reply",
        mail_from=ListAddresses.of(cfg.name, ctx.domain).bounces,
    )
    await relay.touch(ctx.tx, cfg.name, target.address, now)
    await relay.record_sent(ctx.tx, key, cfg.name, now)
    logs.event("list.reply", **fields, outcome="forwarded", to=target.address)
