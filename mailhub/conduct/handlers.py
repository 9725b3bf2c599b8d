"""Route handlers of the conduct app: new reports, and mail to a case's addresses.

Whoever writes decides where a message goes, never the address alone, and acting on a
case takes the reply token of one's own copy *and* one's own address in From:
(policy.classify_writer). Anyone else who uses a case's address or tag (a recused
member included) opens a separate case instead, and the attempt is recorded in the
first case's audit trail. Machine-made mail (bounces, out-of-office) opens nothing and
is relayed nowhere.
"""

from __future__ import annotations

import hashlib

from mailhub import logs
from mailhub.autoreply import may_auto_reply, reply_headers
from mailhub.conduct import notify, tokens
from mailhub.conduct.actions import run_commands
from mailhub.conduct.cases import REF_PATTERN, find_member, subject_tag
from mailhub.conduct.casework import (
    add_recusals,
    conduct_config,
    examine,
    notice_each,
    open_case,
    readers,
    relay,
    relay_reporter_reply,
    release,
    send_case_mail,
    send_to_reporter,
)
from mailhub.conduct.commands import parse_commands
from mailhub.conduct.conflicts import NamedMatch
from mailhub.conduct.content import seal
from mailhub.conduct.examine import own_words
from mailhub.conduct.policy import (
    FALLBACK,
    REPORTER,
    Purpose,
    Writer,
    WriterVerdict,
    active_recused,
    classify_writer,
    participants,
    reaches_recused,
)
from mailhub.conduct.reporter_commands import Exclude, SendNow, parse_reporter_commands
from mailhub.context import Context, Incoming, Runtime
from mailhub.messages import address, build_message, head_fields, too_many_hops
from mailhub.parsing import addresses, body_text, header, header_values, sender_address
from mailhub.processing import Handler, Preparer
from mailhub.routing import Route, resolve
from mailhub.store import conduct as store
from mailhub.store.conduct import Case, Recusal


def _our_own(ctx: Context, mail: Incoming) -> bool:
    """Mail carrying our X-Loop came from us: taking it in again would start a loop."""
    loops = header_values(mail.message, "x-loop")
    return any(v.strip().lower() == ctx.loop_id.lower() for v in loops)


def _dropped_as_our_own(ctx: Context, mail: Incoming) -> bool:
    """Drop (and log) our own mail, and mail past the hop limit, before any route acts on
    it, so no loop can start."""
    if _our_own(ctx, mail):
        reason = "our own X-Loop"
    elif too_many_hops(head_fields(mail.raw)):
        reason = "hop limit"
    else:
        return False
    logs.event("conduct.drop", queue_id=mail.queue_id, reason=reason)
    return True


async def _dropped_as_automatic(ctx: Context, mail: Incoming, case: Case | None) -> bool:
    """Bounces, delivery reports, out-of-office and other automatic mail (RFC 3834) never
    open a case and are never relayed; the cases they concern note that they came."""
    verdict = may_auto_reply(mail.message, mail.mail_from, ctx.loop_id)
    if verdict:
        return False
    refs = {case.ref} if case else set()
    if not refs:
        # A bounce quotes the mail it bounces: its references name the cases concerned.
        text = header(mail.message, "subject") + "\n" + mail.raw[:200_000].decode("latin-1")
        refs = {r.upper() for r in REF_PATTERN.findall(text)}
    for ref in sorted(refs):
        if await store.ref_exists(ctx.tx, ref):
            await store.audit(
                ctx.tx,
                ref,
                ctx.now(),
                "mailhub",
                "automatic-mail",
                f"not relayed ({verdict.reason})",
            )
    logs.event("conduct.drop", queue_id=mail.queue_id, reason="automatic mail")
    return True


async def handle_new(ctx: Context, mail: Incoming, route: Route) -> None:
    if _dropped_as_our_own(ctx, mail):
        return
    ref = subject_tag(header(mail.message, "subject"))
    case = await store.get_case(ctx.tx, ref) if ref else None
    if await _dropped_as_automatic(ctx, mail, case):
        return
    if case is None:
        await open_case(ctx, mail)
        return
    if _also_sent_to(ctx, mail, case.ref):
        return  # the case address's own route takes it; once is enough
    await _to_case(ctx, mail, case, thread="conduct", token="")


