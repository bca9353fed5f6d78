"""The DNS server: UDP and TCP on one address, answers from the zone or from the forwarder.

Per query (:meth:`DNSServer.answer`):

1. :func:`wire.parse_query`; a query of another shape goes through dnspython's parser instead
   (:meth:`DNSServer._slow_parse`): unparsable with a header -> FORMERR, opcode other than QUERY
   -> NOTIMP, EDNS version > 0 -> BADVERS, a response (QR set) or less than a header -> dropped.
2. The precomputed answer for (name, type), if any: header + the client's question + bytes.
3. A name in the cluster zone: an ExternalName's CNAME is chased (in the zone or upstream), else
   :meth:`ClusterZone.lookup` answers (pods, NODATA, NXDOMAIN with the SOA).
4. Everything else -- names outside the zone, reverse names with no PTR here -- is forwarded
   (:class:`~kybernetes.dns.forward.Forwarder`); the zone's records never answer for them.

UDP answers longer than 512 bytes (without EDNS) or than the client's EDNS payload size are cut
to the question with TC set; TCP answers are not cut (RFC 7766). A query that raises anywhere is
logged and answered SERVFAIL: a malformed packet never stops the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections.abc import Awaitable, Coroutine
from typing import Any

import dns.exception
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rrset

from kybernetes.aiorun import wait_for
from kybernetes.dns import wire
from kybernetes.dns.forward import Forwarder
from kybernetes.dns.metrics import DNSMetrics
from kybernetes.dns.wire import name_wire
from kybernetes.dns.zone import ClusterZone

log = logging.getLogger(__name__)

TCP_IDLE_TIMEOUT = 10.0
TCP_MAX_CONNECTIONS = 256
MAX_PENDING = 1024
"""Queries waiting on upstreams at once; more are answered SERVFAIL at once (a flood of distinct
names must not grow the server without bound)."""
MAX_CNAME_CHAIN = 8
SERVFAIL = 2
CNAME = 5


class DNSServer:
    """Answers queries for one cluster zone (see the module doc); the transports are below."""

    def __init__(self, zone: ClusterZone, forwarder: Forwarder, metrics: DNSMetrics | None = None) -> None:
        self.zone = zone
        self.forwarder = forwarder
        self.metrics = metrics
        """Counts every response sent, if set (``kyb dns --metrics-port``)."""
        self.queries = 0
        self.errors = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tcp_clients = 0

    # -- one query -------------------------------------------------------------------------------------

    def answer(self, data: bytes, limit: int) -> bytes | Coroutine[Any, Any, bytes | None] | None:
        """The response to ``data`` (at most ``limit`` bytes), a coroutine that makes it, or None."""
        self.queries += 1
        try:
            query = wire.parse_query(data)
            if query is None:
                query_or_reply = self._slow_parse(data)
                if not isinstance(query_or_reply, wire.Query):
                    return query_or_reply
                query = query_or_reply
            found = self.zone.answers.get(query.key)
            if found is not None:
                return wire.assemble(query, found, limit if limit else wire.udp_limit(query))
            return self._answer_miss(query, limit)
        except Exception:
            self.errors += 1
            log.exception("dns: failed to answer a query")
            return wire.error_response(data, SERVFAIL)

    def _answer_miss(self, query: wire.Query, limit: int) -> bytes | Coroutine[Any, Any, bytes | None]:
        limit = limit or wire.udp_limit(query)
        if query.qclass not in (1, 255):
            name = dns.name.from_wire(query.question, 0)[0]
            if self.zone.in_zone(name):
                return wire.assemble(query, self.zone.nodata, limit)
            return self._forwarded(query, limit)
        target = self.zone.cname_target(query.key[:-2])
        if target is not None and query.qtype != CNAME:
            return self._chase(query, target, limit)
        local = self.zone.lookup(query.key, query.qtype)
        if local is not None:
            return wire.assemble(query, local, limit)
        return self._forwarded(query, limit)

    def _slow_parse(self, data: bytes) -> wire.Query | bytes | None:
        try:
            msg = dns.message.from_wire(data, ignore_trailing=False, question_only=False)
        except dns.exception.DNSException:
            return wire.error_response(data, dns.rcode.FORMERR)
        except Exception:  # dnspython raises others on some garbage (e.g. ValueError)
            return wire.error_response(data, dns.rcode.FORMERR)
        if msg.flags & wire.QR:
            return None
        if msg.opcode() != dns.opcode.QUERY:
            return wire.error_response(data, dns.rcode.NOTIMP)
        if msg.edns > 0:
            reply = dns.message.make_response(msg)
            reply.set_rcode(dns.rcode.BADVERS)
            return reply.to_wire()
        if len(msg.question) != 1:
            return wire.error_response(data, dns.rcode.FORMERR)
        return wire.query_from_message(msg)

    async def _forwarded(self, query: wire.Query, limit: int) -> bytes | None:
        name = dns.name.from_wire(query.question, 0)[0]
        upstream = await self.forwarder.resolve(name, query.qtype, query.qclass)
        reply = wire.reply_rrsets(query, upstream.rcode(), list(upstream.answer), list(upstream.authority),
                                  list(upstream.additional), upstream.flags & (wire.RA | wire.AA))
        return wire.message_to_answer_bytes(query, reply, limit)

    async def _chase(self, query: wire.Query, target: dns.name.Name, limit: int) -> bytes | None:
        """An ExternalName: its CNAME, then the target's records of the asked type (CoreDNS)."""
        owner = dns.name.from_wire(query.question, 0)[0]
        answer = [dns.rrset.from_text(owner, self.zone.ttl, "IN", "CNAME", target.to_text())]
        rcode, authority = dns.rcode.NOERROR, []
        for _ in range(MAX_CNAME_CHAIN):
            if self.zone.in_zone(target):
                sub = await self._local_message(target, query.qtype)
            else:
                sub = await self.forwarder.resolve(target, query.qtype, query.qclass)
            rcode, authority = sub.rcode(), list(sub.authority)
            answer += list(sub.answer)
            nxt = self.zone.cname_target(name_wire(target).lower())
            if nxt is None or any(r.rdtype != CNAME for r in sub.answer):
                break
            answer.append(dns.rrset.from_text(target, self.zone.ttl, "IN", "CNAME", nxt.to_text()))
            target = nxt
        reply = wire.reply_rrsets(query, rcode, answer, authority, [], wire.AA | wire.RA)
        return wire.message_to_answer_bytes(query, reply, limit)

    async def _local_message(self, name: dns.name.Name, qtype: int) -> dns.message.Message:
        wire_name = name_wire(name)
        q = wire.Query(0, 0, wire_name + struct.pack("!HH", qtype, 1), wire_name.lower() + struct.pack("!H", qtype),
                       qtype, 1, 0)
        found = self.zone.answers.get(q.key) or self.zone.lookup(q.key, qtype) or self.zone.nxdomain
        return dns.message.from_wire(wire.assemble(q, found, 65535))

    # -- transports ------------------------------------------------------------------------------------

    async def serve(self, host: str, port: int) -> list[Any]:
        """Listen on UDP and TCP; returns the UDP transport and TCP server (close them to stop)."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _UDP(self), local_addr=(host, port),
                                                           reuse_port=False)
        tcp = await asyncio.start_server(self._tcp_client, host, port, reuse_address=True)
        return [transport, tcp]

    def overloaded(self) -> bool:
        return len(self._tasks) >= MAX_PENDING

    def spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._tcp_clients >= TCP_MAX_CONNECTIONS:
            writer.close()
            return
        self._tcp_clients += 1
        family = _family(writer.get_extra_info("peername"))
        try:
            while True:
                head = await wait_for(reader.readexactly(2), TCP_IDLE_TIMEOUT)
                data = await wait_for(reader.readexactly(struct.unpack("!H", head)[0]), TCP_IDLE_TIMEOUT)
                started = time.perf_counter()
                result = self.answer(data, 65535)
                plugin = ""
                if result is not None and not isinstance(result, bytes):
                    plugin = _plugin_of(result)
                    result = await self._guarded(result, data)
                elif result is not None:
                    plugin = _zone_plugin(result)
                if result is None:
                    continue
                if self.metrics is not None:
                    self.metrics.record("tcp", family, data, result, plugin, started)
                writer.write(struct.pack("!H", len(result)) + result)
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        finally:
            self._tcp_clients -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _guarded(self, pending: Coroutine[Any, Any, bytes | None], data: bytes) -> bytes | None:
        try:
            return await pending
        except Exception:
            self.errors += 1
            log.exception("dns: failed to answer a query")
            return wire.error_response(data, SERVFAIL)


class _UDP(asyncio.DatagramProtocol):
    def __init__(self, server: DNSServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        metrics = self.server.metrics
        started = time.perf_counter() if metrics is not None else 0.0
        try:
            fast = wire.fast_answer(data, self.server.zone.answers)
        except Exception:  # never expected; the full path below logs what it finds
            fast = None
        if fast is not None:
            self.server.queries += 1
            self.transport.sendto(fast, addr)  # type: ignore[union-attr]
            if metrics is not None:
                metrics.record("udp", _family(addr), data, fast, "kubernetes", started)
            return
        result = self.server.answer(data, 0)
        if result is None:
            return
        assert self.transport is not None
        if isinstance(result, bytes):
            self.transport.sendto(result, addr)
            if metrics is not None:
                metrics.record("udp", _family(addr), data, result, _zone_plugin(result), started)
            return
        if self.server.overloaded():
            result.close()  # a coroutine, never started
            refused = wire.error_response(data, SERVFAIL)
            if refused is not None:
                self.transport.sendto(refused, addr)
                if metrics is not None:
                    metrics.record("udp", _family(addr), data, refused, "", started)
            return
        self.server.spawn(self._send_later(result, data, addr, started))

    async def _send_later(self, pending: Coroutine[Any, Any, bytes | None], data: bytes, addr: Any,
                          started: float) -> None:
        plugin = _plugin_of(pending)
        result = await self.server._guarded(pending, data)
        if result is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(result, addr)
            if self.server.metrics is not None:
                self.server.metrics.record("udp", _family(addr), data, result, plugin, started)

    def error_received(self, exc: Exception) -> None:
        log.debug("dns: UDP error: %s", exc)


# -- metric labels ---------------------------------------------------------------------------------------

def _family(addr: Any) -> int:
    """CoreDNS's ``family`` label: 2 for an IPv6 peer (a 4-tuple address), else 1."""
    return 2 if isinstance(addr, tuple) and len(addr) == 4 else 1


def _zone_plugin(reply: bytes) -> str:
    """A reply made without awaiting: the zone's NOERROR/NXDOMAIN, or an error the server wrote."""
    return "kubernetes" if len(reply) > 3 and reply[3] & 0x0F in (0, 3) else ""


def _plugin_of(pending: Coroutine[Any, Any, bytes | None]) -> str:
    """The CoreDNS plugin a pending answer stands for: upstream's (``forward``) or the zone's (an
    ExternalName chased by ``kubernetes``). An error raised on the way is still reported under it."""
    return "forward" if getattr(pending, "cr_code", None) is _FORWARDED else "kubernetes"


_FORWARDED = DNSServer._forwarded.__code__
