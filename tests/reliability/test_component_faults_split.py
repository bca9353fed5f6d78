"""kill -9 of the kubelet alone during a Deployment rollout and a Job: a process of its own only on a
node run with ``--split-node-components`` (``kyb server`` passes it to its agent), which restarts
it (issue 20; by default the kubelet is in the agent's process: ``test_component_faults``' "agent").
Root only; the promise is :func:`tests.reliability.faults.fault_round`'s.
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


@pytest.mark.parametrize("fault", sorted(SPLIT_FAULTS))
def test_cluster_converges_after_kill_9_of_a_split_nodes_component(split_node: Node, fault: str) -> None:
    check_fault(split_node, fault)
