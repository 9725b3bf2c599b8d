"""Route handlers of the conduct app: new reports, and mail to a case's addresses.

Whoever writes decides where a message goes, never the address alone: the reporter
and the members handling a case may write to it; anyone else who uses a case's
address or tag (a recused member included) opens a separate case instead, and the
attempt is recorded in the first case's audit trail.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from mailhub import logs
from mailhub.autoreply import may_auto_reply
from mailhub.conduct import notify
from mailhub.conduct.actions import run_commands
from mailhub.conduct.cases import (
    Writer,
    WriterVerdict,
    active_recused,
    classify_writer,
    handler_addresses,
    reaches_recused,
    subject_tag,
)
from mailhub.conduct.casework import (
    add_recusals,
    conduct_config,
    named_in,
    open_case,
    send_details,
)
from mailhub.conduct.commands import parse_commands
from mailhub.conduct.content import seal
from mailhub.context import Context, Incoming
from mailhub.messages import address, build_message
from mailhub.parsing import addresses, body_text, header, header_values, sender_address
from mailhub.routing import Route
from mailhub.store import conduct as store
from mailhub.store.conduct import Case, Recusal


def _our_own(ctx: Context, mail: Incoming) -> bool:
    """Mail carrying our X-Loop came from us: taking it in again would start a loop."""
    loops = header_values(mail.message, "x-loop")
    return any(v.strip().lower() == ctx.loop_id.lower() for v in loops)


def _automatic(ctx: Context, mail: Incoming) -> bool:
    """Out-of-office and other machine-made mail (RFC 3834): never relayed."""
    return not may_auto_reply(mail.message, mail.mail_from, ctx.loop_id)


def _dropped_as_our_own(ctx: Context, mail: Incoming) -> bool:
    """Drop (and log) our own mail before any route acts on it, so no loop can start."""
    if not _our_own(ctx, mail):
        return False
    logs.event("conduct.drop", queue_id=mail.queue_id, reason="our own X-Loop")
    return True


async def _held_back_as_automatic(ctx: Context, mail: Incoming, case: Case, from_addr: str) -> bool:
    """A member's out-of-office must reach neither reporter nor committee; the audit says so."""
    if not _automatic(ctx, mail):
        return False
    await store.audit(
        ctx.tx, case.ref, ctx.now(), from_addr, "not-relayed", "automatic reply from a member"
    )
    return True


async def handle_new(ctx: Context, mail: Incoming, route: Route) -> None:
    if _dropped_as_our_own(ctx, mail):
        return
    ref = subject_tag(header(mail.message, "subject"))
    case = await store.get_case(ctx.tx, ref) if ref else None
    if case is None:
        await open_case(ctx, mail)
        return
    if _case_address_also_used(ctx, mail, case.ref):
        return  # the case address's own route takes it; once is enough
    # A tagged message to conduct@D from a member goes to the committee thread only:
    # answering the reporter always takes the deliberate step of writing to conduct+REF@D.
    await _to_case(ctx, mail, route, case, thread="committee-or-reporter")


async def handle_reporter(ctx: Context, mail: Incoming, route: Route) -> None:
    await _by_ref(ctx, mail, route, thread="reporter")


async def handle_committee(ctx: Context, mail: Incoming, route: Route) -> None:
    await _by_ref(ctx, mail, route, thread="committee")


async def handle_direct(ctx: Context, mail: Incoming, route: Route) -> None:
    if _dropped_as_our_own(ctx, mail):
        return
    member = conduct_config(ctx).member(route.get("member"))
    await open_case(ctx, mail, direct=member)


def _case_address_also_used(ctx: Context, mail: Incoming, ref: str) -> bool:
    ours = {notify.reporter_address(ctx, ref).lower(), notify.committee_address(ctx, ref).lower()}
    return any(r.lower() in ours for r in mail.rcpt_tos)


async def _by_ref(ctx: Context, mail: Incoming, route: Route, thread: str) -> None:
    if _dropped_as_our_own(ctx, mail):
        return
    case = await store.get_case(ctx.tx, route.get("ref"))
    if case is None:
        # A forged or mistyped reference: a new case, never a guess at an existing one.
        logs.event("conduct.unknown_ref", queue_id=mail.queue_id, outcome="new case")
        await open_case(ctx, mail)
        return
    await _to_case(ctx, mail, route, case, thread=thread)


async def _to_case(ctx: Context, mail: Incoming, route: Route, case: Case, thread: str) -> None:
    conduct = conduct_config(ctx)
    recusals = await store.recusals(ctx.tx, case.ref)
    from_addr = sender_address(mail.message)
    verdict = classify_writer(case, recusals, conduct, from_addr, mail.mail_from)
    staff = verdict.writer in (Writer.MEMBER, Writer.FALLBACK)
    if verdict.writer is Writer.REPORTER and thread != "committee":
        await _reporter_reply(ctx, mail, case, recusals)
    elif staff and thread == "reporter":
        await _answer_reporter(ctx, mail, case, recusals, verdict, from_addr)
    elif staff:
        await _committee_message(ctx, mail, case, recusals, verdict, from_addr)
    else:
        via = {"reporter": "the reporter's case address", "committee": "the committee address"}
        await open_case(
            ctx, mail, attempted=case, attempted_via=via.get(thread, "the case tag on conduct@")
        )
        return
    logs.event("conduct.message", queue_id=mail.queue_id, ref=case.ref, writer=verdict.writer.value)


async def _store(ctx: Context, mail: Incoming, case: Case, kind: str, author: str) -> None:
    sealed, encrypted = seal(conduct_config(ctx), mail.raw)
    await store.add_message(
        ctx.tx,
        ref=case.ref,
        received_at=mail.received_at,
        kind=kind,
        author=author,
        raw=sealed,
        encrypted=encrypted,
    )


