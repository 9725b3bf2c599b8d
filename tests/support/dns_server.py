"""A real DNS server on loopback for tests, built on dnspython: UDP and TCP on one port.

    async with DnsServer({("_dmarc.example.org", "TXT"): ['"v=DMARC1; p=reject"']}) as server:
        resolver = Resolver(DnsConfig((server.address,), timeout=0.3))

It answers authoritatively from `server.records`, which maps (name, type) to a list of rdata
in zone-file text, and may be changed while a test runs. A name with no records at all gets
NXDOMAIN; a name with records of other types gets an empty NOERROR answer (no such record);
both carry an SOA whose minimum is `negative_ttl`, so a resolver can cache the "no" as
RFC 2308 says. Names in `silent` are never answered (the client times out); names in
`failing` get SERVFAIL. `queries` lists every name asked, in order (over UDP and TCP, so a
truncated answer retried over TCP counts twice), so tests can prove what a cache saved.

An answer too large for the client's UDP size (512 bytes, or its EDNS payload) is sent
truncated (TC), and a real resolver asks again over TCP, as it would for a long DKIM key.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Iterable, Mapping

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

Records = dict[tuple[str, str], list[str]]


def txt(value: str) -> str:
    """One TXT record's rdata text for `value`, split into quoted strings of at most 255
    octets (a DKIM key is longer than one string may be; readers join them again)."""
    data = value.encode()
    chunks = [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
    return " ".join(
        '"' + c.decode().replace("\\", "\\\\").replace('"', '\\"') + '"' for c in chunks
    )


def _key(name: str) -> str:
    return name.lower().rstrip(".")


class DnsServer:
    def __init__(
        self,
        records: Mapping[tuple[str, str], Iterable[str]] | None = None,
        *,
        ttl: int = 300,
        negative_ttl: int = 300,
    ) -> None:
        self.records: Records = {k: list(v) for k, v in (records or {}).items()}
        self.ttl = ttl  # of every positive answer
        self.negative_ttl = negative_ttl  # the SOA minimum sent with NXDOMAIN and no-record
        self.silent: set[str] = set()  # names never answered: the client times out
        self.failing: set[str] = set()  # names answered with SERVFAIL
        self.queries: list[str] = []  # every name asked, lower case, no trailing dot
        self.port = 0
        self._asked = asyncio.Condition()
        self._open = asyncio.Event()  # answers wait while it is clear (see pause)
        self._open.set()
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        # UDP takes a free port first; TCP then binds the same number, which another
        # process may hold, so a few tries.
        for _ in range(20):
            transport, _protocol = await loop.create_datagram_endpoint(
                lambda: _Udp(self), local_addr=("127.0.0.1", 0), family=socket.AF_INET
            )
            port = transport.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(self._serve_tcp, "127.0.0.1", port)
            except OSError:
                transport.close()
                continue
            self._udp, self.port = transport, port
            return
        raise OSError("no loopback port free for both UDP and TCP")

    async def stop(self) -> None:
        self._open.set()
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> DnsServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- controls for tests --------------------------------------------------------------

    def pause(self) -> None:
        """Hold every answer until `resume()`: lets a test start lookups that overlap."""
        self._open.clear()

    def resume(self) -> None:
        self._open.set()

    async def wait_queries(self, n: int, timeout: float = 5.0) -> None:
        """Until at least `n` queries have arrived (no sleeping in tests)."""

        async def wait() -> None:
            async with self._asked:
                await self._asked.wait_for(lambda: len(self.queries) >= n)

        await asyncio.wait_for(wait(), timeout)

    # -- answering -------------------------------------------------------------------

    def _lookup(self, name: str) -> dict[str, list[str]]:
        """The records of one name, by type (the mapping may have changed since the last
        query, and its keys may be in any case, with or without a trailing dot)."""
        found: dict[str, list[str]] = {}
        for (owner, rdtype), values in self.records.items():
            if _key(owner) == name:
                found.setdefault(rdtype.upper(), []).extend(values)
        return found

    def _soa(self, name: str) -> dns.rrset.RRset:
        # The zone is taken to be the last two labels of the name asked: enough for a
        # resolver to read the negative TTL from.
        zone = ".".join(name.split(".")[-2:]) + "."
        minimum = self.negative_ttl
        return dns.rrset.from_text(
            zone,
            minimum,
            "IN",
            "SOA",
            f"ns.{zone} hostmaster.{zone} 1 3600 600 86400 {minimum}",
        )

    async def answer(self, wire: bytes) -> dns.message.Message | None:
        """The response to one query, or None for no answer at all."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None  # not DNS: a real server would drop it too
        if not query.question:
            return None
        question = query.question[0]
        name = _key(question.name.to_text())
        async with self._asked:
            self.queries.append(name)
            self._asked.notify_all()
        await self._open.wait()
        if name in self.silent:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if name in self.failing:
            response.set_rcode(dns.rcode.SERVFAIL)
            return response
        present = self._lookup(name)
        rdtype = dns.rdatatype.to_text(question.rdtype)
        if present.get(rdtype):
            response.answer.append(
                dns.rrset.from_text_list(question.name, self.ttl, "IN", rdtype, present[rdtype])
            )
        else:
            if not present:
                response.set_rcode(dns.rcode.NXDOMAIN)
            response.authority.append(self._soa(name))
        return response

    def _udp_limit(self, wire: bytes) -> int:
        with contextlib.suppress(dns.exception.DNSException):
            query = dns.message.from_wire(wire)
            if query.edns >= 0:
                return max(512, query.payload)
        return 512

    async def _serve_udp(self, wire: bytes, peer: tuple[str, int]) -> None:
        response = await self.answer(wire)
        if response is None or self._udp is None or self._udp.is_closing():
            return
        out = response.to_wire(max_size=self._udp_limit(wire), prefer_truncation=True)
        self._udp.sendto(out, peer)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            while True:
                (length,) = struct.unpack("!H", await reader.readexactly(2))
                response = await self.answer(await reader.readexactly(length))
                if response is None:
                    continue
                writer.write(response.to_wire(prepend_length=True))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            if task is not None:
                self._tasks.discard(task)

    def _spawn(self, wire: bytes, peer: tuple[str, int]) -> None:
        task = asyncio.get_running_loop().create_task(self._serve_udp(wire, peer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        # Each query answered in its own task, so a paused answer does not hold the others.
        self.server._spawn(data, addr)
