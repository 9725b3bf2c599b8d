"""What an app is: one record of everything the service and the command line take from it.

An app (lists, conduct, enquiries) exports one `App`; mailhub.apps names the apps that run.
The core never imports an app: the service hands the apps' handlers to the inbound
worker, their jobs to the scheduler and their personalisers to delivery; the config
loader is handed their sections, the command line their commands.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from mailhub.addresses import ROUTES
from mailhub.config import SECTIONS, Section
from mailhub.delivery import Personalise
from mailhub.jobs import Job
from mailhub.processing import Handler, Preparer
from mailhub.web.site import Routes

# Adds an app's subcommands to the `mailhub` command: (subparsers, the common options
# every command takes, such as --config).
Commands = Callable[[argparse._SubParsersAction, argparse.ArgumentParser], None]


@dataclass(frozen=True)
class App:
    name: str
    # Route name (a route of the address spec, mailhub.addresses) → its handler.
    handlers: Mapping[str, Handler]
    # Route name → bounded content work done before the handler's transaction.
    preparers: Mapping[str, Preparer] = field(default_factory=dict)
    jobs: tuple[Job, ...] = ()
    # The config file's sections this app reads (see mailhub.config.Section).
    sections: tuple[Section, ...] = ()
    commands: tuple[Commands, ...] = ()
    # SCHEME → how delivery makes one recipient's copy of mail queued as "SCHEME:ARG".
    personalisers: Mapping[str, Personalise] = field(default_factory=dict)
    # The app's web pages: each adds its routes to the HTTP side (mailhub.web.server).
    pages: tuple[Routes, ...] = ()

    def __post_init__(self) -> None:
        # A record: its tables cannot be changed after the app is defined.
        for name in ("handlers", "preparers", "personalisers"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))


def _merged(apps: Iterable[App], table: str) -> dict[str, object]:
    """One app's table merged with the others'; a key two apps claim is an error."""
    merged: dict[str, object] = {}
    owner: dict[str, str] = {}
    for app in apps:
        for key, value in getattr(app, table).items():
            if key in merged:
                raise RuntimeError(
                    f"{table}: {key!r} is claimed by both {owner[key]} and {app.name}"
                )
            merged[key], owner[key] = value, app.name
    return merged


def route_handlers(apps: Iterable[App]) -> dict[str, Handler]:
    """Route name → handler, from the apps. Every route of the address spec must have one, and
    every handler a route: checked when the service is made, not at 3 a.m."""
    handlers = _merged(apps, "handlers")
    routes = {name for _, name in ROUTES}
    missing, unknown = routes - handlers.keys(), handlers.keys() - routes
    if missing:
        raise RuntimeError(f"routes without a handler: {sorted(missing)}")
    if unknown:
        raise RuntimeError(f"handlers for routes the address spec does not have: {sorted(unknown)}")
    return handlers  # type: ignore[return-value]


def route_preparers(apps: Iterable[App]) -> dict[str, Preparer]:
    return _merged(apps, "preparers")  # type: ignore[return-value]


def personalisers(apps: Iterable[App]) -> dict[str, Personalise]:
    return _merged(apps, "personalisers")  # type: ignore[return-value]


def pages(apps: Iterable[App]) -> list[Routes]:
    return [p for app in apps for p in app.pages]


def jobs(apps: Iterable[App]) -> list[Job]:
    return [job for app in apps for job in app.jobs]


def sections(apps: Iterable[App]) -> list[Section]:
    """The apps' config sections; a section the core reads, or two apps read, is an error."""
    owner = dict.fromkeys(SECTIONS, "the core")
    found: list[Section] = []
    for app in apps:
        for section in app.sections:
            if section.name in owner:
                raise RuntimeError(
                    f"sections: {section.name!r} is read by both {owner[section.name]} and {app.name}"
                )
            owner[section.name] = app.name
            found.append(section)
    return found
