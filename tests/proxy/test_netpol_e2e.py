"""NetworkPolicy on a real node: upstream's probe matrix with real pods and real packets.

One ``kyb server`` with its agent for the module; the agent's kube-proxy enforces the policies
(its NetworkPolicy controller, table ``inet kyb-netpol-BRIDGE``), exactly as on any node. The
cluster has a pod range, service range and bridge of its own (``kynpN``), so it collides with no
other cluster on this machine. Namespaces x, y, z (labelled ``ns=x``...) hold pods a, b, c, each
serving HTTP on ports 53, 80 and 81; each scenario of :mod:`tests.proxy.netpol_scenarios` creates
its policies, then probes every pod from every pod on the scenario's ports (one ``kubectl exec``
per client pod, its probes in parallel, the nine clients at once) until the matrix equals the
expected one (a policy takes effect within a sync of the controller; upstream polls the same way),
and deletes its policies again. Then: a connection made before a deny keeps working (only new
connections are checked), policies hold behind a ClusterIP, and egress isolation covers the node's
own address (a listener of this test on the bridge gateway), and a table deleted by hand comes back
within seconds. The module's teardown stops the server (whose kube-proxy deletes
its table), checks the table is gone, and removes the bridge and the mounts the node left.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kybernetes.datadir import netpol_table
from kybernetes.images.oci import BUSYBOX_IMAGE
from kybernetes.testing import KUBECTL, ServerProcess, free_network_octet
from tests.node.conftest import require_runtime

from .netpol_scenarios import ALL, NAMESPACES, PODS, SCENARIOS, SERVED_PORTS, Scenario, port_name
from .test_proxy_e2e import cleanup_node

pytestmark = pytest.mark.integration

NODE = "netpol-node"
PREFIX = "np-"  # real namespace names: np-x, np-y, np-z
ECHO_PORT = 8082
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def wait_until(fn: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def nft_json(*args: str) -> Any:
    res = subprocess.run(["nft", "-j", "list", *args], capture_output=True, text=True, timeout=30)
    return json.loads(res.stdout) if res.returncode == 0 else None


@dataclass
class Cluster:
    srv: ServerProcess
    bridge: str
    ips: dict[str, str]  # "x/a" -> pod IP

    @property
    def table(self) -> str:
        return netpol_table(self.bridge)

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 90.0) -> subprocess.CompletedProcess[str]:
        return self.srv.kubectl(*args, input=input, check=check, timeout=timeout)

    def gateway(self) -> str:
        """The bridge's (the node's) address on the pod network."""
        res = subprocess.run(["ip", "-j", "-4", "addr", "show", "dev", self.bridge], capture_output=True, text=True,
                             timeout=10, check=True)
        return str(json.loads(res.stdout)[0]["addr_info"][0]["local"])

    def isolated_pods(self) -> int:
        """Elements of the table's ingress-pods and egress-pods maps (None: no table)."""
        out = 0
        for m in ("ingress-pods", "egress-pods"):
            got = nft_json("map", "inet", self.table, m)
            if got is None:
                return -1
            out += sum(len(x["map"].get("elem") or []) for x in got["nftables"] if "map" in x)
        return out

    def probe_from(self, src: str, targets: list[tuple[str, int]]) -> dict[tuple[str, int], bool]:
        """Connect from pod ``src`` to each (pod, port), all at once; True where it connected."""
        ns, name = src.split("/")
        lines = [f'(if nc -w 2 {self.ips[d]} {p} </dev/null >/dev/null 2>&1; then echo "{d} {p} ok"; '
                 f'else echo "{d} {p} no"; fi) &' for d, p in targets]
        res = self.kubectl("exec", "-n", PREFIX + ns, name, "--", "sh", "-c", "\n".join([*lines, "wait"]),
                           timeout=60)
        got: dict[tuple[str, int], bool] = {}
        for line in res.stdout.splitlines():
            dst, port, verdict = line.split()
            got[dst, int(port)] = verdict == "ok"
        assert set(got) == set(targets), res.stdout + res.stderr
        return got

    def matrix(self, ports: list[int]) -> dict[int, dict[tuple[str, str], bool]]:
        targets = [(d, p) for d in ALL for p in ports]
        with ThreadPoolExecutor(len(ALL)) as pool:
            results = dict(zip(ALL, pool.map(lambda s: self.probe_from(s, targets), ALL), strict=True))
        return {p: {(s, d): results[s][d, p] for s in ALL for d in ALL} for p in ports}


