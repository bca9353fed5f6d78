"""The zone from informer-like events: records per the Kubernetes DNS spec, answers precomputed,
updates and deletes reflected at once, negative answers with the SOA. No network."""

from __future__ import annotations

from typing import Any

import dns.message
import dns.rcode
import dns.rdatatype

from kybernetes.dns.forward import Forwarder
from kybernetes.dns.server import DNSServer
from kybernetes.dns.zone import ClusterZone

Obj = dict[str, Any]


def service(name: str, ns: str = "default", *, cluster_ip: str | None = "10.43.0.10",
            ports: list[Obj] | None = None, **spec: Any) -> Obj:
    s: Obj = {"ports": ports if ports is not None else [{"name": "http", "port": 80, "protocol": "TCP"}], **spec}
    if cluster_ip is not None:
        s["clusterIP"] = cluster_ip
        if cluster_ip != "None":
            s.setdefault("clusterIPs", [cluster_ip])
    return {"metadata": {"namespace": ns, "name": name}, "spec": s}


def endpoint_slice(service_name: str, endpoints: list[Obj], ns: str = "default", name: str = "",
                   ports: list[Obj] | None = None, address_type: str = "IPv4") -> Obj:
    return {"metadata": {"namespace": ns, "name": name or f"{service_name}-abc",
                         "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": address_type,
            "ports": ports if ports is not None else [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": endpoints}


def ep(ip: str, ready: bool | None = True, hostname: str | None = None) -> Obj:
    e: Obj = {"addresses": [ip]}
    if ready is not None:
        e["conditions"] = {"ready": ready}
    if hostname:
        e["hostname"] = hostname
    return e


def ask(zone: ClusterZone, name: str, rdtype: str, **kw: Any) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype, **kw)
    out = DNSServer(zone, Forwarder([])).answer(q.to_wire(), 0)
    assert isinstance(out, bytes), f"{name} {rdtype} was not answered from the zone"
    reply = dns.message.from_wire(out)
    assert reply.id == q.id
    return reply


def forwarded(zone: ClusterZone, name: str, rdtype: str) -> bool:
    """Whether the server would forward the question (it returns a coroutine for that)."""
    out = DNSServer(zone, Forwarder([])).answer(dns.message.make_query(name, rdtype).to_wire(), 0)
    if isinstance(out, bytes) or out is None:
        return False
    out.close()  # type: ignore[union-attr]
    return True


def values(reply: dns.message.Message, rdtype: str = "") -> list[str]:
    return sorted(r.to_text() for rrset in reply.answer
                  if not rdtype or rrset.rdtype == dns.rdatatype.from_text(rdtype) for r in rrset)


def make_zone() -> ClusterZone:
    z = ClusterZone("cluster.local")
    z.on_namespace({"metadata": {"name": "default"}})
    return z


def test_cluster_ip_service_a_srv_ptr_and_case_insensitive() -> None:
    z = make_zone()
    z.on_service(service("web", ports=[{"name": "http", "port": 80, "protocol": "TCP"}, {"port": 81}]))
    r = ask(z, "Web.Default.svc.cluster.local", "A")
    assert values(r) == ["10.43.0.10"] and r.answer[0].ttl == 5
    assert r.question[0].name.to_text() == "Web.Default.svc.cluster.local."  # the client's spelling echoed
    assert r.flags & dns.flags.AA
    srv = ask(z, "_http._tcp.web.default.svc.cluster.local", "SRV")
    assert values(srv) == ["0 100 80 web.default.svc.cluster.local."]
    assert [a.to_text() for rrset in srv.additional for a in rrset] == ["10.43.0.10"]
    assert ask(z, "_81._tcp.web.default.svc.cluster.local", "SRV").rcode() == dns.rcode.NXDOMAIN  # unnamed
    assert values(ask(z, "10.0.43.10.in-addr.arpa", "PTR")) == ["web.default.svc.cluster.local."]
    assert forwarded(z, "11.0.43.10.in-addr.arpa", "PTR") and forwarded(z, "web.default.svc.example", "A")


def test_headless_service_one_record_per_ready_endpoint_and_hostnames() -> None:
    z = make_zone()
    z.on_service(service("db", cluster_ip="None"))
    assert ask(z, "db.default.svc.cluster.local", "A").rcode() == dns.rcode.NXDOMAIN  # no ready endpoint
    z.on_slice(endpoint_slice("db", [ep("10.42.0.5", hostname="db-0"), ep("10.42.0.6"), ep("10.42.0.7", ready=False)]))
    assert values(ask(z, "db.default.svc.cluster.local", "A")) == ["10.42.0.5", "10.42.0.6"]
    assert values(ask(z, "db-0.db.default.svc.cluster.local", "A")) == ["10.42.0.5"]
    assert values(ask(z, "10-42-0-6.db.default.svc.cluster.local", "A")) == ["10.42.0.6"]
    assert values(ask(z, "_http._tcp.db.default.svc.cluster.local", "SRV")) == [
        "0 50 8080 10-42-0-6.db.default.svc.cluster.local.", "0 50 8080 db-0.db.default.svc.cluster.local."]
    assert values(ask(z, "5.0.42.10.in-addr.arpa", "PTR")) == ["db-0.db.default.svc.cluster.local."]
    assert ask(z, "10-42-0-7.db.default.svc.cluster.local", "A").rcode() == dns.rcode.NXDOMAIN


def test_publish_not_ready_addresses() -> None:
    z = make_zone()
    z.on_service(service("db", cluster_ip="None", publishNotReadyAddresses=True))
    z.on_slice(endpoint_slice("db", [ep("10.42.0.7", ready=False)]))
    assert values(ask(z, "db.default.svc.cluster.local", "A")) == ["10.42.0.7"]


def test_updates_and_deletes_show_at_once() -> None:
    z = make_zone()
    z.on_service(service("db", cluster_ip="None"))
    z.on_slice(endpoint_slice("db", [ep("10.42.0.5")]))
    z.on_slice(endpoint_slice("db", [ep("10.42.0.9")]))  # the same slice, updated
    assert values(ask(z, "db.default.svc.cluster.local", "A")) == ["10.42.0.9"]
    assert forwarded(z, "5.0.42.10.in-addr.arpa", "PTR")  # no longer ours: the upstream's to answer
    z.on_slice_deleted(endpoint_slice("db", []))
    assert ask(z, "db.default.svc.cluster.local", "A").rcode() == dns.rcode.NXDOMAIN
    z.on_service(service("web"))
    z.on_service(service("web", cluster_ip="10.43.0.99", clusterIPs=["10.43.0.99"]))
    assert values(ask(z, "web.default.svc.cluster.local", "A")) == ["10.43.0.99"]
    z.on_service_deleted(service("web"))
    assert ask(z, "web.default.svc.cluster.local", "A").rcode() == dns.rcode.NXDOMAIN
    assert not z.answers.keys() - {k for k in z.answers if b"cluster" in k or b"dns-version" in k}


def test_a_slice_relabelled_to_another_service_leaves_the_first() -> None:
    z = make_zone()
    for name in ("a", "b"):
        z.on_service(service(name, cluster_ip="None"))
    old = endpoint_slice("a", [ep("10.42.0.5")], name="s1")
    z.on_slice(old)
    new = endpoint_slice("b", [ep("10.42.0.5")], name="s1")
    z.on_slice_update(old, new)
    assert ask(z, "a.default.svc.cluster.local", "A").rcode() == dns.rcode.NXDOMAIN
    assert values(ask(z, "b.default.svc.cluster.local", "A")) == ["10.42.0.5"]


def test_shared_ptr_is_reference_counted() -> None:
    z = make_zone()
    for name in ("a", "b"):
        z.on_service(service(name, cluster_ip="None"))
        z.on_slice(endpoint_slice(name, [ep("10.42.0.5")]))
    assert values(ask(z, "5.0.42.10.in-addr.arpa", "PTR")) == [
        "10-42-0-5.a.default.svc.cluster.local.", "10-42-0-5.b.default.svc.cluster.local."]
    z.on_service_deleted(service("a", cluster_ip="None"))
    assert values(ask(z, "5.0.42.10.in-addr.arpa", "PTR")) == ["10-42-0-5.b.default.svc.cluster.local."]


def test_dual_stack_and_ipv6_endpoints() -> None:
    z = make_zone()
    z.on_service(service("v6", cluster_ip="10.43.0.7", clusterIPs=["10.43.0.7", "fd00:43::7"]))
    assert values(ask(z, "v6.default.svc.cluster.local", "AAAA")) == ["fd00:43::7"]
    assert values(ask(z, "v6.default.svc.cluster.local", "A")) == ["10.43.0.7"]
    z.on_service(service("h6", cluster_ip="None"))
    z.on_slice(endpoint_slice("h6", [ep("fd00:42::5")], address_type="IPv6"))
    assert values(ask(z, "fd00-42--5.h6.default.svc.cluster.local", "AAAA")) == ["fd00:42::5"]


def test_external_name_is_a_cname() -> None:
    z = make_zone()
    z.on_service(service("ext", cluster_ip=None, type="ExternalName", externalName="www.Example.com"))
    assert values(ask(z, "ext.default.svc.cluster.local", "CNAME")) == ["www.example.com."]


def test_negative_answers_carry_the_soa() -> None:
    z = make_zone()
    z.on_service(service("web"))
    nx = ask(z, "nope.default.svc.cluster.local", "A")
    assert nx.rcode() == dns.rcode.NXDOMAIN and not nx.answer
    soa = nx.authority[0]
    assert soa.name.to_text() == "cluster.local." and soa.rdtype == dns.rdatatype.SOA
    assert soa[0].mname.to_text() == "ns.dns.cluster.local." and soa[0].rname.to_text() == "hostmaster.cluster.local."
    assert (soa[0].refresh, soa[0].retry, soa[0].expire, soa[0].minimum) == (7200, 1800, 86400, 5)
    nodata = ask(z, "web.default.svc.cluster.local", "AAAA")
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer and nodata.authority[0].rdtype == dns.rdatatype.SOA
    for exists in ("default.svc.cluster.local", "svc.cluster.local", "cluster.local"):
        assert ask(z, exists, "A").rcode() == dns.rcode.NOERROR, exists
    assert ask(z, "missing-ns.svc.cluster.local", "A").rcode() == dns.rcode.NXDOMAIN
    before = soa[0].serial
    z.on_service(service("web2"))
    assert ask(z, "nope.default.svc.cluster.local", "A").authority[0][0].serial > before


def test_pod_records_insecure_mode() -> None:
    z = make_zone()
    assert values(ask(z, "10-42-1-9.default.pod.cluster.local", "A")) == ["10.42.1.9"]
    assert values(ask(z, "fd00--9.default.pod.cluster.local", "AAAA")) == ["fd00::9"]
    assert ask(z, "10-42-1-9.nosuchns.pod.cluster.local", "A").rcode() == dns.rcode.NXDOMAIN
    assert ask(z, "not-an-ip.default.pod.cluster.local", "A").rcode() == dns.rcode.NXDOMAIN
    z.on_namespace_deleted({"metadata": {"name": "default"}})
    assert ask(z, "10-42-1-9.default.pod.cluster.local", "A").rcode() == dns.rcode.NXDOMAIN


def test_schema_version_and_ns() -> None:
    z = make_zone()
    assert values(ask(z, "dns-version.cluster.local", "TXT")) == ['"1.0.1"']
    z.on_service(service("kube-dns", "kube-system", cluster_ip="10.43.0.10"))
    ns = ask(z, "cluster.local", "NS")
    assert values(ns) == ["ns.dns.cluster.local."]
    assert [a.to_text() for rrset in ns.additional for a in rrset] == ["10.43.0.10"]


def test_other_cluster_domain() -> None:
    z = ClusterZone("Corp.Example")
    z.on_service(service("web"))
    assert values(ask(z, "web.default.svc.corp.example", "A")) == ["10.43.0.10"]


def test_an_answer_always_fits_a_tcp_message() -> None:
    z = make_zone()
    z.on_service(service("huge", cluster_ip="None"))
    z.on_slice(endpoint_slice("huge", [ep(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}") for i in range(5000)]))
    for rdtype in ("A", "SRV"):
        q = dns.message.make_query("huge.default.svc.cluster.local", rdtype)
        out = DNSServer(z, Forwarder([])).answer(q.to_wire(), 65535)
        assert isinstance(out, bytes) and len(out) <= 65535
        reply = dns.message.from_wire(out)
        assert 1000 < len(values(reply)) < 5000  # as many as fit


def test_records_without_a_wire_form_are_skipped() -> None:
    z = make_zone()
    z.on_service(service("ext", cluster_ip=None, type="ExternalName", externalName="a" * 64 + ".example.com"))
    z.on_service(service("web"))
    assert ask(z, "ext.default.svc.cluster.local", "CNAME").rcode() == dns.rcode.NXDOMAIN
    assert values(ask(z, "web.default.svc.cluster.local", "A")) == ["10.43.0.10"]
