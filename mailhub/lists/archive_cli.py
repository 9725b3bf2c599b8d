"""`mailhub archive LIST --mbox FILE`: export a list's archive as an mbox file.
`mailhub archive LIST --reindex`: build the web archive's index of the list again."""

from __future__ import annotations

import argparse
import mailbox
import time
from pathlib import Path

from mailhub import content
from mailhub.clock import SystemClock
from mailhub.config import Config
from mailhub.context import Runtime
from mailhub.errors import UserError
from mailhub.lists import archive_index
from mailhub.lists.config import find_list
from mailhub.store import Store
from mailhub.store import lists as store
from mailhub.store.opening import open_checked

BATCH = 500  # posts read per transaction, so a large archive never sits in memory at once


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("archive", parents=[common], help="export or reindex a list's archive")
    p.add_argument("list", help="the list's name")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--mbox", metavar="FILE", help="write an mbox file")
    what.add_argument(
        "--reindex",
        action="store_true",
        help="build the web archive's index (pages and search) of the list again, now",
    )
    p.set_defaults(func=cmd_archive)


async def export_mbox(db: Store, list_name: str, path: Path) -> int:
    """Write every archived post of the list to a new mbox file; returns how many."""
    box = mailbox.mbox(str(path), create=True)
    count = 0
    after = 0
    try:
        box.lock()
        while True:
            async with db.read() as tx:
                posts = await store.archived_since(tx, list_name, after, BATCH)
            if not posts:
                break
            for post in posts:
                entry = mailbox.mboxMessage(post.raw)
                entry.set_from(post.sender or "MAILER-DAEMON", time.gmtime(post.archived_at))
                box.add(entry)
                count += 1
            after = posts[-1].id
            box.flush()
    finally:
        box.unlock()
        box.close()
    return count


async def cmd_archive(args: argparse.Namespace, config: Config) -> int:
    cfg = find_list(config.lists, args.list)
    if cfg is None:
        raise UserError(f"no list named {args.list!r}; `mailhub check` shows the lists")
    if args.reindex:
        return await cmd_reindex(config, cfg.name)
    path = Path(args.mbox)
    if path.exists():
        raise UserError(f"{path} already exists; give a new file name")
    db = await open_checked(config.storage)
    try:
        count = await export_mbox(db, cfg.name, path)
    finally:
        await db.close()
    print(f"{count} posts from {cfg.name} written to {path}")
    return 0


async def cmd_reindex(config: Config, list_name: str) -> int:
    db = await open_checked(config.storage)
    try:
        count = await archive_index.reindex(db, Runtime.create(config, SystemClock()), list_name)
    finally:
        await db.close()
        content.shutdown()
    print(f"{count} posts of {list_name} indexed")
    return 0
