"""A real node under ``kyb server --enable-cloud-controller``: its kubelet runs with
``--cloud-provider=external`` (registering the node with the uninitialized taint) and the cloud
node controller initialises it. Needs root, containerd and runc (the node's own containerd)."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest

from kybernetes.testing import ServerProcess, free_network_octet

pytestmark = pytest.mark.integration


def _node_missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (containerd, CNI)"
    for binary in ("containerd", "runc"):
        if shutil.which(binary) is None:
            return f"needs {binary}"
    return None


@pytest.fixture(scope="module")
def node_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    missing = _node_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(missing + " on CI")
        pytest.skip(missing + " (CI has it)")
    octet = free_network_octet(160, 200, "kyc{}a")
    srv = ServerProcess.start(
        tmp_path_factory.mktemp("ccmnode"), "--enable-cloud-controller", "--node-name", "ccm-node",
        "--kube-cloud-controller-manager-arg", "zone=zone-z",
        "--cluster-cidr", f"10.{octet}.0.0/17", "--service-cluster-ip-range", f"10.{octet}.128.0/17",
        "--kubelet-arg", f"cni-bridge=kyc{octet}a", "--kubelet-arg", f"default-pod-cidr=10.{octet}.0.0/24",
        agent=True, timeout=90)
    try:
        yield srv
    finally:
        srv.stop()


def test_the_servers_node_is_registered_uninitialized_and_initialized(node_server: ServerProcess) -> None:
    deadline = time.monotonic() + 90
    node: dict[str, Any] = {}
    while time.monotonic() < deadline:
        res = node_server.kubectl("get", "node", "ccm-node", "-o", "json", check=False)
        node = json.loads(res.stdout) if res.returncode == 0 else {}
        if node.get("spec", {}).get("providerID"):
            break
        time.sleep(0.5)
    # The cloud node controller acts only on nodes with the uninitialized taint: a providerID
    # proves the kubelet registered with it.
    assert node["spec"]["providerID"] == "kyb://ccm-node", node
    assert not any(t["key"] == "node.cloudprovider.kubernetes.io/uninitialized" for t in node["spec"].get("taints", []))
    assert node["metadata"]["labels"]["topology.kubernetes.io/zone"] == "zone-z"
    assert node["metadata"]["labels"]["node.kubernetes.io/instance-type"] == "kyb"
    # The route controller records the node's pod CIDR route (from node IPAM) and says so.
    def route_created() -> bool:
        n = json.loads(node_server.kubectl("get", "node", "ccm-node", "-o", "json").stdout)
        return any(c["type"] == "NetworkUnavailable" and c["reason"] == "RouteCreated"
                   for c in n["status"].get("conditions", []))
    while not route_created():
        assert time.monotonic() < deadline, "NetworkUnavailable=False RouteCreated never written"
        time.sleep(0.5)
