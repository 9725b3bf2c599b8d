"""`mailhub archive LIST --mbox FILE`: export a list's archive as an mbox file."""

from __future__ import annotations

import argparse
import mailbox
import time
from pathlib import Path

from mailhub.config import Config
from mailhub.errors import UserError
from mailhub.lists.config import find_list
from mailhub.store import Store
from mailhub.store import lists as store

BATCH = 500  # posts read per transaction, so a large archive never sits in memory at once


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("archive", parents=[common], help="export a list's archive")
    p.add_argument("list", help="the list's name")
    p.add_argument("--mbox", required=True, metavar="FILE", help="write an mbox file")
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
    path = Path(args.mbox)
    if path.exists():
        raise UserError(f"{path} already exists; give a new file name")
    db = await Store.open(config.storage.path)
    try:
        count = await export_mbox(db, cfg.name, path)
    finally:
        await db.close()
    print(f"{count} posts from {cfg.name} written to {path}")
    return 0
