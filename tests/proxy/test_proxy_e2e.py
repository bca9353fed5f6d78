"""The proxy end to end: a real single-node cluster (``kyb server`` with its agent, real containers)
and the proxier running in this process, in a thread with its own event loop.

Isolation from anything else on the machine: the cluster uses its own pod range, service range and
bridge (``kybpx0``), and the proxier its own table (``kyb-proxy-e2e-PID``). The module fixture
stops the proxier (which deletes the table and restores the bridge's ``route_localnet``), checks
that, deletes the table again as a safety net, and stops the server (which removes its pods).
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

from kybernetes.images.oci import BUSYBOX_IMAGE
from kybernetes.proxy.nftables import delete_table_script, run_nft
from kybernetes.proxy.proxier import Proxier, ProxyConfig
from kybernetes.testing import ServerProcess
from tests.node.conftest import require_runtime

pytestmark = pytest.mark.integration

CLUSTER_CIDR = "10.71.0.0/16"
SERVICE_CIDR = "10.72.0.0/16"
BRIDGE = "kybpx0"
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
    proxy = ProxyThread(ProxyConfig(kubeconfig=srv.kubeconfig, table_name=TABLE, service_cidr=SERVICE_CIDR,
                                    cluster_cidr=CLUSTER_CIDR, bridge=BRIDGE, sync_period=5.0))
    try:
        proxy.start()
        wait_until(lambda: srv.kubectl("get", "nodes", "-o", "name").stdout.strip(), 60, "the node to register")
        srv.kubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=120s", timeout=130)
        yield srv, proxy
    finally:
        try:
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
    apply(srv, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client", "namespace": NS},
                "spec": {"terminationGracePeriodSeconds": 0,
                         "containers": [{"name": "c", "image": BUSYBOX_IMAGE, "command": ["sleep", "3600"]}]}})
    srv.kubectl("wait", "-n", NS, "--for=condition=Ready", "pod/client", "--timeout=120s", timeout=130)
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


def test_proxy_command_creates_and_removes_its_table(cluster: tuple[ServerProcess, ProxyThread]) -> None:
    """``kyb proxy`` as a process: the table appears, and SIGTERM removes it. (A service range with no
    Services and a bridge that does not exist keep it out of the in-process proxier's way.)"""
    srv, _ = cluster
    table = f"kyb-proxy-cmd-{os.getpid()}"
    proc = subprocess.Popen([sys.executable, "-m", "kybernetes.proxy.cmd", "--kubeconfig", str(srv.kubeconfig),
                             "--table", table, "--service-cluster-ip-range", "10.73.0.0/16",
                             "--cluster-cidr", CLUSTER_CIDR, "--cni-bridge", "kybpxnone", "-v"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: f"table ip {table}" in nft_tables(), 30, "the command's table")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out
        assert f"table ip {table}" not in nft_tables(), out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        run_nft(delete_table_script(table))
