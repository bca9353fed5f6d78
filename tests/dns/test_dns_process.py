"""``kyb dns`` as a process on a loopback port, against a real ``kyb server``: objects made with
kubectl, questions asked with ``dig`` (Debian's bind9-dnsutils) and dnspython's resolver, every
record kind of the spec, changes visible within seconds, forwarding to a static upstream on
loopback (never the machine's resolvers), and garbage on both transports survived."""

from __future__ import annotations

import json
import random
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.resolver
import pytest

from kybernetes.testing import ServerProcess, free_port, stop_process
from tests.dns.upstream import StaticUpstream

pytestmark = pytest.mark.integration
CHANGE_DEADLINE = 5.0  # seconds; typically well under one, but CI machines are loaded


def _http_status(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""
    except OSError:
        return 0, ""


class DNSProcess:
    def __init__(self, server: ServerProcess, tmp: Path, upstream: StaticUpstream) -> None:
        self.port, self.health, self.ready, self.metrics = free_port(), free_port(), free_port(), free_port()
        resolv = tmp / "resolv.conf"
        resolv.write_text(upstream.resolv_conf())
        self.log = tmp / "dns.log"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "kybernetes.cli", "dns", "--kubeconfig", str(server.kubeconfig),
                 "--listen", f"127.0.0.1:{self.port}", "--resolv-conf", str(resolv),
                 "--health-port", str(self.health), "--ready-port", str(self.ready),
                 "--metrics-port", str(self.metrics), "-v"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            if _http_status(f"http://127.0.0.1:{self.ready}/ready")[0] == 200:
                return
            time.sleep(0.05)
        raise TimeoutError(self.log.read_text())

    def dig(self, *args: str) -> str:
        res = subprocess.run(["dig", "@127.0.0.1", "-p", str(self.port), "+time=2", "+tries=1", *args],
                             capture_output=True, text=True, timeout=20)
        return res.stdout

    def resolver(self) -> dns.resolver.Resolver:
        r = dns.resolver.Resolver(configure=False)
        r.nameservers = ["127.0.0.1"]
        r.port = self.port
        r.lifetime = 3
        return r

    def wait_for(self, name: str, rdtype: str, expect: list[str], deadline: float = CHANGE_DEADLINE) -> float:
        """Seconds until ``name`` answers exactly ``expect`` (sorted texts; over TCP when the UDP answer
        was truncated); fails after ``deadline``."""
        start = time.monotonic()
        got: list[str] = []
        while True:
            q = dns.message.make_query(name, rdtype)
            reply, _ = dns.query.udp_with_fallback(q, "127.0.0.1", port=self.port, timeout=2)
            got = sorted(r.to_text() for rrset in reply.answer for r in rrset)
            if got == sorted(expect):
                return time.monotonic() - start
            if time.monotonic() - start > deadline:
                pytest.fail(f"{name} {rdtype}: {got} after {deadline}s, expected {expect}")
            time.sleep(0.02)


@pytest.fixture
def dnsproc(server: ServerProcess, tmp_path: Path) -> Iterator[DNSProcess]:
    if shutil.which("dig") is None:
        if __import__("os").environ.get("CI"):
            pytest.fail("dig (bind9-dnsutils) is required on CI")
        pytest.skip("dig is not installed (scripts/setup.sh installs bind9-dnsutils)")
    with StaticUpstream({("www.example.com", "A"): ["192.0.2.53"]}) as upstream:
        proc = DNSProcess(server, tmp_path, upstream)
        try:
            status, body = 0, ""
            for _ in range(200):
                status, body = _http_status(f"http://127.0.0.1:{proc.health}/health")
                if status:
                    break
                time.sleep(0.05)
            assert (status, body) == (200, "OK")
            proc.wait_ready()
            yield proc
        finally:
            stop_process(proc.proc, 10)


def apply(server: ServerProcess, ns: str, *objs: dict) -> None:  # type: ignore[type-arg]
    server.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                     "items": list(objs)}))


def svc(name: str, **spec: object) -> dict:  # type: ignore[type-arg]
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}], **spec}}


def eps(service: str, endpoints: list[dict], name: str = "") -> dict:  # type: ignore[type-arg]
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name or f"{service}-1", "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": endpoints}


