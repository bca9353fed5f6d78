"""The proxy end to end: a real single-node cluster (``kyb server`` with its agent, real containers)
and the proxier running in this process, in a thread with its own event loop.

Isolation from anything else on the machine: the cluster uses its own pod range, service range and
bridge (``kybpx0``), and the proxier its own table (``kyb-proxy-e2e-PID``) and a healthz port
chosen by the kernel on loopback. The module fixture stops the proxier (which deletes the table
and restores the bridge's ``route_localnet``), checks that, deletes the table again as a safety
net, and stops the server (which removes its pods).

Clients "outside the cluster" live in a network namespace of the test's own (``kybpxext``), joined
to the host by a veth pair on 10.74.0.0/24 (the host's end is a node address NodePorts answer on);
externalIPs and LoadBalancer ingress IPs are taken from 10.75.0.0/24, routed to the host by that
namespace (its only route beyond its own link). Nothing is sent anywhere else: on the host that
block is routed into the veth for the test's lifetime, so a packet the proxy fails to capture (a
broken proxier, an ``ipMode: Proxy`` address) ends in the test's namespace (which forwards nothing)
instead of following the host's default route off the machine (a blackhole route would do for
forwarded packets, but the host's own would fail their route lookup before the output DNAT);
damage to the table is tested through a NodePort on loopback.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kybernetes.images.oci import BUSYBOX_IMAGE
from kybernetes.proxy.nftables import delete_table_script, run_nft
from kybernetes.proxy.proxier import Proxier, ProxyConfig
from kybernetes.testing import ServerProcess, free_port
from tests.node.conftest import require_runtime

pytestmark = pytest.mark.integration

CLUSTER_CIDR = "10.71.0.0/16"
SERVICE_CIDR = "10.72.0.0/16"
BRIDGE = "kybpx0"
OUTSIDE_NS = "kybpxext"
HOST_VETH, OUTSIDE_VETH = "kybpxh0", "kybpxe0"
HOST_ADDR, OUTSIDE_ADDR = "10.74.0.1", "10.74.0.2"
EXTERNAL_BLOCK = "10.75.0.0/24"  # externalIPs and LB IPs: routed only between the test netns and the host
EXTERNAL_IP = "10.75.0.10"
LB_IP, LB_PROXY_IP = "10.75.0.20", "10.75.0.21"
TABLE = f"kyb-proxy-e2e-{os.getpid()}"
NS = "default"

# No proxies from the environment: every request goes straight to the address under test.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def wait_until(fn: Callable[[], Any], timeout: float, what: str, interval: float = 0.3) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = fn()
        except Exception as e:  # keep polling; report the last failure
            last = e
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last: {last!r}")
        time.sleep(interval)


class ProxyThread:
    """The proxier on its own event loop, so the blocking test code cannot stall it."""

    def __init__(self, config: ProxyConfig) -> None:
        self.config = config
        self.proxier: Proxier | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="proxy", daemon=True)

    def start(self) -> None:
        self._thread.start()
        assert self._started.wait(30), "proxier did not start"
        if self.error:
            raise self.error

    def _main(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self.proxier = Proxier(self.config)
            try:
                await self.proxier.start()
                self._started.set()
                await self.proxier.run(self._stop)
            finally:
                await self.proxier.stop()

        try:
            asyncio.run(main())
        except BaseException as e:
            self.error = e
        finally:
            self._started.set()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)
        assert not self._thread.is_alive(), "proxier did not stop"


def nft_tables() -> str:
    return subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True).stdout


def route_localnet() -> str | None:
    try:
        return Path(f"/proc/sys/net/ipv4/conf/{BRIDGE}/route_localnet").read_text().strip()
    except OSError:
        return None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, ProxyThread]]:
    require_runtime()
    localnet_before = route_localnet()
    srv = ServerProcess.start(tmp_path_factory.mktemp("proxy-e2e"), "--cluster-cidr", CLUSTER_CIDR,
                              "--service-cluster-ip-range", SERVICE_CIDR, "--kubelet-arg", f"cni-bridge={BRIDGE}",
                              "--disable-kube-proxy",  # the test runs its own proxier on the bridge
                              agent=True, timeout=60)
    proxy: ProxyThread | None = None
    try:
        node = wait_until(lambda: srv.kubectl("get", "nodes", "-o", "name").stdout.strip(), 60, "the node to register")
        srv.kubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=120s", timeout=130)
        proxy = ProxyThread(ProxyConfig(kubeconfig=srv.kubeconfig, table_name=TABLE, service_cidr=SERVICE_CIDR,
                                        cluster_cidr=CLUSTER_CIDR, bridge=BRIDGE, sync_period=30.0,
                                        node_name=node.removeprefix("node/"), healthz_bind_address="127.0.0.1:0"))
        proxy.start()
        yield srv, proxy
    finally:
        try:
            if proxy is not None:
                proxy.stop()
            assert f"table ip {TABLE}" not in nft_tables(), "the proxier left its table behind"
            if localnet_before is not None:
                assert route_localnet() == localnet_before, "route_localnet was not restored"
            elif route_localnet() is not None:
                assert route_localnet() == "0", "route_localnet was not restored"
        finally:
            run_nft(delete_table_script(TABLE))  # safety net: never leave rules behind
            srv.stop()
            cleanup_node(srv.data_dir)


def cleanup_node(data_dir: Path, bridge: str = BRIDGE) -> None:
    """Remove what this test's node left on the host: volume mounts under its data dir (the drained
    kubelet leaves projected-token tmpfs mounts behind) and its bridge."""
    prefix = str(data_dir.resolve()) + "/"
    with open("/proc/self/mounts") as f:
        mounts = [line.split()[1] for line in f if line.split()[1].startswith(prefix)]
    for m in sorted(mounts, key=len, reverse=True):  # deepest first
        subprocess.run(["umount", m], capture_output=True)
    subprocess.run(["ip", "link", "del", bridge], capture_output=True)


def apply(srv: ServerProcess, obj: dict[str, Any]) -> None:
    srv.kubectl("apply", "-f", "-", input=json.dumps(obj))


def deployment(name: str, replicas: int) -> dict[str, Any]:
    script = 'mkdir -p /www && echo "$POD_NAME" > /www/index.html && exec httpd -f -p 8080 -h /www'
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{
                        "name": "httpd", "image": BUSYBOX_IMAGE, "command": ["sh", "-c", script],
                        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                    }],
                },
            },
        },
    }


def service(name: str, selector: str, *, type_: str = "ClusterIP") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS},
            "spec": {"type": type_, "selector": {"app": selector},
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}}


def get_json(srv: ServerProcess, *args: str) -> Any:
    return json.loads(srv.kubectl("get", "-n", NS, "-o", "json", *args).stdout)


def pod_names(srv: ServerProcess, app: str) -> set[str]:
    pods = get_json(srv, "pods", "-l", f"app={app}")["items"]
    return {p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp")}


def http_get(url: str, timeout: float = 3.0) -> str:
    with OPENER.open(url, timeout=timeout) as r:
        return str(r.read().decode().strip())


def seen_from_host(url: str, n: int = 30) -> set[str]:
    return {http_get(url) for _ in range(n)}


def seen_from_pod(srv: ServerProcess, pod: str, url: str, n: int = 12) -> set[str]:
    # One exec, many requests: a shell loop in the pod. (This busybox's wget crashes with -T, so
    # the per-request time limit is busybox's timeout applet.)
    script = f"for i in $(seq {n}); do timeout 5 wget -q -O - {url} || echo FAILED; done"
    out = srv.kubectl("exec", "-n", NS, pod, "--", "sh", "-c", script, timeout=90).stdout
    return {line.strip() for line in out.splitlines() if line.strip()}


@pytest.fixture(scope="module")
def web(cluster: tuple[ServerProcess, ProxyThread]) -> tuple[str, int]:
    """The web Deployment (2 pods) behind a NodePort Service; returns (ClusterIP, nodePort)."""
    srv, _ = cluster
    apply(srv, deployment("web", 2))
    apply(srv, service("web", "web", type_="NodePort"))
    svc = get_json(srv, "service", "web")
    ip, node_port = svc["spec"]["clusterIP"], int(svc["spec"]["ports"][0]["nodePort"])
    wait_until(lambda: len(pod_names(srv, "web")) == 2, 60, "two web pods")
    srv.kubectl("rollout", "status", "deployment/web", "-n", NS, "--timeout=180s", timeout=190)
    return ip, node_port


def test_cluster_ip_from_host_reaches_every_pod(cluster: tuple[ServerProcess, ProxyThread],
                                                web: tuple[str, int]) -> None:
    srv, proxy = cluster
    ip, _ = web
    expected = pod_names(srv, "web")
    wait_until(lambda: seen_from_host(f"http://{ip}/") == expected, 30, f"both pods behind {ip}:80")
    assert proxy.proxier is not None and proxy.proxier.last_error is None
    assert f"table ip {TABLE}" in nft_tables()


def test_cluster_ip_from_pods_and_hairpin(cluster: tuple[ServerProcess, ProxyThread], web: tuple[str, int]) -> None:
    srv, _ = cluster
    ip, _ = web
    expected = pod_names(srv, "web")
    ensure_client_pod(srv)
    assert seen_from_pod(srv, "client", f"http://{ip}/") == expected
    # Hairpin: a backend reaching its own Service, sometimes landing on itself.
    backend = sorted(expected)[0]
    assert seen_from_pod(srv, backend, f"http://{ip}/") == expected


def test_node_port(cluster: tuple[ServerProcess, ProxyThread], web: tuple[str, int]) -> None:
    srv, _ = cluster
    _, node_port = web
    expected = pod_names(srv, "web")
    assert seen_from_host(f"http://127.0.0.1:{node_port}/") == expected
    gateway = wait_until(lambda: [a for a in _bridge_ipv4() if a.startswith("10.71.")], 10, "bridge address")[0]
    assert seen_from_host(f"http://{gateway}:{node_port}/") == expected
    assert seen_from_pod(srv, "client", f"http://{gateway}:{node_port}/") == expected


def _bridge_ipv4() -> list[str]:
    out = subprocess.run(["ip", "-j", "-4", "addr", "show", "dev", BRIDGE], capture_output=True, text=True).stdout
    return [a["local"] for link in json.loads(out or "[]") for a in link.get("addr_info", [])]


def test_service_without_endpoints_rejects(cluster: tuple[ServerProcess, ProxyThread]) -> None:
    srv, _ = cluster
    apply(srv, service("nobody", "nothing-matches", type_="NodePort"))
    svc = get_json(srv, "service", "nobody")
    ip, node_port = svc["spec"]["clusterIP"], int(svc["spec"]["ports"][0]["nodePort"])

    def refused(host: str, port: int) -> bool:
        start = time.monotonic()
        try:
            socket.create_connection((host, port), timeout=5).close()
        except ConnectionRefusedError:
            assert time.monotonic() - start < 3.0, "refused, but slowly"
            return True
        except OSError:
            return False
        return False

    wait_until(lambda: refused(ip, 80), 20, f"{ip}:80 to refuse connections")
    wait_until(lambda: refused("127.0.0.1", node_port), 20, f"127.0.0.1:{node_port} to refuse connections")
    start = time.monotonic()
    out = srv.kubectl("exec", "-n", NS, "client", "--", "sh", "-c",
                      f"timeout 5 wget -q -O - http://{ip}/ 2>&1; echo rc=$?", timeout=60).stdout
    assert "rc=1" in out and "refused" in out.lower(), out
    assert time.monotonic() - start < 5, "a pod's connection to a Service without endpoints timed out"


def test_scaling_updates_the_rules(cluster: tuple[ServerProcess, ProxyThread], web: tuple[str, int]) -> None:
    srv, _ = cluster
    ip, node_port = web
    srv.kubectl("scale", "-n", NS, "deployment/web", "--replicas=3")
    srv.kubectl("rollout", "status", "deployment/web", "-n", NS, "--timeout=180s", timeout=190)
    three = wait_until(lambda: (lambda p: p if len(p) == 3 else None)(pod_names(srv, "web")), 60, "three pods")
    wait_until(lambda: seen_from_host(f"http://{ip}/", 40) == three, 30, "the third pod behind the Service")

    srv.kubectl("scale", "-n", NS, "deployment/web", "--replicas=1")
    one = wait_until(lambda: (lambda p: p if len(p) == 1 else None)(pod_names(srv, "web")), 60, "one pod")
    wait_until(lambda: seen_from_host(f"http://{ip}/", 20) == one, 30, "only the remaining pod behind the Service")
    assert seen_from_host(f"http://127.0.0.1:{node_port}/", 10) == one


def test_a_table_deleted_or_flushed_by_hand_is_restored_within_seconds(cluster: tuple[ServerProcess, ProxyThread],
                                                                       web: tuple[str, int]) -> None:
    """The proxy's periodic resync is 30 s here; its check of the table every 2 s brings back a
    deleted or flushed table long before. (Through the NodePort on loopback: without the table,
    a ClusterIP would be routed off the host.)"""
    _, proxy = cluster
    _, node_port = web
    url = f"http://127.0.0.1:{node_port}/"
    wait_until(lambda: curl(url)[0] == 0, 30, "the NodePort")
    assert proxy.proxier is not None and proxy.config.sync_period >= 30
    for damage in (["delete", "table", "ip", TABLE], ["flush", "table", "ip", TABLE]):
        subprocess.run(["nft", *damage], check=True, capture_output=True, timeout=10)
        broken_at = time.monotonic()
        assert curl(url, timeout=1)[0] != 0, f"the NodePort still answers after nft {' '.join(damage)}"
        wait_until(lambda: curl(url, timeout=1)[0] == 0, 15, f"the table back after nft {' '.join(damage)}",
                   interval=0.2)
        # (The next damage may land before the restoring round has read the chain back: the probe
        # does not take it for ours, test_table_probe.py.)
        assert time.monotonic() - broken_at < 6, "restored only by the periodic resync"
    assert proxy.proxier.last_error is None


def test_proxy_command_creates_and_removes_its_table(cluster: tuple[ServerProcess, ProxyThread]) -> None:
    """``kyb proxy`` as a process: the table appears, its metrics server (plain HTTP, as kube-proxy's)
    reports the sync, and SIGTERM removes the table. (A service range with no Services and a bridge
    that does not exist keep it out of the in-process proxier's way.)"""
    srv, _ = cluster
    table = f"kyb-proxy-cmd-{os.getpid()}"
    metrics_port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "kybernetes.proxy.cmd", "--kubeconfig", str(srv.kubeconfig),
                             "--table", table, "--service-cluster-ip-range", "10.73.0.0/16",
                             "--cluster-cidr", CLUSTER_CIDR, "--cni-bridge", "kybpxnone", "-v",
                             "--healthz-bind-address", "127.0.0.1:0",
                             "--metrics-bind-address", f"127.0.0.1:{metrics_port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: f"table ip {table}" in nft_tables(), 30, "the command's table")

        def synced() -> dict[str, float]:
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
                found = {s.name: s.value for f in text_string_to_metric_families(r.read().decode())
                         for s in f.samples}
            return found if found.get("kubeproxy_sync_proxy_rules_duration_seconds_count", 0) >= 1 else {}

        found = wait_until(synced, 30, "a sync in the proxy's metrics")
        assert found["kubeproxy_sync_proxy_rules_last_timestamp_seconds"] > time.time() - 60
        assert "kubeproxy_sync_proxy_rules_service_changes_total" in found
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out
        assert f"table ip {table}" not in nft_tables(), out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        run_nft(delete_table_script(table))


# --- clients outside the cluster, traffic policies, externalIPs, session affinity ----------------------


@pytest.fixture(scope="module")
def outside(cluster: tuple[ServerProcess, ProxyThread]) -> Iterator[str]:
    """A network namespace standing for a machine outside the cluster, on a veth link to the node."""
    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)

    subprocess.run(["ip", "netns", "del", OUTSIDE_NS], capture_output=True, timeout=10)  # a leftover
    try:
        ip("netns", "add", OUTSIDE_NS)
        ip("link", "add", HOST_VETH, "type", "veth", "peer", "name", OUTSIDE_VETH, "netns", OUTSIDE_NS)
        ip("addr", "add", f"{HOST_ADDR}/24", "dev", HOST_VETH)
        ip("link", "set", HOST_VETH, "up")
        for args in (("addr", "add", f"{OUTSIDE_ADDR}/24", "dev", OUTSIDE_VETH), ("link", "set", OUTSIDE_VETH, "up"),
                     ("link", "set", "lo", "up"), ("route", "add", EXTERNAL_BLOCK, "via", HOST_ADDR)):
            ip("-n", OUTSIDE_NS, *args)
        # What the proxy's DNAT does not take goes back into the test's namespace, never onwards.
        ip("route", "replace", EXTERNAL_BLOCK, "dev", HOST_VETH)
        yield OUTSIDE_NS
    finally:
        subprocess.run(["ip", "route", "del", EXTERNAL_BLOCK, "dev", HOST_VETH], capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", OUTSIDE_NS], capture_output=True, timeout=10)
        subprocess.run(["ip", "link", "del", HOST_VETH], capture_output=True, timeout=10)


def curl(url: str, *, netns: str = "", timeout: float = 3.0) -> tuple[int, str]:
    """(curl's exit code, body): 0 answered, 7 refused, 28 timed out (dropped)."""
    cmd = ["curl", "-s", "--noproxy", "*", "--max-time", str(timeout), url]
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 10)
    return res.returncode, res.stdout.strip()


def client_seen(answer: str) -> str:
    """The client address in an echo pod's answer (httpd listens on IPv6: ``[::ffff:A.B.C.D]``)."""
    return answer.split()[1].removeprefix("[::ffff:").removesuffix("]")


def answered(url: str, *, netns: str = "") -> str:
    rc, out = curl(url, netns=netns)
    assert rc == 0, f"{url} from {netns or 'the host'}: curl exit {rc}"
    return out


def echo_deployment(name: str, replicas: int) -> dict[str, Any]:
    """Pods that answer /cgi-bin/ip with their name and the client address they see."""
    script = ('mkdir -p /www/cgi-bin && echo "$POD_NAME" > /www/index.html && '
              'printf "#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho %s \\$REMOTE_ADDR\\n" "$POD_NAME" '
              '> /www/cgi-bin/ip && chmod +x /www/cgi-bin/ip && exec httpd -f -p 8080 -h /www')
    d = deployment(name, replicas)
    d["spec"]["template"]["spec"]["containers"][0]["command"] = ["sh", "-c", script]
    return d


@pytest.fixture(scope="module")
def echo(cluster: tuple[ServerProcess, ProxyThread]) -> set[str]:
    """Two echo pods (both on this node); returns their names."""
    srv, _ = cluster
    apply(srv, echo_deployment("echo", 2))
    srv.kubectl("rollout", "status", "deployment/echo", "-n", NS, "--timeout=180s", timeout=190)
    return wait_until(lambda: (lambda p: p if len(p) == 2 else None)(pod_names(srv, "echo")), 60, "two echo pods")


def echo_service(srv: ServerProcess, name: str, *, selector: str | None = "echo", **spec: Any) -> dict[str, Any]:
    svc = service(name, selector or "", type_=spec.pop("type", "ClusterIP"))
    if selector is None:
        del svc["spec"]["selector"]
    svc["spec"].update(spec)
    apply(srv, svc)
    return dict(get_json(srv, "service", name)["spec"])


def remote_endpoints(srv: ServerProcess, service_name: str, pod_ip: str, node: str) -> None:
    """A hand-made EndpointSlice for a selector-less Service: one endpoint on ``node``."""
    apply(srv, {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
                "metadata": {"name": f"{service_name}-1", "namespace": NS,
                             "labels": {"kubernetes.io/service-name": service_name}},
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                "endpoints": [{"addresses": [pod_ip], "nodeName": node, "conditions": {"ready": True}}]})


def health_check(port: int) -> tuple[int, str] | None:
    """(HTTP status, body) of a health-check node port on the node's loopback, None while it is closed."""
    return health_check_at("127.0.0.1", port)


def ensure_client_pod(srv: ServerProcess) -> None:
    apply(srv, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client", "namespace": NS},
                "spec": {"terminationGracePeriodSeconds": 0,
                         "containers": [{"name": "c", "image": BUSYBOX_IMAGE, "command": ["sleep", "3600"]}]}})
    srv.kubectl("wait", "-n", NS, "--for=condition=Ready", "pod/client", "--timeout=120s", timeout=130)


