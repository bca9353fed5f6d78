"""``kyb dns``'s ``/metrics`` (CoreDNS's prometheus plugin), scraped from a real process after real
queries over UDP and TCP, parsed with prometheus_client's parser: exactly the series those queries
added, under CoreDNS's names, help texts, labels and buckets; and the process's own metrics."""

from __future__ import annotations

import socket
import struct
import urllib.request

import dns.message
import dns.rcode
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kybernetes.testing import ServerProcess
from tests.dns.test_dns_process import DNSProcess, apply, dnsproc, svc

__all__ = ["dnsproc"]
pytestmark = pytest.mark.integration

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
SERVER = {"zone": ".", "view": ""}
TIME_LE = ["0.00025", "0.0005", "0.001", "0.002", "0.004", "0.008", "0.016", "0.032", "0.064", "0.128",
           "0.256", "0.512", "1.024", "2.048", "4.096", "8.192", "+Inf"]
SIZE_LE = ["0.0", "100.0", "200.0", "300.0", "400.0", "511.0", "1023.0", "2047.0", "4095.0", "8291.0",
           "16000.0", "32000.0", "48000.0", "64000.0", "+Inf"]


def scrape(proc: DNSProcess) -> tuple[Samples, dict[str, tuple[str, str]]]:
    """Every sample by (name, labels), and every family's (type, help)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{proc.metrics}/metrics", timeout=5) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    samples: Samples = {}
    families: dict[str, tuple[str, str]] = {}
    for family in text_string_to_metric_families(text):
        families[family.name] = (family.type, family.documentation)
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples, families


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


def udp(proc: DNSProcess, query: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.sendto(query, ("127.0.0.1", proc.port))
        return s.recv(65535)


def tcp(proc: DNSProcess, query: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", proc.port), timeout=3) as c:
        c.sendall(struct.pack("!H", len(query)) + query)
        head = c.recv(2, socket.MSG_WAITALL)
        return c.recv(struct.unpack("!H", head)[0], socket.MSG_WAITALL)


def test_metrics_count_each_query(server: ServerProcess, namespace: str, dnsproc: DNSProcess) -> None:
    ns = namespace
    apply(server, ns, svc("web"))
    ip = server.kubectl("get", "svc", "web", "-n", ns, "-o", "jsonpath={.spec.clusterIP}").stdout.strip()
    web = f"web.{ns}.svc.cluster.local"
    dnsproc.wait_for(web, "A", [ip])
    server_label = f"dns://:{dnsproc.port}"
    before, families = scrape(dnsproc)

    a_udp = dns.message.make_query(web, "A", use_edns=False).to_wire()
    nx_udp = dns.message.make_query(f"nope.{ns}.svc.cluster.local", "A", use_edns=False).to_wire()
    a_tcp = dns.message.make_query(web, "A").to_wire()
    replies = {"a_udp": udp(dnsproc, a_udp), "nx_udp": udp(dnsproc, nx_udp), "a_tcp": tcp(dnsproc, a_tcp)}
    assert dns.message.from_wire(replies["a_udp"]).rcode() == dns.rcode.NOERROR
    assert dns.message.from_wire(replies["nx_udp"]).rcode() == dns.rcode.NXDOMAIN
    assert dns.message.from_wire(replies["a_tcp"]).rcode() == dns.rcode.NOERROR

    after, _ = scrape(dnsproc)
    added = {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}
    base = {"server": server_label, **SERVER}
    expected: Samples = {
        key("coredns_dns_requests_total", **base, proto="udp", family="1", type="A"): 2,
        key("coredns_dns_requests_total", **base, proto="tcp", family="1", type="A"): 1,
        key("coredns_dns_responses_total", **base, rcode="NOERROR", plugin="kubernetes"): 2,
        key("coredns_dns_responses_total", **base, rcode="NXDOMAIN", plugin="kubernetes"): 1,
        key("coredns_dns_request_size_bytes_count", **base, proto="udp"): 2,
        key("coredns_dns_request_size_bytes_sum", **base, proto="udp"): len(a_udp) + len(nx_udp),
        key("coredns_dns_request_size_bytes_count", **base, proto="tcp"): 1,
        key("coredns_dns_request_size_bytes_sum", **base, proto="tcp"): len(a_tcp),
        key("coredns_dns_response_size_bytes_count", **base, proto="udp"): 2,
        key("coredns_dns_response_size_bytes_sum", **base, proto="udp"):
            len(replies["a_udp"]) + len(replies["nx_udp"]),
        key("coredns_dns_response_size_bytes_count", **base, proto="tcp"): 1,
        key("coredns_dns_response_size_bytes_sum", **base, proto="tcp"): len(replies["a_tcp"]),
        key("coredns_dns_request_duration_seconds_count", **base): 3,
    }
    for k, v in expected.items():
        assert added.get(k) == v, (k, added.get(k))
    coredns_added = {k for k in added if k[0].startswith("coredns_")}
    buckets = {k for k in coredns_added if k[0].endswith("_bucket") or k[0] == "coredns_dns_request_duration_seconds_sum"}
    assert coredns_added - buckets == set(expected), sorted(coredns_added - buckets - set(expected))

    # Every bucket bound CoreDNS declares, each size bucket counting exactly the messages that fit.
    le = {k: dict(k[1])["le"] for k in after if k[0].endswith("_bucket")}
    assert [v for k, v in le.items() if k[0] == "coredns_dns_request_duration_seconds_bucket"] == TIME_LE
    udp_sizes = [v for k, v in le.items()
                 if k[0] == "coredns_dns_request_size_bytes_bucket" and ("proto", "udp") in k[1]]
    assert udp_sizes == SIZE_LE
    fits = key("coredns_dns_response_size_bytes_bucket", **base, proto="tcp", le="100.0")
    assert added.get(fits, 0) == (1 if len(replies["a_tcp"]) <= 100 else 0)
    assert after[key("coredns_dns_response_size_bytes_bucket", **base, proto="tcp", le="+Inf")] == 1

    assert families["coredns_dns_requests"] == ("counter", "Counter of DNS requests made per zone, protocol and family.")
    assert families["coredns_dns_responses"] == ("counter", "Counter of response status codes.")
    assert families["coredns_dns_request_duration_seconds"] == (
        "histogram", "Histogram of the time (in seconds) each request took per zone.")
    assert families["coredns_dns_request_size_bytes"] == (
        "histogram", "Size of the EDNS0 UDP buffer in bytes (64K for TCP) per zone and protocol.")
    assert families["coredns_dns_response_size_bytes"] == ("histogram", "Size of the returned response in bytes.")
    info = [dict(k[1]) for k in after if k[0] == "coredns_build_info"]
    assert len(info) == 1 and set(info[0]) == {"version", "revision", "goversion"}, info
    assert info[0]["goversion"].startswith("python3.")
    assert {"process_cpu_seconds", "process_resident_memory_bytes", "python_info", "python_gc_objects_collected"} \
        <= set(families)
