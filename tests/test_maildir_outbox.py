"""The embedded default: outbound mail written to a Maildir, one file per recipient."""

from __future__ import annotations

import asyncio
from email import message_from_bytes
from pathlib import Path

from mailhub.apps import load_config
from mailhub.cli import main
from mailhub.service import Service
from tests.support.hub import DOMAIN, Hub, message
from tests.support.sink import Sink

CONFIG = """
[server]
domains = ["{domain}"]
listen = "127.0.0.1:0"
[storage]
path = "{tmp}/mailhub.db"
[outbound]
maildir = "{tmp}/outbox"
[admin]
addresses = ["admin@example.net"]
[enquiries]
handlers = ["helper@example.net"]
"""


async def test_enquiry_lands_in_the_maildir_outbox(tmp_path: Path, capsys):
    path = tmp_path / "mailhub.toml"
    path.write_text(CONFIG.format(domain=DOMAIN, tmp=tmp_path))
    service = Service(load_config(path), run_scheduler=False)
    await service.start()
    hub = Hub(service, Sink(), None, path)  # type: ignore[arg-type]
    try:
        code, _ = await hub.send("sam@example.net", [f"enquiries@{DOMAIN}"], message())
        assert code == 250
        await service.idle()
    finally:
        await service.stop()
    files = sorted((tmp_path / "outbox" / "new").iterdir())
    delivered = {message_from_bytes(f.read_bytes())["Delivered-To"]: f for f in files}
    assert set(delivered) == {"helper@example.net", "sam@example.net"}
    ack = message_from_bytes(delivered["sam@example.net"].read_bytes())
    assert ack["Return-Path"] == "<>" and ack["Auto-Submitted"] == "auto-replied"
    assert not list((tmp_path / "outbox" / "tmp").iterdir())
    assert await asyncio.to_thread(main, ["queue", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "sent" in out and "pending" not in out
