"""CLI commands of the lists app: `mailhub lists`, `mailhub members LIST [...]`,
`mailhub review send [LIST] [--now]` (`digests send` is an alias).

Changes made here go through the same store functions and templates as the mail
handlers, in transactions of their own; mail they cause (welcomes, invitations,
reviews) is queued, and the running server delivers it.
"""

from __future__ import annotations

import argparse
import csv
import getpass
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from email_validator import EmailNotValidError, validate_email

from mailhub.clock import SystemClock, as_datetime
from mailhub.config import Config
from mailhub.context import Context, Runtime
from mailhub.errors import UserError
from mailhub.lists import action_log, jobs, notices, review, subscription, tokens
from mailhub.lists.config import ListConfig, find_list
from mailhub.store import Store, bans
from mailhub.store import lists as list_store
from mailhub.store import membership as mstore
from mailhub.store.opening import open_checked

IMPORT_BATCH = 500  # rows per transaction: the running server is never blocked for long
PROGRESS_FROM = 200  # rows; smaller imports need no progress bar


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("lists", parents=[common], help="the lists, with member and pending counts")
    p.set_defaults(func=cmd_lists)

    p = sub.add_parser("members", parents=[common], help="show or change a list's members")
    p.add_argument("list", help="the list name")
    action = p.add_mutually_exclusive_group()
    action.add_argument("--add", nargs="+", metavar="ADDR", help="add members")
    action.add_argument("--remove", nargs="+", metavar="ADDR", help="remove members")
    action.add_argument(
        "--import",
        dest="import_file",
        metavar="FILE.csv",
        help="add members from a CSV file of address[,name] rows",
    )
    action.add_argument(
        "--invite", nargs="+", metavar="ADDR", help="invite people (they join by replying)"
    )
    p.add_argument(
        "--no-welcome", action="store_true", help="with --add/--import: send no welcome message"
    )
    p.set_defaults(func=cmd_members)

    # The facilitators' digest is the list's "review" (design.md); `digests` stays an alias.
    p = sub.add_parser(
        "review",
        aliases=["digests"],
        parents=[common],
        help="the facilitators' review of pending requests and held posts",
    )
    p.add_argument("action", choices=["send"], help="send the reviews that are due now")
    p.add_argument("list", nargs="?", help="only this list")
    p.add_argument(
        "--now",
        "--all",
        dest="all",
        action="store_true",
        help="send every review that has entries, due or not",
    )
    p.set_defaults(func=cmd_review)


# --- pure helpers -----------------------------------------------------------------------


def usable_address(value: str) -> str:
    """The address, normalised and lower-cased; ValueError with a short reason if unusable."""
    value = value.strip()
    if not value:
        raise ValueError("empty address")
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None
    return result.normalized.lower()


@dataclass(frozen=True)
class Row:
    line: int
    address: str
    name: str


@dataclass(frozen=True)
class BadRow:
    line: int
    problem: str


def read_rows(lines: Iterator[str]) -> Iterator[Row | BadRow]:
    """CSV rows `address[,name]`: good rows, and bad ones with their line number. A first
    row that names its columns ("address", "email") is a header and is skipped."""
    reader = csv.reader(lines)
    first = True
    try:
        for cells in reader:
            line = reader.line_num
            cells = [c.strip() for c in cells]
            if not any(cells) or cells[0].startswith("#"):
                first = False
                continue
            if first and cells[0].lower() in ("address", "email", "e-mail", "email address"):
                first = False
                continue
            first = False
            try:
                address = usable_address(cells[0])
            except ValueError as exc:
                yield BadRow(line, f"{cells[0][:80]!r}: {exc}")
                continue
            name = cells[1][:100] if len(cells) > 1 else ""
            yield Row(line, address, name)
    except csv.Error as exc:
        yield BadRow(reader.line_num, f"not readable as CSV ({exc})")


def progress_bar(done: int, total: int, width: int = 30) -> str:
    filled = width * done // total if total else width
    return f"\r[{'#' * filled}{' ' * (width - filled)}] {done}/{total}"


# --- commands ---------------------------------------------------------------------------


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):
        return "cli"


def _context(tx, config: Config, clock: SystemClock, source: str) -> Context:  # noqa: ANN001
    return Runtime.create(config, clock).context(tx, source)


def _list(config: Config, name: str) -> ListConfig:
    lst = find_list(config.lists, name)
    if lst is None:
        known = ", ".join(x.name for x in config.lists) or "none configured"
        raise UserError(f"no list named {name!r} (lists: {known})")
    return lst


