"""A cluster of three nodes, each in a network namespace of its own, joined by a test bridge.

::

    host:  bridge kybtN (10.M.0.1/24), kyb server (API server, scheduler, controller manager; no node)
             |-- veth kybtNa -- netns kybtN-a: eth0 10.M.0.2, kyb agent net-a (kubelet, containerd,
             |                                 kube-proxy, kyb network), pod bridge kypNa
             |-- veth kybtNb -- netns kybtN-b: eth0 10.M.0.3, kyb agent net-b ...
             `-- veth kybtNc -- netns kybtN-c: eth0 10.M.0.4, kyb agent net-c ...

Pods are 10.P.0.0/16 (a /24 per node from node IPAM), Services 10.M.16.0/20; P and M are second
octets free on this machine (no route, address or link uses them), found from this process's PID
upwards, so that concurrent runs and other clusters here never share an address. No test traffic
leaves these namespaces and the test bridge.

The namespaces, the bridge and the way into a machine are ``tests.machines``'; each agent runs
in its machine's network namespace and a mount namespace of its own (``Machine.enter``). The
mounts its containerd makes (rootfs overlays, the pods' network namespace files) stay in that
mount namespace and go with it.

One package-scoped fixture (:func:`three_nodes`) is shared by every test module here: starting
three nodes takes a while. Teardown stops every process by PID (agents first, SIGTERM, which drains their
pods), kills what is left of each node by its data dir, deletes the namespaces (and with them the
pod bridges, veths, routes and nftables tables), the pods' namespace files and the test bridge,
and fails the package's last test if anything had to be removed by force.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kybernetes.apiserver.join.tokens import server_token
from kybernetes.kubelet.containerd import kill_pids
from kybernetes.testing import ServerProcess
from tests.e2e.conftest import is_ready, require_kubectl, wait_until
from tests.e2e.test_node import sandbox_netns
from tests.machines import Machine, free_octets, make_network, pids_naming, remove_network, require_root

Obj = dict[str, Any]
KYB = [sys.executable, "-m", "kybernetes.cli"]
NODE_NAMES = ("net-a", "net-b", "net-c")


@dataclass
class NetNode(Machine):
    """One node: a machine (its network namespace, with a veth on the test bridge) and its ``kyb agent``."""

    pod_bridge: str
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def pod_routes(self) -> dict[str, str]:
        """The node network's routes here: ``{pod CIDR: gateway}`` (``proto 107``)."""
        out = self.run("ip", "-j", "-4", "route", "show", "proto", "107").stdout
        return {r["dst"]: r.get("gateway", "") for r in json.loads(out or "[]")}

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""