async def handle_reporter(ctx: Context, mail: Incoming, route: Route) -> None:
    await _by_ref(ctx, mail, route, thread="reporter")


async def handle_committee(ctx: Context, mail: Incoming, route: Route) -> None:
    await _by_ref(ctx, mail, route, thread="committee")


async def handle_direct(ctx: Context, mail: Incoming, route: Route) -> None:
    if _dropped_as_our_own(ctx, mail) or await _dropped_as_automatic(ctx, mail, None):
        return
    member = conduct_config(ctx).member(route.get("member"))
    await open_case(ctx, mail, direct=member)


def _also_sent_to(ctx: Context, mail: Incoming, ref: str, route_name: str = "") -> bool:
    """Was this message also sent to a case address of `ref` (of route `route_name`, or
    any but conduct@)? Then that address's own route takes it, once."""
    for rcpt in mail.rcpt_tos:
        route = resolve(rcpt, ctx.book)
        if route is None or route.name == "conduct.new" or route.get("ref", "").upper() != ref:
            continue
        if not route_name or route.name == route_name:
            return True
    return False


async def _by_ref(ctx: Context, mail: Incoming, route: Route, thread: str) -> None:
    if _dropped_as_our_own(ctx, mail):
        return
    case = await store.get_case(ctx.tx, route.get("ref"))
    if await _dropped_as_automatic(ctx, mail, case):
        return
    if case is None:
        # A forged or mistyped reference: a new case, never a guess at an existing one.
        logs.event("conduct.unknown_ref", queue_id=mail.queue_id, outcome="new case")
        await open_case(ctx, mail)
        return
    await _to_case(ctx, mail, case, thread=thread, token=route.get("token", ""))


_VIA = {
    "reporter": "the reporter's case address",
    "committee": "the committee address",
    "conduct": "the case tag on conduct@",
}


async def _to_case(ctx: Context, mail: Incoming, case: Case, *, thread: str, token: str) -> None:
    conduct = conduct_config(ctx)
    recusals = await store.recusals(ctx.tx, case.ref)
    from_addr = sender_address(mail.message)
    owner = await tokens.owner_of(ctx, case.ref, token)
    verdict = classify_writer(
        case, recusals, conduct, from_addr, mail.mail_from, owner, has_token=bool(token)
    )
    writer = verdict.writer
    if writer in (Writer.REPORTER, Writer.REPORTER_UNVERIFIED) and thread != "committee":
        await _reporter_reply(ctx, mail, case, recusals, verified=writer is Writer.REPORTER)
    elif writer in (Writer.MEMBER, Writer.FALLBACK):
        if not await _first_time(ctx, mail, case, thread, from_addr):
            return
        if thread == "reporter":
            await _answer_reporter(ctx, mail, case, recusals, verdict, from_addr)
        else:
            await _committee_message(ctx, mail, case, recusals, verdict, from_addr)
    elif writer is Writer.UNVERIFIED:
        await _unverified(ctx, case, verdict, from_addr)
    elif writer is Writer.FORGED:
        # Someone else's token, a revoked one, or a token from the wrong address: nothing
        # is done and nothing is said to the sender, who may be an attacker.
        await store.audit(
            ctx.tx, case.ref, ctx.now(), from_addr or mail.mail_from or "<>", "refused-token",
            f"a reply token not valid for this sender via {_VIA.get(thread, thread)}",
        )  # fmt: skip
    else:
        await open_case(ctx, mail, attempted=case, attempted_via=_VIA.get(thread, thread))
        return
    logs.event("conduct.message", queue_id=mail.queue_id, ref=case.ref, writer=writer.value)


async def _first_time(ctx: Context, mail: Incoming, case: Case, thread: str, actor: str) -> bool:
    """A message acts on a case once: a replayed copy (same Message-ID) changes nothing."""
    message_id = header(mail.message, "message-id")
    if not message_id:
        message_id = "sha256:" + hashlib.sha256(mail.raw).hexdigest()
    if await store.first_time_seen(ctx.tx, case.ref, f"{thread}:{message_id}"[:500]):
        return True
    await store.audit(ctx.tx, case.ref, ctx.now(), actor, "replayed", "ignored: already acted on")
    return False


