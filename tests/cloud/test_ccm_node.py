"""A real node under ``kyb server`` with the cloud-controller-manager (on by default): its kubelet
runs with ``--cloud-provider=external`` (registering the node with the uninitialized taint) and the
cloud node controller initialises it; a LoadBalancer Service gets an address of the server's
``lb-pool`` (a loopback range of this module's own) and a curl from this machine to it reaches the
pod through kube-proxy. Needs root, containerd, runc and curl. The node is tests/e2e's
``running_node``: its own bridge and pod network, and nothing left behind once it stops."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from kybernetes.images.oci import BUSYBOX_IMAGE
from kybernetes.testing import ServerProcess
from tests.e2e.test_node import _node_missing, _pick_network, running_node

pytestmark = pytest.mark.integration
LB_POOL = "127.0.100.4/30"  # this module's own (test_ccm_server's is 127.0.100.0/30): .5 and .6
LB_FINALIZER = "service.kubernetes.io/load-balancer-cleanup"
Obj = dict[str, Any]


NODE_PREFIX = "ccm-node"


@pytest.fixture(scope="module")
def node_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    missing = _node_missing() or (None if shutil.which("curl") else "needs curl")
    if missing:
        if os.environ.get("CI"):
            pytest.fail(missing + " on CI")
        pytest.skip(missing + " (CI has it)")
    with running_node(tmp_path_factory.mktemp("ccmnode").resolve(), NODE_PREFIX, _pick_network(),
                      "--kube-cloud-controller-manager-arg", "zone=zone-z",
                      "--kube-cloud-controller-manager-arg", f"lb-pool={LB_POOL}", cloud=True) as node:
        yield node.server


def node_name(srv: ServerProcess) -> str:
    return str(json.loads(srv.kubectl("get", "nodes", "-o", "json").stdout)["items"][0]["metadata"]["name"])


def test_the_servers_node_is_registered_uninitialized_and_initialized(node_server: ServerProcess) -> None:
    deadline = time.monotonic() + 90
    node: dict[str, Any] = {}
    name = node_name(node_server)
    assert name.startswith(NODE_PREFIX)
    while time.monotonic() < deadline:
        res = node_server.kubectl("get", "node", name, "-o", "json", check=False)
        node = json.loads(res.stdout) if res.returncode == 0 else {}
        if node.get("spec", {}).get("providerID"):
            break
        time.sleep(0.5)
    # The cloud node controller acts only on nodes with the uninitialized taint: a providerID
    # proves the kubelet registered with it.
    assert node["spec"]["providerID"] == f"kyb://{name}", node
    assert not any(t["key"] == "node.cloudprovider.kubernetes.io/uninitialized" for t in node["spec"].get("taints", []))
    assert node["metadata"]["labels"]["topology.kubernetes.io/zone"] == "zone-z"
    assert node["metadata"]["labels"]["node.kubernetes.io/instance-type"] == "kyb"
    # The route controller records the node's pod CIDR route (from node IPAM) and says so.
    def route_created() -> bool:
        n = json.loads(node_server.kubectl("get", "node", name, "-o", "json").stdout)
        return any(c["type"] == "NetworkUnavailable" and c["reason"] == "RouteCreated"
                   for c in n["status"].get("conditions", []))
    while not route_created():
        assert time.monotonic() < deadline, "NetworkUnavailable=False RouteCreated never written"
        time.sleep(0.5)
    # It was NoRouteCreated from its initialisation until then (tainted network-unavailable by the
    # node lifecycle controller): the taint goes, the node takes pods (the next test's).
    def schedulable() -> bool:
        n = json.loads(node_server.kubectl("get", "node", name, "-o", "json").stdout)
        return not any(t["key"] == "node.kubernetes.io/network-unavailable" for t in n["spec"].get("taints") or [])
    while not schedulable():
        assert time.monotonic() < deadline, "the network-unavailable taint never removed"
        time.sleep(0.5)


def wait_for(fn: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def lb_service(name: str, selector: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"type": "LoadBalancer", "selector": {"app": selector},
                     "ports": [{"port": 80, "targetPort": 8080}]}}


def external_ip(srv: ServerProcess, name: str) -> str:
    """The EXTERNAL-IP column of ``kubectl get svc NAME`` once it is an address ("<pending>" before)."""
    columns = srv.kubectl("get", "svc", name, "--no-headers").stdout.split()
    return columns[3] if len(columns) > 3 and columns[3][0].isdigit() else ""


def curl(url: str) -> str:
    """What ``curl`` from this machine gets (its error text when it gets nothing)."""
    res = subprocess.run(["curl", "-sS", "--noproxy", "*", "-m", "3", url], capture_output=True, text=True,
                         timeout=10)
    return res.stdout if res.returncode == 0 else f"curl exit {res.returncode}: {res.stderr.strip()}"


def test_load_balancer_service_answers_on_its_address(node_server: ServerProcess) -> None:
    srv = node_server
    script = "mkdir -p /www && echo hello from the load balancer > /www/index.html && exec httpd -f -p 8080 -h /www"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default",
                                                           "labels": {"app": "web"}},
           "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
               "name": "httpd", "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never", "command": ["sh", "-c", script],
               "ports": [{"containerPort": 8080}], "readinessProbe": {
                   "tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}}
    wait_for(lambda: srv.kubectl("get", "sa", "default", check=False).returncode == 0, 60,
             "the default ServiceAccount")
    srv.kubectl("apply", "-f", "-", input=json.dumps(pod))
    # Two Services take both addresses of the pool: the one released later is the only one free.
    srv.kubectl("apply", "-f", "-", input=json.dumps(lb_service("web", "web")))
    srv.kubectl("apply", "-f", "-", input=json.dumps(lb_service("other", "nothing")))
    srv.kubectl("wait", "--for=condition=Ready", "pod/web", "--timeout=120s", timeout=130)

    address = wait_for(lambda: external_ip(srv, "web"), 60, "web's EXTERNAL-IP")
    other = wait_for(lambda: external_ip(srv, "other"), 60, "other's EXTERNAL-IP")
    assert {address, other} == {"127.0.100.5", "127.0.100.6"}
    svc = json.loads(srv.kubectl("get", "svc", "web", "-o", "json").stdout)
    assert [i["ip"] for i in svc["status"]["loadBalancer"]["ingress"]] == [address]
    assert LB_FINALIZER in svc["metadata"]["finalizers"]
    # kube-proxy programs the address once it sees the status: the curl answers from the pod.
    got = wait_for(lambda: (out := curl(f"http://{address}/")) == "hello from the load balancer\n" and out, 60,
                   f"curl http://{address}/ answered by the pod")
    assert got == "hello from the load balancer\n"

    # Deleted: the provider lets the address go, then the finalizer is removed and the Service is gone.
    srv.kubectl("delete", "svc", "web", "--timeout=60s", timeout=70)
    assert srv.kubectl("get", "svc", "web", check=False).returncode != 0
    wait_for(lambda: curl(f"http://{address}/").startswith("curl exit"), 60, f"{address} no longer answering")
    # The address is free again: a new Service gets it (the pool's other address is still held).
    srv.kubectl("apply", "-f", "-", input=json.dumps(lb_service("again", "web")))
    assert wait_for(lambda: external_ip(srv, "again"), 60, "again's EXTERNAL-IP") == address
    assert wait_for(lambda: (out := curl(f"http://{address}/")).startswith("hello") and out, 60,
                    f"curl http://{address}/ through the new Service") == "hello from the load balancer\n"
    for name in ("again", "other"):
        srv.kubectl("delete", "svc", name, "--timeout=60s", timeout=70)
    srv.kubectl("delete", "pod", "web", "--timeout=60s", timeout=70)
