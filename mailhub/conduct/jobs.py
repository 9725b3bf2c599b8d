"""Scheduled jobs of the conduct app: reminders, escalation, and retention of content."""

from __future__ import annotations

from mailhub import logs
from mailhub.conduct import notify
from mailhub.conduct.casework import ONE_WEEK, notice_each, release, send_case_mail
from mailhub.conduct.policy import Purpose, active_recused
from mailhub.context import Context
from mailhub.jobs import Job
from mailhub.store import conduct as store
from mailhub.store import inbound, outbound


async def release_reports(ctx: Context) -> None:
    """The reporter's window has passed: the report goes to the committee."""
    if ctx.config.conduct is None:
        return
    for case in await store.due_for_release(ctx.tx, ctx.now()):
        await release(ctx, case)


async def remind_and_escalate(ctx: Context) -> None:
    """Remind the members handling a case at `reminder_after` when the reporter has had no
    answer; escalate to the fallback reviewer at `escalate_after`. Each happens once."""
    conduct = ctx.config.conduct
    if conduct is None:
        return
    now = ctx.now()
    for case in await store.open_cases(ctx.tx):
        if case.answered_at is not None or not case.released:
            continue
        recusals = await store.recusals(ctx.tx, case.ref)
        common = dict(
            opened=notify.stamp(case.opened_at), due=notify.stamp(case.opened_at + ONE_WEEK)
        )
        if case.reminded_at is None and now >= case.opened_at + conduct.reminder_after:
            reminder = notice_each(ctx, case, "conduct_reminder", **common)
            sent = await send_case_mail(
                ctx, case, Purpose.REMINDER, reminder, kind="conduct.reminder", recusals=recusals
            )
            await store.mark_reminded(ctx.tx, case.ref, now)
            await store.audit(
                ctx.tx, case.ref, now, "mailhub", "reminded", f"{len(sent)} recipients"
            )
            logs.event("conduct.case", ref=case.ref, outcome="reminded")
        if case.escalated_at is None and now >= case.opened_at + conduct.escalate_after:
            recused = len(active_recused(recusals))
            escalation = notice_each(
                ctx, case, "conduct_escalation", handling=len(conduct.committee) - recused,
                recused=recused, **common,
            )  # fmt: skip
            await send_case_mail(
                ctx, case, Purpose.ESCALATION, escalation, kind="conduct.escalation",
                recusals=recusals,
            )  # fmt: skip
            await store.mark_escalated(ctx.tx, case.ref, now)
            await store.audit(ctx.tx, case.ref, now, "mailhub", "escalated", "fallback reviewer")
            logs.event("conduct.case", ref=case.ref, outcome="escalated")


async def apply_retention(ctx: Context) -> None:
    """Delete closed cases' content after `retention_days`; the case record, its recusals,
    its audit trail and the bans register stay."""
    conduct = ctx.config.conduct
    if conduct is None or conduct.retention_days <= 0:
        return
    # The queues hold case content too: a closed case's outbound mail (and who it went to),
    # and failed inbound items bound for a conduct route. Then the WAL is checkpointed.
    now = ctx.now()
    cutoff = now - conduct.retention_days * 86400.0
    for case in await store.closed_before(ctx.tx, cutoff):
        deleted = await store.delete_content(ctx.tx, case.ref, now)
        sent = await outbound.delete_case(ctx.tx, case.ref)
        await store.audit(
            ctx.tx, case.ref, now, "mailhub", "content-deleted", f"{deleted} messages (retention)"
        )
        logs.event(
            "conduct.case", ref=case.ref, outcome="content deleted", messages=deleted, outbound=sent
        )
        ctx.checkpoint_after = True
    failed = await inbound.delete_failed_conduct(ctx.tx, cutoff)
    if failed:
        logs.event("conduct.retention", outcome="failed items deleted", inbound=failed)
        ctx.checkpoint_after = True


JOBS: list[Job] = [
    Job("conduct.release", release_reports),
    Job("conduct.reminders", remind_and_escalate),
    Job("conduct.retention", apply_retention),
]
