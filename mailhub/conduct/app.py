"""The code-of-conduct app, as the service and the command line see it (mailhub.app.App)."""

from __future__ import annotations

from mailhub.app import App
from mailhub.conduct import cli
from mailhub.conduct.config import parse_conduct
from mailhub.conduct.handlers import HANDLERS, PREPARERS
from mailhub.conduct.jobs import JOBS
from mailhub.config import Section

CONDUCT = App(
    name="conduct",
    handlers=HANDLERS,
    # Reports are scanned for the names of committee members before their transaction.
    preparers=PREPARERS,
    jobs=tuple(JOBS),
    sections=(Section("conduct", parse_conduct),),
    commands=(cli.register,),
)
APP = CONDUCT