async def cmd_lists(args: argparse.Namespace, config: Config) -> int:
    store = await open_checked(config.storage)
    try:
        async with store.read() as tx:
            counts = await list_store.member_counts(tx)
            rows = []
            for lst in config.lists:
                rows.append(
                    (
                        lst,
                        counts.get(lst.name.lower(), 0),
                        await mstore.count_pending(tx, lst.name),
                        len(await list_store.held_posts(tx, lst.name, "held")),
                    )
                )
    finally:
        await store.close()
    # A list taken out of the config keeps its members (config changes never delete them):
    # show it, so nobody is surprised when it is put back.
    configured = {lst.name.lower() for lst in config.lists}
    orphans = sorted((name, n) for name, n in counts.items() if name not in configured)
    if not rows and not orphans:
        print("no lists configured; add [[lists]] tables to the config")
        return 0
    print(f"{'list':24} {'members':>8} {'pending':>8} {'held':>6}  subscription  name")
    for lst, members, pending, held in rows:
        print(
            f"{lst.name:24} {members:8} {pending:8} {held:6}  {lst.subscription:12}  "
            f"{lst.display_name}"
        )
    for name, members in orphans:
        print(
            f"{name:24} {members:8} {'-':>8} {'-':>6}  {'-':12}  (not in the config: kept, not served)"
        )
    return 0


async def cmd_members(args: argparse.Namespace, config: Config) -> int:
    lst = _list(config, args.list)
    if args.import_file:
        return await _import(args, config, lst)
    addresses: list[str] = []
    for value in args.add or args.remove or args.invite or []:
        try:
            addresses.append(usable_address(value))
        except ValueError as exc:
            raise UserError(f"{value!r} is not a usable address: {exc}") from None
    store = await open_checked(config.storage)
    try:
        if args.add:
            return await _add(store, config, lst, [Row(0, a, "") for a in addresses], args)
        if args.remove:
            return await _remove(store, config, lst, addresses)
        if args.invite:
            return await _invite(store, config, lst, addresses)
        async with store.read() as tx:
            members = await list_store.list_members(tx, lst.name)
    finally:
        await store.close()
    for m in members:
        status = "" if m.status == "active" else f" ({m.status})"
        name = f" {m.display_name}" if m.display_name else ""
        print(f"{m.address}{name}  [{m.delivery}]{status}")
    print(f"{len(members)} member(s) of {lst.name}", file=sys.stderr)
    return 0


async def _add_rows(ctx: Context, lst: ListConfig, rows: list[Row], welcome: bool) -> list[str]:
    """Add members; returns one line per row that was not added."""
    notes = []
    actor = _actor()
    for row in rows:
        where = f"line {row.line}: " if row.line else ""
        if await bans.active(ctx.tx, row.address, lst.name, ctx.now()):
            notes.append(f"{where}{row.address} is banned from this list; not added")
            continue
        if not await list_store.add_member(ctx.tx, lst.name, row.address, row.name, ctx.now()):
            notes.append(f"{where}{row.address} is already a member")
            continue
        await action_log.record(ctx, lst, actor, "added", "member", subject_address=row.address)
        if welcome:
            await notices.tell(ctx, lst, row.address, "membership_welcome", approved=False)
    return notes


async def _add(
    store: Store, config: Config, lst: ListConfig, rows: list[Row], args: argparse.Namespace
) -> int:
    async with store.transaction() as tx:
        ctx = _context(tx, config, SystemClock(), "cli:members")
        notes = await _add_rows(ctx, lst, rows, not args.no_welcome)
    for note in notes:
        print(note, file=sys.stderr)
    print(f"added {len(rows) - len(notes)} member(s) to {lst.name}")
    return 0


async def _remove(store: Store, config: Config, lst: ListConfig, addresses: list[str]) -> int:
    missing = []
    async with store.transaction() as tx:
        ctx = _context(tx, config, SystemClock(), "cli:members")
        for address in addresses:
            if await list_store.remove_member(tx, lst.name, address):
                await action_log.record(
                    ctx, lst, _actor(), "removed", "member", subject_address=address
                )
            else:
                missing.append(address)
    for address in missing:
        print(f"{address} is not a member", file=sys.stderr)
    print(f"removed {len(addresses) - len(missing)} member(s) from {lst.name}")
    return 1 if missing and len(missing) == len(addresses) else 0


