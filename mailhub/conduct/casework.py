"""Opening a case and sending case mail (store + mail, one transaction).

All case mail goes out through `send_case_mail`, which asks the one rule
(`policy.recipients`) who may receive it and gives each recipient a copy of their own,
whose reply addresses carry a fresh token that only that recipient's mailbox receives.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from email.message import EmailMessage

from mailhub import content, logs
from mailhub.conduct import notify, tokens
from mailhub.conduct.cases import REF_PATTERN, new_ref
from mailhub.conduct.config import CommitteeMember, ConductConfig
from mailhub.conduct.conflicts import NamedMatch, sender_matches
from mailhub.conduct.content import seal, unseal
from mailhub.conduct.examine import Examination, examine_raw, readable_copy
from mailhub.conduct.policy import (
    FALLBACK,
    REPORTER,
    Purpose,
    Recipient,
    recipients,
)
from mailhub.context import Context, Incoming
from mailhub.mailbox import mailbox_key
from mailhub.messages import address, build_message
from mailhub.parsing import header, parse, sender_address
from mailhub.store import conduct as store
from mailhub.store.conduct import Case, Recusal

ONE_WEEK = 7 * 86400.0  # the published promise: an answer within one week
# Cases one mailbox may open: past this, a report is kept (nothing is lost) but neither
# acknowledged nor sent, so a forger cannot use conduct@ to mail-bomb a victim or the
# committee. An administrator sees such cases flagged `rate-limited` in `mailhub cases`.
REPORTS_PER_HOUR = 5
REPORTS_PER_DAY = 20


def conduct_config(ctx: Context) -> ConductConfig:
    conduct = ctx.config.conduct
    if conduct is None:  # the router only routes conduct addresses when configured
        raise RuntimeError("no [conduct] section in the config")
    return conduct


async def _unique_ref(ctx: Context) -> str:
    while True:
        ref = new_ref()
        if not await store.ref_exists(ctx.tx, ref):
            return ref


# --- reading a message (bounded, off the event loop) ---------------------------------------


async def examine(conduct: ConductConfig, mail: Incoming, *, author: str = "") -> Examination:
    """What a message names, what could not be read, which cases it cites.

    Run in the content worker with a time budget; a message that exceeds it (or breaks the
    worker) comes back `over_budget`, and the caller fails closed. `author`: a committee
    member writing on the committee thread, whose own name (a signature) recuses no one;
    their mail is read without its quoted part.
    """
    key = ("conduct.examine", author)
    cached = mail.prepared.get(key)
    if isinstance(cached, Examination):
        return cached
    result = await content.run_bounded(
        examine_raw, mail.raw, conduct.committee, bool(author), what="conduct scan"
    )
    if result is None:
        result = Examination.failed()
    if author:
        result = replace(result, matches=tuple(m for m in result.matches if m.member != author))
    mail.prepared[key] = result
    return result


async def add_recusals(
    ctx: Context, ref: str, matches: Iterable[NamedMatch], already: set[str], prefix: str = ""
) -> list[NamedMatch]:
    """Record new recusals (one per member) and revoke the recused members' reply tokens;
    returns those that were new. Reasons name the rule and the member, never report text.
    Once the report has gone out, the others are sent the updated details."""
    added = []
    for m in matches:
        if m.member in already:
            continue
        already.add(m.member)
        await store.add_recusal(
            ctx.tx, ref=ref, member=m.member, reason=prefix + m.reason, possible=m.possible,
            at=ctx.now(),
        )  # fmt: skip
        await tokens.revoke(ctx, ref, m.member)
        await store.audit(ctx.tx, ref, ctx.now(), "mailhub", "recused", m.member)
        added.append(m)
    case = await store.get_case(ctx.tx, ref) if added else None
    if case is not None and case.released:
        # Whatever the newly recused saw before (a colleague's reply address quoted in a
        # message) must be worth nothing now: every committee token of the case is revoked,
        # and those still handling it get fresh addresses with the new recusals.
        await store.revoke_tokens_except(ctx.tx, ref, REPORTER, ctx.now())
        await send_details(ctx, case, await store.recusals(ctx.tx, ref))
    return added


async def _inherited(ctx: Context, refs: Iterable[str], own: str) -> list[NamedMatch]:
    """The active recusals of every other case a message cites: fail closed, so mail that
    bounced or was forwarded out of one case never reaches that case's recused members."""
    out: list[NamedMatch] = []
    for ref in sorted(set(refs) - {own}):
        if not await store.ref_exists(ctx.tx, ref):
            continue
        for r in await store.recusals(ctx.tx, ref):
            if r.active:
                out.append(NamedMatch(r.member, f"recused in a case this one cites ({ref})", False))
    return out


