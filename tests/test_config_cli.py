"""The config file and the `mailhub` command: one clear line for every mistake."""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import pytest

from mailhub.apps import load_config
from mailhub.cli import main
from mailhub.config import ConfigError
from tests.support.hub import DOMAIN, message, start_hub

REPO = Path(__file__).resolve().parent.parent
GOOD = (REPO / "config" / "mailhub.toml").read_text()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def test_the_shipped_default_config_is_valid(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    config = load_config(REPO / "config" / "mailhub.toml")
    assert config.server.port == 8025 and config.server.host == "127.0.0.1"
    assert config.outbound.maildir == tmp_path / "var" / "outbox"
    assert config.storage.path == tmp_path / "var" / "mailhub.db"


@pytest.mark.parametrize(
    "change, key",
    [
        (('domains = ["cop.example.org"]', "domains = []"), "server.domains"),
        (('listen = "127.0.0.1:8025"', 'listen = "nowhere"'), "server.listen"),
        (("lmtp = false", 'lmtp = "no"'), "server.lmtp"),
        (("max_recipients = 100", "max_recipients = 0"), "server.max_recipients"),
        (('maildir = "var/outbox"', 'relay = "http://x"'), "outbound.relay"),
        (('maildir = "var/outbox"', ""), "outbound"),
        (('addresses = ["admin@cop.example.org"]', 'addresses = ["not an address"]'), "admin"),
        (('language = "cy+en"', 'language = "fr"'), "enquiries.language"),
        (('session_timeout = "5m"', 'session_timeout = "soon"'), "server.session_timeout"),
    ],
)
def test_bad_config_names_the_key(tmp_path, change, key):
    old, new = change
    assert old in GOOD
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, GOOD.replace(old, new)))
    assert str(err.value).startswith(key)


