"""The server on loopback sockets, in process: forwarding to a local static upstream (never the
machine's resolvers), the cache, TCP, truncation and EDNS sizes, error answers, and fuzzing."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from collections.abc import AsyncIterator, Iterator
from typing import Any

import dns.asyncquery
import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kybernetes.dns import wire
from kybernetes.dns.forward import Cache, Forwarder, cache_ttl, read_resolv_conf
from kybernetes.dns.server import DNSServer
from kybernetes.dns.zone import ClusterZone
from kybernetes.testing import free_port
from tests.dns.test_zone import endpoint_slice, ep, service, values
from tests.dns.upstream import StaticUpstream

UPSTREAM_RECORDS = {
    ("www.example.com", "A"): ["192.0.2.53"],
    ("www.example.com", "AAAA"): ["2001:db8::53"],
    ("big.example.com", "TXT"): [f'"{"x" * 200}-{i}"' for i in range(5)],
}


@pytest.fixture
def upstream() -> Iterator[StaticUpstream]:
    with StaticUpstream(UPSTREAM_RECORDS, ttl=60) as u:
        yield u


@pytest.fixture
async def served(upstream: StaticUpstream) -> AsyncIterator[tuple[DNSServer, int]]:
    zone = ClusterZone()
    zone.on_namespace({"metadata": {"name": "default"}})
    zone.on_service(service("web"))
    zone.on_service(service("ext", cluster_ip=None, type="ExternalName", externalName="www.example.com"))
    zone.on_service(service("big", cluster_ip="None"))
    zone.on_slice(endpoint_slice("big", [ep(f"10.42.1.{i}") for i in range(1, 61)]))
    server = DNSServer(zone, Forwarder([("127.0.0.1", upstream.port)]))
    port = free_port()
    closers = await server.serve("127.0.0.1", port)
    try:
        yield server, port
    finally:
        for c in closers:
            c.close()


async def udp(port: int, name: str, rdtype: str, **kw: Any) -> dns.message.Message:
    return await dns.asyncquery.udp(dns.message.make_query(name, rdtype, **kw), "127.0.0.1", timeout=3, port=port,
                                    ignore_trailing=False)


async def test_forwarding_and_cache(served: tuple[DNSServer, int], upstream: StaticUpstream) -> None:
    _, port = served
    r = await udp(port, "WWW.example.com", "A")
    assert values(r) == ["192.0.2.53"] and r.answer[0].ttl <= 30  # capped as `cache 30`
    again = await udp(port, "www.example.com", "A")
    assert values(again) == ["192.0.2.53"]
    assert upstream.asked[("www.example.com.", "A")] == 1  # the second came from the cache
    nx = await udp(port, "nope.example.com", "A")
    assert nx.rcode() == dns.rcode.NXDOMAIN and nx.authority[0].rdtype == dns.rdatatype.SOA
    await udp(port, "nope.example.com", "A")
    assert upstream.asked[("nope.example.com.", "A")] == 1  # negative answers are cached too


async def test_names_outside_the_zone_never_come_from_records(served: tuple[DNSServer, int],
                                                              upstream: StaticUpstream) -> None:
    _, port = served
    r = await udp(port, "web.default.svc.cluster.local.example.com", "A")
    assert r.rcode() == dns.rcode.NXDOMAIN
    assert upstream.asked[("web.default.svc.cluster.local.example.com.", "A")] == 1
    local = await udp(port, "web.default.svc.cluster.local", "A")
    assert values(local) == ["10.43.0.10"]
    assert ("web.default.svc.cluster.local.", "A") not in upstream.asked


async def test_external_name_chased_upstream(served: tuple[DNSServer, int]) -> None:
    _, port = served
    r = await udp(port, "ext.default.svc.cluster.local", "A")
    assert values(r, "CNAME") == ["www.example.com."] and values(r, "A") == ["192.0.2.53"]


async def test_external_name_to_a_service_of_the_cluster(served: tuple[DNSServer, int]) -> None:
    server, port = served
    server.zone.on_service(service("alias", cluster_ip=None, type="ExternalName",
                                   externalName="web.default.svc.cluster.local"))
    r = await udp(port, "alias.default.svc.cluster.local", "A")
    assert values(r, "CNAME") == ["web.default.svc.cluster.local."] and values(r, "A") == ["10.43.0.10"]


async def test_truncation_edns_and_tcp(served: tuple[DNSServer, int]) -> None:
    _, port = served
    name = "big.default.svc.cluster.local"
    plain = await udp(port, name, "A")
    assert plain.flags & dns.flags.TC and not plain.answer  # 60 A records are more than 512 bytes
    edns = await udp(port, name, "A", use_edns=0, payload=4096)
    assert not edns.flags & dns.flags.TC and len(values(edns)) == 60 and edns.edns == 0
    small = await udp(port, name, "A", use_edns=0, payload=600)
    assert small.flags & dns.flags.TC
    tcp = await dns.asyncquery.tcp(dns.message.make_query(name, "A"), "127.0.0.1", timeout=3, port=port)
    assert len(values(tcp)) == 60
    # Forwarded answers too: the upstream truncates over UDP, we ask it again over TCP.
    txt = await dns.asyncquery.tcp(dns.message.make_query("big.example.com", "TXT"), "127.0.0.1", timeout=3,
                                   port=port)
    assert len(values(txt)) == 5
    cut = await udp(port, "big.example.com", "TXT")
    assert cut.flags & dns.flags.TC


async def test_error_answers(served: tuple[DNSServer, int]) -> None:
    _, port = served
    notify = dns.message.make_query("web.default.svc.cluster.local", "A")
    notify.set_opcode(dns.opcode.NOTIFY)
    r = await dns.asyncquery.udp(notify, "127.0.0.1", timeout=3, port=port)
    assert r.rcode() == dns.rcode.NOTIMP
    v1 = dns.message.make_query("web.default.svc.cluster.local", "A", use_edns=1)
    r = await dns.asyncquery.udp(v1, "127.0.0.1", timeout=3, port=port)
    assert r.rcode() == dns.rcode.BADVERS
    two = dns.message.make_query("web.default.svc.cluster.local", "A")
    two.find_rrset(two.question, dns.name.from_text("x.cluster.local"), 1, 1, create=True)
    r = await dns.asyncquery.udp(two, "127.0.0.1", timeout=3, port=port)
    assert r.rcode() == dns.rcode.FORMERR


def test_no_upstream_is_servfail(tmp_path: Any) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("# none\nsearch example\nnameserver not-an-ip\n")
    assert read_resolv_conf(conf) == []
    conf.write_text("nameserver 192.0.2.1\nnameserver [::1]:5353\nnameserver 127.0.0.1:1053\n")
    assert read_resolv_conf(conf) == [("192.0.2.1", 53), ("::1", 5353), ("127.0.0.1", 1053)]

    async def go() -> dns.message.Message:
        return await Forwarder([]).resolve(dns.name.from_text("x.example"), 1)

    assert asyncio.run(go()).rcode() == dns.rcode.SERVFAIL


def test_cache_bounded_and_ttl_respecting() -> None:
    now = [100.0]
    cache = Cache(size=2, max_ttl=30, clock=lambda: now[0])
    for i, ttl in enumerate((10, 300, 20)):
        m = dns.message.Message()
        m.answer.append(dns.rrset.from_text(f"n{i}.example.", ttl, "IN", "A", "192.0.2.1"))
        cache.put((b"n%d" % i, 1, 1), m)
    assert len(cache) == 2 and cache.get((b"n0", 1, 1)) is None  # the oldest was evicted
    now[0] += 12
    got = cache.get((b"n1", 1, 1))
    assert got is not None and got.answer[0].ttl == 18  # capped at 30, aged 12
    now[0] += 10
    assert cache.get((b"n2", 1, 1)) is None  # its own TTL of 20 ran out
    servfail = dns.message.Message()
    servfail.set_rcode(dns.rcode.SERVFAIL)
    assert cache_ttl(servfail) is None


@pytest.mark.parametrize("kw", [{}, {"use_edns": 0}, {"use_edns": 0, "payload": 4096}, {"flags": 0},
                                {"flags": dns.flags.RD | dns.flags.CD}])
@pytest.mark.parametrize("name", ["web.default.svc.cluster.local", "WEB.Default.svc.cluster.local",
                                  "big.default.svc.cluster.local", "_http._tcp.web.default.svc.cluster.local"])
def test_fast_path_agrees_with_the_full_path(name: str, kw: dict[str, Any]) -> None:
    zone = ClusterZone()
    zone.on_service(service("web"))
    zone.on_service(service("big", cluster_ip="None"))
    zone.on_slice(endpoint_slice("big", [ep(f"10.42.1.{i}") for i in range(1, 61)]))
    server = DNSServer(zone, Forwarder([]))
    for rdtype in ("A", "SRV", "AAAA"):
        data = dns.message.make_query(name, rdtype, **kw).to_wire()
        fast = wire.fast_answer(data, zone.answers)
        full = server.answer(data, 0)
        assert isinstance(full, bytes)
        assert fast is None or fast == full
        if rdtype == "A" and name.lower().startswith("web") and not kw.get("flags", 0) & dns.flags.CD:
            assert fast is not None  # the common case does take the fast path


VALID = dns.message.make_query("web.default.svc.cluster.local", "A", use_edns=0).to_wire()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.binary(max_size=600), st.integers(0, len(VALID)).map(lambda n: VALID[:n]),
                 st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)).map(
                     lambda t: VALID[:t[0]] + bytes([t[1]]) + VALID[t[0] + 1:])))
def test_fuzz_never_raises(data: bytes) -> None:
    zone = ClusterZone()
    zone.on_namespace({"metadata": {"name": "default"}})
    zone.on_service(service("web"))
    server = DNSServer(zone, Forwarder([]))
    fast = wire.fast_answer(data, zone.answers)
    out = server.answer(data, 0)
    assert fast is None or fast == out  # the UDP fast path agrees with the full one
    if out is not None and not isinstance(out, bytes):
        out = asyncio.run(server._guarded(out, data))  # type: ignore[arg-type]
    assert server.errors == 0
    if out is not None:
        assert len(out) >= 12 and out[:2] == data[:2]  # always a reply to the same id
        dns.message.from_wire(out)  # and well-formed
    ok = server.answer(VALID, 0)
    assert isinstance(ok, bytes) and values(dns.message.from_wire(ok)) == ["10.43.0.10"]


def _send_garbage(port: int) -> None:
    rng = random.Random(1234)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _ in range(300):
            pkt = rng.randbytes(rng.randint(0, 700)) if rng.random() < 0.4 else VALID[:rng.randint(0, len(VALID))]
            sock.sendto(pkt, ("127.0.0.1", port))
    for payload in (b"\x00", b"\x00\x05abc", struct.pack("!H", 40) + b"\x01" * 40):
        with socket.create_connection(("127.0.0.1", port), timeout=3) as conn:
            conn.sendall(payload)


async def test_fuzz_over_sockets_keeps_serving(served: tuple[DNSServer, int]) -> None:
    server, port = served
    await asyncio.to_thread(_send_garbage, port)
    # The burst can overflow the socket's receive buffer (UDP drops, as it should): retry as
    # clients do, each try with its own timeout.
    query = dns.message.make_query("web.default.svc.cluster.local", "A")
    for attempt in range(10):
        try:
            r = await asyncio.to_thread(dns.query.udp, query, "127.0.0.1", timeout=1, port=port)
            break
        except dns.exception.Timeout:
            assert attempt < 9, "the server stopped answering"
    assert values(r) == ["10.43.0.10"] and server.errors == 0


async def test_pending_forwards_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A flood of names for an upstream that never answers: beyond MAX_PENDING, SERVFAIL at once."""
    import kybernetes.dns.server as server_module

    monkeypatch.setattr(server_module, "MAX_PENDING", 2)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as black_hole:
        black_hole.bind(("127.0.0.1", 0))
        server = DNSServer(ClusterZone(), Forwarder([("127.0.0.1", black_hole.getsockname()[1])], timeout=5))
        port = free_port()
        closers = await server.serve("127.0.0.1", port)

        def flood() -> list[int]:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(2)
                for i in range(4):
                    s.sendto(dns.message.make_query(f"n{i}.example.com", "A").to_wire(), ("127.0.0.1", port))
                rcodes = []
                with contextlib.suppress(TimeoutError):
                    while True:
                        rcodes.append(dns.message.from_wire(s.recv(512)).rcode())
                return rcodes

        try:
            assert await asyncio.to_thread(flood) == [dns.rcode.SERVFAIL, dns.rcode.SERVFAIL]
            assert len(server._tasks) == 2
        finally:
            for c in closers:
                c.close()
            for t in list(server._tasks):
                t.cancel()