def test_every_record_kind(server: ServerProcess, namespace: str, dnsproc: DNSProcess) -> None:
    ns, zone = namespace, "cluster.local"
    apply(server, ns, svc("web"), svc("db", clusterIP="None"),
          svc("pnr", clusterIP="None", publishNotReadyAddresses=True),
          svc("ext", type="ExternalName", externalName="www.example.com"),
          eps("db", [{"addresses": ["10.42.7.1"], "hostname": "db-0", "conditions": {"ready": True}},
                     {"addresses": ["10.42.7.2"], "conditions": {"ready": True}},
                     {"addresses": ["10.42.7.3"], "conditions": {"ready": False}}]),
          eps("pnr", [{"addresses": ["10.42.7.9"], "conditions": {"ready": False}}]))
    ip = server.kubectl("get", "svc", "web", "-n", ns, "-o", "jsonpath={.spec.clusterIP}").stdout.strip()
    web = f"web.{ns}.svc.{zone}"
    dnsproc.wait_for(web, "A", [ip])
    assert dnsproc.dig("+short", web.upper(), "A").split() == [ip]
    assert dnsproc.dig("+short", "-x", ip).split() == [web + "."]
    srv = dnsproc.resolver().resolve(f"_http._tcp.{web}", "SRV")
    assert [(r.port, r.target.to_text()) for r in srv] == [(80, web + ".")]

    db = f"db.{ns}.svc.{zone}"
    dnsproc.wait_for(db, "A", ["10.42.7.1", "10.42.7.2"])
    assert dnsproc.dig("+short", f"db-0.{db}").split() == ["10.42.7.1"]
    assert sorted(dnsproc.dig("+short", f"_http._tcp.{db}", "SRV").splitlines()) == [
        f"0 50 8080 10-42-7-2.{db}.", f"0 50 8080 db-0.{db}."]
    assert dnsproc.dig("+short", "-x", "10.42.7.1").split() == [f"db-0.{db}."]
    dnsproc.wait_for(f"pnr.{ns}.svc.{zone}", "A", ["10.42.7.9"])

    ext = dnsproc.dig("+noall", "+answer", f"ext.{ns}.svc.{zone}", "A")
    assert "CNAME www.example.com." in " ".join(ext.split()) and "192.0.2.53" in ext, ext
    assert dnsproc.dig("+short", f"10-42-0-9.{ns}.pod.{zone}").split() == ["10.42.0.9"]
    assert dnsproc.dig("+short", f"dns-version.{zone}", "TXT").split() == ['"1.0.1"']

    nx = dnsproc.dig(f"nope.{ns}.svc.{zone}")
    assert "status: NXDOMAIN" in nx and f"{zone}.\t\t5\tIN\tSOA\tns.dns.{zone}. hostmaster.{zone}." in nx, nx
    nodata = dnsproc.dig(web, "AAAA")
    assert "status: NOERROR" in nodata and "ANSWER: 0" in nodata and "IN\tSOA" in nodata, nodata
    assert dnsproc.dig("+short", "www.example.com").split() == ["192.0.2.53"]  # forwarded upstream
    assert "status: NXDOMAIN" in dnsproc.dig("other.example.com")


def test_changes_show_within_seconds(server: ServerProcess, namespace: str, dnsproc: DNSProcess) -> None:
    ns = namespace
    name = f"hl.{ns}.svc.cluster.local"
    apply(server, ns, svc("hl", clusterIP="None"), eps("hl", [{"addresses": ["10.42.8.1"]}]))
    dnsproc.wait_for(name, "A", ["10.42.8.1"], deadline=5.0)  # the first objects of the namespace
    apply(server, ns, eps("hl", [{"addresses": ["10.42.8.1"]}, {"addresses": ["10.42.8.2"]}]))
    dnsproc.wait_for(name, "A", ["10.42.8.1", "10.42.8.2"])
    server.kubectl("delete", "endpointslice", "hl-1", "-n", ns)
    dnsproc.wait_for(name, "A", [])
    server.kubectl("delete", "service", "hl", "-n", ns)
    q = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=dnsproc.port, timeout=2)
    assert q.rcode() == dns.rcode.NXDOMAIN


def test_truncation_tcp_and_garbage(server: ServerProcess, namespace: str, dnsproc: DNSProcess) -> None:
    ns = namespace
    apply(server, ns, svc("big", clusterIP="None"),
          eps("big", [{"addresses": [f"10.42.9.{i}"]} for i in range(1, 61)]))
    name = f"big.{ns}.svc.cluster.local"
    dnsproc.wait_for(name, "A", [f"10.42.9.{i}" for i in range(1, 61)], deadline=5.0)  # over TCP after TC
    plain = dnsproc.dig("+noedns", "+ignore", name)
    assert " tc " in plain.split("flags:")[1].split(";")[0] + " ", plain
    assert len(dnsproc.dig("+tcp", "+short", name).split()) == 60
    assert len(dnsproc.dig("+bufsize=4096", "+short", name).split()) == 60
    rng = random.Random(7)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(500):
            s.sendto(rng.randbytes(rng.randint(0, 600)), ("127.0.0.1", dnsproc.port))
    with socket.create_connection(("127.0.0.1", dnsproc.port), timeout=3) as c:
        c.sendall(b"\x00\x30" + rng.randbytes(48) + b"\x00")
    assert dnsproc.proc.poll() is None
    assert len(dnsproc.dig("+tcp", "+short", name).split()) == 60
    assert "Traceback" not in dnsproc.log.read_text()


def test_ready_only_after_the_informers_synced(server: ServerProcess, tmp_path: Path) -> None:
    """With no API server to list from: alive (/health 200), not ready (/ready 503)."""
    import yaml

    config = yaml.safe_load(server.kubeconfig.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"  # nothing listens there
    kubeconfig = tmp_path / "unreachable.yaml"
    kubeconfig.write_text(yaml.safe_dump(config))
    health, ready, port = free_port(), free_port(), free_port()
    proc = subprocess.Popen([sys.executable, "-m", "kybernetes.cli", "dns", "--kubeconfig", str(kubeconfig),
                             "--listen", f"127.0.0.1:{port}", "--resolv-conf", str(tmp_path / "none"),
                             "--health-port", str(health), "--ready-port", str(ready)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while _http_status(f"http://127.0.0.1:{health}/health")[0] != 200:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        assert _http_status(f"http://127.0.0.1:{ready}/ready")[0] == 503
        assert _http_status(f"http://127.0.0.1:{health}/health") == (200, "OK")
    finally:
        stop_process(proc, 10)