async def _store(
    ctx: Context, mail: Incoming, case: Case, kind: str, author: str, held: bool = False
) -> None:
    sealed, encrypted = seal(conduct_config(ctx), mail.raw)
    await store.add_message(
        ctx.tx, ref=case.ref, received_at=mail.received_at, kind=kind, author=author, raw=sealed,
        encrypted=encrypted, held=held,
    )  # fmt: skip


async def _unverified(ctx: Context, case: Case, verdict: WriterVerdict, from_addr: str) -> None:
    """A committee address without a valid token, from a committee member's address: nothing
    is relayed or done. The member is told at their own configured address (not at From:,
    which may be forged), so a forgery comes to light."""
    await store.audit(
        ctx.tx, case.ref, ctx.now(), from_addr, "unverified",
        "not through a personal reply address: nothing relayed or done",
    )  # fmt: skip
    owner = verdict.member.key if verdict.member else FALLBACK

    build = notice_each(
        ctx, case, "conduct_unverified",
        committee_address=notify.committee_address(ctx, case.ref),
    )  # fmt: skip
    await send_case_mail(
        ctx, case, Purpose.COMMAND_ANSWER, build, kind="conduct.unverified", member=owner
    )


# --- the reporter -----------------------------------------------------------------------


def _command_lines_only(text: str) -> bool:
    lines = [ln for ln in own_words(text).splitlines() if ln.strip()]
    return bool(lines) and all(parse_reporter_commands(ln) for ln in lines)


async def _reporter_reply(
    ctx: Context, mail: Incoming, case: Case, recusals: list[Recusal], *, verified: bool
) -> None:
    conduct = conduct_config(ctx)
    text = body_text(mail.message)
    commands = parse_reporter_commands(text)
    exam = await examine(conduct, mail)
    held = exam.over_budget or bool(exam.held)
    relayable = not (commands and _command_lines_only(text))
    await _store(ctx, mail, case, "reporter" if relayable else "reporter-command", case.reporter,
                 held=held)  # fmt: skip
    if commands:  # first, so that "exclude NAME" is recorded as the reporter's choice
        await _reporter_commands(ctx, case, commands, verified=verified)
        recusals = await store.recusals(ctx.tx, case.ref)
    # A name in a reply recuses that member from now on, and they do not get the reply.
    matches = [m for m in exam.matches if m.member != case.direct_member]
    added = await add_recusals(
        ctx, case.ref, matches, active_recused(recusals), prefix="named in a reply: "
    )
    if held:
        await store.add_flag(ctx.tx, case.ref, "withheld")
    await store.audit(
        ctx.tx, case.ref, ctx.now(), "reporter", "reporter-reply", f"{len(added)} new recusals"
    )
    case = await store.get_case(ctx.tx, case.ref) or case
    if relayable:
        await _acknowledge_followup(ctx, mail, case)
    if not case.released:
        return  # kept: it goes to the committee with the report when the window ends
    recusals = await store.recusals(ctx.tx, case.ref)
    named = [m.member for m in matches]
    if relayable:
        await relay_reporter_reply(ctx, case, recusals, mail.raw, held=held, named=named)


# The reporter hears that a follow-up arrived at most this often per case (a reply that
# carries commands is answered by what the commands did instead).
FOLLOWUP_ACK_EVERY = 3600.0