async def _invite(store: Store, config: Config, lst: ListConfig, addresses: list[str]) -> int:
    invited = 0
    async with store.transaction() as tx:
        ctx = _context(tx, config, SystemClock(), "cli:members")
        now = ctx.now()
        for address in addresses:
            if await list_store.get_member(tx, lst.name, address):
                print(f"{address} is already a member", file=sys.stderr)
                continue
            await mstore.invite(tx, lst.name, address, _actor(), now)
            request = await mstore.open_request(tx, lst.name, address)
            request_id = await subscription.unconfirmed_request(
                tx, lst, address, request, name="", note="", now=now
            )
            # The invitation carries its own confirmation: replying to it is joining.
            token = await tokens.issue(
                ctx,
                lst,
                tokens.CONFIRM_JOIN,
                address,
                max(lst.confirm_expiry, lst.request_expiry),
                request_id=request_id,
            )
            await notices.tell(ctx, lst, address, "membership_invitation", reply_token=token)
            await action_log.record(
                ctx, lst, _actor(), "invited", "invitation", subject_address=address
            )
            invited += 1
    print(f"invited {invited} address(es) to {lst.name}")
    return 0


async def _import(args: argparse.Namespace, config: Config, lst: ListConfig) -> int:
    path = Path(args.import_file)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserError(f"no such file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
    rows = list(read_rows(iter(text.splitlines())))
    good = [r for r in rows if isinstance(r, Row)]
    bad = [r for r in rows if isinstance(r, BadRow)]
    # The same address twice in one file: the first row counts.
    seen: set[str] = set()
    unique: list[Row] = []
    for row in good:
        if row.address in seen:
            bad.append(BadRow(row.line, f"{row.address} appears earlier in the file"))
        else:
            seen.add(row.address)
            unique.append(row)
    show_progress = len(unique) >= PROGRESS_FROM
    notes: list[str] = []
    store = await open_checked(config.storage)
    try:
        for start in range(0, len(unique), IMPORT_BATCH):
            batch = unique[start : start + IMPORT_BATCH]
            async with store.transaction() as tx:
                ctx = _context(tx, config, SystemClock(), "cli:import")
                notes += await _add_rows(ctx, lst, batch, not args.no_welcome)
            if show_progress:
                sys.stderr.write(progress_bar(start + len(batch), len(unique)))
                sys.stderr.flush()
    finally:
        await store.close()
    if show_progress:
        sys.stderr.write("\n")
    for b in sorted(bad, key=lambda b: b.line):
        print(f"{path.name}: line {b.line}: {b.problem}", file=sys.stderr)
    for note in notes:
        print(f"{path.name}: {note}", file=sys.stderr)
    added = len(unique) - len(notes)
    print(
        f"imported {added} member(s) into {lst.name}; {len(bad)} bad row(s), {len(notes)} not added"
    )
    return 1 if bad else 0


def waiting_line(name: str, w: review.Waiting, now: float) -> str:
    """What `review send` says of a list it sent nothing for. Pure."""
    if not w.requests and not w.held:
        return f"{name}: nothing waiting"
    parts = [f"{w.requests} request{'' if w.requests == 1 else 's'}"] if w.requests else []
    if w.held:
        parts.append(f"{w.held} held post{'' if w.held == 1 else 's'}")
    line = f"{name}: {', '.join(parts)} waiting"
    if w.next_due is not None:
        when = "now" if w.next_due <= now else short_datetime(w.next_due)
        line += f"; next review due {when}"
    return line + "; use --now to send it now"


def short_datetime(ts: float) -> str:
    """ "Tue 1 Dec 09:00 UTC": a time an administrator reads at a glance."""
    when = as_datetime(ts)
    return f"{when:%a} {when.day} {when:%b %H:%M} UTC"


async def cmd_review(args: argparse.Namespace, config: Config) -> int:
    lists = [_list(config, args.list)] if args.list else list(config.lists)
    if not lists:
        raise UserError("no lists configured")
    store = await open_checked(config.storage)
    sent = 0
    quiet: list[str] = []
    try:
        async with store.transaction() as tx:
            ctx = _context(tx, config, SystemClock(), "cli:review")
            for lst in lists:
                await jobs.expire(ctx, lst)
                queued = await review.send_due_reviews(ctx, lst, force=args.all)
                sent += queued
                if not queued:
                    # Nothing was due: say what waits and when its review will go, so
                    # "queued 0" is never the whole answer while people wait.
                    quiet.append(waiting_line(lst.name, await review.waiting(ctx, lst), ctx.now()))
    finally:
        await store.close()
    for line in quiet:
        print(line)
    print(f"queued {sent} review(s); the running server delivers them")
    return 0
