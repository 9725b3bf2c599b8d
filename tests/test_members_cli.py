"""`mailhub lists`, `mailhub members LIST ...` and `mailhub digests send`, run through
`mailhub.cli.main` against a config file and a real SQLite file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mailhub.cli import main
from mailhub.lists.cli import BadRow, Row, progress_bar, read_rows, usable_address
from mailhub.store import Store, outbound
from mailhub.store import lists as list_store
from mailhub.store import membership as mstore

CONFIG = """
[server]
domains = ["cop.example.org"]
listen = "127.0.0.1:0"

[storage]
path = "{db}"

[outbound]
maildir = "{outbox}"

[admin]
addresses = ["admin@example.net"]

[[lists]]
name = "dataviz"
display_name = "Data Visualisation"
subscription = "approve"
facilitators = ["fran@example.net"]

[[lists]]
name = "invited"
display_name = "Invited Only"
subscription = "invite"
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "mailhub.toml"
    path.write_text(CONFIG.format(db=tmp_path / "m.db", outbox=tmp_path / "outbox"))
    return path


def run(config: Path, *argv: str) -> int:
    return main([argv[0], "--config", str(config), *argv[1:]])


def db_query(config: Path, fn):  # noqa: ANN001, ANN201
    async def go():  # noqa: ANN202
        store = await Store.open(config.parent / "m.db")
        try:
            async with store.read() as tx:
                return await fn(tx)
        finally:
            await store.close()

    return asyncio.run(go())


def test_check_address():
    assert usable_address(" Sam@Example.NET ") == "sam@example.net"
    for bad in ("", "no-at-sign", "a@b@c", "sam@", "x@-bad-.com"):
        with pytest.raises(ValueError):
            usable_address(bad)


def test_read_rows_reports_bad_rows_with_line_numbers():
    text = "address,name\nsam@example.net,Sam Sender\n\nnot-an-address,Bad\ntom@example.net\n"
    rows = list(read_rows(iter(text.splitlines())))
    assert rows[0] == Row(2, "sam@example.net", "Sam Sender")
    assert isinstance(rows[1], BadRow) and rows[1].line == 4
    assert rows[2] == Row(5, "tom@example.net", "")
    assert progress_bar(5, 10, width=10) == "\r[#####     ] 5/10"


def test_import_csv_with_bad_rows(config, tmp_path, capsys):
    csv_file = tmp_path / "people.csv"
    csv_file.write_text(
        "address,name\n"
        "sam@example.net,Sam Sender\n"
        "bad address,Nobody\n"
        'tom@example.net,"Tester, Tom"\n'
        "sam@example.net,Sam Again\n"
        "@nope\n"
    )
    assert run(config, "members", "dataviz", "--import", str(csv_file)) == 1
    out, err = capsys.readouterr()
    assert "imported 2 member(s) into dataviz; 3 bad row(s)" in out
    assert "people.csv: line 3:" in err and "people.csv: line 6:" in err
    assert "line 5: sam@example.net appears earlier" in err
    members = db_query(config, lambda tx: list_store.list_members(tx, "dataviz"))
    assert [(m.address, m.display_name) for m in members] == [
        ("sam@example.net", "Sam Sender"),
        ("tom@example.net", "Tester, Tom"),
    ]
    # Welcomes are queued for the running server to deliver.
    summary = db_query(config, outbound.summary)
    assert sum(count for _, count, _ in summary) == 2
    # Importing again adds nobody twice.
    assert run(config, "members", "dataviz", "--import", str(csv_file), "--no-welcome") == 1
    assert db_query(config, lambda tx: list_store.count_members(tx, "dataviz")) == 2


def test_large_import_shows_progress(config, tmp_path, capsys):
    csv_file = tmp_path / "many.csv"
    csv_file.write_text("".join(f"person{i}@example.net\n" for i in range(600)))
    assert run(config, "members", "dataviz", "--import", str(csv_file), "--no-welcome") == 0
    out, err = capsys.readouterr()
    assert "imported 600 member(s)" in out
    assert "] 600/600" in err and "] 500/600" in err
    assert db_query(config, lambda tx: list_store.count_members(tx, "dataviz")) == 600


def test_add_remove_list_and_counts(config, capsys):
    assert run(config, "members", "dataviz", "--add", "Sam@Example.net", "tom@example.net") == 0
    assert "added 2 member(s)" in capsys.readouterr().out
    assert run(config, "members", "dataviz", "--add", "sam@example.net") == 0
    assert "already a member" in capsys.readouterr().err
    assert run(config, "members", "dataviz") == 0
    out = capsys.readouterr().out
    assert "sam@example.net" in out and "tom@example.net" in out
    assert run(config, "members", "dataviz", "--remove", "tom@example.net") == 0
    assert run(config, "lists") == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("dataviz"))
    assert line.split()[1:4] == ["1", "0", "0"]


def test_user_errors_are_one_line(config, capsys):
    assert run(config, "members", "nosuch") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no list named 'nosuch'" in err
    assert run(config, "members", "dataviz", "--add", "not an address") == 1
    assert "not a usable address" in capsys.readouterr().err
    assert run(config, "members", "dataviz", "--import", "/nonexistent.csv") == 1
    assert "no such file" in capsys.readouterr().err


def test_invite_records_and_mails_an_invitation(config, capsys):
    assert run(config, "members", "invited", "--invite", "nia@example.net") == 0
    assert "invited 1" in capsys.readouterr().out
    invitation = db_query(
        config, lambda tx: mstore.get_invitation(tx, "invited", "nia@example.net")
    )
    assert invitation is not None and invitation.used_at is None
    summary = db_query(config, outbound.summary)
    assert sum(count for _, count, _ in summary) == 1


def test_digests_send(config, capsys):
    assert run(config, "digests", "send") == 0
    assert "queued 0 review(s)" in capsys.readouterr().out
    assert run(config, "digests", "send", "nosuch") == 1


def test_review_send_is_the_name_and_now_sends_what_is_not_due(config, capsys):
    assert run(config, "review", "send") == 0
    assert "queued 0 review(s)" in capsys.readouterr().out
    assert run(config, "review", "send", "--now") == 0
    assert run(config, "review", "send", "nosuch", "--now") == 1


def test_a_list_taken_out_of_the_config_keeps_its_members_and_is_shown(config, capsys):
    assert run(config, "members", "invited", "--add", "ivy@example.net") == 0
    config.write_text(config.read_text().split('[[lists]]\nname = "invited"')[0])
    capsys.readouterr()
    assert run(config, "lists") == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("invited"))
    assert line.split()[1] == "1" and "not in the config" in line
    assert run(config, "members", "invited") == 1  # not served, so not managed either
