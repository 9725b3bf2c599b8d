"""`LIST-request@D`: members change their own settings by email.

Commands are read from the subject and the first lines of the body a person typed
(quoted text, signatures and the "On ... wrote:" lines of a reply are skipped), as
Mailman's -request address does. Joining and leaving are handed to the membership
side, which confirms them by token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailhub import logs
from mailhub.context import Context, Incoming
from mailhub.lists import membership
from mailhub.lists.config import ListConfig, find_list
from mailhub.lists.headers import ListAddresses
from mailhub.lists.posting import answer_as_list, message_ids
from mailhub.parsing import body_text, header, sender_address
from mailhub.routing import Route
from mailhub.store import lists as store

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
}
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
    cfg = find_list(ctx.config.lists, route.get("list"))
    if cfg is None:
        return
    msg = mail.message
    commands = parse_commands(header(msg, "subject"), body_text(msg))
    if "join" in commands.verbs:
        await membership.handle_join(ctx, mail, route)
        return
    if "leave" in commands.verbs:
        await membership.handle_leave(ctx, mail, route)
        return
    sender = sender_address(msg) or mail.mail_from.lower()
    member = await store.get_member(ctx.tx, cfg.name, sender) if sender else None
    fields = {"queue_id": mail.queue_id, "list": cfg.name, "sender": sender}
    settings = [v for v in commands.verbs if v != "help"]
    if not settings:
        await _reply(ctx, mail, cfg, "posting_request_help", member=member is not None)
        logs.event("list.request", **fields, outcome="help")
        return
    if member is None:
        await _reply(ctx, mail, cfg, "posting_request_not_member")
        logs.event("list.request", **fields, outcome="not a member")
        return
    done = [await _apply(ctx, cfg, mail, sender, verb) for verb in settings]
    await _reply(ctx, mail, cfg, "posting_request_done", done=done)
    logs.event("list.request", **fields, outcome="applied", commands=",".join(done))


async def _apply(ctx: Context, cfg: ListConfig, mail: Incoming, sender: str, verb: str) -> str:
    """Apply one setting; returns the result code the confirmation explains."""
    if verb == "digest-on":
        await store.set_delivery(ctx.tx, cfg.name, sender, "digest", ctx.now())
    elif verb in ("digest-off", "mail"):
        await store.set_delivery(ctx.tx, cfg.name, sender, "each")
        if verb == "mail" and await store.enable_member(ctx.tx, cfg.name, sender):
            return "enabled"
    elif verb == "nomail":
        await store.set_delivery(ctx.tx, cfg.name, sender, "nomail")
    elif verb in ("own-on", "own-off"):
        await store.set_own_posts(ctx.tx, cfg.name, sender, verb == "own-on")
    elif verb == "mute":
        thread = await _thread(ctx, cfg, mail)
        if not thread:
            return "mute-unknown"
        await store.mute_thread(ctx.tx, cfg.name, sender, thread, ctx.now())
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


async def _reply(ctx: Context, mail: Incoming, cfg: ListConfig, template: str, **extra) -> None:
    a = ListAddresses.of(cfg.name, ctx.domain)
    text = ctx.templates.render(template, cfg.language, list=cfg, a=a, domain=ctx.domain, **extra)
    await answer_as_list(ctx, mail, cfg, a.request, text, kind=f"list.{template}")