# --- opening a case ------------------------------------------------------------------------


async def _rate_limited(ctx: Context, sender_key: str) -> bool:
    now = ctx.now()
    return (
        await store.openings_since(ctx.tx, sender_key, now - 3600) >= REPORTS_PER_HOUR
        or await store.openings_since(ctx.tx, sender_key, now - 86400) >= REPORTS_PER_DAY
    )


async def open_case(
    ctx: Context,
    mail: Incoming,
    *,
    direct: CommitteeMember | None = None,
    attempted: Case | None = None,
    attempted_via: str = "",
) -> str:
    """A new case from `mail`: stored, acknowledged, and released to the members not named
    once the reporter's window (`release_after`) has passed."""
    conduct = conduct_config(ctx)
    ref = await _unique_ref(ctx)
    msg = mail.message
    reporter = sender_address(msg) or mail.mail_from.lower()
    sender_key = mailbox_key(reporter or mail.mail_from or "<>")
    limited = await _rate_limited(ctx, sender_key)
    await store.record_opening(ctx.tx, sender_key, ctx.now())
    exam = await examine(conduct, mail)
    matches = [m for m in exam.matches if not direct or m.member != direct.key]
    senders = sender_matches([reporter, mail.mail_from], conduct.committee)
    inherited = await _inherited(ctx, exam.refs, ref)
    flags = []
    if direct:
        flags.append("direct")
    if exam.over_budget:
        flags.append("unscanned")
    elif exam.held:
        flags.append("withheld")
    if limited:
        flags.append("rate-limited")
    release_at = None if limited else ctx.now() + conduct.release_after
    await store.create_case(
        ctx.tx,
        ref=ref,
        opened_at=ctx.now(),
        reporter=reporter,
        direct_member=direct.key if direct else "",
        flags=tuple(flags),
        release_at=release_at,
    )
    sealed, encrypted = seal(conduct, mail.raw)
    await store.add_message(
        ctx.tx,
        ref=ref,
        received_at=mail.received_at,
        kind="report",
        author=reporter,
        raw=sealed,
        encrypted=encrypted,
        held=exam.over_budget or bool(exam.held),
    )
    detail = f"direct to {direct.key}" if direct else "to the committee"
    if exam.over_budget:
        detail += "; could not be checked within the scan budget: fallback reviewer only"
    elif exam.held:
        detail += f"; {len(exam.held)} part(s) held for the fallback reviewer"
    await store.audit(ctx.tx, ref, ctx.now(), "mailhub", "opened", detail)
    recused = await add_recusals(ctx, ref, senders + matches + inherited, set())
    if attempted is not None:
        # The first case records the attempt; the new case says nothing of the first.
        await store.audit(
            ctx.tx,
            attempted.ref,
            ctx.now(),
            reporter or mail.mail_from or "<>",
            "refused-writer",
            f"not allowed to write via {attempted_via}; opened a separate case {ref}",
        )
    case = await store.get_case(ctx.tx, ref)
    assert case is not None
    if not limited:
        await _acknowledge(ctx, mail, case, own_matches=senders + matches, exam=exam)
        if conduct.release_after <= 0:
            await release(ctx, case)
    logs.event(
        "conduct.case",
        queue_id=mail.queue_id,
        ref=ref,
        outcome="rate-limited" if limited else "opened",
        recused=len(recused),
    )
    return ref


def readers(case: Case, recusals: list[Recusal], conduct: ConductConfig) -> tuple[list[str], bool]:
    """(names of who will read the report once released, whether that is the fallback)."""
    view = replace(case, released_at=case.released_at or case.opened_at)
    rcpts = recipients(view, recusals, conduct, Purpose.REPORT)
    fallback = any(r.owner == FALLBACK for r in rcpts)
    return [r.name for r in rcpts if r.owner != FALLBACK], fallback