async def _acknowledge_followup(ctx: Context, mail: Incoming, case: Case) -> None:
    """A short automatic reply to the reporter's follow-up: to the case's reporter address,
    never to From: (which may be forged), RFC 3834 (nothing to automatic mail; Auto-Submitted:
    auto-replied, In-Reply-To), at most once an hour per case."""
    if not case.reporter or not may_auto_reply(mail.message, mail.mail_from, ctx.loop_id):
        return
    last = await store.last_action_at(ctx.tx, case.ref, "followup-acknowledged")
    if last is not None and ctx.now() - last < FOLLOWUP_ACK_EVERY:
        return
    token = await tokens.mint(ctx, case.ref, REPORTER)
    reply = notify.reporter_address(ctx, case.ref, token)
    msg = notify.notice(
        ctx, "conduct_followup", ref=case.ref, to=case.reporter, reply_to=reply,
        released=case.released,
    )  # fmt: skip
    for name, value in reply_headers(mail.message, ctx.loop_id).items():
        del msg[name]
        msg[name] = value
    await ctx.send(msg, [case.reporter], kind="conduct.followup_ack", mail_from="",
                   case_ref=case.ref)  # fmt: skip
    await store.audit(ctx.tx, case.ref, ctx.now(), "mailhub", "followup-acknowledged")


async def _reporter_commands(
    ctx: Context, case: Case, commands: list[Exclude | SendNow], *, verified: bool
) -> None:
    """`exclude NAME` / `eithrio ENW` and `send now` / `anfon nawr`, from the reporter's own
    reply address only."""
    conduct = conduct_config(ctx)
    done = dict(excluded=[], unknown=[], sent_now=False, already_sent=case.released)
    if not verified:
        await store.audit(ctx.tx, case.ref, ctx.now(), "reporter", "reporter-command-unverified")
        await _tell_reporter(ctx, case, unverified=True, **done)
        return
    already = active_recused(await store.recusals(ctx.tx, case.ref))
    for command in commands:
        if isinstance(command, Exclude):
            member = find_member(command.name, conduct.committee)
            if member is None:
                done["unknown"].append(command.name[:80])
                continue
            await add_recusals(
                ctx, case.ref, [NamedMatch(member.key, "excluded by the reporter", False)], already
            )
            done["excluded"].append(member.name)
    wants_now = any(isinstance(c, SendNow) for c in commands)
    await store.audit(
        ctx.tx, case.ref, ctx.now(), "reporter", "reporter-command",
        f"excluded {len(done['excluded'])}" + ("; send now" if wants_now else ""),
    )  # fmt: skip
    if wants_now and not case.released:
        done["sent_now"] = await release(ctx, case)
    await _tell_reporter(ctx, case, unverified=False, **done)


async def _tell_reporter(ctx: Context, case: Case, **done: object) -> None:
    conduct = conduct_config(ctx)
    case = await store.get_case(ctx.tx, case.ref) or case
    names, fallback_reads = readers(case, await store.recusals(ctx.tx, case.ref), conduct)
    waiting = not case.released and case.release_at is not None
    await send_to_reporter(
        ctx, case, "conduct_reporter_done", kind="conduct.reporter_done", readers=names,
        fallback_reads=fallback_reads,
        release_en=notify.when_en(case.release_at) if waiting else "",
        release_cy=notify.when_cy(case.release_at) if waiting else "", **done,
    )  # fmt: skip


# --- the committee ----------------------------------------------------------------------


async def _answer_reporter(
    ctx: Context,
    mail: Incoming,
    case: Case,
    recusals: list[Recusal],
    verdict: WriterVerdict,
    from_addr: str,
) -> None:
    """A member's answer goes to the reporter from conduct@D, signed by the committee."""
    conduct = conduct_config(ctx)
    await _store(ctx, mail, case, "to-reporter", from_addr)
    if not case.reporter:
        await store.audit(ctx.tx, case.ref, ctx.now(), from_addr, "not-relayed", "no reporter")
        return
    text = notify.scrub(body_text(mail.message), conduct, ctx).strip()
    signature = ctx.templates.render("conduct_signature", conduct.language, ref=case.ref).body
    reply_token = await tokens.mint(ctx, case.ref, "reporter")
    case_address = notify.reporter_address(ctx, case.ref, reply_token)
    answer = build_message(
        from_=address(notify.COMMITTEE_NAME, notify.conduct_address(ctx)),
        to=case.reporter,
        subject=notify.neutral_subject(conduct, case.ref, "answer"),
        body=f"{text}\n\n-- \n{signature}",
        domain=ctx.domain,
        now=ctx.now(),
        headers={"Reply-To": case_address, "X-Conduct-Case": case.ref},
    )
    await ctx.send(answer, [case.reporter], kind="conduct.answer", mail_from="", case_ref=case.ref)
    await store.mark_answered(ctx.tx, case.ref, ctx.now())
    await store.audit(ctx.tx, case.ref, ctx.now(), from_addr, "answered-reporter")
    if _also_sent_to(ctx, mail, case.ref, "conduct.committee"):
        return  # the committee thread relays this very message to the others
    author = verdict.member.name if verdict.member else "Fallback reviewer"

    build = notice_each(ctx, case, "conduct_answer_copy", author=author, text=text)
    await send_case_mail(
        ctx, case, Purpose.ANSWER_COPY, build, kind="conduct.answer_copy", recusals=recusals,
        author=verdict.owner,
    )  # fmt: skip