@dataclass
class ThreeNodes:
    server: ServerProcess
    bridge: str
    gateway: str  # the test bridge's address: the API server's, and "outside the cluster" for pods
    cluster_cidr: str
    service_cidr: str
    nodes: list[NetNode]
    tmp: Path
    pod_netns_files: set[str] = field(default_factory=set)

    def node(self, name: str) -> NetNode:
        return next(n for n in self.nodes if n.name == name)

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 90.0) -> subprocess.CompletedProcess[str]:
        return self.server.kubectl(*args, input=input, check=check, timeout=timeout)

    def apply(self, ns: str, *objs: Obj) -> None:
        self.kubectl("apply", "-n", ns, "-f", "-", input="\n".join(json.dumps(o) for o in objs))

    def get(self, *args: str) -> Obj:
        out: Obj = json.loads(self.kubectl("get", *args, "-o", "json").stdout)
        return out

    def wait_ready(self, ns: str, name: str, timeout: float = 90) -> Obj:
        def ready() -> Obj | None:
            res = self.kubectl("get", "pod", name, "-n", ns, "-o", "json", check=False)
            pod: Obj | None = json.loads(res.stdout) if res.returncode == 0 else None
            return pod if pod is not None and is_ready(pod) else None
        try:
            return dict(wait_until(ready, timeout, f"pod {ns}/{name} Ready", interval=0.3))
        except AssertionError as err:
            described = self.kubectl("describe", "pod", name, "-n", ns, check=False).stdout
            raise AssertionError(f"{err}\n{described}") from None

    def exec(self, ns: str, pod: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.kubectl("exec", "-n", ns, pod, "--", *cmd, check=check, timeout=60)

    def record_pod_netns(self) -> None:
        """The network namespace files of the nodes' pods now, from each node's containerd."""
        for n in self.nodes:
            self.pod_netns_files |= sandbox_netns(n.data_dir / "containerd" / "containerd.sock")


def _start_agent(node: NetNode, server: ServerProcess, cfg: dict[str, str], *extra: str) -> None:
    # No upstream nameserver for pods: no DNS query leaves this machine (see ServerProcess.start).
    resolv = node.data_dir / "test-resolv.conf"
    resolv.write_text("# kybernetes tests: no upstream nameserver\n")
    argv = [
        *node.enter(node.data_dir / "sysfs"), *KYB, "agent", "--server", cfg["url"], "--token", server_token(server.data_dir),
        "--data-dir", str(node.data_dir), "--node-name", node.name, "--node-ip", node.address,
        "--cni-bridge", node.pod_bridge, "--default-pod-cidr", cfg["default_pod_cidr"],
        "--cluster-cidr", cfg["cluster_cidr"], "--service-cluster-ip-range", cfg["service_cidr"],
        "--kubelet-arg", "drain-on-exit", "--kubelet-arg", f"resolv-conf={resolv}", "-v", *extra,
    ]
    with open(node.log_path, "ab") as out:
        node.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def teardown(nodes: list[NetNode], bridge: str, server: ServerProcess | None, pod_netns_files: set[str]) -> list[str]:
    """Stop and remove everything (safe after a partial start); what had to be removed by force
    (a leak) is returned."""
    problems: list[str] = []
    running = [n.proc for n in nodes if n.proc is not None and n.proc.poll() is None]
    for proc in running:  # one SIGTERM each, all at once (each drains its pods); a second would kill
        proc.send_signal(signal.SIGTERM)
    for proc in running:
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for n in nodes:
        if n.proc is not None and n.proc.returncode != 0:
            problems.append(f"agent {n.name} exited with {n.proc.returncode}:\n{n.log()}")
    if server is not None and server.stop() != 0:
        problems.append(f"kyb server exited with {server.proc.returncode}:\n{server.log()}")
    for n in nodes:
        pids = pids_naming(n.data_dir)
        if pids:
            problems.append(f"processes of {n.name} still running: {pids}")
            kill_pids(pids)
    remove_network(bridge, list(nodes))
    left = sorted(p for p in pod_netns_files if os.path.exists(p))
    if left:
        problems.append(f"network namespace files of our pods left: {left}")
    for path in left:
        # Plain files on the host: the nsfs mounts on them were in the nodes' mount namespaces.
        if not os.path.ismount(path):
            os.unlink(path)
    for n in nodes:
        shutil.rmtree(n.data_dir, ignore_errors=True)
    return problems


@pytest.fixture(scope="package")
def three_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreeNodes]:
    require_root("the three-node network tests", ("containerd", "runc", "nsenter", "unshare", "nft"))
    require_kubectl()
    pods, hosts = free_octets(2)
    bridge, gateway = f"kybt{hosts}", f"10.{hosts}.0.1"
    cluster_cidr, service_cidr = f"10.{pods}.0.0/16", f"10.{hosts}.16.0/20"
    tmp = tmp_path_factory.mktemp("three-nodes").resolve()
    nodes = []
    for i, name in enumerate(NODE_NAMES):
        letter = "abc"[i]
        # A short data dir: containerd's socket path must stay under the 108-byte unix socket limit.
        data_dir = Path(tempfile.mkdtemp(prefix=f"kybnet{letter}-", dir="/tmp")).resolve()
        nodes.append(NetNode(name, f"kybt{hosts}-{letter}", f"kybt{hosts}{letter}", f"10.{hosts}.0.{2 + i}",
                             f"kyp{pods}{letter}", data_dir, tmp / f"agent-{name}.log"))
    server = None
    cluster = None
    try:
        make_network(bridge, gateway, list(nodes))
        server = ServerProcess.start(
            tmp / "srv", "--bind-address", "0.0.0.0", "--advertise-address", gateway, "--tls-san", gateway,
            "--cluster-cidr", cluster_cidr, "--service-cluster-ip-range", service_cidr,
            control_plane=True, timeout=60)
        cluster = ThreeNodes(server, bridge, gateway, cluster_cidr, service_cidr, nodes, tmp)
        cfg = {"url": f"https://{gateway}:{server.port}", "cluster_cidr": cluster_cidr, "service_cidr": service_cidr}
        for i, n in enumerate(nodes):
            _start_agent(n, server, {**cfg, "default_pod_cidr": f"10.{pods}.{250 + i}.0/24"})
        _wait_nodes(cluster)
        yield cluster
    finally:
        if cluster is not None:
            cluster.record_pod_netns()
        problems = teardown(nodes, bridge, server, cluster.pod_netns_files if cluster else set())
        assert not problems, "\n".join(problems)


def _wait_nodes(cluster: ThreeNodes) -> None:
    """Every node registered, Ready and with a pod CIDR; the default ServiceAccount exists."""
    def all_ready() -> bool:
        res = cluster.kubectl("get", "nodes", "-o", "json", check=False)
        if res.returncode != 0:
            return False
        items = json.loads(res.stdout)["items"]
        ready = {n["metadata"]["name"] for n in items if n["spec"].get("podCIDR") and any(
            c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions") or [])}
        return ready >= set(NODE_NAMES)
    deadline = time.monotonic() + 150
    while not all_ready():
        for n in cluster.nodes:
            if n.proc is not None and n.proc.poll() is not None:
                raise AssertionError(f"agent {n.name} exited with {n.proc.returncode}:\n{n.log()}")
        if time.monotonic() > deadline:
            nodes = cluster.kubectl("get", "nodes", "-o", "wide", check=False).stdout
            raise AssertionError(f"nodes not Ready with a pod CIDR after 150 s:\n{nodes}\n"
                                 + "\n".join(f"--- {n.name}\n{n.log()}" for n in cluster.nodes))
        time.sleep(0.5)
    wait_until(lambda: cluster.kubectl("get", "sa", "default", "-n", "default", check=False).returncode == 0, 30,
               "the default ServiceAccount")
