"""Forwarding: names outside the cluster zone go to the node's upstream resolvers, through a cache.

Contract:

- :func:`read_resolv_conf` takes the ``nameserver`` lines of a resolv.conf, in order (what
  CoreDNS's ``forward . /etc/resolv.conf`` does). As an extension for tests, ``IP:PORT`` and
  ``[IPv6]:PORT`` name a port other than 53 (glibc would skip such a line).
- :meth:`Forwarder.resolve` asks the upstreams in order (the last one that answered first) over
  UDP with EDNS, and again over TCP when the answer was truncated; 2 s per upstream. Concurrent
  questions for the same name and type share one upstream exchange. No upstream: SERVFAIL.
- :class:`Cache`: at most ``size`` entries (least recently used evicted), each kept for the
  smallest TTL of its records (negative answers: the SOA's TTL and minimum, RFC 2308), capped at
  ``max_ttl`` (30 s, the ``cache 30`` of the stock Corefile); the TTLs a client sees count down.
  SERVFAIL and answers without a TTL to go by are not cached.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

log = logging.getLogger(__name__)

UPSTREAM_TIMEOUT = 2.0
CACHE_SIZE = 10_000
CACHE_MAX_TTL = 30
NEGATIVE_TTL_NO_SOA = 5


def read_resolv_conf(path: str | Path) -> list[tuple[str, int]]:
    """The upstreams (address, port) a resolv.conf names; [] when it cannot be read."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        log.warning("dns: cannot read %s: %s; names outside the cluster will get SERVFAIL", path, e)
        return []
    out: list[tuple[str, int]] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 2 or fields[0] != "nameserver":
            continue
        upstream = parse_host_port(fields[1], 53)
        if upstream is not None:
            out.append(upstream)
    return out


def parse_host_port(value: str, default_port: int) -> tuple[str, int] | None:
    """``IP``, ``IP:PORT`` or ``[IPv6]:PORT`` as (address, port); None when it is none of these."""
    host, port = value, default_port
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                return None
            port = int(rest[1:])
    elif value.count(":") == 1:
        host, _, p = value.partition(":")
        if not p.isdigit():
            return None
        port = int(p)
    try:
        ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return None
    return (host, port) if 0 < port < 65536 else None


@dataclass(slots=True)
class _Entry:
    stored: float
    ttl: int
    msg: dns.message.Message


class Cache:
    """Upstream answers by (lowercase name, type, class): bounded, TTL-respecting (see module doc)."""

    def __init__(self, size: int = CACHE_SIZE, max_ttl: int = CACHE_MAX_TTL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.max_ttl = max_ttl
        self.clock = clock
        self._entries: OrderedDict[tuple[bytes, int, int], _Entry] = OrderedDict()
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple[bytes, int, int]) -> dns.message.Message | None:
        """A copy of the cached answer with TTLs aged, or None (expired entries are dropped)."""
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        age = int(self.clock() - entry.stored)
        if age >= entry.ttl:
            del self._entries[key]
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return _aged(entry.msg, age)

    def put(self, key: tuple[bytes, int, int], msg: dns.message.Message) -> dns.message.Message:
        """Keep ``msg``; returns it as clients get it (TTLs capped at ``max_ttl``, as CoreDNS's
        cache does, so that the first answer and the cached ones agree)."""
        ttl = cache_ttl(msg)
        capped = _aged(msg, 0, self.max_ttl)
        if ttl is None:
            return capped
        self._entries[key] = _Entry(self.clock(), min(ttl, self.max_ttl), capped)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return capped


def cache_ttl(msg: dns.message.Message) -> int | None:
    """How long an upstream answer may be kept (None: not at all)."""
    rcode = msg.rcode()
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        return None
    if msg.answer and rcode == dns.rcode.NOERROR:
        return min(rrset.ttl for rrset in msg.answer)
    for rrset in msg.authority:
        if rrset.rdtype == dns.rdatatype.SOA and len(rrset):
            return min(rrset.ttl, rrset[0].minimum)  # type: ignore[attr-defined]
    return NEGATIVE_TTL_NO_SOA


def _aged(msg: dns.message.Message, age: int, cap: int = 1 << 31) -> dns.message.Message:
    out = dns.message.Message(id=msg.id)
    out.flags = msg.flags
    out.set_rcode(msg.rcode())
    for src, dst in ((msg.answer, out.answer), (msg.authority, out.authority), (msg.additional, out.additional)):
        for rrset in src:
            copy = rrset.copy()
            copy.ttl = max(0, min(rrset.ttl, cap) - age)
            dst.append(copy)
    return out


class Forwarder:
    """Ask the upstreams, through the cache (see the module doc)."""

    def __init__(self, upstreams: Sequence[tuple[str, int]], cache: Cache | None = None,
                 timeout: float = UPSTREAM_TIMEOUT) -> None:
        self.upstreams = list(upstreams)
        self.cache = cache or Cache()
        self.timeout = timeout
        self._inflight: dict[tuple[bytes, int, int], asyncio.Future[dns.message.Message]] = {}
        self._preferred = 0

    async def resolve(self, name: dns.name.Name, rdtype: int, rdclass: int = 1) -> dns.message.Message:
        """The upstream answer (answer, authority and additional sections; rcode; flags)."""
        key = (name.to_wire().lower(), rdtype, rdclass)  # type: ignore[union-attr]
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        pending = self._inflight.get(key)
        if pending is not None:
            return _aged(await asyncio.shield(pending), 0)
        fut: asyncio.Future[dns.message.Message] = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            msg = self.cache.put(key, await self._exchange(name, rdtype, rdclass))
            fut.set_result(msg)
        except BaseException as e:
            fut.set_exception(e)
            with contextlib.suppress(BaseException):
                fut.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        finally:
            del self._inflight[key]
        return _aged(msg, 0)

    async def _exchange(self, name: dns.name.Name, rdtype: int, rdclass: int) -> dns.message.Message:
        n = len(self.upstreams)
        for i in range(n):
            index = (self._preferred + i) % n
            host, port = self.upstreams[index]
            query = dns.message.make_query(name, dns.rdatatype.RdataType.make(rdtype),
                                           dns.rdataclass.RdataClass.make(rdclass), use_edns=0, payload=1232)
            try:
                answer = await dns.asyncquery.udp(query, host, timeout=self.timeout, port=port)
                if answer.flags & dns.flags.TC:
                    answer = await dns.asyncquery.tcp(query, host, timeout=self.timeout, port=port)
            except (dns.exception.DNSException, OSError, EOFError) as e:
                log.info("dns: upstream %s:%d failed for %s: %s", host, port, name, e)
                continue
            if answer.rcode() in (dns.rcode.SERVFAIL, dns.rcode.REFUSED) and i + 1 < n:
                continue
            self._preferred = index
            return answer
        servfail = dns.message.Message()
        servfail.flags = dns.flags.QR | dns.flags.RA
        servfail.set_rcode(dns.rcode.SERVFAIL)
        return servfail