def pod_ip(srv: ServerProcess, app: str) -> str:
    return str(get_json(srv, "pods", "-l", f"app={app}")["items"][0]["status"]["podIP"])


def test_node_port_answers_on_every_node_address(cluster: tuple[ServerProcess, ProxyThread], outside: str,
                                                  echo: set[str]) -> None:
    srv, _ = cluster
    spec = echo_service(srv, "echo-np", type="NodePort")
    node_port = spec["ports"][0]["nodePort"]
    # An address the proxy was never told about (the veth's), from outside and from the host itself.
    wait_until(lambda: {answered(f"http://{HOST_ADDR}:{node_port}/", netns=outside) for _ in range(20)} == echo,
               30, f"both pods behind {HOST_ADDR}:{node_port} from outside")
    assert {answered(f"http://{HOST_ADDR}:{node_port}/") for _ in range(20)} == echo
    # Cluster policy: the pod sees the node, not the client
    assert client_seen(answered(f"http://{HOST_ADDR}:{node_port}/cgi-bin/ip", netns=outside)) != OUTSIDE_ADDR


def test_external_traffic_policy_local(cluster: tuple[ServerProcess, ProxyThread], outside: str,
                                       echo: set[str]) -> None:
    """Local: the client's address reaches the pod; no endpoint on this node: dropped (not
    refused), though pods still get an answer; the health-check node port says which."""
    srv, proxy = cluster
    spec = echo_service(srv, "echo-local", type="LoadBalancer", externalTrafficPolicy="Local")
    node_port, health_port = spec["ports"][0]["nodePort"], spec["healthCheckNodePort"]
    url = f"http://{HOST_ADDR}:{node_port}/cgi-bin/ip"
    seen = wait_until(lambda: answered(url, netns=outside), 30, "the Local NodePort")
    assert client_seen(seen) == OUTSIDE_ADDR, seen  # source IP preserved

    status, body = wait_until(lambda: health_check(health_port), 30, "the health check port")
    assert status == 200 and json.loads(body) == {"service": {"namespace": NS, "name": "echo-local"},
                                            "localEndpoints": 2, "serviceProxyHealthy": True}

    # Only an endpoint on another node: traffic from outside is dropped ...
    spec = echo_service(srv, "echo-remote", selector=None, type="LoadBalancer", externalTrafficPolicy="Local")
    remote_endpoints(srv, "echo-remote", pod_ip(srv, "echo"), "some-other-node")
    node_port, health_port = spec["ports"][0]["nodePort"], spec["healthCheckNodePort"]
    remote_url = f"http://{HOST_ADDR}:{node_port}/"
    status, body = wait_until(lambda: health_check(health_port), 30, "the health check port")
    assert (status, json.loads(body)["localEndpoints"]) == (503, 0)
    # ... (a drop: the client times out, it is not refused) while a pod still gets an answer
    # through the NodePort (kube-proxy's short-circuit of cluster traffic)
    gateway = next(a for a in _bridge_ipv4() if a.startswith("10.71."))
    ensure_client_pod(srv)
    assert seen_from_pod(srv, "client", f"http://{gateway}:{node_port}/", n=3) <= echo
    assert curl(remote_url, netns=outside, timeout=2)[0] == 28
    # Cluster policy on the same Service answers from outside: the drop was the policy
    echo_service(srv, "echo-remote", selector=None, type="LoadBalancer", externalTrafficPolicy="Cluster")
    wait_until(lambda: curl(remote_url, netns=outside)[0] == 0, 30, "the Cluster policy to answer")
    assert proxy.proxier is not None and proxy.proxier.last_error is None


