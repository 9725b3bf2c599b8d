"""DNS TXT lookups for DMARC policies and DKIM keys: async, cached for each answer's TTL, with
a timeout, and never raising. (Not `dns.py`: that name is dnspython's package.)

`[dns] nameservers = ["127.0.0.1:5353"]` points mailhub at a resolver of its own (tests and
air-gapped hosts); without it the system's resolver (/etc/resolv.conf) is used. An answer is
one of three things, and callers must treat them differently: records; no record (the name
or the record does not exist: a real "no", which DMARC and DKIM act on); failure (timeout,
SERVFAIL, no nameserver: nothing is known, and callers err on the safe side).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

from mailhub import logs
from mailhub.clock import Clock
from mailhub.errors import ConfigError
from mailhub.readers import parse_duration, refuse_unknown

DNS_KEYS = ("nameservers", "timeout")
DEFAULT_TIMEOUT = 3.0

# RFC 2308 §5: a negative answer is cached for the SOA's minimum (capped by the SOA
# record's own TTL); without an SOA, 5 minutes. Caps keep a bad zone from pinning an
# answer for days: a day for records, three hours for "no" (RFC 2308's advice).
NEGATIVE_TTL_WITHOUT_SOA = 300.0
MAX_TTL = 86400.0
MAX_NEGATIVE_TTL = 3 * 3600.0
# A failure is remembered briefly, so that during a DNS outage each post does not wait out
# the full timeout again (the callers' answer to a failure is the cautious one anyway).
FAILURE_TTL = 30.0
CACHE_ENTRIES = 10_000
# DMARC records and DKIM keys (a 4096-bit RSA key is about 750 bytes) fit well within this;
# with CACHE_ENTRIES it bounds the cache at about 40 MB however the records are made.
MAX_CACHED_BYTES = 4096


@dataclass(frozen=True)
class DnsConfig:
    nameservers: tuple[str, ...] | None = None  # "host:port"; None: the system's resolver
    timeout: float = DEFAULT_TIMEOUT  # for the whole lookup, all tries included


def split_nameserver(text: str) -> tuple[str, int]:
    """'127.0.0.1:5353' → ('127.0.0.1', 5353); '[::1]:53', '::1', '192.0.2.1' (port 53).
    A nameserver is an IP address: finding it by name would need DNS first."""
    host, port = text.strip(), "53"
    if host.startswith("["):
        host, sep, rest = host[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"expected [IPv6]:port, got {text!r}")
        port = rest[1:] or port
    elif host.count(":") == 1:
        host, port = host.split(":")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"expected an IP address and port such as 127.0.0.1:53, got {text!r}"
        ) from None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"the port must be a number from 1 to 65535, got {text!r}")
    return str(address), int(port)


def _format_nameserver(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_dns(section: Mapping[str, Any] | None) -> DnsConfig:
    """The `[dns]` table (None or {} when absent) → DnsConfig; any mistake is a ConfigError
    naming the key."""
    if section is None:
        return DnsConfig()
    if not isinstance(section, Mapping):
        raise ConfigError("dns", "must be a table, e.g. [dns]")
    table = dict(section)
    refuse_unknown(table, "dns", DNS_KEYS)
    nameservers: tuple[str, ...] | None = None
    if "nameservers" in table:
        value = table["nameservers"]
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError("dns.nameservers", 'must be a list such as ["127.0.0.1:53"]')
        if not value:
            raise ConfigError(
                "dns.nameservers", "is empty; leave it out to use the system's resolver"
            )
        try:
            nameservers = tuple(_format_nameserver(*split_nameserver(v)) for v in value)
        except ValueError as exc:
            raise ConfigError("dns.nameservers", str(exc)) from None
    timeout = parse_duration(table.get("timeout", DEFAULT_TIMEOUT), "dns.timeout")
    if timeout <= 0:
        raise ConfigError("dns.timeout", "must be more than 0 seconds")
    return DnsConfig(nameservers, timeout)


class Outcome(StrEnum):
    RECORDS = "records"
    NO_RECORD = "no record"  # NXDOMAIN, or the name has no record of this type
    FAILURE = "failure"  # timeout, SERVFAIL, no nameserver answering


@dataclass(frozen=True)
class TxtAnswer:
    outcome: Outcome
    # Each TXT record's character-strings joined into one (RFC 6376 §3.6.2.2, RFC 7489
    # §6.6.3 treat a record split into strings as their concatenation).
    records: tuple[bytes, ...] = ()
    reason: str = ""  # what failed, for the log

    @property
    def texts(self) -> tuple[str, ...]:
        return tuple(r.decode("utf-8", "replace") for r in self.records)


class _Monotonic:
    def now(self) -> float:
        return time.monotonic()


def _name(text: str) -> dns.name.Name | None:
    try:
        return dns.name.from_text(text.strip().rstrip("."))
    except (dns.exception.DNSException, UnicodeError, ValueError):
        return None


def _negative_ttl(response: dns.message.Message | None) -> float:
    if response is not None:
        for rrset in response.authority:
            if rrset.rdtype == dns.rdatatype.SOA and len(rrset):
                return float(min(rrset.ttl, rrset[0].minimum, MAX_NEGATIVE_TTL))
    return NEGATIVE_TTL_WITHOUT_SOA


class Resolver:
    """TXT lookups through dnspython's async stub resolver, with mailhub's own cache.

    The cache honours each answer's TTL (negative ones per RFC 2308), holds at most
    `max_entries` names (the least recently used go first), and concurrent lookups of one
    name share a single query. `clock` is injectable so tests can move time.
    """

    def __init__(
        self,
        config: DnsConfig | None = None,
        *,
        clock: Clock | None = None,
        max_entries: int = CACHE_ENTRIES,
        failure_ttl: float = FAILURE_TTL,
    ) -> None:
        self.config = config or DnsConfig()
        self.clock: Clock = clock or _Monotonic()
        self.max_entries = max_entries
        self.failure_ttl = failure_ttl
        self._cache: OrderedDict[str, tuple[float, TxtAnswer]] = OrderedDict()
        self._pending: dict[str, asyncio.Task[TxtAnswer]] = {}
        self._resolver: dns.asyncresolver.Resolver | None = None
        self._unusable = ""
        try:
            if self.config.nameservers is None:
                self._resolver = dns.asyncresolver.Resolver(configure=True)
            else:
                self._resolver = dns.asyncresolver.Resolver(configure=False)
                self._resolver.nameservers = [
                    dns.nameserver.Do53Nameserver(*split_nameserver(ns))
                    for ns in self.config.nameservers
                ]
        except dns.resolver.NoResolverConfiguration:
            # No /etc/resolv.conf (or no nameserver in it): every lookup is a failure, said
            # once per lookup, and the service still starts.
            self._resolver, self._unusable = None, "no nameservers configured"
        if self._resolver is not None:
            # One limit for the whole lookup, all tries and nameservers included.
            self._resolver.timeout = self.config.timeout
            self._resolver.lifetime = self.config.timeout
            self._resolver.cache = None  # ours, which also remembers failures briefly

    async def txt(self, name: str) -> TxtAnswer:
        key = name.strip().rstrip(".").lower()
        now = self.clock.now()
        cached = self._cache.get(key)
        if cached is not None:
            if cached[0] > now:
                self._cache.move_to_end(key)
                return cached[1]
            del self._cache[key]
        task = self._pending.get(key)
        if task is None:
            task = asyncio.ensure_future(self._lookup(key))
            self._pending[key] = task
            task.add_done_callback(lambda done: self._forget_pending(key, done))
        # shield: one caller given up (cancelled) does not cancel the others' query.
        return await asyncio.shield(task)

    def _forget_pending(self, key: str, done: asyncio.Task[TxtAnswer]) -> None:
        if self._pending.get(key) is done:
            del self._pending[key]

    async def _lookup(self, key: str) -> TxtAnswer:
        try:
            # dnspython keeps to its lifetime; this outer bound is a guarantee, not the rule.
            async with asyncio.timeout(self.config.timeout + 1.0):
                answer, ttl = await self._query(key)
        except TimeoutError:
            answer, ttl = self._failed(key, "timeout")
        except Exception as exc:  # a bug or a library surprise is a failure, never a crash
            answer, ttl = self._failed(key, type(exc).__name__)
        self._remember(key, answer, ttl)
        return answer

    def _remember(self, key: str, answer: TxtAnswer, ttl: float) -> None:
        if ttl <= 0 or self.max_entries <= 0:
            return
        self._cache[key] = (self.clock.now() + ttl, answer)
        self._cache.move_to_end(key)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)

    async def _query(self, key: str) -> tuple[TxtAnswer, float]:
        """The answer and how long it may be kept."""
        name = _name(key)
        if name is None:
            # Not a domain name (an empty label, a label over 63 octets): nothing can be
            # published under it, which is a real "no record".
            return TxtAnswer(Outcome.NO_RECORD, reason="not a domain name"), MAX_NEGATIVE_TTL
        if self._resolver is None:
            return self._failed(key, self._unusable)
        try:
            answer = await self._resolver.resolve(
                name, "TXT", search=False, raise_on_no_answer=False
            )
        except dns.resolver.NXDOMAIN as exc:
            response = exc.response(exc.qnames()[0]) if exc.qnames() else None
            return TxtAnswer(Outcome.NO_RECORD, reason="NXDOMAIN"), _negative_ttl(response)
        except dns.exception.Timeout:
            return self._failed(key, "timeout")
        except dns.resolver.NoNameservers as exc:
            return self._failed(key, _first_line(exc))
        except dns.exception.DNSException as exc:  # YXDOMAIN, malformed answers, ...
            return self._failed(key, type(exc).__name__)
        except OSError as exc:
            return self._failed(key, type(exc).__name__)
        if answer.rrset is None:
            return TxtAnswer(Outcome.NO_RECORD, reason="no TXT record"), _negative_ttl(
                answer.response
            )
        records = tuple(b"".join(rdata.strings) for rdata in answer.rrset)
        # The smallest TTL along a CNAME chain, as dnspython's own cache would keep it.
        ttl = float(min(answer.chaining_result.minimum_ttl, MAX_TTL))
        if sum(len(r) for r in records) > MAX_CACHED_BYTES:
            ttl = 0.0  # returned, not kept: a name with huge records cannot fill the memory
        return TxtAnswer(Outcome.RECORDS, records), ttl

    def _failed(self, key: str, reason: str) -> tuple[TxtAnswer, float]:
        logs.event("dns-failure", logging.WARNING, domain=key, reason=reason)
        return TxtAnswer(Outcome.FAILURE, reason=reason), self.failure_ttl


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
