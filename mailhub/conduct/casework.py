"""Opening a case and sending its report to the right people (store + mail, one transaction)."""

from __future__ import annotations

from email.message import EmailMessage

from mailhub import logs
from mailhub.conduct import notify
from mailhub.conduct.cases import active_recused, handler_addresses, new_ref
from mailhub.conduct.config import CommitteeMember, ConductConfig
from mailhub.conduct.conflicts import NamedMatch, match_texts, scan, sender_matches
from mailhub.conduct.content import seal, unseal
from mailhub.context import Context, Incoming
from mailhub.messages import address, build_message
from mailhub.parsing import header, parse, sender_address
from mailhub.store import conduct as store
from mailhub.store.conduct import Case, Recusal

ONE_WEEK = 7 * 86400.0  # the published promise: an answer within one week


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


def named_in(
    msg: EmailMessage, conduct: ConductConfig, direct: str = ""
) -> tuple[list[NamedMatch], tuple[str, ...]]:
    """Members a message names, and the parts that could not be scanned. The member a
    direct report was addressed to is not recused by its text (it greets them by name)."""
    result = scan(msg)
    matches = [m for m in match_texts(result.texts, conduct.committee) if m.member != direct]
    return matches, result.unscannable


async def add_recusals(
    ctx: Context, ref: str, matches: list[NamedMatch], already: set[str], prefix: str = ""
) -> list[NamedMatch]:
    """Record new recusals (one per member); returns those that were new."""
    added = []
    for m in matches:
        if m.member in already:
            continue
        already.add(m.member)
        await store.add_recusal(
            ctx.tx,
            ref=ref,
            member=m.member,
            reason=prefix + m.reason,
            possible=m.possible,
            at=ctx.now(),
        )
        added.append(m)
    return added


async def open_case(
    ctx: Context,
    mail: Incoming,
    *,
    direct: CommitteeMember | None = None,
    attempted: Case | None = None,
    attempted_via: str = "",
) -> str:
    """A new case from `mail`: stored, acknowledged, and sent to the members not named."""
    conduct = conduct_config(ctx)
    ref = await _unique_ref(ctx)
    msg = mail.message
    reporter = sender_address(msg) or mail.mail_from.lower()
    matches, unscannable = named_in(msg, conduct, direct.key if direct else "")
    senders = sender_matches([reporter, mail.mail_from], conduct.committee)
    flags = tuple(f for f, on in (("unscannable", unscannable), ("direct", direct)) if on)
    await store.create_case(
        ctx.tx,
        ref=ref,
        opened_at=ctx.now(),
        reporter=reporter,
        direct_member=direct.key if direct else "",
        flags=flags,
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
    )
    recused = await add_recusals(ctx, ref, senders + matches, set())
    detail = f"direct to {direct.key}" if direct else "to the committee"
    if unscannable:
        detail += "; not scanned for names: " + ", ".join(sorted(set(unscannable)))
    await store.audit(ctx.tx, ref, ctx.now(), reporter or "<>", "opened", detail)
    for m in recused:
        await store.audit(ctx.tx, ref, ctx.now(), "mailhub", "recused", f"{m.member}: {m.reason}")
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
    await _acknowledge(ctx, mail, ref, direct)
    case = await store.get_case(ctx.tx, ref)
    assert case is not None
    recusals = await store.recusals(ctx.tx, ref)
    if direct is not None and direct.key not in active_recused(recusals):
        to = [direct.address]
    else:
        to = handler_addresses(case, recusals, conduct)
    await deliver_report(ctx, case, recusals, mail.raw, to)
    logs.event(
        "conduct.case",
        queue_id=mail.queue_id,
        ref=ref,
        outcome="opened",
        recused=len(recused),
        recipients=len(to),
        direct=bool(direct),
    )
    return ref


async def _acknowledge(
    ctx: Context, mail: Incoming, ref: str, direct: CommitteeMember | None
) -> None:
    conduct = conduct_config(ctx)
    due = ctx.now() + ONE_WEEK
    text = ctx.templates.render(
        "conduct_ack",
        conduct.language,
        ref=ref,
        case_address=notify.reporter_address(ctx, ref),
        due_en=notify.date_en(due),
        due_cy=notify.date_cy(due),
        direct_name=direct.name if direct else "",
    )
    reply = build_message(
        from_=address(notify.COMMITTEE_NAME, notify.conduct_address(ctx)),
        to=mail.mail_from or "undisclosed-recipients:;",
        subject=text.subject,
        body=text.body,
        domain=ctx.domain,
        now=ctx.now(),
        headers={"Reply-To": notify.reporter_address(ctx, ref), "X-Conduct-Case": ref},
    )
    await ctx.auto_reply(mail, reply, kind="conduct.ack")


async def deliver_report(
    ctx: Context, case: Case, recusals: list[Recusal], raw: bytes | None, to: list[str]
) -> None:
    """The report, verbatim under neutral headers, then the case details, to `to`.

    Case mail goes out from the null return path: a bounce of it would carry case
    content back to its envelope sender, so there must be none (delivery sends no DSN
    for it, and remote servers never bounce mail from <>).
    """
    if not to:
        return
    conduct = conduct_config(ctx)
    committee = notify.committee_address(ctx, case.ref)
    subject = ""
    if raw is not None:
        wrapped, message_id = notify.wrapped(
            ctx,
            raw,
            ref=case.ref,
            subject=notify.neutral_subject(conduct, case.ref, "new"),
            from_=address(notify.COMMITTEE_NAME, notify.conduct_address(ctx)),
            to=committee,
            reply_to=committee,
        )
        await ctx.send(wrapped, to, kind="conduct.report", mail_from="", message_id=message_id)
        subject = header(parse(raw), "subject")
    await send_details(ctx, case, recusals, to, subject=subject, report_missing=raw is None)


async def send_details(
    ctx: Context,
    case: Case,
    recusals: list[Recusal],
    to: list[str],
    *,
    subject: str = "",
    report_missing: bool = False,
) -> None:
    """The case details (never the report's text): reporter, dates, recusals, flags, how to act."""
    conduct = conduct_config(ctx)
    names = {m.key: m.name for m in conduct.committee}
    direct = conduct.member(case.direct_member) if case.direct_member else None
    committee = notify.committee_address(ctx, case.ref)
    msg = notify.notice(
        ctx,
        "conduct_details",
        ref=case.ref,
        to=committee,
        reply_to=committee,
        opened=notify.stamp(case.opened_at),
        due=notify.stamp(case.opened_at + ONE_WEEK),
        reporter=case.reporter or "(no address)",
        subject=subject,
        recusals=[
            {
                "name": names.get(r.member, r.member),
                "reason": r.reason,
                "possible": r.possible,
                "lifted_by": r.lifted_by if not r.active else "",
            }
            for r in recusals
        ],
        unscannable="unscannable" in case.flags,
        direct_name=direct.name if direct else "",
        shared=case.shared,
        report_missing=report_missing,
        fallback=not any(m.address in to for m in conduct.committee),
        committee_address=committee,
        case_address=notify.reporter_address(ctx, case.ref),
    )
    await ctx.send(msg, to, kind="conduct.details", mail_from="")


async def report_raw(ctx: Context, ref: str) -> bytes | None:
    """The stored report's bytes (None once deleted, or if it cannot be decrypted)."""
    first = await store.first_message(ctx.tx, ref)
    return unseal(conduct_config(ctx), first) if first else None