def test_internal_traffic_policy_local(cluster: tuple[ServerProcess, ProxyThread], echo: set[str]) -> None:
    srv, _ = cluster
    spec = echo_service(srv, "echo-itp", internalTrafficPolicy="Local")
    wait_until(lambda: seen_from_host(f"http://{spec['clusterIP']}/", 20) == echo, 30, "local endpoints")
    spec = echo_service(srv, "echo-itp-remote", selector=None, internalTrafficPolicy="Local")
    remote_endpoints(srv, "echo-itp-remote", pod_ip(srv, "echo"), "some-other-node")
    wait_until(lambda: curl(f"http://{spec['clusterIP']}/", timeout=2)[0] == 28, 30, "the ClusterIP to drop")
    echo_service(srv, "echo-itp-remote", selector=None, internalTrafficPolicy="Cluster")
    wait_until(lambda: curl(f"http://{spec['clusterIP']}/")[0] == 0, 30, "the Cluster policy to answer")


def test_external_ips(cluster: tuple[ServerProcess, ProxyThread], outside: str, echo: set[str]) -> None:
    srv, _ = cluster
    echo_service(srv, "echo-eip", externalIPs=[EXTERNAL_IP])
    url = f"http://{EXTERNAL_IP}/"
    wait_until(lambda: {answered(url, netns=outside) for _ in range(20)} == echo, 30, "both pods behind the externalIP")
    assert {answered(url) for _ in range(20)} == echo  # from the node itself too
    # externalTrafficPolicy applies to externalIPs: Local keeps the client's address
    echo_service(srv, "echo-eip", externalIPs=[EXTERNAL_IP], externalTrafficPolicy="Local")
    wait_until(lambda: client_seen(answered(f"{url}cgi-bin/ip", netns=outside)) == OUTSIDE_ADDR, 30,
               "the client address at the pod")