def server_pod(ns: str, name: str) -> dict[str, Any]:
    # HTTP on the probed ports; an echo server on ECHO_PORT for long-lived connections.
    serve = "mkdir -p /www; echo ok > /www/index.html; " + \
        " ".join(f"httpd -f -p {p} -h /www &" for p in SERVED_PORTS) + f" nc -ll -p {ECHO_PORT} -e cat & wait"
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"namespace": PREFIX + ns, "name": name, "labels": {"pod": name}},
            "spec": {"terminationGracePeriodSeconds": 0, "containers": [{
                "name": "c", "image": BUSYBOX_IMAGE, "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", serve],
                "ports": [{"name": port_name(p), "containerPort": p, "protocol": "TCP"} for p in SERVED_PORTS],
                # The kubelet probes from the node: isolation must not stop it (see the deny test).
                "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 1}}]}}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require_runtime()
    octet = free_network_octet(200, 250, "kynp{}")
    bridge = f"kynp{octet}"
    ip_forward = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    srv = ServerProcess.start(
        tmp_path_factory.mktemp("netpol-e2e"), "--cluster-cidr", f"10.{octet}.0.0/17",
        "--service-cluster-ip-range", f"10.{octet}.128.0/17", "--node-name", NODE,
        "--kubelet-arg", f"cni-bridge={bridge}", "--kubelet-arg", f"default-pod-cidr=10.{octet}.0.0/24",
        agent=True, timeout=60)
    try:
        c = Cluster(srv, bridge, {})
        wait_until(lambda: c.kubectl("get", "node", NODE, check=False).returncode == 0, 60, "the node")
        c.kubectl("wait", "--for=condition=Ready", f"node/{NODE}", "--timeout=90s", timeout=100)
        docs = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": PREFIX + ns, "labels": {"ns": ns}}}
                for ns in NAMESPACES]
        docs += [server_pod(ns, p) for ns in NAMESPACES for p in PODS]
        c.kubectl("apply", "-f", "-", input="\n".join(json.dumps(d) for d in docs))
        for ns in NAMESPACES:
            c.kubectl("wait", "-n", PREFIX + ns, "--for=condition=Ready", "pod", "--all", "--timeout=120s",
                      timeout=130)
            for p in json.loads(c.kubectl("get", "pods", "-n", PREFIX + ns, "-o", "json").stdout)["items"]:
                c.ips[f"{ns}/{p['metadata']['name']}"] = p["status"]["podIP"]
        # The controller is up: its table exists and nothing is isolated yet.
        wait_until(lambda: c.isolated_pods() == 0, 30, f"table inet {c.table}")
        yield c
    finally:
        try:
            srv.stop()
            tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
            assert f"table inet {netpol_table(bridge)}" not in tables, "kube-proxy left its policy table behind"
        finally:
            subprocess.run(["nft", "delete", "table", "inet", netpol_table(bridge)], capture_output=True)
            cleanup_node(srv.data_dir, bridge)
            Path("/proc/sys/net/ipv4/ip_forward").write_text(ip_forward)


def with_real_namespaces(policy: dict[str, Any]) -> dict[str, Any]:
    policy = json.loads(json.dumps(policy))
    policy["metadata"]["namespace"] = PREFIX + policy["metadata"]["namespace"]
    return policy


def render(diffs: list[str]) -> str:
    return "\n".join(diffs[:40]) + (f"\n... and {len(diffs) - 40} more" if len(diffs) > 40 else "")


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_probe_matrix(cluster: Cluster, scenario: Scenario) -> None:
    policies = [with_real_namespaces(p) for p in scenario.policies(cluster.ips)]
    ports = sorted(scenario.expected)
    expected = {p: r.result() for p, r in scenario.expected.items()}
    cluster.kubectl("apply", "-f", "-", input="\n".join(json.dumps(p) for p in policies))
    try:
        def mismatches() -> list[str]:
            got = cluster.matrix(ports)
            return [f"port {p}: {s} -> {d}: got {'allow' if got[p][s, d] else 'deny'}"
                    for p in ports for (s, d), want in expected[p].items() if got[p][s, d] != want]
        last: list[str] = []
        deadline = time.monotonic() + 45
        while True:
            last = mismatches()
            if not last or time.monotonic() > deadline:
                break
        assert not last, f"{scenario.name} ({scenario.upstream}):\n{render(last)}"
        if scenario.name == "default-deny-ingress":
            # The node itself still reaches isolated pods (the kubelet's probes keep them Ready).
            with OPENER.open(f"http://{cluster.ips['x/a']}:80/", timeout=5) as r:
                assert r.read().strip() == b"ok"
            pod = json.loads(cluster.kubectl("get", "pod", "a", "-n", PREFIX + "x", "-o", "json").stdout)
            assert any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"]["conditions"])
    finally:
        for p in policies:
            cluster.kubectl("delete", "networkpolicy", "-n", p["metadata"]["namespace"], p["metadata"]["name"],
                            "--ignore-not-found")
        wait_until(lambda: cluster.isolated_pods() == 0, 30, "no pod isolated any more")


def read_line(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    """One line of ``proc``'s stdout, or b"" if none came within ``timeout``."""
    assert proc.stdout is not None
    out, deadline = b"", time.monotonic() + timeout
    while not out.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([proc.stdout], [], [], left)[0]:
            return b""
        chunk = os.read(proc.stdout.fileno(), 1)
        if not chunk:
            return out
        out += chunk
    return out


def test_established_connections_survive_a_new_deny(cluster: Cluster) -> None:
    """Isolation checks new connections only: a connection made before the policy keeps working."""
    env = dict(os.environ, KUBECONFIG=str(cluster.srv.kubeconfig))
    client = subprocess.Popen([KUBECTL, "exec", "-i", "-n", PREFIX + "y", "a", "--", "nc", cluster.ips["x/a"],
                               str(ECHO_PORT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, env=env)
    deny = with_real_namespaces(SCENARIOS[0].policies(cluster.ips)[0])
    try:
        assert client.stdin is not None
        client.stdin.write(b"before\n")
        client.stdin.flush()
        assert read_line(client, 20) == b"before\n"
        cluster.kubectl("apply", "-f", "-", input=json.dumps(deny))
        wait_until(lambda: not cluster.probe_from("y/a", [("x/a", 80)])["x/a", 80], 30, "new connections denied")
        client.stdin.write(b"after\n")
        client.stdin.flush()
        assert read_line(client, 10) == b"after\n"
    finally:
        client.kill()
        client.wait(10)
        cluster.kubectl("delete", "networkpolicy", "-n", deny["metadata"]["namespace"], deny["metadata"]["name"],
                        "--ignore-not-found")
        wait_until(lambda: cluster.isolated_pods() == 0, 30, "no pod isolated any more")


def test_policies_apply_behind_a_cluster_ip(cluster: Cluster) -> None:
    """A Service connection is checked against the endpoint pod's policies with the client pod as
    the source: kube-proxy's DNAT happens before the forward hook, and pod clients are not
    masqueraded once the bridge passes netfilter."""
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": PREFIX + "x", "name": "to-a"},
           "spec": {"selector": {"pod": "a"}, "ports": [{"port": 80, "targetPort": 80}]}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(svc))
    ip = json.loads(cluster.kubectl("get", "service", "-n", PREFIX + "x", "to-a", "-o", "json").stdout)["spec"]["clusterIP"]
    cluster.ips["svc"] = ip
    allow_y = [with_real_namespaces(p) for p in SCENARIOS[1].policies(cluster.ips)]  # x/a: only from y
    try:
        wait_until(lambda: cluster.probe_from("z/a", [("svc", 80)])["svc", 80], 30, "the Service to answer")
        cluster.kubectl("apply", "-f", "-", input=json.dumps(allow_y[0]))
        wait_until(lambda: not cluster.probe_from("z/a", [("svc", 80)])["svc", 80], 30, "z/a denied via the Service")
        assert cluster.probe_from("y/a", [("svc", 80)])["svc", 80]
    finally:
        del cluster.ips["svc"]
        cluster.kubectl("delete", "service", "-n", PREFIX + "x", "to-a", "--ignore-not-found")
        cluster.kubectl("delete", "networkpolicy", "-n", PREFIX + "x", allow_y[0]["metadata"]["name"],
                        "--ignore-not-found")
        wait_until(lambda: cluster.isolated_pods() == 0, 30, "no pod isolated any more")


def test_egress_isolation_covers_the_node_itself(cluster: Cluster) -> None:
    """A pod isolated for egress reaches the node's own addresses only where a rule allows it
    (the input hook), like any other destination."""
    gateway = cluster.gateway()
    listener = socket.create_server((gateway, 0))
    port = listener.getsockname()[1]
    cluster.ips["node"] = gateway
    stop = threading.Event()

    def serve() -> None:  # accept and close, until the test ends
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                listener.accept()[0].close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    deny = with_real_namespaces(SCENARIOS[3].policies(cluster.ips)[0])  # x/*: egress on port 53 only
    try:
        assert cluster.probe_from("x/a", [("node", port)])["node", port]
        cluster.kubectl("apply", "-f", "-", input=json.dumps(deny))
        wait_until(lambda: not cluster.probe_from("x/a", [("node", port)])["node", port], 30, "x/a denied")
        assert cluster.probe_from("y/a", [("node", port)])["node", port]
    finally:
        stop.set()
        thread.join(5)
        listener.close()
        del cluster.ips["node"]
        cluster.kubectl("delete", "networkpolicy", "-n", deny["metadata"]["namespace"], deny["metadata"]["name"],
                        "--ignore-not-found")
        wait_until(lambda: cluster.isolated_pods() == 0, 30, "no pod isolated any more")


def test_a_table_deleted_by_hand_is_restored_within_seconds(cluster: Cluster) -> None:
    deny = with_real_namespaces(SCENARIOS[0].policies(cluster.ips)[0])
    cluster.kubectl("apply", "-f", "-", input=json.dumps(deny))
    try:
        wait_until(lambda: cluster.isolated_pods() == 3, 30, "x's pods isolated")
        subprocess.run(["nft", "delete", "table", "inet", cluster.table], check=True, timeout=30)
        assert cluster.isolated_pods() == -1
        wait_until(lambda: cluster.isolated_pods() == 3, 10, "the table restored", interval=0.2)
        assert not cluster.probe_from("y/a", [("x/a", 80)])["x/a", 80]
    finally:
        cluster.kubectl("delete", "networkpolicy", "-n", deny["metadata"]["namespace"], deny["metadata"]["name"],
                        "--ignore-not-found")
        wait_until(lambda: cluster.isolated_pods() == 0, 30, "no pod isolated any more")