async def _committee_message(
    ctx: Context,
    mail: Incoming,
    case: Case,
    recusals: list[Recusal],
    verdict: WriterVerdict,
    from_addr: str,
) -> None:
    conduct = conduct_config(ctx)
    to_cc = [a for _, a in addresses(mail.message, "to", "cc")]
    blocked = reaches_recused(to_cc, recusals, conduct, case.reporter)
    if blocked:
        await _refuse_copied(ctx, case, verdict, blocked)
        await store.audit(
            ctx.tx, case.ref, ctx.now(), from_addr, "refused",
            "committee message addressed to someone who must not see the case",
        )  # fmt: skip
        return
    # "This may be about NAME": a member the message names is recused from now on, and
    # does not get this message.
    exam = await examine(conduct, mail, author=verdict.owner)
    allowed = {m.key for m in participants(case, recusals, conduct)}
    named = [m for m in exam.matches if m.member in allowed]
    held = exam.over_budget or bool(exam.held)
    await _store(ctx, mail, case, "committee", from_addr, held=held)
    await add_recusals(
        ctx, case.ref, named, active_recused(recusals), prefix="named in committee mail: "
    )
    # Commands before the relay: a member a command keeps out (`#recuse NAME`) does not
    # get the message either, and the relay carries tokens minted after any revocation.
    commands = parse_commands(own_words(body_text(mail.message)))
    if commands:
        await run_commands(ctx, case, commands, verdict, from_addr)
        case = await store.get_case(ctx.tx, case.ref) or case
    recusals = await store.recusals(ctx.tx, case.ref)
    subject = header(mail.message, "subject")
    if subject_tag(subject) != case.ref:
        subject = notify.neutral_subject(conduct, case.ref, "discussion")
    author = verdict.member.name if verdict.member else "Fallback reviewer"
    await relay(
        ctx, case, recusals, mail.raw, Purpose.DISCUSSION, subject_key="discussion",
        kind="conduct.committee", sender_name=f"{author} (case {case.ref})", held=held,
        author=verdict.owner, named=[m.member for m in named], subject=subject,
    )  # fmt: skip
    await store.audit(ctx.tx, case.ref, ctx.now(), from_addr, "committee-message")


async def _refuse_copied(
    ctx: Context, case: Case, verdict: WriterVerdict, blocked: list[str]
) -> None:
    build = notice_each(ctx, case, "conduct_refused", addresses=blocked)
    await send_case_mail(
        ctx, case, Purpose.COMMAND_ANSWER, build, kind="conduct.refused", member=verdict.owner
    )


async def prepare(runtime: Runtime, mail: Incoming) -> None:
    """Scan a message for names before its transaction (off the event loop, bounded)."""
    conduct = runtime.config.conduct
    loop_id = f"mailhub@{runtime.config.server.domain}".lower()
    ours = any(v.strip().lower() == loop_id for v in header_values(mail.message, "x-loop"))
    if conduct is not None and not ours:
        await examine(conduct, mail)


# The tables of mailhub.conduct.app.CONDUCT: route name → preparer, route name → handler.
PREPARERS: dict[str, Preparer] = {
    name: prepare for name in ("conduct.new", "conduct.reporter", "conduct.direct")
}

HANDLERS: dict[str, Handler] = {
    "conduct.new": handle_new,
    "conduct.reporter": handle_reporter,
    "conduct.committee": handle_committee,
    "conduct.direct": handle_direct,
}