def set_load_balancer_status(srv: ServerProcess, name: str, ingress: list[dict[str, Any]]) -> None:
    """What a cloud controller does: status.loadBalancer through the status subresource."""
    srv.kubectl("patch", "service", name, "-n", NS, "--subresource=status", "--type=merge",
                "-p", json.dumps({"status": {"loadBalancer": {"ingress": ingress}}}))


def test_load_balancer_ips(cluster: tuple[ServerProcess, ProxyThread], outside: str, echo: set[str]) -> None:
    """Traffic to status.loadBalancer.ingress IPs is load-balanced like externalIPs, with
    externalTrafficPolicy; loadBalancerSourceRanges drop other clients; ipMode Proxy is not captured."""
    srv, proxy = cluster
    echo_service(srv, "echo-lb", type="LoadBalancer")
    set_load_balancer_status(srv, "echo-lb", [{"ip": LB_IP}, {"ip": LB_PROXY_IP, "ipMode": "Proxy"}])
    url = f"http://{LB_IP}/"
    wait_until(lambda: {answered(url, netns=outside) for _ in range(20)} == echo, 30, "both pods behind the LB IP")
    assert {answered(url) for _ in range(10)} <= echo  # from the node itself too
    assert proxy.proxier is not None and proxy.proxier.last_applied is not None
    assert LB_PROXY_IP not in proxy.proxier.last_applied  # the load balancer proxies: not short-circuited
    # Cluster policy: the pod sees the node; Local: the client
    assert client_seen(answered(f"{url}cgi-bin/ip", netns=outside)) != OUTSIDE_ADDR
    echo_service(srv, "echo-lb", type="LoadBalancer", externalTrafficPolicy="Local")
    wait_until(lambda: client_seen(answered(f"{url}cgi-bin/ip", netns=outside)) == OUTSIDE_ADDR, 30,
               "the client address at the pod")
    # loadBalancerSourceRanges without the client: dropped (a timeout, not a refusal); with it: served
    echo_service(srv, "echo-lb", type="LoadBalancer", loadBalancerSourceRanges=["10.74.0.128/25"])
    wait_until(lambda: curl(url, netns=outside, timeout=2)[0] == 28, 30, "the LB IP to drop the client")
    echo_service(srv, "echo-lb", type="LoadBalancer", loadBalancerSourceRanges=["10.74.0.0/25"])
    wait_until(lambda: curl(url, netns=outside)[0] == 0, 30, "the LB IP to serve the client again")
    assert proxy.proxier.last_error is None


