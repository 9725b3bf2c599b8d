"""The lists app, as the service and the command line see it (mailhub.app.App)."""

from __future__ import annotations

from mailhub.app import App
from mailhub.config import Section
from mailhub.lists import (
    archive_cli,
    archive_pages,
    authenticity,
    cli,
    member_pages,
    one_click,
    verp,
)
from mailhub.lists.config import parse_lists
from mailhub.lists.handlers import HANDLERS
from mailhub.lists.jobs import JOBS

LISTS = App(
    name="lists",
    handlers=HANDLERS,
    # A post's authenticity (for the ARC seal) and its poster's DMARC policy, found by DNS
    # before its transaction.
    preparers={"lists.post": authenticity.prepare},
    jobs=tuple(JOBS),
    sections=(Section("lists", parse_lists),),
    commands=(cli.register, archive_cli.register),
    # Posts and digests are queued once as "list:NAME" and each member's copy is made as it
    # is sent (VERP return path, the member's own List-Unsubscribe and List-Help).
    personalisers={"list": verp.personalise},
    # BASE_URL/u/TOKEN, RFC 8058 one-click unsubscribe; the archive (/, /lists/…); sign-in
    # and a member's own page (/signin, /me, /signout).
    pages=(one_click.register, archive_pages.register, member_pages.register),
)
APP = LISTS
