"""kill -9 of the scheduler alone, the controller manager alone and the kubelet alone, each during a
Deployment rollout and a Job: processes of their own only on a server run with
``--split-control-plane --split-node-components`` (``kyb server`` passes the latter to its agent),
whose supervisors restart them (issue 20; by default they are in the control plane's and the agent's
processes: ``test_component_faults``' "control-plane" and "agent"). Root only; the promise is
:func:`tests.reliability.faults.fault_round`'s.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.test_node import Node
from tests.reliability.faults import SPLIT_FAULTS
from tests.reliability.test_component_faults import check_fault, fault_node

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def split_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    yield from fault_node(tmp_path_factory, split=True)


@pytest.mark.parametrize("fault", SPLIT_FAULTS)
def test_cluster_converges_after_kill_9_of_a_component_alone(split_node: Node, fault: str) -> None:
    check_fault(split_node, fault)