def test_session_affinity_sticks_across_syncs_and_expires(cluster: tuple[ServerProcess, ProxyThread],
                                                          echo: set[str]) -> None:
    srv, proxy = cluster
    spec = echo_service(srv, "echo-sticky", sessionAffinity="ClientIP",
                        sessionAffinityConfig={"clientIP": {"timeoutSeconds": 4}})
    url = f"http://{spec['clusterIP']}/"
    wait_until(lambda: curl(url)[0] == 0, 30, "the sticky Service")
    first = answered(url)
    assert {answered(url) for _ in range(10)} == {first}
    # Other Services change (each change is a sync of the whole table); the client stays put.
    proxier = proxy.proxier
    assert proxier is not None
    for i in range(4):
        before = proxier.syncs
        echo_service(srv, f"echo-churn-{i}")
        wait_until(lambda: proxier.syncs > before, 30, "a sync")  # noqa: B023 (used at once)
        assert answered(url) == first
    # After timeoutSeconds without a connection, the choice is free again.
    def lands_elsewhere() -> bool:
        time.sleep(4.5)  # longer than the affinity timeout since the last connection
        return answered(url) != first
    wait_until(lands_elsewhere, 90, "the affinity to expire", interval=0)


def test_nodeport_addresses_restrict_where_node_ports_answer(cluster: tuple[ServerProcess, ProxyThread],
                                                             outside: str, echo: set[str]) -> None:
    """``--nodeport-addresses 10.74.0.0/24`` without localhost NodePorts: the veth's address answers,
    loopback and the bridge do not, and health-check ports listen only there. (Last in the module:
    it replaces the module's proxier with a restricted one on the same table.)"""
    srv, proxy = cluster
    proxy.stop()
    restricted = ProxyThread(ProxyConfig(
        kubeconfig=srv.kubeconfig, table_name=TABLE, service_cidr=SERVICE_CIDR, cluster_cidr=CLUSTER_CIDR,
        bridge=BRIDGE, sync_period=5.0, node_name=proxy.config.node_name, healthz_bind_address="127.0.0.1:0",
        nodeport_addresses=[f"{HOST_ADDR.rsplit('.', 1)[0]}.0/24"], localhost_nodeports=False))
    restricted.start()
    try:
        spec = echo_service(srv, "echo-restricted", type="LoadBalancer", externalTrafficPolicy="Local")
        node_port, health_port = spec["ports"][0]["nodePort"], spec["healthCheckNodePort"]
        wait_until(lambda: curl(f"http://{HOST_ADDR}:{node_port}/", netns=outside)[0] == 0, 30, "the veth address")
        gateway = next(a for a in _bridge_ipv4() if a.startswith("10.71."))
        # nothing else listens on the port, so the kernel refuses: the NodePort is simply not there
        assert curl(f"http://127.0.0.1:{node_port}/")[0] == 7
        assert curl(f"http://{gateway}:{node_port}/")[0] == 7
        status, _ = wait_until(lambda: health_check_at(HOST_ADDR, health_port), 30, "the health check on the veth")
        assert status == 200
        assert curl(f"http://127.0.0.1:{health_port}/")[0] == 7
    finally:
        restricted.stop()


def health_check_at(host: str, port: int) -> tuple[int, str] | None:
    """(HTTP status, body) of a health-check node port, None while it is closed."""
    res = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", "--noproxy", "*", "--max-time", "3",
                          f"http://{host}:{port}/"], capture_output=True, text=True, timeout=15)
    if res.returncode != 0:
        return None
    body, _, code = res.stdout.rpartition("\n")
    return int(code), body
