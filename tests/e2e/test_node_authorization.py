"""A whole node under the default ``--authorization-mode Node,RBAC`` (with NodeRestriction): the
kubelet registers its Node,
renews its Lease and runs a pod that uses a secret volume, configmap environment and a projected
service-account token, with nothing but what the Node authorizer grants it; and its log holds no
403 once the pod runs; and it mirrors a static pod, which NodeRestriction lets only a node's own
kubelet create and delete."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from kybernetes.testing import ServerProcess

from .conftest import require_kubectl, wait_until
from .test_node import BUSYBOX, Node, _node_missing, _pick_network

pytestmark = pytest.mark.integration

POD = {
    "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "uses-all"},
    "spec": {
        "terminationGracePeriodSeconds": 1,
        "containers": [{
            "name": "c", "image": BUSYBOX, "command": ["sh", "-c", "cat /s/k /var/run/secrets/kubernetes.io/"
                                                                  "serviceaccount/token >/dev/null && sleep 3600"],
            "envFrom": [{"configMapRef": {"name": "cm"}}],
            "volumeMounts": [{"name": "s", "mountPath": "/s"}]}],
        "volumes": [{"name": "s", "secret": {"secretName": "sec"}}],
    },
}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """A ``kyb server`` with its node, in the default authorization modes: every component (the
    scheduler, each controller, the kubelet, kube-proxy) under its own least-privilege identity."""
    reason = _node_missing()
    if reason:
        pytest.skip(reason)
    require_kubectl()
    tmp = tmp_path_factory.mktemp("kyb-nodeauthz").resolve()
    octet = _pick_network()
    ip_forward = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    (tmp / "manifests").mkdir()
    name = f"authz-node-{octet}"
    srv = ServerProcess.start(
        tmp / "srv", "--cluster-cidr", f"10.{octet}.0.0/16", "--node-name", name,
        "--kubelet-arg", f"cni-bridge=kye{octet}a", "--kubelet-arg", f"default-pod-cidr=10.{octet}.0.0/24",
        "--kubelet-arg", f"pod-manifest-path={tmp / 'manifests'}", agent=True, timeout=60)
    n = Node(srv, octet, tmp, name)
    try:
        wait_until(lambda: n.kubectl("get", "node", name, check=False).returncode == 0, 60, f"node {name}")
        n.kubectl("wait", "--for=condition=Ready", f"node/{name}", "--timeout=90s", timeout=100)
        yield n
    finally:
        n.record_netns()
        problems = n.shutdown()
        Path("/proc/sys/net/ipv4/ip_forward").write_text(ip_forward)
        assert not problems, "\n".join(problems)


def test_kubelet_runs_a_pod_with_only_node_permissions(node: Node, tmp_path: Path) -> None:
    node.kubectl("create", "secret", "generic", "sec", "--from-literal=k=v")
    node.kubectl("create", "configmap", "cm", "--from-literal=A=b")
    node.kubectl("create", "-f", "-", input=json.dumps(POD))  # the scheduler binds it
    ready = node.kubectl("wait", "--for=condition=Ready", "pod/uses-all", "--timeout=90s", timeout=100, check=False)
    assert ready.returncode == 0, node.kubectl("describe", "pod", "uses-all").stdout
    lease = json.loads(node.kubectl("-n", "kube-node-lease", "get", "lease", node.node_name, "-o", "json").stdout)
    assert lease["spec"]["holderIdentity"] == node.node_name
    # No component was refused anything: the kubelet and kube-proxy log into the agent's log, the
    # scheduler and the controller manager into their own.
    logs = node.server.data_dir / "logs"
    text = "".join(p.read_text(errors="replace") for p in logs.glob("*.log"))
    assert "kubelet" in (logs / "agent.log").read_text(errors="replace")
    forbidden = [line for line in text.splitlines() if "forbidden" in line.lower()]
    assert not forbidden, "\n".join(forbidden[:20])
    node.kubectl("delete", "pod", "uses-all", "--wait=false")
    wait_until(lambda: node.kubectl("get", "pod", "uses-all", check=False).returncode != 0, 60, "pod deleted")


def test_kubelet_mirrors_a_static_pod_through_node_restriction(node: Node) -> None:
    """The mirror pod (created and deleted by the node itself) passes NodeRestriction's rules."""
    manifest = node.tmp / "manifests" / "static.yaml"
    manifest.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "static-web", "namespace": "default"},
        "spec": {"terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "c", "image": BUSYBOX, "command": ["sleep", "3600"]}]}}))
    mirror = f"static-web-{node.node_name}"
    try:
        wait_until(lambda: node.kubectl("get", "pod", mirror, check=False).returncode == 0, 90, "the mirror pod")
        annotations = json.loads(node.kubectl("get", "pod", mirror, "-o", "json").stdout)["metadata"]["annotations"]
        assert "kubernetes.io/config.mirror" in annotations
    finally:
        manifest.unlink()
    wait_until(lambda: node.kubectl("get", "pod", mirror, check=False).returncode != 0, 90, "the mirror pod deleted")