async def _acknowledge(
    ctx: Context, mail: Incoming, case: Case, own_matches: list[NamedMatch], exam: Examination
) -> None:
    conduct = conduct_config(ctx)
    due = ctx.now() + ONE_WEEK
    recusals = await store.recusals(ctx.tx, case.ref)
    names, fallback_reads = readers(case, recusals, conduct)
    not_readers = sorted({_name(conduct, m.member) for m in own_matches})
    direct = conduct.member(case.direct_member) if case.direct_member else None
    token = await tokens.mint(ctx, case.ref, REPORTER)
    reply_address = notify.reporter_address(ctx, case.ref, token)
    release_at = case.release_at or ctx.now()
    text = ctx.templates.render(
        "conduct_ack",
        conduct.language,
        ref=case.ref,
        case_address=reply_address,
        due_en=notify.date_en(due),
        due_cy=notify.date_cy(due),
        direct_name=direct.name if direct else "",
        readers=names,
        fallback_reads=fallback_reads,
        not_readers=not_readers,
        release_now=conduct.release_after <= 0,
        release_en=notify.when_en(release_at),
        release_cy=notify.when_cy(release_at),
        held=list(exam.held),
        unscanned=exam.over_budget,
        code_url=conduct.code_url,
    )
    reply = build_message(
        from_=address(notify.COMMITTEE_NAME, notify.conduct_address(ctx)),
        to=mail.mail_from or "undisclosed-recipients:;",
        subject=text.subject,
        body=text.body,
        domain=ctx.domain,
        now=ctx.now(),
        headers={"Reply-To": reply_address, "X-Conduct-Case": case.ref},
    )
    await ctx.auto_reply(mail, reply, kind="conduct.ack")


def _name(conduct: ConductConfig, key: str) -> str:
    member = conduct.member(key)
    return member.name if member else key


# --- sending case mail: the one way ------------------------------------------------------


@dataclass(frozen=True)
class Personal:
    """One recipient's own reply addresses for a case (each carries their token)."""

    recipient: Recipient
    committee: str  # conduct+REF-committee+TOKEN@D
    case: str  # conduct+REF+TOKEN@D: to answer the reporter


Build = Callable[[Personal], Awaitable[EmailMessage | bytes]]


def notice_each(ctx: Context, case: Case, name: str, **context: object) -> Build:
    """A Build for notice `name` (templates/LANG/NAME.txt) with each recipient's own
    addresses as `committee_address` and `case_address`."""

    async def build(p: Personal) -> EmailMessage:
        fields = {"committee_address": p.committee, "case_address": p.case, **context}
        return notify.notice(
            ctx, name, ref=case.ref, to=p.committee, reply_to=p.committee, **fields
        )

    return build


async def send_case_mail(
    ctx: Context,
    case: Case,
    purpose: Purpose,
    build: Build,
    *,
    kind: str,
    recusals: list[Recusal] | None = None,
    author: str = "",
    member: str = "",
    named: Iterable[str] = (),
    message_id: str | None = None,
) -> list[Recipient]:
    """Send one piece of case mail to whoever `policy.recipients` allows, a copy each.

    Case mail goes out from the null return path: a bounce of it would carry case
    content back to its envelope sender, so there must be none.
    """
    conduct = conduct_config(ctx)
    if recusals is None:
        recusals = await store.recusals(ctx.tx, case.ref)
    rcpts = recipients(case, recusals, conduct, purpose, author=author, member=member, named=named)
    for r in rcpts:
        token = await tokens.mint(ctx, case.ref, r.owner)
        personal = Personal(
            r,
            notify.committee_address(ctx, case.ref, token),
            notify.reporter_address(ctx, case.ref, token),
        )
        msg = await build(personal)
        await ctx.send(
            msg, [r.address], kind=kind, mail_from="", message_id=message_id, case_ref=case.ref
        )
    return rcpts


async def send_to_reporter(
    ctx: Context, case: Case, name: str, *, kind: str, **context: object
) -> None:
    """A notice to the reporter (never to a From: address), with a fresh reply token."""
    if not case.reporter:
        return
    token = await tokens.mint(ctx, case.ref, REPORTER)
    reply = notify.reporter_address(ctx, case.ref, token)
    msg = notify.notice(ctx, name, ref=case.ref, to=case.reporter, reply_to=reply,
                        case_address=reply, **context)  # fmt: skip
    await ctx.send(msg, [case.reporter], kind=kind, mail_from="", case_ref=case.ref)


