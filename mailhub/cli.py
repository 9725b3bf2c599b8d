"""The `mailhub` command. Errors a person can hit print one line and exit non-zero."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from mailhub import __version__, dkim_cli, logs
from mailhub.apps import APPS, load_config
from mailhub.clock import SystemClock
from mailhub.config import Config
from mailhub.errors import ConfigError, SchemaMismatch, UserError
from mailhub.routing import ROUTES, AddressBook
from mailhub.service import Service, StartError, safe_url
from mailhub.signing import missing
from mailhub.store import (
    Store,
    check_readable,
    inbound,
    is_storage_error,
    outbound,
    schema,
    workers,
)
from mailhub.store.opening import open_checked, open_store
from mailhub.web.config import warnings as web_warnings

Command = Callable[[argparse.Namespace, Config], Awaitable[int]]


def _age(ts: float | None, now: float) -> str:
    if ts is None:
        return "-"
    seconds = max(0, int(now - ts))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


async def cmd_serve(args: argparse.Namespace, config: Config) -> int:
    service = Service(config)
    try:
        await service.start()  # on failure it leaves nothing running: the process exits
    except StartError as exc:
        raise UserError(str(exc)) from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await service.stop()
    return 0


async def cmd_check(args: argparse.Namespace, config: Config) -> int:
    book = AddressBook.from_config(config)
    print(f"config OK: {config.source}")
    print(f"domains: {', '.join(config.server.domains)} (default {config.server.domain})")
    print(
        f"listen: {config.server.host}:{config.server.port} "
        f"({'LMTP' if config.server.lmtp else 'SMTP'})"
    )
    storage = config.storage
    if storage.url:
        # Several nodes on one database: say so, without a password written into the URL.
        print(f"storage: PostgreSQL {safe_url(storage.url)} (lease {storage.lease_seconds:g}s)")
    else:
        print(f"storage: {storage.path}")
    out = config.outbound
    print(
        "outbound: "
        + (
            f"maildir {out.maildir}"
            if out.maildir
            else f"relay smtp://{out.relay_host}:{out.relay_port}"
            + (" with STARTTLS" if out.starttls else "")
        )
    )
    d = config.server.domain
    print("routes:")
    print(f"  postmaster@{d}, abuse@{d} -> administrators ({', '.join(config.admins)})")
    handlers = config.enquiries.handlers or config.admins
    print(f"  enquiries@{d} -> {', '.join(handlers)} (acknowledged in {config.enquiries.language})")
    if config.conduct is not None:
        print(
            f"  conduct@{d} -> code of conduct committee ({len(config.conduct.committee)} members)"
        )
    print("lists:" if config.lists else "lists: none")
    for lst in config.lists:
        print(f"  {lst.name}@{d} ({lst.display_name})")
        first = (
            f"; a new member's first {lst.hold_first_posts} posts held"
            if lst.hold_first_posts
            else ""
        )
        print(
            f"    policy: subscription {lst.subscription}; non-member posts "
            f"{lst.non_member_posts}{first}; language {lst.language}"
        )
        print(f"    facilitators: {', '.join(lst.facilitators) or 'none'}")
        print(f"    champions: {', '.join(lst.champions) or 'none'}")
        if not lst.facilitators:
            nobody = "its membership requests" + ("" if lst.champions else " and held posts")
            print(
                f"    warning: no facilitators: nobody reviews {nobody}, and "
                f"{lst.name}-owner@{d} goes to the administrators"
            )
        where = f"{config.web.base_url}/lists/{lst.name}/" if config.web else "no [web]"
        print(f"    archive: {lst.archive}" + ("" if lst.archive == "off" else f" ({where})"))
        if lst.archive != "off" and config.web is None:
            print(
                f'    warning: archive = "{lst.archive}" but there is no [web] section: '
                'nobody can read the archive on the web; add [web] or set archive = "off"'
            )
        if lst.delivery == "bulk":
            # One copy for everyone cannot carry a member's own unsubscribe link (RFC 8058).
            print(
                "    warning: bulk delivery: copies carry no one-click unsubscribe, "
                'which large mailbox providers expect; delivery = "personalised" gives it'
            )
    web = config.web
    print(
        "web: off" if web is None else f"web: http://{web.host}:{web.port} (links {web.base_url})"
    )
    for warning in web_warnings(web, bool(config.lists)):
        print(f"  warning: {warning}")
    unsigned = missing(config.server.domains, config.dkim)
    signed = [d for d in config.server.domains if d not in unsigned]
    print(f"dkim: {'signs for ' + ', '.join(signed) if signed else 'off'}")
    for domain in unsigned:
        print(
            f"  warning: mail from {domain} goes out unsigned (no DKIM key): large mailbox "
            f"providers refuse or spam-folder it; make one with: mailhub dkim keygen {domain}"
        )
    dns = config.dns
    where = ", ".join(dns.nameservers) if dns.nameservers else "the system's resolver"
    print(f"dns: {where} (timeout {dns.timeout:g}s)")
    if not book.lists and not book.conduct:
        print(f"({len(ROUTES)} address patterns known; see README 'Addresses')")
    return 0


async def cmd_queue(args: argparse.Namespace, config: Config) -> int:
    now = SystemClock().now()
    # Showing the queue only reads, so it opens without migrating (no write lock): it
    # works while a backup or the service's stuck writer holds the lock.
    writes = args.action == "retry" or (not config.storage.url and not config.storage.path.exists())
    store = await (open_checked(config.storage) if writes else _open_unmigrated(config))
    try:
        if args.action == "retry":
            if not args.id:
                raise UserError("queue retry needs the id of a failed message, e.g. Q7K2...")
            async with store.transaction() as tx:
                ok = await inbound.requeue(tx, args.id, now)
            if not ok:
                raise UserError(f"no failed message {args.id}; `mailhub queue` lists them")
            print(f"{args.id} queued again; the running server will process it")
            return 0
        async with store.read() as tx:
            ins = await inbound.summary(tx)
            outs = await outbound.summary(tx)
            failed = await inbound.failed(tx)
            oldest_in, oldest_out = await workers.oldest_queued(tx)
            try:
                rows = await workers.all_workers(tx)
            except sqlite3.OperationalError:
                rows = []  # a database the service has not yet upgraded
        print("inbound (messages):")
        for state, count, oldest in ins or [("empty", 0, None)]:
            print(f"  {state:10} {count:8}  oldest {_age(oldest, now)}")
        print("outbound (recipients):")
        for state, count, oldest in outs or [("empty", 0, None)]:
            print(f"  {state:10} {count:8}  oldest {_age(oldest, now)}")
        print(
            f"oldest unprocessed inbound: {_age(oldest_in, now)}; "
            f"oldest undelivered outbound: {_age(oldest_out, now)}"
        )
        print("workers:" if rows else "workers: none recorded (is `mailhub serve` running?)")
        for w in rows:
            stale = w.state != workers.STOPPED and now - w.heartbeat > workers.STALE_SECONDS
            line = (
                f"  {w.name:11} {w.state:12} since {_age(w.since, now):>4}"
                f"  heartbeat {_age(w.heartbeat, now)} ago"
            )
            if stale:
                line += " (STALE: stuck, or cannot write to the database)"
            if w.last_error:
                line += f"  last error {w.last_error} {_age(w.last_error_at, now)} ago"
            if w.note:
                line += f"  ({w.note})"
            if len({r.node for r in rows}) > 1:
                line += f"  [{w.node}]"
            print(line)
        if failed:
            print("failed inbound messages (retry with `mailhub queue retry ID`):")
            for queue_id, received, mail_from, rcpts, error in failed:
                when = datetime.fromtimestamp(received, UTC).strftime("%Y-%m-%d %H:%M")
                print(
                    f"  {queue_id} {when} from <{mail_from}> to {', '.join(json.loads(rcpts))}: "
                    f"{error}"
                )
        return 0
    finally:
        await store.close()


async def cmd_migrate(args: argparse.Namespace, config: Config) -> int:
    """Bring the database's schema up to this mailhub's version (or, with --status, say
    where it is). PostgreSQL nodes never migrate by themselves (they refuse another
    version at start): this is how a cluster's database is upgraded, from any one node."""
    store = await _open_unmigrated(config)
    try:
        if args.status:
            async with store.read() as tx:
                current = await schema.version(tx)
            if current > schema.CURRENT_VERSION:
                raise UserError(schema.mismatch(current))
            waiting = schema.pending(current)
            print(
                f"schema: version {current}; pending: {schema.labels(waiting)} "
                "(apply with `mailhub migrate`)"
                if waiting
                else f"schema: version {current}, up to date"
            )
            return 0
        try:
            async with store.transaction() as tx:
                applied = await schema.migrate(tx)
                current = await schema.version(tx)
        except SchemaMismatch as exc:
            raise UserError(str(exc)) from None
        except Exception as exc:
            if not is_storage_error(exc):
                raise
            raise UserError(f"cannot migrate the database ({exc}); nothing was changed") from None
        if applied:
            before = applied[0].version - 1
            print(
                f"schema: version {before} \N{RIGHTWARDS ARROW} {current} "
                f"(applied: {schema.labels(applied)})"
            )
        else:
            print(f"schema: version {current}, up to date")
        return 0
    finally:
        await store.close()


