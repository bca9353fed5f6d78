"""A real node under the cloud-controller-manager's node lifecycle: ``kyb agent`` in a network
namespace of the test's own, joined with the kubelet's ``--cloud-provider=external``.

Its agent stopped: the machine still answers (the kubelet's port refuses) -> the node is tainted
``node.cloudprovider.kubernetes.io/shutdown`` and kept. Then the machine goes for good (its
namespace and veth deleted: its address answers nothing) -> the node is deleted.
"""

from __future__ import annotations

import json
import signal
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kybernetes.testing import ServerProcess
from tests.e2e.conftest import require_kubectl, wait_until
from tests.machines import free_octets, ip, make_network, require_root
from tests.network.conftest import NetNode, _start_agent, teardown

pytestmark = pytest.mark.integration
Obj = dict[str, Any]
NODE = "cloud-gone"


@dataclass
class OneNode:
    server: ServerProcess
    node: NetNode

    def get_node(self) -> Obj | None:
        res = self.server.kubectl("get", "node", NODE, "-o", "json", check=False)
        return json.loads(res.stdout) if res.returncode == 0 else None


@pytest.fixture(scope="module")
def one_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OneNode]:
    require_root("the cloud node tests", ("containerd", "runc", "nsenter", "unshare", "nft"))
    require_kubectl()
    pods, hosts = free_octets(2)
    bridge, gateway = f"kybt{hosts}", f"10.{hosts}.0.1"
    cluster_cidr, service_cidr = f"10.{pods}.0.0/16", f"10.{hosts}.16.0/20"
    tmp = tmp_path_factory.mktemp("cloud-gone").resolve()
    data_dir = Path(tempfile.mkdtemp(prefix="kybcg-", dir="/tmp")).resolve()
    node = NetNode(NODE, f"kybt{hosts}-a", f"kybt{hosts}a", f"10.{hosts}.0.2", f"kyp{pods}a", data_dir,
                   tmp / "agent.log")
    server = None
    try:
        make_network(bridge, gateway, [node])
        server = ServerProcess.start(
            tmp / "srv", "--bind-address", "0.0.0.0", "--advertise-address", gateway, "--tls-san", gateway,
            "--cluster-cidr", cluster_cidr, "--service-cluster-ip-range", service_cidr,
            "--kube-cloud-controller-manager-arg", "node-monitor-period=1s",
            "--kube-controller-manager-arg", "node-monitor-grace-period=8s", control_plane=True, cloud=True,
            timeout=60)
        cfg = {"url": f"https://{gateway}:{server.port}", "cluster_cidr": cluster_cidr, "service_cidr": service_cidr,
               "default_pod_cidr": f"10.{pods}.250.0/24"}
        _start_agent(node, server, cfg, "--kubelet-arg", "cloud-provider=external")
        yield OneNode(server, node)
    finally:
        problems = teardown([node], bridge, server, set())
        assert not problems, "\n".join(problems)


def test_a_stopped_agent_is_shut_down_and_a_gone_machine_is_removed(one_node: OneNode) -> None:
    def initialized() -> Obj | None:
        n = one_node.get_node()
        ready = n and any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions") or [])
        return n if ready and n["spec"].get("providerID") == f"kyb://{NODE}" else None
    wait_until(initialized, 150, "the node Ready and initialised by the cloud node controller")

    proc = one_node.node.proc
    assert proc is not None
    proc.send_signal(signal.SIGTERM)  # the agent stops (its kubelet drains and goes): the machine stays
    proc.wait(120)

    def shut_down() -> bool:
        n = one_node.get_node() or {}
        return any(t["key"] == "node.cloudprovider.kubernetes.io/shutdown" for t in n.get("spec", {}).get("taints") or [])
    wait_until(shut_down, 60, "the shutdown taint on the NotReady node")
    assert one_node.get_node() is not None

    ip("netns", "delete", one_node.node.netns)  # the machine is gone for good (its veth with it)
    wait_until(lambda: one_node.get_node() is None, 60, "the node deleted")
