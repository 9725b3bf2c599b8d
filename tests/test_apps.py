"""Apps as records (mailhub.app.App): the service, the config loader and the command line
take everything of an app from its record, and mailhub.apps is the one place naming them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mailhub import app
from mailhub import config as core_config
from mailhub.addresses import ROUTES
from mailhub.apps import APPS, load_config
from mailhub.cli import build_parser
from mailhub.conduct.app import CONDUCT
from mailhub.conduct.config import ConductConfig
from mailhub.config import ConfigError
from mailhub.enquiries import ENQUIRIES
from mailhub.lists.app import LISTS
from mailhub.lists.config import ListConfig
from mailhub.service import Service
from tests.test_architecture import scan

CONFIG = """
[server]
domains = ["cop.example.org"]
[storage]
path = "{tmp}/m.db"
[outbound]
maildir = "{tmp}/outbox"
[admin]
addresses = ["admin@example.net"]
[dmarc]
strict_domains = ["Example.COM"]
[[lists]]
name = "dataviz"
facilitators = ["fran@example.net"]
[conduct]
fallback = "board@example.net"
[[conduct.committee]]
name = "Ada Jones"
addresses = ["ada@example.net"]
"""


def write(tmp_path: Path) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(CONFIG.format(tmp=tmp_path))
    return path


def test_the_apps_handle_every_route_of_the_address_spec_once():
    handlers = app.route_handlers(APPS)
    assert set(handlers) == {name for _, name in ROUTES}
    assert handlers["enquiries"] is ENQUIRIES.handlers["enquiries"]
    assert handlers["conduct.new"] is CONDUCT.handlers["conduct.new"]


def test_a_route_without_a_handler_stops_the_service_being_made(tmp_path):
    config = load_config(write(tmp_path))
    with pytest.raises(RuntimeError, match=r"routes without a handler: \['admin', 'enquiries'\]"):
        Service(config, apps=(LISTS, CONDUCT))


def test_a_route_two_apps_claim_is_refused():
    twin = app.App("twin", handlers={"admin": ENQUIRIES.handlers["admin"]})
    with pytest.raises(RuntimeError, match="'admin' is claimed by both enquiries and twin"):
        app.route_handlers((*APPS, twin))


def test_a_handler_for_a_route_the_spec_does_not_have_is_refused():
    stray = app.App("stray", handlers={"lists.nowhere": ENQUIRIES.handlers["admin"]})
    with pytest.raises(RuntimeError, match=r"does not have: \['lists.nowhere'\]"):
        app.route_handlers((*APPS, stray))


def test_an_app_record_cannot_be_changed():
    with pytest.raises(dataclasses.FrozenInstanceError):
        LISTS.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        LISTS.handlers["lists.post"] = ENQUIRIES.handlers["admin"]  # type: ignore[index]


def test_each_app_brings_its_jobs_preparers_and_delivery_hook():
    assert app.jobs(APPS) == [*LISTS.jobs, *CONDUCT.jobs]  # in the order of APPS
    assert set(app.route_preparers(APPS)) == {
        "lists.post",
        "conduct.new",
        "conduct.reporter",
        "conduct.direct",
    }
    assert set(app.personalisers(APPS)) == {"list"}


def test_the_core_config_reads_only_the_sections_it_is_handed(tmp_path):
    path = write(tmp_path)
    with pytest.raises(ConfigError, match="unknown section `lists`"):
        core_config.load_config(path)
    with pytest.raises(ConfigError, match="unknown section `conduct`"):
        core_config.load_config(path, app.sections([LISTS]))
    config = load_config(path)
    assert [type(lst) for lst in config.lists] == [ListConfig]
    assert config.lists[0].name == "dataviz"
    assert isinstance(config.conduct, ConductConfig)
    assert config.dmarc.strict_domains == frozenset({"example.com"})


def test_a_section_read_twice_is_refused():
    with pytest.raises(RuntimeError, match="'lists' is read by both lists and lists"):
        app.sections([LISTS, LISTS])
    server = app.App("server", handlers={}, sections=(core_config.Section("server", repr),))
    with pytest.raises(RuntimeError, match="'server' is read by both the core and server"):
        app.sections([server])


def test_the_command_line_has_every_apps_commands():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    commands = set(sub.choices)  # type: ignore[arg-type]
    assert {"serve", "check", "queue"} <= commands
    assert {"lists", "members", "archive", "cases", "bans"} <= commands


def test_only_mailhub_apps_names_the_apps():
    graph, _ = scan()
    apps = ("mailhub.lists", "mailhub.conduct", "mailhub.enquiries")
    namers = {
        module
        for module, targets in graph.items()
        if not module.startswith(apps) and any(t.startswith(apps) for t in targets)
    }
    assert namers == {"mailhub.apps"}