async def _open_unmigrated(config: Config) -> Store:
    """The configured store, opened without touching its schema; a UserError of one line if
    it cannot be opened."""
    storage = config.storage
    try:
        if not storage.url and storage.path.exists():
            # Before the store's connection thread starts: a file that is not a database
            # fails its first statement, and that thread would then keep the process alive.
            await asyncio.to_thread(check_readable, storage.path)
        return await open_store(storage, migrate=False)
    except (OSError, sqlite3.Error) as exc:
        if storage.url:  # an OSError here is the password file's
            raise UserError(
                f"cannot read storage.password_file {storage.password_file} ({exc})"
            ) from None
        raise UserError(
            f"cannot open the database {storage.path} ({exc}); check storage.path"
        ) from None
    except Exception as exc:
        if not is_storage_error(exc):
            raise
        raise UserError(
            f"cannot reach the PostgreSQL database ({exc}); "
            "check storage.url and that the server is running"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailhub", description="Mail for communities of practice."
    )
    parser.add_argument("--version", action="version", version=f"mailhub {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", help="config file (default: $MAILHUB_CONFIG or config/mailhub.toml)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", parents=[common], help="run the mail service")
    p.add_argument("--log-level", default="INFO")
    p.set_defaults(func=cmd_serve)
    sub.add_parser(
        "check", parents=[common], help="validate the config, show what is served"
    ).set_defaults(func=cmd_check)
    p = sub.add_parser(
        "queue", parents=[common], help="queue counts, oldest waiting mail, workers, failures"
    )
    p.add_argument("action", nargs="?", choices=["retry"])
    p.add_argument("id", nargs="?")
    p.set_defaults(func=cmd_queue)
    p = sub.add_parser(
        "migrate", parents=[common], help="bring the database schema up to this version"
    )
    p.add_argument(
        "--status", action="store_true", help="show the version and what is pending; change nothing"
    )
    p.set_defaults(func=cmd_migrate)
    for app in APPS:
        for register in app.commands:
            register(sub, common)
    dkim_cli.register(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.setup(getattr(args, "log_level", "WARNING") if args.command == "serve" else "WARNING")
    try:
        config = load_config(args.config)
        func: Command = args.func
        status = asyncio.run(func(args, config))
        sys.stdout.flush()  # here, where a closed pipe is caught, not at the interpreter's exit
        return status
    except BrokenPipeError:
        return _reader_went_away()
    except ConfigError as exc:
        print(f"mailhub: config error: {exc}", file=sys.stderr)
        return 2
    except (UserError, SchemaMismatch) as exc:
        print(f"mailhub: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback
        print(f"mailhub: unexpected error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def _reader_went_away() -> int:
    """Whoever read our output stopped (`mailhub cases show REF | head`): end quietly, with
    the status of a command ended by SIGPIPE, never a traceback or an "Exception ignored"
    line. stdout is pointed at /dev/null so the interpreter's last flush cannot fail too."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + int(getattr(signal, "SIGPIPE", 13))


if __name__ == "__main__":
    sys.exit(main())
