"""NetworkPolicy across nodes on the three-node cluster (``conftest.three_nodes``): the policy of a
pod on net-b is enforced by net-b's kube-proxy for clients on the other nodes, by pod IP and
through a ClusterIP Service, and connections made before a deny keep working.

The server ``srv`` (namespace ``np-srv``, on net-b) serves HTTP on 8080 and echoes lines on 9000;
the clients are pods of namespace ``np-cli``: ``cli-a`` on net-a and ``cli-c`` on net-c.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from kybernetes.images.oci import BUSYBOX_IMAGE
from kybernetes.testing import KUBECTL
from tests.proxy.test_netpol_e2e import read_line

from .conftest import Obj, ThreeNodes, wait_until

pytestmark = pytest.mark.integration

SRV_NS, CLI_NS = "np-srv", "np-cli"
HTTP_PORT, ECHO_PORT = 8080, 9000
POLICY_TIMEOUT = 30.0


def pod(ns: str, name: str, node: str, command: str, **container: object) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"namespace": ns, "name": name, "labels": {"name": name}},
            "spec": {"nodeSelector": {"kubernetes.io/hostname": node}, "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "c", "image": BUSYBOX_IMAGE, "command": ["sh", "-c", command],
                                     **container}]}}


@dataclass
class Pods:
    srv_ip: str
    cluster_ip: str


@pytest.fixture(scope="module")
def pods(three_nodes: ThreeNodes) -> Iterator[Pods]:
    c = three_nodes
    for ns in (SRV_NS, CLI_NS):
        c.kubectl("create", "namespace", ns)
    serve = (f"mkdir -p /www && echo srv > /www/index.html && httpd -f -p {HTTP_PORT} -h /www & "
             f"nc -ll -p {ECHO_PORT} -e cat & wait")
    # The kubelet probes from the node: policies must not stop that.
    objs = [pod(SRV_NS, "srv", "net-b", serve, readinessProbe={"tcpSocket": {"port": HTTP_PORT}, "periodSeconds": 1}),
            pod(CLI_NS, "cli-a", "net-a", "exec sleep 3600"), pod(CLI_NS, "cli-c", "net-c", "exec sleep 3600")]
    c.kubectl("apply", "-f", "-", input="\n".join(json.dumps(o) for o in objs))
    c.apply(SRV_NS, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "srv"},
                     "spec": {"selector": {"name": "srv"}, "ports": [{"port": 80, "targetPort": HTTP_PORT}]}})
    srv = c.wait_ready(SRV_NS, "srv", timeout=120)
    for name in ("cli-a", "cli-c"):
        c.wait_ready(CLI_NS, name, timeout=120)
    yield Pods(srv["status"]["podIP"], c.get("service", "srv", "-n", SRV_NS)["spec"]["clusterIP"])
    c.kubectl("delete", "namespace", SRV_NS, CLI_NS, "--wait=false", check=False)


def connects(c: ThreeNodes, client: str, ip: str, port: int) -> bool:
    """Whether ``client`` (a pod of np-cli) opens a TCP connection to ip:port within 2 s."""
    out = c.exec(CLI_NS, client, "sh", "-c",
                 f"if nc -w 2 {ip} {port} </dev/null >/dev/null 2>&1; then echo ok; else echo no; fi").stdout
    return out.strip() == "ok"


def reach(c: ThreeNodes, p: Pods) -> dict[str, tuple[bool, bool]]:
    """Per client: (by pod IP, through the ClusterIP)."""
    return {cli: (connects(c, cli, p.srv_ip, HTTP_PORT), connects(c, cli, p.cluster_ip, 80))
            for cli in ("cli-a", "cli-c")}


DENY: Obj = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
             "metadata": {"name": "default-deny-ingress"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
ALLOW_CLI_A: Obj = {
    "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "allow-cli-a"},
    "spec": {"podSelector": {"matchLabels": {"name": "srv"}}, "policyTypes": ["Ingress"], "ingress": [{"from": [{
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": CLI_NS}},
        "podSelector": {"matchLabels": {"name": "cli-a"}}}]}]}}


def test_policies_isolate_a_pod_from_other_nodes_by_pod_ip_and_cluster_ip(three_nodes: ThreeNodes,
                                                                          pods: Pods) -> None:
    c = three_nodes
    open_ = {"cli-a": (True, True), "cli-c": (True, True)}
    wait_until(lambda: reach(c, pods) == open_, POLICY_TIMEOUT, "srv open to both clients")
    env = dict(os.environ, KUBECONFIG=str(c.server.kubeconfig))
    # A connection from net-a made before any policy (kubectl exec's nc, fed through stdin)
    held = subprocess.Popen([KUBECTL, "exec", "-i", "-n", CLI_NS, "cli-a", "--", "nc", pods.srv_ip, str(ECHO_PORT)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    try:
        assert held.stdin is not None
        held.stdin.write(b"before\n")
        held.stdin.flush()
        assert read_line(held, 20) == b"before\n"

        c.apply(SRV_NS, DENY)
        closed = {"cli-a": (False, False), "cli-c": (False, False)}
        wait_until(lambda: reach(c, pods) == closed, POLICY_TIMEOUT, "default deny from every other node")
        held.stdin.write(b"after\n")  # the established connection survives
        held.stdin.flush()
        assert read_line(held, 10) == b"after\n"

        c.apply(SRV_NS, ALLOW_CLI_A)  # only cli-a of namespace np-cli, by pod IP and through the Service
        only_a = {"cli-a": (True, True), "cli-c": (False, False)}
        wait_until(lambda: reach(c, pods) == only_a, POLICY_TIMEOUT, "cli-a allowed, cli-c still denied")
    finally:
        held.kill()
        held.wait(10)
        c.kubectl("delete", "networkpolicy", "-n", SRV_NS, "--all", check=False)
    wait_until(lambda: reach(c, pods) == open_, POLICY_TIMEOUT, "srv open again without policies")