# --- releasing and delivering the report --------------------------------------------------


async def release(ctx: Context, case: Case) -> bool:
    """The end of the reporter's window: the report (and any replies the reporter sent
    meanwhile) goes to the members handling the case. False if it had already gone."""
    if not await store.mark_released(ctx.tx, case.ref, ctx.now()):
        return False
    case = await store.get_case(ctx.tx, case.ref) or case
    recusals = await store.recusals(ctx.tx, case.ref)
    messages = await store.messages(ctx.tx, case.ref)
    report = next((m for m in messages if m.kind == "report"), None)
    await deliver_report(ctx, case, recusals, Purpose.REPORT)
    for m in messages:
        if m.kind == "reporter" and (report is None or m.id > report.id):
            raw = unseal(conduct_config(ctx), m)
            if raw is not None:
                await relay_reporter_reply(ctx, case, recusals, raw, held=m.held)
    await store.audit(ctx.tx, case.ref, ctx.now(), "mailhub", "released")
    logs.event("conduct.case", ref=case.ref, outcome="released")
    return True


def _message_id(raw: bytes) -> str:
    return "<" + hashlib.sha256(raw).hexdigest()[:32] + "@conduct.invalid>"


async def _wrapped_copies(
    ctx: Context,
    case: Case,
    raw: bytes,
    purpose: Purpose,
    *,
    subject_key: str,
    sender_name: str = "",
    kind: str,
    recusals: list[Recusal],
    author: str = "",
    member: str = "",
    named: Iterable[str] = (),
    subject: str = "",
) -> list[Recipient]:
    """An original message's body, verbatim, under neutral case headers, a copy each."""
    conduct = conduct_config(ctx)
    first_id = ""

    async def build(p: Personal) -> bytes:
        nonlocal first_id
        wrapped, mid = notify.wrapped(
            ctx,
            raw,
            ref=case.ref,
            subject=subject or notify.neutral_subject(conduct, case.ref, subject_key),
            from_=address(sender_name or notify.COMMITTEE_NAME, p.committee)
            if sender_name
            else address(notify.COMMITTEE_NAME, notify.conduct_address(ctx)),
            to=p.committee,
            reply_to=p.committee,
            message_id=first_id or None,
        )
        first_id = first_id or mid
        return wrapped

    return await send_case_mail(
        ctx, case, purpose, build, kind=kind, recusals=recusals, author=author, member=member,
        named=named,
    )  # fmt: skip


async def deliver_report(
    ctx: Context, case: Case, recusals: list[Recusal], purpose: Purpose, member: str = ""
) -> None:
    """The report, verbatim under neutral headers, then the case details.

    A report with parts that could not be read goes to the committee without them (a
    note says what is held) and in full to the fallback reviewer; one that could not be
    checked at all goes to the fallback reviewer only (policy.recipients).
    """
    first = await store.first_message(ctx.tx, case.ref)
    raw = unseal(conduct_config(ctx), first) if first else None
    subject = header(parse(raw), "subject") if raw is not None else ""
    held: tuple[str, ...] = ()
    if raw is not None:
        copy, held = raw, ()
        if first is not None and first.held:
            if "unscanned" in case.flags:
                # Not checked at all: the committee gets nothing of it (only the fallback
                # reviewer, below) until it is released.
                copy, held = None, ("the whole report",)
            else:
                copy, held = await _readable(raw)
            if purpose in (Purpose.REPORT, Purpose.SHARE):
                await hold_for_fallback(ctx, case, raw, held, recusals)
        if copy is not None:
            await _wrapped_copies(
                ctx, case, copy, purpose, subject_key="new", kind="conduct.report",
                recusals=recusals, member=member,
            )  # fmt: skip
    await send_details(
        ctx, case, recusals, purpose, subject=subject, report_missing=raw is None, member=member,
        withheld=held,
    )  # fmt: skip


async def _readable(raw: bytes) -> tuple[bytes | None, tuple[str, ...]]:
    """The message without its unreadable parts (worker process); None if even that fails."""
    result = await content.run_bounded(readable_copy, raw, what="conduct withhold")
    if result is None:
        return None, ("the whole message (it could not be taken apart)",)
    return result


