"""Carrying out the email commands of a committee message: #recuse, #share, #close, #readmit."""

from __future__ import annotations

from mailhub import logs
from mailhub.conduct import notify
from mailhub.conduct.cases import find_member, handler_addresses, participants
from mailhub.conduct.casework import conduct_config, deliver_report, report_raw
from mailhub.conduct.commands import Close, Command, Invalid, Readmit, Recuse, Share
from mailhub.conduct.config import CommitteeMember
from mailhub.context import Context
from mailhub.store import bans
from mailhub.store import conduct as store
from mailhub.store.conduct import Case


class CommandRefused(Exception):
    """A command that cannot be carried out: the author is told why."""


async def run_commands(
    ctx: Context,
    case: Case,
    commands: list[Command],
    author: CommitteeMember | None,
    author_addr: str,
) -> None:
    for command in commands:
        # Each command sees what the previous one did (e.g. #readmit then #share).
        case = await store.get_case(ctx.tx, case.ref) or case
        try:
            if isinstance(command, Invalid):
                raise CommandRefused(command.problem)
            if isinstance(command, Recuse):
                await _recuse(ctx, case, author, author_addr)
            elif isinstance(command, Share):
                await _share(ctx, case, author_addr)
            elif isinstance(command, Close):
                await _close(ctx, case, command, author_addr)
            elif isinstance(command, Readmit):
                await _readmit(ctx, case, command.name, author_addr)
        except CommandRefused as exc:
            line = command.line if isinstance(command, Invalid) else _line(command)
            await _refuse(ctx, case, line, str(exc), author_addr)


def _line(command: Command) -> str:
    if isinstance(command, Close):
        return f"#close {command.describe()}"
    if isinstance(command, Readmit):
        return f"#readmit {command.name}"
    return "#" + type(command).__name__.lower()


async def _refuse(ctx: Context, case: Case, line: str, problem: str, author_addr: str) -> None:
    committee = notify.committee_address(ctx, case.ref)
    msg = notify.notice(
        ctx,
        "conduct_command_error",
        ref=case.ref,
        to=author_addr,
        reply_to=committee,
        line=line,
        problem=problem,
        committee_address=committee,
    )
    await ctx.send(msg, [author_addr], kind="conduct.command_error", mail_from="")
    await store.audit(ctx.tx, case.ref, ctx.now(), author_addr, "command-refused", line[:200])


async def _recuse(
    ctx: Context, case: Case, author: CommitteeMember | None, author_addr: str
) -> None:
    if author is None:
        raise CommandRefused("only committee members can recuse themselves")
    await store.add_recusal(
        ctx.tx,
        ref=case.ref,
        member=author.key,
        reason="declared a conflict of interest (#recuse)",
        possible=False,
        at=ctx.now(),
    )
    await store.audit(ctx.tx, case.ref, ctx.now(), author_addr, "recused", author.key)


async def _share(ctx: Context, case: Case, author_addr: str) -> None:
    conduct = conduct_config(ctx)
    if not case.direct_member:
        raise CommandRefused("#share is for reports sent to one member; this one went to all")
    if case.shared:
        raise CommandRefused("this report has already been shared")
    await store.mark_shared(ctx.tx, case.ref)
    case = await store.get_case(ctx.tx, case.ref) or case
    recusals = await store.recusals(ctx.tx, case.ref)
    # The same recusal rules: only the members not named get it, else the fallback.
    others = [
        m.address for m in participants(case, recusals, conduct) if m.key != case.direct_member
    ]
    to = others or [conduct.fallback]
    await deliver_report(ctx, case, recusals, await report_raw(ctx, case.ref), to)
    await store.audit(
        ctx.tx, case.ref, ctx.now(), author_addr, "shared", f"with {len(to)} recipients"
    )


async def _close(ctx: Context, case: Case, command: Close, author_addr: str) -> None:
    if not case.is_open:
        raise CommandRefused(f"the case is already closed ({case.outcome})")
    await close_and_tell(ctx, case, command, author_addr)


async def close_and_tell(ctx: Context, case: Case, command: Close, actor: str) -> None:
    """Close the case and tell the committee (never its recused members) how it ended.

    Shared by the `#close` email command and `mailhub cases close`, so a case closed at
    the console is not closed behind the committee's back.
    """
    conduct = conduct_config(ctx)
    await close_case(ctx, case, command, actor)
    recusals = await store.recusals(ctx.tx, case.ref)
    committee = notify.committee_address(ctx, case.ref)
    msg = notify.notice(
        ctx,
        "conduct_closed",
        ref=case.ref,
        to=committee,
        reply_to=committee,
        outcome=command.describe(),
        by=actor,
        case_address=notify.reporter_address(ctx, case.ref),
    )
    await ctx.send(
        msg, handler_addresses(case, recusals, conduct), kind="conduct.closed", mail_from=""
    )


async def close_case(ctx: Context, case: Case, command: Close, actor: str) -> None:
    """Close a case with its outcome; bans go into the register the lists enforce."""
    lists = {lst.name.lower() for lst in ctx.config.lists}
    if command.is_ban and command.scope != "all" and command.scope not in lists:
        raise CommandRefused(f"there is no list called {command.scope!r}; use a list name or all")
    now = ctx.now()
    await store.close_case(ctx.tx, case.ref, command.describe(), now)
    for addr in command.addresses if command.is_ban else ():
        await bans.add(
            ctx.tx,
            address=addr,
            scope=command.scope,
            starts_at=now,
            ends_at=now + command.duration if command.duration is not None else None,
            case_ref=case.ref,
            reason=command.outcome,
            created_by=actor,
        )
    await store.audit(ctx.tx, case.ref, now, actor, "closed", command.describe())
    logs.event("conduct.case", ref=case.ref, outcome="closed", result=command.outcome)


async def _readmit(ctx: Context, case: Case, name: str, author_addr: str) -> None:
    conduct = conduct_config(ctx)
    member = find_member(name, conduct.committee)
    if member is None:
        raise CommandRefused(f"no committee member is called {name!r}")
    recusals = await store.recusals(ctx.tx, case.ref)
    mine = [r for r in recusals if r.active and r.member == member.key]
    if not mine:
        raise CommandRefused(f"{member.name} is not recused from this case")
    if any(not r.possible for r in mine):
        raise CommandRefused(
            f"{member.name} is recused for a definite reason, which cannot be lifted"
        )
    for r in mine:
        await store.lift_recusal(ctx.tx, r.id, author_addr, ctx.now())
    await store.audit(
        ctx.tx, case.ref, ctx.now(), author_addr, "readmitted", f"{member.key} (possible match)"
    )
    recusals = await store.recusals(ctx.tx, case.ref)
    if any(m.key == member.key for m in participants(case, recusals, conduct)):
        await deliver_report(ctx, case, recusals, await report_raw(ctx, case.ref), [member.address])
