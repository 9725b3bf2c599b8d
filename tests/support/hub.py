"""Start a real mailhub Service on loopback with a real SQLite file (or, under the `backend`
fixture's "postgresql", a real PostgreSQL database), relaying to a Sink."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import textwrap
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiosmtplib

from mailhub.apps import load_config
from mailhub.clock import ManualClock
from mailhub.service import Service
from mailhub.store import Store
from mailhub.store.postgres import PostgresStore
from tests.support.dns_server import DnsServer
from tests.support.sink import Sink

DOMAIN = "cop.example.org"

BASE_CONFIG = """
[server]
domains = ["cop.example.org", "other.example.org"]
listen = "127.0.0.1:0"
lmtp = {lmtp}
max_message_bytes = {max_message_bytes}
max_recipients = 5
max_connections = {max_connections}

[storage]
path = "{db}"

[outbound]
relay = "smtp://127.0.0.1:{sink_port}"
retry_base = 0
batch_size = 50

[admin]
addresses = ["admin@example.net"]

[enquiries]
handlers = ["helper@example.net"]
language = "{language}"
"""

# Every hub looks names up (posters' DMARC policies) on loopback, never through the host's
# resolver: a test that needs records passes its own [dns] table in `extra`.
DNS_CONFIG = """
[dns]
nameservers = ["{address}"]
timeout = 2
"""


# The database the hubs of the running test use: None for the SQLite file in tmp_path (the
# default), or a PostgreSQL URL. Set only through `storage_backend` (the `backend` fixture):
# a plain module setting, as the tests of one process run one at a time.
_storage_url: str | None = None


@contextlib.contextmanager
def storage_backend(url: str | None) -> Iterator[None]:
    """Within the block, `start_hub` (and so `start_list_hub`) and `open_test_store` use the
    PostgreSQL database at `url` (None: SQLite); the previous choice is restored after."""
    global _storage_url
    previous, _storage_url = _storage_url, url
    try:
        yield
    finally:
        _storage_url = previous


def storage_url() -> str | None:
    """The PostgreSQL URL the hubs use now, or None for SQLite."""
    return _storage_url


def storage_config(text: str) -> str:
    """A config's text with `url = "…"` added to its [storage] table when the test runs on
    PostgreSQL. `path` stays: with `url` it names no database, and the text stays one that
    tests can edit as before."""
    if _storage_url is None:
        return text
    return text.replace("[storage]\n", f'[storage]\nurl = "{_storage_url}"\n', 1)


async def open_test_store(
    tmp_path: Path, backend_url: str | None = None, *, name: str = "mailhub.db"
) -> Store | PostgresStore:
    """A store on the current backend, for tests that open one directly: PostgreSQL at
    `backend_url` (or the `backend` fixture's database), else SQLite at tmp_path/`name`."""
    url = backend_url if backend_url is not None else _storage_url
    if url is None:
        return await Store.open(tmp_path / name)
    return await PostgresStore.connect(url, migrate=True)


@functools.cache
def empty_dns() -> str:
    """The address of a loopback DNS server that knows no names (every answer NXDOMAIN: no
    DMARC record, so copies keep the poster's From: as before DMARC was looked up). One for
    the whole test run, on its own thread and event loop, so it outlives each test's loop."""
    ready = threading.Event()
    box: dict[str, str] = {}

    def serve() -> None:
        async def main() -> None:
            server = DnsServer()
            await server.start()
            box["address"] = server.address
            ready.set()
            await asyncio.Event().wait()  # until the process ends (a daemon thread)

        asyncio.run(main())

    threading.Thread(target=serve, name="empty-dns", daemon=True).start()
    if not ready.wait(10):
        raise RuntimeError("the loopback DNS server did not start")
    return box["address"]


@dataclass
class Hub:
    service: Service
    sink: Sink
    clock: ManualClock
    path: Path

    @property
    def port(self) -> int:
        return self.service.port

    async def send(self, mail_from: str, rcpts: list[str], raw: bytes | str) -> tuple[int, str]:
        """Send one message over SMTP; returns the final (code, text) of DATA."""
        if isinstance(raw, str):
            raw = raw.replace("\r\n", "\n").replace("\n", "\r\n").encode()
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=self.port, timeout=10)
        await client.connect()
        try:
            await client.ehlo()
            code, text = await client.execute_command(f"MAIL FROM:<{mail_from}>".encode())
            if code >= 400:
                return code, text
            for r in rcpts:
                code, text = await client.execute_command(f"RCPT TO:<{r}>".encode())
                if code >= 400:
                    return code, text
            response = await client.data(raw)
            return response.code, response.message
        except aiosmtplib.SMTPResponseException as exc:
            return exc.code, exc.message
        finally:
            client.close()

    async def idle(self) -> None:
        await self.service.idle()


async def start_hub(
    tmp_path: Path,
    *,
    extra: str = "",
    top: str = "",
    lmtp: bool = False,
    language: str = "en",
    max_connections: int = 50,
    max_message_bytes: int = 200000,
    clock: ManualClock | None = None,
    sink: Sink | None = None,
) -> Hub:
    if sink is None:
        sink = Sink()
        await sink.start()
    text = BASE_CONFIG.format(
        db=tmp_path / "mailhub.db",
        sink_port=sink.port,
        lmtp=str(lmtp).lower(),
        language=language,
        max_connections=max_connections,
        max_message_bytes=max_message_bytes,
    )
    text = storage_config(text)
    if "[dns]" not in extra:
        text += DNS_CONFIG.format(address=empty_dns())
    path = tmp_path / "mailhub.toml"
    # `top`: top-level keys, which TOML needs before the first table.
    path.write_text(textwrap.dedent(top) + text + textwrap.dedent(extra))
    config = load_config(path)
    if _storage_url is not None:
        # A node only checks the schema's version: the database is migrated first, as an
        # operator runs `mailhub migrate` before `mailhub serve`.
        store = await open_test_store(tmp_path)
        await store.close()
    clock = clock or ManualClock()
    service = Service(config, clock, run_scheduler=False)
    await service.start()
    return Hub(service, sink, clock, path)


@asynccontextmanager
async def running_hub(tmp_path: Path, **kwargs) -> AsyncIterator[Hub]:  # noqa: ANN003
    """`start_hub`, stopped (service and sink) however the block ends."""
    hub = await start_hub(tmp_path, **kwargs)
    try:
        yield hub
    finally:
        await hub.service.stop()
        await hub.sink.stop()


def message(
    *,
    sender: str = "Sam Sender <sam@example.net>",
    to: str = f"enquiries@{DOMAIN}",
    subject: str = "Hello",
    body: str = "Hi there.\n",
    headers: str = "",
) -> str:
    extra = headers if not headers or headers.endswith("\n") else headers + "\n"
    return (
        f"From: {sender}\nTo: {to}\nSubject: {subject}\nMessage-ID: <m-{abs(hash(body))}@example.net>\n"
        f"{extra}\n{body}"
    )
