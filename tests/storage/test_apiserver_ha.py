"""Two API servers on one etcd: each serves what the other wrote (a watcher on one sees a write
through the other), both are in the ``kubernetes`` Service's endpoints (the lease endpoint
reconciler), a SIGKILLed one leaves them once its lease expired; and an agent's load balancer
keeps a client working when the server it used is killed, and a real agent's node stays alive.

The servers need addresses that are not loopback (loopback ones are never published): the test
puts two on a veth pair it creates and removes (root; outside CI the test skips without it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kybernetes.agent.loadbalancer import LoadBalancer, follow_endpoints
from kybernetes.testing import KUBECTL, EtcdCluster, ServerProcess, free_network_octet, free_port

LEASE_FLAGS = ("--identity-lease-duration-seconds", "3", "--identity-lease-renew-interval-seconds", "1")


def _require_root_and_tools() -> None:
    problems = [f"{tool} is not installed" for tool in (KUBECTL, "/usr/bin/etcd", "ip")
                if shutil.which(tool) is None and not os.path.exists(tool)]
    if os.geteuid() != 0:
        problems.append("the test needs root to add addresses on a veth pair of its own")
    if problems:
        if os.environ.get("CI"):
            pytest.fail("; ".join(problems))
        pytest.skip("; ".join(problems))


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@dataclass
class Pair:
    a: ServerProcess
    b: ServerProcess
    etcd: EtcdCluster

    def endpoints(self, via: ServerProcess) -> list[str]:
        res = via.kubectl("get", "endpoints", "kubernetes", "-o", "json", check=False)
        if res.returncode != 0:
            return []
        return [a["ip"] for s in json.loads(res.stdout).get("subsets") or [] for a in s.get("addresses") or []]

    def leases(self, via: ServerProcess) -> list[str]:
        out = via.kubectl("get", "leases", "-n", "kube-system", "-l", "apiserver.kubernetes.io/identity=kube-apiserver",
                          "-o", "name").stdout
        return sorted(out.split())


def wait_for(what: str, cond: Callable[[], bool], timeout: float, diag: Callable[[], str] = lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s\n{diag()}")
        time.sleep(0.2)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    with start_pair(tmp_path, LEASE_FLAGS) as started:
        yield started


@contextlib.contextmanager
def start_pair(tmp_path: Path, lease_flags: tuple[str, ...]) -> Iterator[Pair]:
    """Two `kyb server`s (API servers only) at 10.N.0.1 and 10.N.0.2 on one port, sharing one
    etcd and one PKI (the second gets the first's tls/ directory, as a joining server would)."""
    _require_root_and_tools()
    octet = free_network_octet(200, 250, "kyblb{}a")
    veth_a, veth_b = f"kyblb{octet}a", f"kyblb{octet}b"
    ips = (f"10.{octet}.0.1", f"10.{octet}.0.2")
    etcd = EtcdCluster(tmp_path / "etcd")
    servers: list[ServerProcess] = []
    _ip("link", "add", veth_a, "type", "veth", "peer", "name", veth_b)
    try:
        for link, address in zip((veth_a, veth_b), ips, strict=True):
            _ip("addr", "add", f"{address}/32", "dev", link)
            _ip("link", "set", link, "up")
        etcd.start()
        asyncio.run(etcd.wait_healthy())
        port = free_port()
        store = ("--datastore-endpoint", etcd.endpoints, "--datastore-cafile", etcd.tls.cafile,
                 "--datastore-certfile", etcd.tls.certfile, "--datastore-keyfile", etcd.tls.keyfile)
        for i, address in enumerate(ips):
            data = tmp_path / f"server-{i}"
            if servers:
                shutil.copytree(servers[0].data_dir / "tls", data / "tls")
            servers.append(ServerProcess.start(data, "--advertise-address", address, *store, *lease_flags,
                                               port=port, host=address, service_accounts=False, timeout=90.0))
        yield Pair(servers[0], servers[1], etcd)
    finally:
        for srv in servers:
            srv.stop(timeout=30.0)
        etcd.stop()
        subprocess.run(["ip", "link", "del", veth_a], capture_output=True, timeout=30)


def test_two_api_servers_share_one_store_and_list_each_other(pair: Pair) -> None:
    a, b = pair.a, pair.b
    both = sorted([a.host, b.host])
    wait_for("both servers in the kubernetes endpoints", lambda: pair.endpoints(a) == both, 20,
             lambda: f"{pair.endpoints(a)}\n{a.log()}\n{b.log()}")
    assert pair.endpoints(b) == both
    slices = json.loads(b.kubectl("get", "endpointslice", "kubernetes", "-o", "json").stdout)
    assert [e["addresses"] for e in slices["endpoints"]] == [[ip] for ip in both]
    assert len(pair.leases(a)) == 2

    # A watcher on b sees what is written through a (its list shows the marker: then it watches).
    a.kubectl("create", "configmap", "marker")
    watch = subprocess.Popen(
        [KUBECTL, "get", "configmaps", "--watch", "-o", "name", "--request-timeout", "30s"],
        env=dict(os.environ, KUBECONFIG=str(b.kubeconfig)), stdout=subprocess.PIPE, text=True)
    try:
        seen: list[str] = []
        reader = threading.Thread(target=lambda: seen.extend(iter(watch.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
        reader.start()
        wait_for("b's watch to list the marker", lambda: "configmap/marker\n" in seen, 20, lambda: repr(seen))
        a.kubectl("create", "configmap", "through-a", "--from-literal=k=v")
        wait_for("b's watcher to see the write through a", lambda: "configmap/through-a\n" in seen, 20,
                 lambda: repr(seen))
    finally:
        watch.kill()
        watch.wait()
    assert b.kubectl("get", "configmap", "through-a", "-o", "jsonpath={.data.k}").stdout == "v"

    # SIGKILL: b leaves the endpoints once its lease (3 s) expired, and its lease is collected.
    b.kill()
    wait_for("the killed server to leave the endpoints", lambda: pair.endpoints(a) == [a.host], 20,
             lambda: f"{pair.endpoints(a)}\n{a.log()}")
    wait_for("the killed server's lease to be collected", lambda: len(pair.leases(a)) == 1, 20)


def test_a_server_that_stops_cleanly_leaves_the_endpoints_at_once(tmp_path: Path) -> None:
    """With leases of a minute, b's leaving within seconds is its own doing (APIServer.stop)."""
    with start_pair(tmp_path, ("--identity-lease-duration-seconds", "60")) as pair:
        a, b = pair.a, pair.b
        wait_for("both servers in the kubernetes endpoints", lambda: pair.endpoints(a) == sorted([a.host, b.host]),
                 20)
        stopped_at = time.monotonic()
        assert b.stop(timeout=30.0) == 0, b.log()
        wait_for("the stopped server to leave the endpoints", lambda: pair.endpoints(a) == [a.host], 10)
        assert time.monotonic() - stopped_at < 30
        assert len(pair.leases(a)) == 1


class BalancerThread:
    """An agent's load balancer, following the endpoints, on an event loop of its own."""

    def __init__(self, server_url: str, state_dir: Path, kubeconfig: Path) -> None:
        self.lb = LoadBalancer(server_url, state_dir, port=0, dial_timeout=2.0)
        self.loop = asyncio.new_event_loop()
        self.started = threading.Event()
        self.kubeconfig = kubeconfig
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.started.wait(10), "the balancer did not start"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.lb.start())
        self.follow = self.loop.create_task(follow_endpoints(self.lb, self.kubeconfig, retry=0.5))
        self.started.set()
        self.loop.run_forever()

    def close(self) -> None:
        async def stop() -> None:
            self.follow.cancel()
            await self.lb.stop()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def test_a_client_through_the_balancer_survives_the_death_of_its_server(pair: Pair, tmp_path: Path) -> None:
    a, b = pair.a, pair.b
    both = sorted([a.host, b.host])
    wait_for("both servers in the kubernetes endpoints", lambda: pair.endpoints(a) == both, 20)
    balancer = BalancerThread(a.url, tmp_path / "agent", a.kubeconfig)
    try:
        lb = balancer.lb
        wait_for("the balancer to learn both servers", lambda: sorted(lb.learned) == [f"{ip}:{a.port}" for ip in both],
                 20, lambda: repr(lb.servers))
        state = json.loads((tmp_path / "agent" / "etc" / "apiserver-load-balancer.json").read_text())
        assert sorted(state["serverAddresses"]) == [f"{ip}:{a.port}" for ip in both]
        # An agent-like client: kubectl with the admin's credentials, at the balancer.
        kubeconfig = tmp_path / "via-lb.kubeconfig"
        kubeconfig.write_text(a.kubeconfig.read_text().replace(a.url, lb.url))
        env = {"KUBECONFIG": str(kubeconfig)}
        assert lb.url in kubeconfig.read_text()
        a.kubectl("create", "namespace", "before", env=env)
        assert lb.current == f"{a.host}:{a.port}"
        a.kill()  # the server the balancer (and the client) used
        for i in range(5):  # every request after the kill succeeds, through b
            a.kubectl("create", "configmap", f"after-{i}", "-n", "before", f"--from-literal=i={i}", env=env,
                      timeout=30)
        assert lb.current == f"{b.host}:{b.port}"
        assert b.kubectl("get", "configmap", "after-4", "-n", "before", "-o", "jsonpath={.data.i}").stdout == "4"
    finally:
        balancer.close()


def test_a_real_agent_keeps_its_node_alive_when_its_server_dies(pair: Pair, tmp_path: Path) -> None:
    """`kyb agent --server A`: it learns A and B from the endpoints (with kube-proxy's
    credentials), and once A is SIGKILLed its kubelet keeps renewing the node's lease through B."""
    from tests.join.test_join import _kubelet_available, _teardown_node

    reason = _kubelet_available()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    a, b = pair.a, pair.b
    both = sorted([a.host, b.host])
    wait_for("both servers in the kubernetes endpoints", lambda: pair.endpoints(a) == both, 20)
    token = subprocess.run([sys.executable, "-m", "kybernetes.cli", "token", "create", "--data-dir", str(a.data_dir)],
                           check=True, capture_output=True, text=True, timeout=60).stdout.strip()
    octet = a.host.split(".")[1]
    bridge = f"kyblbn{octet}"
    data_dir = Path(tempfile.mkdtemp(prefix="kyblb-", dir="/tmp"))  # containerd's socket path stays short
    log = tmp_path / "agent.log"
    agent: subprocess.Popen[bytes] | None = None
    try:
        with open(log, "ab") as out:
            agent = subprocess.Popen(
                [sys.executable, "-m", "kybernetes.cli", "agent", "--server", a.url, "--token", token,
                 "--data-dir", str(data_dir), "--node-name", "lb-node", "--node-ip", "127.0.0.1",
                 "--kubelet-port", str(free_port()), "--cni-bridge", bridge, "--default-pod-cidr", "10.42.97.0/24",
                 "--disable-kube-proxy", "--flannel-backend", "none", "--lb-server-port", "0", "-v"],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        proc = agent

        def agent_log() -> str:
            return log.read_text(errors="replace")[-6000:] + ("" if proc.poll() is None else f"\nexit {proc.returncode}")

        def node_ready() -> bool:
            res = a.kubectl("get", "node", "lb-node", "-o", "json", check=False)
            conds = json.loads(res.stdout).get("status", {}).get("conditions", []) if res.returncode == 0 else []
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)

        wait_for("the node to be Ready", node_ready, 120, agent_log)
        state = data_dir / "agent" / "etc" / "apiserver-load-balancer.json"
        wanted = [f"{ip}:{a.port}" for ip in both]

        def learned() -> list[str]:
            try:
                return sorted(json.loads(state.read_text())["serverAddresses"])
            except (OSError, ValueError, KeyError):
                return []

        wait_for("the agent to learn both servers", lambda: learned() == wanted, 30, agent_log)

        def renewed() -> str:
            return b.kubectl("get", "lease", "lb-node", "-n", "kube-node-lease", "-o", "jsonpath={.spec.renewTime}",
                             check=False).stdout

        before = renewed()
        a.kill()
        # The kubelet renews its node lease every 10 s (a quarter of its 40 s duration).
        wait_for("the node lease to be renewed through b", lambda: renewed() > before, 45, agent_log)
        assert proc.poll() is None, agent_log()
        proc.send_signal(15)
        assert proc.wait(120) == 0, agent_log()
    finally:
        if agent is not None and agent.poll() is None:
            agent.kill()
            agent.wait()
        _teardown_node(data_dir, bridge)
        shutil.rmtree(data_dir, ignore_errors=True)
