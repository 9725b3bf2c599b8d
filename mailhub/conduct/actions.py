"""Carrying out the email commands of a committee message: #recuse, #share, #close,
#readmit, #release. Only a verified writer (their own reply token and their own address)
gets here: see policy.classify_writer."""

from __future__ import annotations

from mailhub import logs
from mailhub.conduct.cases import find_member
from mailhub.conduct.casework import (
    add_recusals,
    conduct_config,
    deliver_report,
    notice_each,
    relay,
    send_case_mail,
)
from mailhub.conduct.commands import Close, Command, Invalid, Readmit, Recuse, Release, Share
from mailhub.conduct.conflicts import NamedMatch
from mailhub.conduct.content import unseal
from mailhub.conduct.policy import FALLBACK, Purpose, WriterVerdict, participants
from mailhub.context import Context
from mailhub.store import bans
from mailhub.store import conduct as store
from mailhub.store.conduct import Case


class CommandRefused(Exception):
    """A command that cannot be carried out: the author is told why."""


async def run_commands(
    ctx: Context, case: Case, commands: list[Command], verdict: WriterVerdict, author_addr: str
) -> None:
    for command in commands:
        # Each command sees what the previous one did (e.g. #readmit then #share).
        case = await store.get_case(ctx.tx, case.ref) or case
        try:
            if isinstance(command, Invalid):
                raise CommandRefused(command.problem)
            if isinstance(command, Recuse):
                await _recuse(ctx, case, verdict, command.name, author_addr)
            elif isinstance(command, Share):
                await _share(ctx, case, author_addr)
            elif isinstance(command, Close):
                await _close(ctx, case, command, author_addr)
            elif isinstance(command, Readmit):
                await _readmit(ctx, case, command.name, author_addr)
            elif isinstance(command, Release):
                await _release(ctx, case, verdict, author_addr)
        except CommandRefused as exc:
            line = command.line if isinstance(command, Invalid) else _line(command)
            await _refuse(ctx, case, line, str(exc), verdict, author_addr)


def _line(command: Command) -> str:
    if isinstance(command, Close):
        return f"#close {command.describe()}"
    if isinstance(command, Readmit):
        return f"#readmit {command.name}"
    if isinstance(command, Recuse) and command.name:
        return f"#recuse {command.name}"
    return "#" + type(command).__name__.lower()


async def _refuse(
    ctx: Context, case: Case, line: str, problem: str, verdict: WriterVerdict, author_addr: str
) -> None:
    build = notice_each(ctx, case, "conduct_command_error", line=line, problem=problem)
    await send_case_mail(
        ctx, case, Purpose.COMMAND_ANSWER, build, kind="conduct.command_error",
        member=verdict.owner,
    )  # fmt: skip
    # The verb only: a command's arguments can carry names the audit trail need not keep.
    verb = line.split()[0] if line.split() else "#?"
    await store.audit(ctx.tx, case.ref, ctx.now(), author_addr, "command-refused", verb[:20])


async def _recuse(
    ctx: Context, case: Case, verdict: WriterVerdict, name: str, author_addr: str
) -> None:
    conduct = conduct_config(ctx)
    if name:
        member = find_member(name, conduct.committee)
        if member is None:
            raise CommandRefused(f"no committee member is called {name!r}")
        by = verdict.member.name if verdict.member else "the fallback reviewer"
        reason = f"recused by {by} (#recuse)"
    elif verdict.member is not None:
        member, reason = verdict.member, "declared a conflict of interest (#recuse)"
    else:
        raise CommandRefused("say whom to keep out of the case: #recuse NAME")
    already = {r.member for r in await store.recusals(ctx.tx, case.ref) if r.active}
    if member.key in already:
        raise CommandRefused(f"{member.name} is already recused from this case")
    await add_recusals(ctx, case.ref, [NamedMatch(member.key, reason, False)], already)
    await store.audit(ctx.tx, case.ref, ctx.now(), author_addr, "recused", member.key)


async def _share(ctx: Context, case: Case, author_addr: str) -> None:
    if not case.direct_member:
        raise CommandRefused("#share is for reports sent to one member; this one went to all")
    if case.shared:
        raise CommandRefused("this report has already been shared")
    await store.mark_shared(ctx.tx, case.ref)
    case = await store.get_case(ctx.tx, case.ref) or case
    recusals = await store.recusals(ctx.tx, case.ref)
    await deliver_report(ctx, case, recusals, Purpose.SHARE)
    await store.audit(ctx.tx, case.ref, ctx.now(), author_addr, "shared")


async def _close(ctx: Context, case: Case, command: Close, author_addr: str) -> None:
    if not case.is_open:
        raise CommandRefused(f"the case is already closed ({case.outcome})")
    await close_and_tell(ctx, case, command, author_addr)


async def close_and_tell(ctx: Context, case: Case, command: Close, actor: str) -> None:
    """Close the case and tell the committee (never its recused members) how it ended.

    Shared by the `#close` email command and `mailhub cases close`, so a case closed at
    the console is not closed behind the committee's back.
    """
    await close_case(ctx, case, command, actor)

    build = notice_each(ctx, case, "conduct_closed", outcome=command.describe(), by=actor)
    await send_case_mail(ctx, case, Purpose.CLOSED, build, kind="conduct.closed")


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
        await deliver_report(ctx, case, recusals, Purpose.READMIT, member=member.key)


async def _release(ctx: Context, case: Case, verdict: WriterVerdict, author_addr: str) -> None:
    """The fallback reviewer has checked what was held: the members handling the case get
    it in full."""
    if verdict.owner != FALLBACK:
        raise CommandRefused("only the fallback reviewer can release what is held for checking")
    conduct = conduct_config(ctx)
    held = [m for m in await store.messages(ctx.tx, case.ref) if m.held]
    if not held:
        raise CommandRefused("nothing of this case is held for checking")
    was_unscanned = "unscanned" in case.flags
    await store.release_held(ctx.tx, case.ref)
    for flag in ("unscanned", "withheld"):
        await store.remove_flag(ctx.tx, case.ref, flag)
    case = await store.get_case(ctx.tx, case.ref) or case
    recusals = await store.recusals(ctx.tx, case.ref)
    await store.audit(
        ctx.tx, case.ref, ctx.now(), author_addr, "released-held", f"{len(held)} message(s)"
    )
    for m in held:
        if was_unscanned and m.kind == "report":
            await deliver_report(ctx, case, recusals, Purpose.REPORT)
            continue
        raw = unseal(conduct, m)
        if raw is not None:
            await relay(
                ctx, case, recusals, raw, Purpose.RELEASE, subject_key="released",
                kind="conduct.released", author=FALLBACK,
            )  # fmt: skip
