"""CLI commands of the conduct app: `mailhub cases [show REF | close REF --outcome ...]`,
`mailhub bans`.

`mailhub cases` never prints report text; `cases show` is the one place an
administrator reads a case, at the console, decrypted.
"""

from __future__ import annotations

import argparse
import textwrap

from mailhub.clock import SystemClock
from mailhub.conduct.actions import CommandRefused, close_and_tell
from mailhub.conduct.commands import USAGE, Close, parse_close
from mailhub.conduct.config import ConductConfig
from mailhub.conduct.content import unseal
from mailhub.conduct.notify import stamp
from mailhub.config import Config
from mailhub.context import Runtime
from mailhub.errors import UserError
from mailhub.parsing import addresses, body_text, header, parse
from mailhub.store import Store, Tx, bans
from mailhub.store import conduct as store
from mailhub.store.conduct import Case, Recusal
from mailhub.store.opening import open_checked


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "cases",
        parents=[common],
        help="code of conduct cases: list, show one, close one",
        description="List cases (never their text), show one case, or close one.",
    )
    p.add_argument("action", nargs="?", choices=("show", "close"), help="show or close a case")
    p.add_argument("ref", nargs="?", help="the case reference, e.g. C-7KQ2-9F")
    p.add_argument(
        "--outcome",
        nargs="+",
        metavar="WORD",
        help=f"for close: {USAGE.removeprefix('#close ')}",
    )
    p.set_defaults(func=cmd_cases)
    b = sub.add_parser("bans", parents=[common], help="the bans register (kept for review)")
    b.set_defaults(func=cmd_bans)


def _conduct(config: Config) -> ConductConfig:
    if config.conduct is None:
        raise UserError("no [conduct] section in the config, so there are no cases")
    return config.conduct


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _recused(recusals: list[Recusal]) -> str:
    active = [r.member + ("?" if r.possible else "") for r in recusals if r.active]
    return ",".join(active) or "-"


async def cmd_cases(args: argparse.Namespace, config: Config) -> int:
    conduct = _conduct(config)
    if args.action and not args.ref:
        raise UserError(f"cases {args.action} needs a case reference, e.g. C-7KQ2-9F")
    if args.outcome and args.action != "close":
        raise UserError("--outcome goes with `cases close REF`")
    now = SystemClock().now()
    st = await open_checked(config.storage)
    try:
        if args.action == "close":
            return await _close(st, config, args.ref, args.outcome or [], now)
        async with st.read() as tx:
            if args.action == "show":
                case = await store.get_case(tx, args.ref)
                if case is None:
                    raise UserError(f"no case {args.ref.upper()}; `mailhub cases` lists them")
                await _show(tx, conduct, case, now)
                return 0
            cases = await store.all_cases(tx)
            rows = [(c, await store.recusals(tx, c.ref)) for c in cases]
        if not rows:
            print("no cases")
            return 0
        print(
            f"{'REF':10} {'OPENED':17} {'STATE':7} {'AGE':5} {'ANSWERED':8} RECUSED (? = possible)"
        )
        for c, recusals in rows:
            print(
                f"{c.ref:10} {stamp(c.opened_at)[:16]:17} {c.state:7} {_age(now - c.opened_at):5}"
                f" {'yes' if c.answered_at else 'no':8} {_recused(recusals)}"
                + (f"  [{','.join(c.flags)}]" if c.flags else "")
            )
        return 0
    finally:
        await st.close()


