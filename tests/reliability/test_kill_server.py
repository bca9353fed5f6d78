"""kill -9 of ``kyb server`` (issue 20): nothing of the killed instance survives but its pods' shims,
and the server started again on the same data dir adopts the pods; the same for ``kyb agent`` with
children of its own (``--split-node-components``), started again by its server. Root only.

The promise, as k3s keeps it: every process the server started (its control-plane child, its node
agent, the agent's containerd and, with ``--split-node-components``, the agent's kubelet, kube-proxy
and node network children) ends within :data:`GONE_WITHIN` seconds of the server's SIGKILL
(``kybernetes.procctl``: parent-death signals); the containers keep running in their
``containerd-shim-runc-v2`` processes; the next ``kyb server`` on that data dir brings the node back
Ready with the pod Running in the same container (same ID, no restart), the runtime holding no
second container for it, and one agent and one containerd for the node.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kybernetes.kubelet.containerd import process_alive, shim_pids_for
from kybernetes.testing import ServerProcess
from tests.e2e.conftest import wait_until
from tests.e2e.test_node import (
    Node,
    _cmdlines,
    _pick_network,
    agent_pids,
    container_status,
    pod,
    running_node,
)
from tests.reliability.faults import component_pids, require_node, runtime_orphans, server_args

pytestmark = pytest.mark.integration

GONE_WITHIN = 10.0


def _ppids() -> dict[int, int]:
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            out[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return out


def descendants(pid: int) -> dict[int, str]:
    """Every live process below ``pid`` in the process tree, with its command line."""
    parents = _ppids()
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier and p not in found}
        found |= frontier
    names = {p: b" ".join(argv)[:160].decode(errors="replace") for p, argv in _cmdlines() if p in found}
    return {p: names.get(p, "?") for p in found}


def _start_time(pid: int) -> str | None:
    """The process' start time (field 22 of /proc/PID/stat): tells a PID apart from its reuse."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[19]
    except OSError:
        return None


def restart(srv: ServerProcess) -> ServerProcess:
    """The same ``kyb server`` command line again, on the same data dir and ports."""
    with open(srv.log_path, "ab") as log:
        proc = subprocess.Popen(srv.args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    again = ServerProcess(srv.data_dir, srv.port, proc, srv.log_path, srv.args, srv.host, srv.secure_ports)
    try:
        again.wait_ready(60)
    except BaseException:
        again.stop(timeout=30)
        raise
    return again


KILLS = [("server", False), ("server", True), ("agent", True)]
"""(the process killed, whether the node's components are processes of their own): ``kyb agent``
killed alone (the server's supervisor starts it again) matters where it has children, in the split
layout; in the default one it is ``test_component_faults``' ``agent`` fault."""


@pytest.fixture(params=KILLS, ids=[f"{victim}-{'split' if split else 'one-process-node'}" for victim, split in KILLS])
def kill(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Node]]:
    require_node()
    victim, split = request.param
    tmp = tmp_path_factory.mktemp("kyb-kill9").resolve()
    with running_node(tmp, "kill9", _pick_network(), *server_args(tmp, split)) as n:
        yield victim, n


def test_killed_with_sigkill_leaves_only_its_pods_and_comes_back(kill: tuple[str, Node]) -> None:
    victim, node = kill
    ns = "default"
    node.apply(ns, pod("survivor", "sleep 3600"))
    before = container_status(node.wait_ready(ns, "survivor"))
    shims = set(shim_pids_for(str(node.socket)))
    assert shims, "the pod's shim"
    agents = agent_pids(node.server.data_dir)
    assert len(agents) == 1, agents
    killed = node.server.proc.pid if victim == "server" else agents[0]
    tree = descendants(killed)
    started = {pid: _start_time(pid) for pid in tree}

    if victim == "server":
        node.server.kill()
    else:
        os.kill(killed, signal.SIGKILL)

    def survivors() -> dict[int, str]:
        return {pid: argv for pid, argv in tree.items()
                if pid not in shims and _start_time(pid) is not None and _start_time(pid) == started[pid]}

    deadline = time.monotonic() + GONE_WITHIN
    while (left := survivors()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left == {}, f"processes of the killed {victim} still running {GONE_WITHIN:.0f} s later: {left}"
    assert all(process_alive(pid) for pid in shims), f"the pod's shim must outlive the {victim}"

    if victim == "server":
        node.server = restart(node.server)
    else:  # the server's supervisor starts it again (1 s back-off)
        wait_until(lambda: [p for p in agent_pids(node.server.data_dir) if p != killed], 30, "a new agent")
    node.kubectl("wait", "--for=condition=Ready", f"node/{node.node_name}", "--timeout=90s", timeout=100)
    # The new kubelet has synced the pods it found before it runs one created after.
    node.apply(ns, pod("sentinel", "sleep 3600"))
    node.wait_ready(ns, "sentinel")
    after = node.pod(ns, "survivor")
    cs = container_status(after)
    assert after["status"]["phase"] == "Running", after["status"]
    assert cs["containerID"] == before["containerID"], (before, cs)
    assert cs["restartCount"] == 0, cs
    assert cs["state"]["running"]["startedAt"] == before["state"]["running"]["startedAt"]
    uids = {p["metadata"]["uid"] for p in node.get("pods", "-A")["items"]}
    assert asyncio.run(runtime_orphans(node.socket, uids)) == []
    assert len(agent_pids(node.server.data_dir)) == 1
    components = ("containerd", "kubelet", "proxy", "network") if "--split-node-components" in node.server.args \
        else ("containerd",)
    for name in components:
        assert len(component_pids(node.server.data_dir, name)) == 1, name
    node.kubectl("delete", "pod", "survivor", "sentinel", "-n", ns, "--timeout=60s", timeout=70)
