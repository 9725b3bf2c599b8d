"""Every accepted post is archived (raw bytes) and exports as mbox."""

from __future__ import annotations

import asyncio
import mailbox

from mailhub.cli import main
from tests.test_lists_posting_e2e import LIST, make_hub, post


async def test_archive_export_to_mbox(tmp_path, capsys):
    hub = await make_hub(tmp_path)
    try:
        await hub.send("ann@example.net", [LIST], post(subject="First", body="One\n"))
        await hub.send(
            "bob@example.net",
            [LIST],
            post(sender="bob@example.net", subject="Second", body="Two\n"),
        )
        await hub.send("zed@example.com", [LIST], post(sender="zed@example.com", body="held\n"))
        await hub.idle()
        out = tmp_path / "green.mbox"
        args = ["archive", "green", "--mbox", str(out), "--config", str(hub.path)]
        assert await asyncio.to_thread(main, args) == 0
        assert "2 posts" in capsys.readouterr().out
        box = mailbox.mbox(str(out))
        got = [(m["Subject"], m.get_payload().strip(), m.get_from().split()[0]) for m in box]
        assert got == [("First", "One", "ann@example.net"), ("Second", "Two", "bob@example.net")]
        # Not overwritten; an unknown list is one clear line.
        assert await asyncio.to_thread(main, args) == 1
        bad = ["archive", "nope", "--mbox", str(tmp_path / "x"), "--config", str(hub.path)]
        assert await asyncio.to_thread(main, bad) == 1
        assert "no list named" in capsys.readouterr().err
    finally:
        await hub.service.stop()
        await hub.sink.stop()
