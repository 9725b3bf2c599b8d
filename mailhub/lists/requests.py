"""`LIST-request@D` and each member's own command address: members change their own
settings by email.

Commands are read from the subject and the first lines of the body a person typed
(quoted text, signatures and the "On ... wrote:" lines of a reply are skipped), as
Mailman's -request address does. Joining and leaving are handed to the membership
side, which confirms them by token.

A setting (nomail, mail, digest on/off, own on/off, mute) changes a member's mail, so
From: alone proves nothing. It acts at once only when sent to the member's own command
address (`LIST-confirm+TOKEN@D`, the List-Help of the member's personalised copies: a
keyed HMAC of the member's address, mailhub.lists.verp.command_address) from that
member's address (From:, and the envelope sender when there is one). Otherwise the
member is mailed a confirmation with a single-use token and nothing changes until they
reply; at most one confirmation waits per member and setting, a repeat mails nothing,
and the per-mailbox daily limit of the membership side applies.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from mailhub import logs
from mailhub.autoreply import may_auto_reply
from mailhub.context import Context, Incoming
from mailhub.lists import action_log, membership, notices, subscription, tokens
from mailhub.lists.config import ListConfig, find_list
from mailhub.lists.distribution import message_ids
from mailhub.lists.verp import COMMANDS, command_address, find_member, token_matches
from mailhub.parsing import body_text, header, sender_address
from mailhub.routing import Route
from mailhub.store import lists as store
from mailhub.store import membership as mstore
from mailhub.store import secrets
from mailhub.store.membership import Token

MAX_LINES = 10  # a command message is short; beyond this it is a letter, not commands

_COMMANDS = {
    "digest on": "digest-on",
    "digest": "digest-on",
    "digest off": "digest-off",
    "nomail": "nomail",
    "no mail": "nomail",
    "mail": "mail",
    "mail on": "mail",
    "own on": "own-on",
    "own off": "own-off",
    "mute": "mute",
    "help": "help",
    "subscribe": "join",
    "join": "join",
    "unsubscribe": "leave",
    "leave": "leave",
    # Cymraeg
    "crynodeb": "digest-on",
    "crynodeb ymlaen": "digest-on",
    "crynodeb i ffwrdd": "digest-off",
    "dim post": "nomail",
    "post": "mail",
    "post ymlaen": "mail",
    "copi ymlaen": "own-on",
    "copi i ffwrdd": "own-off",
    "tewi": "mute",
    "tawelu": "mute",
    "cymorth": "help",
    "ymuno": "join",
    "tanysgrifio": "join",
    "gadael": "leave",
    "gadael y rhestr": "leave",
    "dad danysgrifio": "leave",  # dad-danysgrifio: punctuation is read as a space
    "datdanysgrifio": "leave",
    "dadtanysgrifio": "leave",
    "crynodeb dyddiol": "digest-on",
    "dim crynodeb": "digest-off",
    "dim negeseuon": "nomail",
    "post i ffwrdd": "nomail",
    "negeseuon ymlaen": "mail",
    "dim copi": "own-off",
    "tewi r sgwrs": "mute",  # tewi'r sgwrs
    "tewi sgwrs": "mute",
    # The language of the list's mail to this member (as on their web page, /me).
    "language welsh": "lang-cy",
    "language cymraeg": "lang-cy",
    "iaith cymraeg": "lang-cy",
    "iaith gymraeg": "lang-cy",
    "cymraeg yn unig": "lang-cy",
    "language english": "lang-en",
    "iaith saesneg": "lang-en",
    "saesneg yn unig": "lang-en",
    "language both": "lang-both",
    "iaith y ddwy": "lang-both",
    "y ddwy iaith": "lang-both",
    "dwyieithog": "lang-both",
    "language default": "lang-list",
    "iaith arferol": "lang-list",
}
# What each language command stores (store.lists.MEMBER_LANGUAGES; '': the list's own).
LANGUAGE_SETTINGS = {"lang-cy": "cy", "lang-en": "en", "lang-both": "both", "lang-list": ""}
COMMAND_WORDS = _COMMANDS  # the member command vocabulary (read by lists.administrivia)
# The commands that change a member's mail (all but help, join and leave).
SETTINGS = (
    "digest-on",
    "digest-off",
    "nomail",
    "mail",
    "own-on",
    "own-off",
    "mute",
    *LANGUAGE_SETTINGS,
)
_REPLY_PREFIX = re.compile(r"^\s*((re|fwd?|aw|sv|ynt|ateb)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)
_ATTRIBUTION = re.compile(r"^(on .+ wrote:|ar .+ ysgrifennodd.*:|-+ ?original message ?-+)$", re.I)


@dataclass(frozen=True)
class Commands:
    verbs: tuple[str, ...]  # in the order given, each once
    unknown: int  # lines that were not commands


def parse_commands(subject: str, body: str) -> Commands:
    """The commands in a -request message (pure)."""
    verbs: list[str] = []
    unknown = 0
    lines = [_REPLY_PREFIX.sub("", subject)]
    for line in body.splitlines():
        stripped = line.strip()
        if line.rstrip() == "--" or stripped.startswith("__") or _ATTRIBUTION.match(stripped):
            break  # a signature or the start of quoted material
        if not stripped or stripped.startswith(">"):
            continue
        lines.append(stripped)
        if len(lines) > MAX_LINES:
            break
    for line in lines:
        words = re.sub(r"[^\w\s]", " ", line.lower()).split()
        if not words:
            continue
        # The whole line must be the command, so "Mail settings" or "Help with a form" in a
        # subject changes nothing; only joining and leaving (confirmed by token) may carry
        # more words, such as an address.
        verb = _COMMANDS.get(" ".join(words))
        if verb is None and _COMMANDS.get(words[0]) in ("join", "leave"):
            verb = _COMMANDS[words[0]]
        if verb is None:
            unknown += 1
        elif verb not in verbs:
            verbs.append(verb)
    return Commands(tuple(verbs), unknown)


async def handle_request(ctx: Context, mail: Incoming, route: Route) -> None:
    """`LIST-request@D` (and `LIST-request+TOKEN@D`, should the router ever name it)."""
    cfg = find_list(ctx.config.lists, route.get("list"))
    if cfg is None:
        return
    token = route.get("token", "")
    if token and await handle_member_address(ctx, mail, cfg, token, route):
        return
    await _run(ctx, mail, cfg, route, proven="")


async def handle_member_address(
    ctx: Context, mail: Incoming, cfg: ListConfig, token: str, route: Route
) -> bool:
    """Commands sent to a member's own command address; False if `token` is no member's.

    The token and From: together prove the member: the token is only in that member's
    copies, and it is checked against the From: address (and the envelope sender, so a
    forwarder that rewrites the return path falls back to a confirmation)."""
    secret = await secrets.get_or_create(ctx.tx, "lists")
    sender = sender_address(mail.message)
    fields = {"queue_id": mail.queue_id, "list": cfg.name, "sender": sender}
    if (
        sender
        and token_matches(secret, COMMANDS, cfg.name, sender, token)
        and await store.get_member(ctx.tx, cfg.name, sender)
    ):
        envelope = mail.mail_from.lower()
        if envelope and envelope != sender:
            logs.event("list.request", **fields, outcome="not proven", reason="envelope sender")
            await _run(ctx, mail, cfg, route, proven="")
        else:
            await _run(ctx, mail, cfg, route, proven=sender)
        return True
    members = [m.address for m in await store.list_members(ctx.tx, cfg.name)]
    if find_member(secret, COMMANDS, cfg.name, token, members) is None:
        return False
    # Another member's address, used from elsewhere: like a bare LIST-request@D.
    logs.event("list.request", **fields, outcome="not proven", reason="another member's token")
    await _run(ctx, mail, cfg, route, proven="")
    return True


async def _run(ctx: Context, mail: Incoming, cfg: ListConfig, route: Route, *, proven: str) -> None:
    """The commands of one message; `proven`: the member the message is proven to come
    from (their own command address and their From:), or "" when nothing proves it."""
    msg = mail.message
    commands = parse_commands(header(msg, "subject"), body_text(msg))
    if "join" in commands.verbs:
        await subscription.handle_join(ctx, mail, route)
        return
    if "leave" in commands.verbs:
        await subscription.handle_leave(ctx, mail, route)
        return
    sender = proven or sender_address(msg) or mail.mail_from.lower()
    member = await store.get_member(ctx.tx, cfg.name, sender) if sender else None
    fields = {"queue_id": mail.queue_id, "list": cfg.name, "sender": sender}
    settings = [v for v in commands.verbs if v in SETTINGS]
    own = await _own_address(ctx, cfg, proven) if proven else ""
    if not settings:
        await _reply(
            ctx,
            mail,
            cfg,
            "posting_request_help",
            own=own,
            member=member is not None,
            personal=bool(own),  # list.request is their own address: settings act at once
        )
        logs.event("list.request", **fields, outcome="help")
        return
    if member is None:
        await _reply(ctx, mail, cfg, "posting_request_not_member")
        logs.event("list.request", **fields, outcome="not a member")
        return
    thread = await _thread(ctx, cfg, mail) if "mute" in settings else ""
    if not proven:
        await _ask_member(ctx, mail, cfg, sender, settings, thread)
        return
    done = [await _apply(ctx, cfg, sender, verb, thread) for verb in settings]
    await _reply(ctx, mail, cfg, "posting_request_done", own=own, done=done)
    logs.event("list.request", **fields, outcome="applied", commands=",".join(done))


async def _ask_member(
    ctx: Context, mail: Incoming, cfg: ListConfig, who: str, settings: list[str], thread: str
) -> None:
    """Settings asked without proof: mail `who` a confirmation, change nothing now."""
    fields = {"queue_id": mail.queue_id, "list": cfg.name, "sender": who}
    verdict = may_auto_reply(mail.message, mail.mail_from, ctx.loop_id)
    if not verdict:
        # Robots change nothing and cause no mail.
        logs.event("list.request", **fields, outcome="ignored", reason=verdict.reason)
        return
    if "mute" in settings and not thread:
        settings = [v for v in settings if v != "mute"]
        await _reply(ctx, mail, cfg, "posting_request_done", done=["mute-unknown"])
    now = ctx.now()
    waiting: set[str] = set()
    for token in await mstore.live_tokens(ctx.tx, cfg.name, who, tokens.CONFIRM_SETTINGS, now):
        waiting.update(_change(token)[0])
    fresh = [v for v in settings if v not in waiting]
    if not fresh:
        if settings:
            logs.event("list.request", **fields, outcome="confirmation already waiting")
        return
    if not await membership.may_confirm(ctx, mail, cfg, who, "settings"):
        return
    token = await tokens.issue(
        ctx,
        cfg,
        tokens.CONFIRM_SETTINGS,
        who,
        cfg.confirm_expiry,
        detail=json.dumps({"verbs": fresh, "thread": thread}),
    )
    await notices.tell(
        ctx,
        cfg,
        who,
        "membership_settings_confirm",
        reply_token=token,
        changes=fresh,
        own_address=await _own_address(ctx, cfg, who),
        help_link=cfg.delivery == "personalised",  # List-Help names it in every copy
        expires=notices.when(now + cfg.confirm_expiry),
    )
    await membership.confirmation_sent(ctx, cfg, who, tokens.CONFIRM_SETTINGS)
    logs.event("list.request", **fields, outcome="confirmation sent", commands=",".join(fresh))


def _change(token: Token) -> tuple[list[str], str]:
    """(settings, thread) a confirm-settings token would apply."""
    try:
        data = json.loads(token.detail or "{}")
        verbs = [v for v in data.get("verbs", []) if v in SETTINGS]
        return verbs, str(data.get("thread", ""))
    except (ValueError, AttributeError, TypeError):
        return [], ""


async def confirm_settings(ctx: Context, cfg: ListConfig, token: Token) -> None:
    """The member replied to a settings confirmation: apply what it asked, once."""
    who = token.address
    if not await mstore.use_token(ctx.tx, token.id, ctx.now()):
        return  # a concurrent reply used it
    if await store.get_member(ctx.tx, cfg.name, who) is None:
        await notices.tell(ctx, cfg, who, "membership_status", situation="not_member")
        return
    verbs, thread = _change(token)
    done = [await _apply(ctx, cfg, who, verb, thread) for verb in verbs]
    own = await _own_address(ctx, cfg, who)
    await notices.tell(ctx, cfg, who, "posting_request_done", request=own, done=done)
    await action_log.record(ctx, cfg, who, "settings", "member", subject_address=who)
    logs.event(
        "list.request", list=cfg.name, sender=who, outcome="confirmed", commands=",".join(done)
    )


async def _own_address(ctx: Context, cfg: ListConfig, who: str) -> str:
    """Where `who` sends commands: their own command address (templates name it as
    `list.request` in what they are sent)."""
    secret = await secrets.get_or_create(ctx.tx, "lists")
    return command_address(secret, cfg.name, who, ctx.domain)


async def _apply(ctx: Context, cfg: ListConfig, who: str, verb: str, thread: str) -> str:
    """Apply one setting for the member `who`; returns the result code the answer explains."""
    if verb == "digest-on":
        await store.set_delivery(ctx.tx, cfg.name, who, "digest", ctx.now())
    elif verb in ("digest-off", "mail"):
        await store.set_delivery(ctx.tx, cfg.name, who, "each")
        if verb == "mail" and await store.enable_member(ctx.tx, cfg.name, who):
            return "enabled"
    elif verb == "nomail":
        await store.set_delivery(ctx.tx, cfg.name, who, "nomail")
    elif verb in ("own-on", "own-off"):
        await store.set_own_posts(ctx.tx, cfg.name, who, verb == "own-on")
    elif verb in LANGUAGE_SETTINGS:
        await store.set_language(ctx.tx, cfg.name, who, LANGUAGE_SETTINGS[verb])
    elif verb == "mute":
        if not thread:
            return "mute-unknown"
        await store.mute_thread(ctx.tx, cfg.name, who, thread, ctx.now())
    return verb


async def _thread(ctx: Context, cfg: ListConfig, mail: Incoming) -> str:
    """The thread a `mute` replies to: the archived thread of the message it answers, else
    the first message its headers name."""
    replied = message_ids(header(mail.message, "in-reply-to"))
    refs = message_ids(header(mail.message, "references"))
    known = await store.thread_of(ctx.tx, cfg.name, [*replied, *reversed(refs)])
    if known:
        return known
    return refs[0] if refs else (replied[0] if replied else "")


async def _reply(
    ctx: Context, mail: Incoming, cfg: ListConfig, template: str, *, own: str = "", **extra
) -> None:
    """Answer a command, from the list's request address; `own`: the member's own command
    address, when the message proved who sent it."""
    await notices.answer(ctx, mail, cfg, template, sender=notices.REQUEST, request=own, **extra)
