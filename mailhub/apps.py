"""The apps this mailhub runs: the one place that names them. The service and the command
line take them from here (and so does loading the config, which reads the apps' sections)."""

from __future__ import annotations

from pathlib import Path

from mailhub import app, config
from mailhub.app import App
from mailhub.conduct.app import CONDUCT
from mailhub.enquiries import ENQUIRIES
from mailhub.lists.app import LISTS

# In this order: their subcommands in `mailhub --help`, their jobs in each scheduler round.
APPS: tuple[App, ...] = (LISTS, CONDUCT, ENQUIRIES)


def load_config(path: Path | str | None = None, apps: tuple[App, ...] = APPS) -> config.Config:
    """Read and validate the config file with every app's sections (mailhub.config.load_config,
    given the apps' parsers)."""
    return config.load_config(path, app.sections(apps))
