"""Strict config: an unknown section or key stops the start with one line naming it and the
nearest valid one, and `mailhub check` shows each list's policy and people."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from mailhub.apps import load_config
from mailhub.cli import main
from mailhub.conduct.config import CONDUCT_KEYS, MEMBER_KEYS
from mailhub.config import (
    ADMIN_KEYS,
    AUTOREPLY_KEYS,
    ENQUIRIES_KEYS,
    OUTBOUND_KEYS,
    SERVER_KEYS,
    STORAGE_KEYS,
    ConfigError,
)
from mailhub.lists.config import DMARC_KEYS, LIST_KEYS, parse_list
from mailhub.web.config import WEB_KEYS

REPO = Path(__file__).resolve().parent.parent
GOOD = (REPO / "config" / "mailhub.toml").read_text()

BASE = """
[server]
domains = ["cop.example.org"]
[storage]
path = "{tmp}/m.db"
[outbound]
maildir = "{tmp}/outbox"
[admin]
addresses = ["admin@example.net"]
"""

LIST = """
[[lists]]
name = "dataviz"
facilitators = ["fran@example.net"]
"""

COMMITTEE = """
[conduct]
fallback = "board@example.net"
[[conduct.committee]]
name = "Ada Jones"
addresses = ["ada@example.net"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(BASE.format(tmp=tmp_path) + text)
    return path


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    return str(err.value)


# The typos of the issue, each with the one line it gives (after "mailhub: config error: ").
@pytest.mark.parametrize(
    "text, line",
    [
        (
            LIST + 'subscripton = "open"\n',
            "lists[0].subscripton: unknown key; did you mean `subscription`?",
        ),
        (
            LIST + 'facilitator = "fran@example.net"\n',
            "lists[0].facilitator: unknown key; did you mean `facilitators`?",
        ),
        (
            '[[list]]\nname = "dataviz"\n',
            "unknown section `list`; did you mean `lists`?",
        ),
        (
            # At the top level (before any table), `listn` is a near miss of `lists`.
            None,
            "listn: unknown key; did you mean `lists`?",
        ),
        (
            COMMITTEE.replace("[[conduct", "retention_day = 30\n[[conduct"),
            "conduct.retention_day: unknown key; did you mean `retention_days`?",
        ),
    ],
    ids=["subscripton", "facilitator", "[[list]]", "listn", "retention_day"],
)
def test_each_typo_of_the_issue_is_one_line_naming_the_nearest_key(tmp_path, capsys, text, line):
    if text is None:
        path = tmp_path / "c.toml"
        path.write_text('listn = "dataviz"\n' + BASE.format(tmp=tmp_path))
    else:
        path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == line
    for command in ("check", "serve"):
        assert main([command, "--config", str(path)]) == 2
        err_text = capsys.readouterr().err
        assert err_text == f"mailhub: config error: {line}\n"


def test_listn_inside_a_list_names_the_key_and_what_a_list_may_hold(tmp_path):
    line = error_of(tmp_path, LIST + 'listn = "x"\n')
    assert line.startswith("lists[0].listn: unknown key; ")
    # No key is near enough: the keys a list may hold are listed instead.
    assert "subscription" in line and "facilitators" in line


@pytest.mark.parametrize(
    "text, key, nearest",
    [
        (None, "server.domain", "domains"),
        (None, "storage.pth", "path"),
        (None, "outbound.retry", "retry_base"),
        (None, "admin.address", "addresses"),
        ('[enquiries]\nhandler = ["h@example.net"]\n', "enquiries.handler", "handlers"),
        ("[autoreply]\nper_hours = 5\n", "autoreply.per_hours", "per_hour"),
        ("[dmarc]\nstrict_domain = []\n", "dmarc.strict_domain", "strict_domains"),
        (LIST + 'Subscription = "open"\n', "lists[0].Subscription", "subscription"),
        (
            LIST.replace("[[lists]]", "[[lists]]\ndelivry = 1\n") + LIST,
            "lists[0].delivry",
            "delivery",
        ),
        (COMMITTEE + 'alias = ["AJ"]\n', "conduct.committee[0].alias", "aliases"),
        (COMMITTEE + 'facilitator = "x@example.net"\n', "conduct.committee[0].facilitator", None),
        (
            COMMITTEE + '[[conduct.comittee]]\nname = "B"\naddresses = ["b@example.net"]\n',
            "conduct.comittee",
            "committee",
        ),
    ],
)
def test_every_table_refuses_unknown_keys(tmp_path, text, key, nearest):
    if text is None:
        # A key of a table the base config already has, misspelt in place.
        table, name = key.split(".")
        text = BASE.format(tmp=tmp_path).replace(f"[{table}]\n", f"[{table}]\n{name} = 1\n")
        (tmp_path / "c.toml").write_text(text)
        with pytest.raises(ConfigError) as err:
            load_config(tmp_path / "c.toml")
        line = str(err.value)
    else:
        line = error_of(tmp_path, text)
    assert line.startswith(f"{key}: unknown key; ")
    if nearest:
        assert line.endswith(f"did you mean `{nearest}`?")


def test_conduct_typo_before_the_missing_key_it_explains(tmp_path):
    # `fallbak` is reported as the typo it is, not as "conduct.fallback is required".
    line = error_of(tmp_path, COMMITTEE.replace("fallback", "fallbak"))
    assert line == "conduct.fallbak: unknown key; did you mean `fallback`?"


def test_an_unknown_section_with_no_near_name_lists_the_sections(tmp_path):
    line = error_of(tmp_path, '[http]\nlisten = "127.0.0.1:8080"\n')
    assert line.startswith("unknown section `http`; expected one of: ")
    assert "lists" in line and "conduct" in line


def test_the_known_keys_are_the_keys_the_readers_read():
    # Every key a parser reads with get_*/section/.get is declared known, and no more.
    sources = {
        "config": (REPO / "mailhub" / "config.py").read_text(),
        "lists": (REPO / "mailhub" / "lists" / "config.py").read_text(),
        "conduct": (REPO / "mailhub" / "conduct" / "config.py").read_text(),
        "web": (REPO / "mailhub" / "web" / "config.py").read_text(),
    }
    read = set()
    for text in sources.values():
        # get_str(t, "name", ...), _choice(t, "subscription", ...), t.get("relay"), ...
        tables = r"\b(?:t|m|storage|enquiries|autoreply|admin)"
        read |= set(re.findall(tables + r"(?:\.get\(|,\s*)\"(\w+)\"", text))
    declared = set(
        SERVER_KEYS
        + STORAGE_KEYS
        + OUTBOUND_KEYS
        + ADMIN_KEYS
        + ENQUIRIES_KEYS
        + AUTOREPLY_KEYS
        + LIST_KEYS
        + DMARC_KEYS
        + CONDUCT_KEYS
        + MEMBER_KEYS
        + WEB_KEYS
    )
    assert read == declared, (read - declared, declared - read)


def test_the_shipped_config_loads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    load_config(REPO / "config" / "mailhub.toml")


def test_check_shows_each_lists_policy_and_people(tmp_path):
    text = (
        LIST.replace('["fran@example.net"]', '["fran@example.net", "gwen@example.net"]')
        + 'champions = ["cai@example.net"]\nsubscription = "approve"\nhold_first_posts = 2\n'
        + 'archive = "off"\n'  # no [web] here: an archive would be warned about
        + '[[lists]]\nname = "orphans"\nsubscription = "open"\n'
    )
    path = write(tmp_path, text)
    done = subprocess.run(
        [sys.executable, "-m", "mailhub", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert (
        "  dataviz@cop.example.org (dataviz)\n"
        "    policy: subscription approve; non-member posts hold; "
        "a new member's first 2 posts held; language cy+en\n"
        "    facilitators: fran@example.net, gwen@example.net\n"
        "    champions: cai@example.net\n"
    ) in out
    orphans = out[out.index("  orphans@") :]
    assert "    facilitators: none\n    champions: none\n" in orphans
    assert "    warning: no facilitators" in orphans
    assert "orphans-owner@cop.example.org goes to the administrators" in orphans
    assert "warning" not in out[: out.index("  orphans@")]


def test_the_review_interval_by_its_new_name_its_old_one_but_not_both():
    from_table = {"name": "l", "facilitators": ["f@example.net"]}
    assert parse_list({**from_table, "review_interval": "2h"}, "lists[0]").review_interval == 7200
    assert parse_list({**from_table, "digest_interval": "0"}, "lists[0]").review_interval == 0
    assert parse_list(from_table, "lists[0]").review_interval == 3600
    with pytest.raises(ConfigError) as caught:
        parse_list({**from_table, "review_interval": "1h", "digest_interval": "1h"}, "lists[0]")
    assert "lists[0].digest_interval" in str(caught.value)