def test_cli_prints_one_line_for_a_bad_config(tmp_path, capsys):
    path = write(tmp_path, GOOD.replace('listen = "127.0.0.1:8025"', 'listen = "nowhere"'))
    assert main(["check", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "server.listen" in err and "Traceback" not in err


def test_cli_missing_config_is_one_line(tmp_path, capsys):
    assert main(["check", "--config", str(tmp_path / "nope.toml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nope.toml" in err


def test_mailhub_config_environment_variable(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MAILHUB_CONFIG", str(write(tmp_path, GOOD)))
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "cop.example.org" in out and "enquiries@cop.example.org" in out


def test_serve_on_a_busy_port_is_one_line(tmp_path, capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        text = GOOD.replace('listen = "127.0.0.1:8025"', f'listen = "127.0.0.1:{port}"')
        text = text.replace('path = "var/mailhub.db"', f'path = "{tmp_path}/m.db"')
        assert main(["serve", "--config", str(write(tmp_path, text))]) == 1
    err = capsys.readouterr().err.strip()
    assert "cannot listen" in err and err.count("\n") == 0


async def test_failed_message_is_listed_and_retried(tmp_path, capsys):
    # An administrator breaks a template: the enquiry handler raises, the message is
    # marked failed (the queue goes on), and `mailhub queue retry` re-runs it once fixed.
    templates = tmp_path / "templates"
    shutil.copytree(REPO / "templates", templates)
    ack = templates / "en" / "enquiry_ack.txt"
    good = ack.read_text()
    ack.write_text(good + "{{ no_such_variable }}\n")
    hub = await start_hub(tmp_path, top=f'templates = "{templates}"\n')
    try:
        await hub.send("sam@example.net", [f"enquiries@{DOMAIN}"], message(subject="first"))
        await hub.idle()
        assert await asyncio.to_thread(main, ["queue", "--config", str(hub.path)]) == 0
        out = capsys.readouterr().out
        assert "failed" in out and "UndefinedError" in out
        queue_id = next(w for w in out.split() if w.startswith("Q") and len(w) == 13)
        # The queue goes on: the next message is not blocked by the failed one.
        ack.write_text(good)
        await hub.send("sam@example.net", [f"postmaster@{DOMAIN}"], message(subject="second"))
        await hub.sink.wait_count("admin@example.net")
        assert (
            await asyncio.to_thread(main, ["queue", "--config", str(hub.path), "retry", queue_id])
            == 0
        )
        hub.service.processor.wake.set()  # the running server also polls every few seconds
        await hub.sink.wait_count("helper@example.net")
        await hub.sink.wait_count("sam@example.net")
        assert (
            await asyncio.to_thread(main, ["queue", "--config", str(hub.path), "retry", queue_id])
            == 1
        )
        assert "no failed message" in capsys.readouterr().err
    finally:
        await hub.service.stop()
        await hub.sink.stop()


def test_version(capsys):
    from mailhub import __version__

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"mailhub {__version__}\n"
    assert __version__ != "0+unknown"  # the checkout is installed (editable): its metadata


def test_the_default_templates_are_the_checkouts_in_an_editable_install():
    from mailhub.config import default_templates_dir

    # mailhub/templates exists only in a wheel; in the checkout, templates/ is the source.
    assert default_templates_dir() == REPO / "templates"
    assert (default_templates_dir() / "en" / "enquiry_ack.txt").is_file()


def test_check_warns_that_a_bulk_list_has_no_one_click(tmp_path, capsys):
    assert "[[lists]]" in GOOD
    bulk = GOOD.replace("[[lists]]\n", '[[lists]]\ndelivery = "bulk"\n', 1)
    assert main(["check", "--config", str(write(tmp_path, bulk))]) == 0
    assert "bulk delivery: copies carry no one-click unsubscribe" in capsys.readouterr().out
    assert main(["check", "--config", str(write(tmp_path, GOOD))]) == 0
    assert "one-click" not in capsys.readouterr().out


def test_check_shows_each_lists_archive_and_warns_when_nobody_can_read_it(tmp_path, capsys):
    # The shipped config without its [web] table (up to the next table).
    no_web = re.sub(r"(?ms)^\[web\]\n.*?(?=^\[)", "", GOOD)
    assert "[web]" not in no_web and "[[lists]]" in no_web
    assert main(["check", "--config", str(write(tmp_path, no_web))]) == 0
    out = capsys.readouterr().out
    assert "archive: members (no [web])" in out
    assert 'warning: archive = "members" but there is no [web] section' in out
    assert 'archive = "members"' in no_web
    off = no_web.replace('archive = "members"', 'archive = "off"', 1)
    assert main(["check", "--config", str(write(tmp_path, off))]) == 0
    out = capsys.readouterr().out
    assert "archive: off" in out and "nobody can read the archive" not in out
    web = no_web + '\n[web]\nlisten = "127.0.0.1:8080"\nbase_url = "https://l.example.org"\n'
    assert main(["check", "--config", str(write(tmp_path, web))]) == 0
    out = capsys.readouterr().out
    assert "archive: members (https://l.example.org/lists/" in out
    assert "nobody can read the archive" not in out


def test_check_names_a_postgresql_store_without_its_password(tmp_path, capsys):
    assert "[storage]\n" in GOOD
    shared = GOOD.replace(
        "[storage]\n",
        '[storage]\nurl = "postgresql://mailhub:sekret@db.example.org:5432/mailhub"\n'
        'lease = "20s"\n',
        1,
    )
    assert main(["check", "--config", str(write(tmp_path, shared))]) == 0
    out = capsys.readouterr().out
    assert (
        "storage: PostgreSQL postgresql://mailhub:…@db.example.org:5432/mailhub (lease 20s)" in out
    )
    assert "sekret" not in out


@pytest.mark.parametrize(
    "line, key",
    [
        ('url = "sqlite:///var/mailhub.db"', "storage.url"),
        ('lease = "0s"', "storage.lease"),
        ("pool_size = 1", "storage.pool_size"),
    ],
)
def test_a_mistake_in_the_postgresql_storage_is_one_line(tmp_path, capsys, line, key):
    bad = GOOD.replace("[storage]\n", f"[storage]\n{line}\n", 1)
    assert main(["check", "--config", str(write(tmp_path, bad))]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mailhub: config error: {key}") and err.count("\n") == 1, err
