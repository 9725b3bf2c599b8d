"""Real `mailhub serve` processes for the tests: start one on a loopback port, stop it
(SIGTERM, then SIGKILL past a bound), and the config of a node on a shared PostgreSQL
database."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import aiosmtplib

from tests.support.hub import DOMAIN, empty_dns

REPO = Path(__file__).resolve().parent.parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def start_server(
    config: Path, port: int, log_level: str = "WARNING", stderr: int | None = None
) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mailhub",
        "serve",
        "--config",
        str(config),
        "--log-level",
        log_level,
        cwd=REPO,
        stdin=asyncio.subprocess.DEVNULL,
        stderr=stderr,
    )
    for _ in range(200):  # bounded: ~10 s
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return proc
        except OSError:
            if proc.returncode is not None:
                raise RuntimeError("server exited at start") from None
            await asyncio.sleep(0.05)  # polling a port that is not open yet: no event to await
    raise RuntimeError("server did not start")


async def stop_server(proc: asyncio.subprocess.Process | None, grace: float = 30.0) -> None:
    """SIGTERM (it drains), SIGKILL past `grace`: never leave a server of ours running."""
    if proc is None or proc.returncode is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), grace)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


# A numbered message's envelope sender, recipients and bytes.
Envelope = Callable[[int], tuple[str, list[str], bytes]]


async def sender(
    port: int, numbers: asyncio.Queue[int], accepted: set[int], envelope: Envelope
) -> None:
    """Send numbered messages on one connection until the queue is empty or the server goes
    away (a message cut off mid-transaction is not accepted, not counted)."""
    client = None
    while not numbers.empty():
        n = numbers.get_nowait()
        try:
            if client is None:
                client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=5)
                await client.connect()
            await client.sendmail(*envelope(n))
            accepted.add(n)
        except (aiosmtplib.SMTPException, OSError):
            return
    if client is not None:
        client.close()


def node_config(
    directory: Path,
    *,
    port: int,
    relay_port: int,
    url: str,
    lease: float,
    connections: int,
    lmtp: bool = False,
    extra: str = "",
) -> Path:
    """One node of a cluster on the PostgreSQL database at `url`, relaying to
    127.0.0.1:`relay_port`, looking names up on the tests' empty loopback DNS."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "mailhub.toml"
    path.write_text(
        f"""
[server]
domains = ["{DOMAIN}"]
listen = "127.0.0.1:{port}"
lmtp = {str(lmtp).lower()}
max_connections = 100
[storage]
url = "{url}"
lease = "{lease:g}s"
[outbound]
relay = "smtp://127.0.0.1:{relay_port}"
connections = {connections}
retry_base = 0
[admin]
addresses = ["admin@example.net"]
[dns]
nameservers = ["{empty_dns()}"]
timeout = 2
"""
        + extra
    )
    return path