async def _show(tx: Tx, conduct: ConductConfig, case: Case, now: float) -> None:
    print(
        f"case {case.ref}: {case.state}, opened {stamp(case.opened_at)} ({_age(now - case.opened_at)} ago)"
    )
    print(f"reporter: {case.reporter or '(no address)'}")
    if case.direct_member:
        print(
            f"sent to one member: {case.direct_member} ({'shared' if case.shared else 'not shared'})"
        )
    if case.flags:
        print(f"flags: {', '.join(case.flags)}")
    for label, value in (
        ("answered", case.answered_at),
        ("reminded", case.reminded_at),
        ("escalated", case.escalated_at),
        ("closed", case.closed_at),
        ("content deleted", case.content_deleted_at),
    ):
        if value is not None:
            print(f"{label}: {stamp(value)}")
    if case.outcome:
        print(f"outcome: {case.outcome}")
    print("recusals:")
    for r in await store.recusals(tx, case.ref):
        state = f"lifted by {r.lifted_by} {stamp(r.lifted_at)}" if r.lifted_at else "active"
        kind = "possible match" if r.possible else "named"
        print(f"  {r.member}: {r.reason} [{kind}; {state}]")
    print("messages:")
    for m in await store.messages(tx, case.ref):
        print(f"--- #{m.id} {m.kind} from {m.author or '<>'} at {stamp(m.received_at)}")
        raw = unseal(conduct, m)
        if raw is None:
            print("  (encrypted: set [conduct] key_file to the key it was stored with)")
            continue
        msg = parse(raw)
        for name in ("from", "to", "cc", "date"):
            values = ", ".join(a for _, a in addresses(msg, name)) or header(msg, name)
            if values:
                print(f"  {name.title()}: {values}")
        print(f"  Subject: {header(msg, 'subject')}")
        print(textwrap.indent(body_text(msg, attachments=True).strip() or "(no text)", "  | "))
        files = []
        for part in msg.walk():
            try:
                name = part.get_filename()
            except Exception:  # noqa: BLE001 - a broken header: no name to show
                name = None
            if name or (
                not part.is_multipart() and not part.get_content_type().startswith("text/")
            ):
                files.append(f"{name or '(unnamed)'} ({part.get_content_type()})")
        if files:
            print(f"  attachments: {', '.join(files)}")
    print("audit trail:")
    for e in await store.audit_trail(tx, case.ref):
        print(f"  {stamp(e.at)} {e.actor} {e.action}" + (f": {e.detail}" if e.detail else ""))


async def _close(st: Store, config: Config, ref: str, outcome: list[str], now: float) -> int:
    if not outcome:
        raise UserError(f"say the outcome: mailhub cases close {ref} --outcome WORD...")
    command = parse_close(" ".join(outcome))
    if not isinstance(command, Close):
        raise UserError(f"--outcome: {command.problem}")
    async with st.transaction() as tx:
        case = await store.get_case(tx, ref)
        if case is None:
            raise UserError(f"no case {ref.upper()}; `mailhub cases` lists them")
        if not case.is_open:
            raise UserError(f"case {case.ref} is already closed ({case.outcome})")
        ctx = Runtime.create(config, SystemClock()).context(tx, "cli")
        try:
            await close_and_tell(ctx, case, command, "admin (console)")
        except CommandRefused as exc:
            raise UserError(str(exc)) from None
    print(f"case {case.ref} closed: {command.describe()}; the committee will be told")
    return 0


async def cmd_bans(args: argparse.Namespace, config: Config) -> int:
    now = SystemClock().now()
    st = await open_checked(config.storage)
    try:
        async with st.read() as tx:
            register_ = await bans.all_bans(tx)
    finally:
        await st.close()
    if not register_:
        print("no bans")
        return 0
    print(f"{'ADDRESS':32} {'SCOPE':16} {'FROM':16} {'UNTIL':16} {'STATE':8} CASE  REASON  BY")
    for b in register_:
        until = stamp(b.ends_at)[:16] if b.ends_at is not None else "permanent"
        active = b.starts_at <= now and (b.ends_at is None or b.ends_at > now)
        print(
            f"{b.address:32} {b.scope:16} {stamp(b.starts_at)[:16]:16} {until:16}"
            f" {'active' if active else 'ended':8} {b.case_ref or '-'}  {b.reason or '-'}"
            f"  {b.created_by or '-'}"
        )
    return 0