async def hold_for_fallback(
    ctx: Context, case: Case, raw: bytes, held: tuple[str, ...], recusals: list[Recusal]
) -> None:
    """What the committee cannot be given unchecked goes, in full, to the fallback reviewer."""
    conduct = conduct_config(ctx)
    names, _ = readers(case, recusals, conduct)
    await _wrapped_copies(
        ctx, case, raw, Purpose.HOLD, subject_key="held", kind="conduct.held", recusals=recusals
    )

    async def notice(p: Personal) -> EmailMessage:
        return notify.notice(
            ctx, "conduct_held", ref=case.ref, to=p.committee, reply_to=p.committee,
            held=list(held), unscanned="unscanned" in case.flags, readers=names,
            committee_address=p.committee,
        )  # fmt: skip

    await send_case_mail(ctx, case, Purpose.HOLD, notice, kind="conduct.held", recusals=recusals)


async def relay(
    ctx: Context,
    case: Case,
    recusals: list[Recusal],
    raw: bytes,
    purpose: Purpose,
    *,
    subject_key: str,
    kind: str,
    sender_name: str = "",
    held: bool = False,
    author: str = "",
    named: Iterable[str] = (),
    subject: str = "",
) -> None:
    """Relay a stored message of the case to whoever `purpose` allows. With `held`, the
    committee gets it without the parts that could not be read, the fallback reviewer in
    full."""
    copy: bytes | None = raw
    if held:
        copy, parts = await _readable(raw)
        await hold_for_fallback(ctx, case, raw, parts, recusals)
    if copy is not None:
        await _wrapped_copies(
            ctx, case, copy, purpose, subject_key=subject_key, sender_name=sender_name,
            kind=kind, recusals=recusals, author=author, named=named, subject=subject,
        )  # fmt: skip


async def relay_reporter_reply(
    ctx: Context, case: Case, recusals: list[Recusal], raw: bytes, *, held: bool,
    named: Iterable[str] = (),
) -> None:  # fmt: skip
    await relay(
        ctx, case, recusals, raw, Purpose.REPORTER_REPLY, subject_key="reply",
        sender_name=f"Reporter, case {case.ref}", kind="conduct.reporter_reply", held=held,
        named=named,
    )  # fmt: skip


async def send_details(
    ctx: Context,
    case: Case,
    recusals: list[Recusal],
    purpose: Purpose = Purpose.DETAILS,
    *,
    subject: str = "",
    report_missing: bool = False,
    member: str = "",
    withheld: tuple[str, ...] = (),
) -> None:
    """The case details (never the report's text): reporter, dates, recusals, flags, how to act."""
    conduct = conduct_config(ctx)
    direct = conduct.member(case.direct_member) if case.direct_member else None
    recusal_rows = [
        {
            "name": _name(conduct, r.member),
            "reason": r.reason,
            "possible": r.possible,
            "lifted_by": r.lifted_by if not r.active else "",
        }
        for r in recusals
    ]

    _, fallback_reads = readers(case, recusals, conduct)

    async def build(p: Personal) -> EmailMessage:
        is_fallback = p.recipient.owner == FALLBACK
        return notify.notice(
            ctx,
            "conduct_details",
            ref=case.ref,
            to=p.committee,
            reply_to=p.committee,
            opened=notify.stamp(case.opened_at),
            due=notify.stamp(case.opened_at + ONE_WEEK),
            reporter=case.reporter or "(no address)",
            subject=subject,
            recusals=recusal_rows,
            withheld=list(withheld),
            unscanned="unscanned" in case.flags,
            direct_name=direct.name if direct else "",
            shared=case.shared,
            report_missing=report_missing,
            fallback=is_fallback and fallback_reads,
            is_fallback=is_fallback,
            committee_address=p.committee,
            case_address=p.case,
        )

    await send_case_mail(
        ctx, case, purpose, build, kind="conduct.details", recusals=recusals, member=member
    )


async def report_raw(ctx: Context, ref: str) -> bytes | None:
    """The stored report's bytes (None once deleted, or if it cannot be decrypted)."""
    first = await store.first_message(ctx.tx, ref)
    return unseal(conduct_config(ctx), first) if first else None


def cited_refs(text: str) -> set[str]:
    return {m.upper() for m in REF_PATTERN.findall(text)}


def log_failure(what: str, ref: str) -> None:
    logs.event("conduct.case", logging.WARNING, ref=ref, outcome=what)
