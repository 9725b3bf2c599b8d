"""`mailhub cases show REF | head -1` ends quietly: a reader that stops reading is not an
error (no BrokenPipeError traceback, no "Exception ignored" line), through a real pipe."""

from __future__ import annotations

import asyncio
import re
import shlex
import sys

from tests.support.hub import DOMAIN, message, running_hub
from tests.test_conduct_e2e import COMMITTEE_TOML, REPORTER


async def shell(command: str) -> tuple[bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        "bash", "-c", command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return out, err


async def test_cases_show_into_head_ends_without_a_broken_pipe(tmp_path):
    async with running_hub(tmp_path, extra=COMMITTEE_TOML) as hub:
        # A report long enough that `cases show` writes far more than a pipe holds (64 KiB).
        body = "".join(f"Line {n} of what happened at the meetup.\n" for n in range(3000))
        await hub.send(REPORTER, [f"conduct@{DOMAIN}"], message(to=f"conduct@{DOMAIN}", body=body))
        await hub.idle()
        subject = str(hub.sink.to(REPORTER)[0].message["Subject"])
        ref = re.search(r"C-[0-9A-Z]{4}-[0-9A-Z]{2}", subject).group(0)
        mailhub = f"{shlex.quote(sys.executable)} -m mailhub cases show {ref} --config {hub.path}"

        whole, _ = await shell(mailhub)
        assert len(whole) > 2 * 65536 and whole.startswith(f"case {ref}".encode())

        out, err = await shell(f"{mailhub} | head -1; echo status=${{PIPESTATUS[0]}} >&2")
    assert out.count(b"\n") == 1 and out.startswith(f"case {ref}".encode())
    assert err == b"status=141\n"  # nothing else on stderr; the status of a SIGPIPE'd command
