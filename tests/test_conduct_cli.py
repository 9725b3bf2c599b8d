"""`mailhub cases` / `mailhub bans`, [conduct] config errors, encryption at rest, retention."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from mailhub.apps import load_config
from mailhub.cli import main
from mailhub.clock import ManualClock
from mailhub.conduct.content import seal
from mailhub.config import ConfigError
from mailhub.store import Store, bans
from mailhub.store import conduct as store
from tests.support.hub import DOMAIN, message, start_hub
from tests.test_conduct_e2e import personal

COMMITTEE = """
[[conduct.committee]]
name = "Ada Jones"
addresses = ["ada@example.net"]
aliases = ["AJ"]
[[conduct.committee]]
name = "Bryn Hughes"
key = "bryn"
addresses = ["bryn@example.net"]
conflicts = ["Dai Evans", "employer.org"]
"""

BASE = """
[server]
domains = ["cop.example.org"]
[storage]
path = "{db}"
[outbound]
maildir = "{outbox}"
[admin]
addresses = ["admin@example.net"]
[conduct]
fallback = "board@example.net"
{conduct}
"""

SECRET = "Gloopwhistle happened in the kitchen"


def write_config(tmp_path: Path, conduct: str = "") -> Path:
    path = tmp_path / "mailhub.toml"
    path.write_text(
        BASE.format(db=tmp_path / "m.db", outbox=tmp_path / "out", conduct=conduct) + COMMITTEE
    )
    return path


def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "conduct.key"
    path.write_bytes(Fernet.generate_key())
    return path


async def populate(path: Path) -> str:
    config = load_config(path)
    st = await Store.open(config.storage.path)
    try:
        async with st.transaction() as tx:
            await store.create_case(tx, ref="C-AAAA-22", opened_at=1000.0, reporter="r@x.example")
            raw = message(sender="r@x.example", subject="Gloop", body=SECRET).encode()
            sealed, encrypted = seal(config.conduct, raw)
            await store.add_message(
                tx,
                ref="C-AAAA-22",
                received_at=1000.0,
                kind="report",
                author="r@x.example",
                raw=sealed,
                encrypted=encrypted,
            )
            await store.add_recusal(
                tx, ref="C-AAAA-22", member="bryn", reason='alias "B"', possible=True, at=1000.0
            )
            await store.audit(tx, "C-AAAA-22", 1000.0, "r@x.example", "opened")
    finally:
        await st.close()
    return "C-AAAA-22"


def test_config_reads_the_conduct_section(tmp_path):
    config = load_config(write_config(tmp_path, 'language = "en+cy"\nreminder_after = "3d"'))
    c = config.conduct
    assert c.language == "en+cy" and c.reminder_after == 3 * 86400 and c.escalate_after == 7 * 86400
    assert [m.key for m in c.committee] == ["ada-jones", "bryn"]
    assert c.committee[1].conflicts == ("Dai Evans", "employer.org")
    assert c.key is None and c.retention_days == 0


@pytest.mark.parametrize(
    "conduct, key",
    [
        ('key_file = "/nonexistent/conduct.key"', "conduct.key_file"),
        ('language = "fr"', "conduct.language"),
        ('reminder_after = "soon"', "conduct.reminder_after"),
        ('reminder_after = "8d"', "conduct.escalate_after"),
        ("retention_days = -1", "conduct.retention_days"),
        ('code_url = "cop.example.org/code"', "conduct.code_url"),
        ('code_url = "javascript:alert(1)"', "conduct.code_url"),
        ("code_url = 3", "conduct.code_url"),
    ],
)
def test_config_errors_name_the_key(tmp_path, conduct, key):
    with pytest.raises(ConfigError) as exc:
        load_config(write_config(tmp_path, conduct))
    assert exc.value.key == key


def test_a_key_file_without_a_key_is_a_config_error(tmp_path, capsys):
    bad = tmp_path / "bad.key"
    bad.write_text("not a key")
    path = write_config(tmp_path, f'key_file = "{bad}"')
    assert main(["cases", "--config", str(path)]) == 2
    assert "conduct.key_file" in capsys.readouterr().err


def test_cases_list_show_close_and_bans(tmp_path, capsys):
    path = write_config(tmp_path, f'key_file = "{key_file(tmp_path)}"')
    ref = asyncio.run(populate(path))
    # Encrypted at rest: the database file does not hold the text.
    with sqlite3.connect(tmp_path / "m.db") as db:
        (raw,) = db.execute("SELECT raw FROM conduct_messages").fetchone()
    assert b"Gloopwhistle" not in raw

    assert main(["cases", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert ref in out and "open" in out and "bryn?" in out
    assert "Gloop" not in out

    assert main(["cases", "show", ref.lower(), "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert SECRET in out and "r@x.example" in out and 'alias "B"' in out and "opened" in out

    assert main(["cases", "show", "C-ZZZZ-ZZ", "--config", str(path)]) == 1
    assert "no case C-ZZZZ-ZZ" in capsys.readouterr().err
    assert main(["cases", "close", ref, "--outcome", "banish", "--config", str(path)]) == 1
    assert "--outcome" in capsys.readouterr().err

    argv = ["cases", "close", ref, "--outcome", "permanent-ban", "all", "Troll@Bad.example"]
    assert main([*argv, "--config", str(path)]) == 0
    assert "closed" in capsys.readouterr().out
    assert main([*argv, "--config", str(path)]) == 1  # already closed

    assert main(["bans", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "troll@bad.example" in out and "permanent" in out and ref in out and "active" in out


def test_show_without_the_key_says_so(tmp_path, capsys):
    path = write_config(tmp_path, f'key_file = "{key_file(tmp_path)}"')
    ref = asyncio.run(populate(path))
    path.write_text(path.read_text().replace(f'key_file = "{tmp_path / "conduct.key"}"', ""))
    assert main(["cases", "show", ref, "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "encrypted" in out and SECRET not in out


async def test_retention_deletes_closed_content_and_keeps_audit_and_bans(tmp_path):
    key = key_file(tmp_path)
    hub = await start_hub(
        tmp_path,
        clock=ManualClock(),
        extra=f'[conduct]\nfallback = "board@example.net"\nretention_days = 30\n'
        f'release_after = "0"\nkey_file = "{key}"\n' + COMMITTEE,
    )
    try:
        await hub.send(
            "r@x.example",
            [f"conduct@{DOMAIN}"],
            message(sender="r@x.example", to=f"conduct@{DOMAIN}", body=SECRET),
        )
        await hub.idle()
        async with hub.service.store.read() as tx:
            (case,) = await store.all_cases(tx)
            (stored,) = await store.messages(tx, case.ref)
        assert stored.encrypted and b"Gloopwhistle" not in stored.raw
        # Members still receive the report in clear.
        assert SECRET in hub.sink.to("ada@example.net")[0].raw.decode()
        committee = personal(hub, "ada@example.net", case.ref)
        await hub.send(
            "ada@example.net",
            [committee],
            message(
                sender="ada@example.net", to=committee, body="#close permanent-ban all t@x.example"
            ),
        )
        await hub.idle()
        hub.clock.advance(29 * 86400)
        await hub.service.scheduler.run_once()
        async with hub.service.store.read() as tx:
            assert len(await store.messages(tx, case.ref)) == 2
        hub.clock.advance(2 * 86400)
        await hub.service.scheduler.run_once()
        async with hub.service.store.read() as tx:
            assert await store.messages(tx, case.ref) == []
            assert (await store.get_case(tx, case.ref)).content_deleted_at is not None
            trail = [e.action for e in await store.audit_trail(tx, case.ref)]
            assert trail[0] == "opened" and trail[-1] == "content-deleted"
            assert await bans.active(tx, "t@x.example", "any", hub.clock.now())
    finally:
        await hub.service.stop()
        await hub.sink.stop()
