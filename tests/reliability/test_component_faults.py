"""kill -9 of the control plane's process (scheduler, controller manager, cloud-controller-manager),
the agent (the node's components in one process) and the node's containerd, each during a Deployment
rollout and a Job, on a real ``kyb server`` with its node in the default layout (issues 20, 18). Root only.

One server for the module (the scheduler, the controller manager and the kubelet alone are processes
only with ``--split-control-plane --split-node-components``: their faults are
``test_component_faults_split``'s, on a server of its own); each fault runs
:func:`tests.reliability.faults.fault_round` (its docstring states the promise checked) in a namespace of its own and prints the time to converge.
``bench.faults`` runs more rounds and prints the table.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import wait_until
from tests.e2e.test_node import Node, _pick_network, running_node
from tests.reliability.faults import FAULTS, SPLIT_FAULTS, fault_round, require_node, server_args

pytestmark = pytest.mark.integration


def fault_node(tmp_path_factory: pytest.TempPathFactory, split: bool) -> Iterator[Node]:
    """A server and its node with short leader leases; ``split``: every component a process of its own."""
    require_node()
    tmp = tmp_path_factory.mktemp("kyb-faults").resolve()
    with running_node(tmp, "faults", _pick_network(), *server_args(tmp, split)) as n:
        yield n


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    yield from fault_node(tmp_path_factory, split=False)


@pytest.mark.parametrize("fault", [f for f in FAULTS if f not in SPLIT_FAULTS])
def test_cluster_converges_after_kill_9(node: Node, fault: str) -> None:
    check_fault(node, fault)


def check_fault(node: Node, fault: str) -> None:
    """One fault round (the promise of :func:`fault_round`) in a namespace of its own."""
    ns = "f-" + re.sub(r"[^a-z0-9]+", "-", fault)
    node.kubectl("create", "namespace", ns)
    wait_until(lambda: node.kubectl("get", "sa", "default", "-n", ns, check=False).returncode == 0, 30,
               f"the default ServiceAccount in {ns}")
    try:
        result = fault_round(node.server, node.socket, ns, fault)
    finally:
        node.record_netns()
    print(f"kill -9 {fault}: converged in {result.converge_seconds:.1f} s; at most {result.max_live_pods} live "
          f"Deployment pods; {result.job_pods_succeeded} Job pods succeeded")
    assert result.restarted, f"the {fault} was not restarted"
    assert result.rs_violations == [], result.rs_violations[:5]
    assert result.job_violations == [], result.job_violations
    assert result.orphans == [], result.orphans
    # Waited for: the node must not be stopped (next fault, module teardown) while it removes pods.
    node.kubectl("delete", "namespace", ns, "--timeout=60s", timeout=70)
