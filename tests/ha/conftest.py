"""API servers on machines of their own: network namespaces on a test bridge (``tests.machines``).

::

    host (the test): bridge kybtN 10.N.0.1/24
      |-- netns kybtN-a  10.N.0.2  kyb server --cluster-init   (etcd member, API server, ...)
      |-- netns kybtN-b  10.N.0.3  kyb server --server https://10.N.0.2:6443 --token T
      `-- netns kybtN-c  10.N.0.4  kyb server --server ...   (the only node: its agent)

Each server runs in its machine (``Machine.enter``) on port 6443 of its address (``--bind-address``
and ``--advertise-address``), so its own ``kubeconfig.yaml`` names that address and the test reaches
it over the bridge. Pods are 10.P.0.0/16 and Services 10.N.16.0/20 (``free_octets``).

:func:`ha_machines` (one per test) makes the network; the test starts servers on it. Teardown stops
every server (the one with the node first: its agent drains its pods through its API server), then
SIGKILLs anything left in a machine (reported as a leak, as are pods' network namespace files left
on the host), deletes the namespaces (with them every link, route and nftables table made inside),
the bridge and the data dirs (their logs kept in the test's ``tmp_path``), and fails the test if
something had to be removed by force.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kybernetes.apiserver.join.tokens import read_server_token
from kybernetes.testing import ServerProcess, stop_process
from tests.e2e.conftest import require_kubectl
from tests.e2e.test_node import sandbox_netns
from tests.machines import Machine, free_octets, make_network, remove_network, require_root

API_PORT = 6443


@dataclass
class ServerMachine:
    """A machine that runs ``kyb server`` (``extra``: its own flags) and can lose power."""

    machine: Machine
    data_dir: Path
    extra: list[str]
    agent: bool = False
    srv: ServerProcess | None = None

    @property
    def name(self) -> str:
        return self.machine.name

    @property
    def url(self) -> str:
        return f"https://{self.machine.address}:{API_PORT}"

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig.yaml"

    def start(self, timeout: float = 90.0) -> ServerProcess:
        """Start the server (again, on the same data dir and flags) and wait until it is ready."""
        assert self.srv is None or self.srv.proc.poll() is not None, f"{self.name} is running"
        self.srv = ServerProcess.start(
            self.data_dir, "--advertise-address", self.machine.address, "--node-name", self.name, *self.extra,
            port=API_PORT, host=self.machine.address, launcher=self.machine.enter(self.data_dir / "sysfs"),
            control_plane=True, agent=self.agent, timeout=timeout)
        return self.srv

    def power_off(self) -> list[int]:
        """kill -9 every process of the machine (the server and its children: etcd, scheduler, ...)."""
        assert self.srv is not None
        pids = self.machine.kill_all()
        self.srv.proc.wait(10)
        return pids

    def kubectl(self, *args: str, check: bool = True, timeout: float = 60.0) -> str:
        assert self.srv is not None
        return self.srv.kubectl(*args, check=check, timeout=timeout).stdout


@dataclass
class HAMachines:
    machines: list[Machine]
    gateway: str
    cluster_cidr: str
    service_cidr: str
    data_dirs: list[Path]
    servers: list[ServerMachine] = field(default_factory=list)

    def first_server(self, i: int = 0, *, agent: bool = False) -> ServerMachine:
        """``kyb server --cluster-init`` on machine ``i``."""
        return self._server(i, ["--cluster-init"], agent)

    def joining_server(self, i: int, first: ServerMachine, *, agent: bool = False) -> ServerMachine:
        """``kyb server --server FIRST --token T`` on machine ``i`` (once FIRST has started)."""
        token = read_server_token(first.data_dir)
        assert token is not None, f"{first.name} has no server token"
        return self._server(i, ["--server", first.url, "--token", token], agent)

    def _server(self, i: int, flags: list[str], agent: bool) -> ServerMachine:
        common = ["--cluster-cidr", self.cluster_cidr, "--service-cluster-ip-range", self.service_cidr]
        if agent:
            common.append("--disable-kube-proxy")  # the tests need no Service: one process less
        s = ServerMachine(self.machines[i], self.data_dirs[i], [*common, *flags], agent)
        self.servers.append(s)
        return s


def _keep_logs(cluster: HAMachines, keep: Path) -> None:
    """Copies each server's logs (its own, its components', its etcd member's) out of its data dir."""
    for s in cluster.servers:
        for log in [s.data_dir / "server.log", *sorted((s.data_dir / "logs").glob("*.log"))]:
            if log.is_file():
                (keep / s.name).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(log, keep / s.name / log.name)


def _teardown(cluster: HAMachines, bridge: str, keep: Path) -> list[str]:
    problems: list[str] = []
    pod_netns: set[str] = set()
    # The node's server first (its agent drains its pods through the API), then the others at
    # once: stopped one by one, the last would wait out requests that need the lost quorum.
    for s in cluster.servers:
        if s.agent:
            pod_netns |= sandbox_netns(s.data_dir / "agent" / "containerd" / "containerd.sock")
    running = [s for s in sorted(cluster.servers, key=lambda s: not s.agent)
               if s.srv is not None and s.srv.proc.poll() is None]
    for group in ([s for s in running if s.agent], [s for s in running if not s.agent]):
        for s in group:
            assert s.srv is not None
            s.srv.proc.send_signal(signal.SIGTERM)
        for s in group:
            assert s.srv is not None
            if stop_process(s.srv.proc, 90) != 0:
                problems.append(f"{s.name} exited with {s.srv.proc.returncode}:\n{s.srv.log()}")
    for m in cluster.machines:
        left = m.kill_all()
        if left:
            problems.append(f"processes left on {m.name}: {left}")
    remove_network(bridge, cluster.machines)
    left_files = sorted(p for p in pod_netns if os.path.exists(p))
    if left_files:
        problems.append(f"network namespace files of our pods left: {left_files}")
    for path in left_files:
        if not os.path.ismount(path):
            os.unlink(path)
    _keep_logs(cluster, keep)
    for d in cluster.data_dirs:
        shutil.rmtree(d, ignore_errors=True)
    return problems


@pytest.fixture
def ha_machines(tmp_path: Path) -> Iterator[HAMachines]:
    require_root("the HA tests", ("etcd", "containerd", "runc", "nsenter", "unshare", "nft"))
    require_kubectl()
    pods, hosts = free_octets(2)
    bridge, gateway = f"kybt{hosts}", f"10.{hosts}.0.1"
    machines = [Machine(f"ha-{x}", f"kybt{hosts}-{x}", f"kybt{hosts}{x}", f"10.{hosts}.0.{2 + i}")
                for i, x in enumerate("abc")]
    # Short data dirs: a containerd socket path must stay under the 108-byte unix socket limit.
    data_dirs = [Path(tempfile.mkdtemp(prefix=f"kybha{x}-", dir="/tmp")).resolve() for x in "abc"]
    cluster = HAMachines(machines, gateway, f"10.{pods}.0.0/16", f"10.{hosts}.16.0/20", data_dirs)
    try:
        make_network(bridge, gateway, machines)
        yield cluster
    finally:
        problems = _teardown(cluster, bridge, tmp_path)
        assert not problems, "\n".join(problems)