async def _reporter_reply(
    ctx: Context, mail: Incoming, case: Case, recusals: list[Recusal]
) -> None:
    conduct = conduct_config(ctx)
    await _store(ctx, mail, case, "reporter", case.reporter)
    # A name in a reply recuses that member from now on.
    matches, unscannable = named_in(mail.message, conduct, case.direct_member)
    added = await add_recusals(
        ctx, case.ref, matches, active_recused(recusals), prefix="named in a reply: "
    )
    if unscannable:
        await store.add_flag(ctx.tx, case.ref, "unscannable")
    await store.audit(
        ctx.tx, case.ref, ctx.now(), case.reporter, "reporter-reply", f"{len(added)} new recusals"
    )
    for m in added:
        await store.audit(ctx.tx, case.ref, ctx.now(), "mailhub", "recused", f"{m.member}")
    recusals = await store.recusals(ctx.tx, case.ref)
    case = await store.get_case(ctx.tx, case.ref) or case
    to = handler_addresses(case, recusals, conduct)
    case_address = notify.reporter_address(ctx, case.ref)
    raw, message_id = notify.wrapped(
        ctx,
        mail.raw,
        ref=case.ref,
        subject=notify.neutral_subject(conduct, case.ref, "reply"),
        from_=address(f"Reporter, case {case.ref}", case_address),
        to=case_address,
        reply_to=case_address,
    )
    await ctx.send(raw, to, kind="conduct.reporter_reply", mail_from="", message_id=message_id)
    if added or unscannable:
        await send_details(ctx, case, recusals, to)


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
    if await _held_back_as_automatic(ctx, mail, case, from_addr):
        return
    await _store(ctx, mail, case, "to-reporter", from_addr)
    if not case.reporter:
        await store.audit(ctx.tx, case.ref, ctx.now(), from_addr, "not-relayed", "no reporter")
        return
    text = notify.scrub(body_text(mail.message), conduct, ctx).strip()
    signature = ctx.templates.render("conduct_signature", conduct.language, ref=case.ref).body
    case_address = notify.reporter_address(ctx, case.ref)
    answer = build_message(
        from_=address(notify.COMMITTEE_NAME, notify.conduct_address(ctx)),
        to=case.reporter,
        subject=notify.neutral_subject(conduct, case.ref, "answer"),
        body=f"{text}\n\n-- \n{signature}",
        domain=ctx.domain,
        now=ctx.now(),
        headers={"Reply-To": case_address, "X-Conduct-Case": case.ref},
    )
    await ctx.send(answer, [case.reporter], kind="conduct.answer", mail_from="")
    await store.mark_answered(ctx.tx, case.ref, ctx.now())
    await store.audit(ctx.tx, case.ref, ctx.now(), from_addr, "answered-reporter")
    if notify.committee_address(ctx, case.ref).lower() in {r.lower() for r in mail.rcpt_tos}:
        return  # the committee thread relays this very message to the others
    others = handler_addresses(case, recusals, conduct, exclude=from_addr)
    author = verdict.member.name if verdict.member else from_addr
    committee = notify.committee_address(ctx, case.ref)
    copy = notify.notice(
        ctx,
        "conduct_answer_copy",
        ref=case.ref,
        to=committee,
        reply_to=committee,
        author=author,
        text=text,
    )
    await ctx.send(copy, others, kind="conduct.answer_copy", mail_from="")


async def _committee_message(
    ctx: Context,
    mail: Incoming,
    case: Case,
    recusals: list[Recusal],
    verdict: WriterVerdict,
    from_addr: str,
) -> None:
    conduct = conduct_config(ctx)
    if await _held_back_as_automatic(ctx, mail, case, from_addr):
        return
    committee = notify.committee_address(ctx, case.ref)
    to_cc = [a for _, a in addresses(mail.message, "to", "cc")]
    blocked = reaches_recused(to_cc, recusals, conduct, case.reporter)
    if blocked:
        refusal = notify.notice(
            ctx,
            "conduct_refused",
            ref=case.ref,
            to=from_addr,
            reply_to=committee,
            addresses=blocked,
            committee_address=committee,
        )
        await ctx.send(refusal, [from_addr], kind="conduct.refused", mail_from="")
        await store.audit(
            ctx.tx,
            case.ref,
            ctx.now(),
            from_addr,
            "refused",
            "committee message addressed to someone who must not see the case",
        )
        return
    await _store(ctx, mail, case, "committee", from_addr)
    subject = header(mail.message, "subject")
    if subject_tag(subject) != case.ref:
        subject = notify.neutral_subject(conduct, case.ref, "discussion")
    author = verdict.member.name if verdict.member else "Fallback reviewer"
    raw, message_id = notify.wrapped(
        ctx,
        mail.raw,
        ref=case.ref,
        subject=subject,
        from_=address(f"{author} (case {case.ref})", committee),
        to=committee,
        reply_to=committee,
    )
    to = handler_addresses(case, recusals, conduct, exclude=from_addr)
    await ctx.send(raw, to, kind="conduct.committee", mail_from="", message_id=message_id)
    await store.audit(ctx.tx, case.ref, ctx.now(), from_addr, "committee-message")
    commands = parse_commands(body_text(mail.message))
    if commands:
        await run_commands(ctx, case, commands, verdict.member, from_addr)


Handler = Callable[[Context, Incoming, Route], Awaitable[None]]

HANDLERS: dict[str, Handler] = {
    "conduct.new": handle_new,
    "conduct.reporter": handle_reporter,
    "conduct.committee": handle_committee,
    "conduct.direct": handle_direct,
}
