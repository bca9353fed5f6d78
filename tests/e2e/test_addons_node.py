"""A default `kyb server` with its node (as scripts/server.sh starts it: add-ons and the
cloud-controller-manager on): the node comes up Ready and initialised by the cloud node controller,
the CoreDNS add-on runs from the system image, pods reach the API server through the kubernetes
Service, and pods' resolv.conf points at the cluster DNS; the metrics-server add-on makes `kubectl top`
work.

The server starts as a user starts it (no --bind-address): it serves on loopback and on this
machine's primary address, which the kubernetes Service's endpoints name. A pod's traffic to
10.43.0.1 is DNATed by kube-proxy to that address, which is this machine's own: nothing leaves it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from kybernetes.images.system import system_image_name
from kybernetes.pki import primary_address

from .conftest import Obj, wait_until
from .test_node import Node, _pick_network, pod, require_node, running_node

# A Python client in the system image, with the pod's own service account (in-cluster config).
IN_CLUSTER_LIST = """
import asyncio
from kybernetes.client import Client

async def main():
    async with Client.in_cluster() as c:
        svcs = await c.list("v1", "services", "default")
        print(" ".join(s["metadata"]["name"] for s in svcs["items"]))

asyncio.run(main())
"""


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    require_node(pods_reach_primary_address=True)
    octet = _pick_network()
    with running_node(tmp_path_factory.mktemp("kyb-addons").resolve(), "e2e-addons", octet,
                      "--bind-address", "", addons=True, cloud=True) as n:
        yield n


def test_the_node_is_ready_and_initialised_by_the_cloud_controller(node: Node) -> None:
    """The kubelet registers with the uninitialized taint (the server runs it with
    ``--cloud-provider=external``) and the cloud node controller initialises the node: providerID,
    instance type, and the taint removed, so that pods schedule."""
    def initialised() -> Obj | None:
        n = node.get("node", node.node_name)
        return n if n["spec"].get("providerID") and not n["spec"].get("taints") else None

    n = wait_until(initialised, 90, "the node initialised (providerID set, no taint)")
    assert n["spec"]["providerID"] == f"kyb://{node.node_name}"
    assert n["metadata"]["labels"]["node.kubernetes.io/instance-type"] == "kyb"
    assert any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
    wait_until(lambda: "Synced" in {e["reason"] for e in node.events("default", node.node_name)}, 30,
               "the cloud node controller's Synced event")


def test_coredns_runs_from_the_system_image(node: Node) -> None:
    def coredns_started() -> dict | None:  # type: ignore[type-arg]
        pods = node.get("pods", "-n", "kube-system", "-l", "k8s-app=kube-dns")["items"]
        for p in pods:
            for cs in (p.get("status") or {}).get("containerStatuses") or []:
                if cs.get("imageID") and ("running" in cs["state"] or cs.get("lastState", {}).get("terminated")):
                    return p
        return None

    # The kubelet imports the system image in the background (its first build takes a few seconds).
    p = wait_until(coredns_started, 180, "the coredns pod's container started")
    assert p["spec"]["containers"][0]["image"] == system_image_name()
    assert p["spec"]["nodeName"] == node.node_name
    # The add-on serves, and its readiness (/ready on 8181) says so.
    node.wait_ready("kube-system", p["metadata"]["name"], timeout=120)
    svc = node.get("endpoints", "kube-dns", "-n", "kube-system")
    assert svc["subsets"][0]["addresses"][0]["ip"] == p["status"]["podIP"]


def test_pod_reaches_the_api_server_through_the_kubernetes_service(node: Node) -> None:
    ns = "in-cluster"
    node.kubectl("create", "namespace", ns)
    wait_until(lambda: node.kubectl("get", "sa", "default", "-n", ns, check=False).returncode == 0, 30,
               "the default ServiceAccount")
    node.kubectl("create", "clusterrolebinding", "in-cluster-view", "--clusterrole=view",
                 f"--serviceaccount={ns}:default")
    eps = node.get("endpoints", "kubernetes", "-n", "default")
    assert eps["subsets"][0]["addresses"] == [{"ip": primary_address()}]
    node.apply(ns, pod("client", ["python3", "-c", IN_CLUSTER_LIST], image=system_image_name(),
                       restartPolicy="Never", container={"imagePullPolicy": "Never"}))
    done = node.wait_pod(ns, "client", "Succeeded or Failed",
                         lambda p: p.get("status", {}).get("phase") in ("Succeeded", "Failed"), timeout=180)
    logs = node.kubectl("logs", "client", "-n", ns).stdout
    assert done["status"]["phase"] == "Succeeded", logs
    assert logs.split() == ["kubernetes"]


def test_pods_resolve_through_the_cluster_dns(node: Node) -> None:
    ns = "resolver"
    node.kubectl("create", "namespace", ns)
    wait_until(lambda: node.kubectl("get", "sa", "default", "-n", ns, check=False).returncode == 0, 30,
               "the default ServiceAccount")
    node.apply(ns, pod("r", ["cat", "/etc/resolv.conf"], restartPolicy="Never"))
    node.wait_pod(ns, "r", "Succeeded", lambda p: p.get("status", {}).get("phase") == "Succeeded")
    lines = node.kubectl("logs", "r", "-n", ns).stdout.splitlines()
    assert "nameserver 10.43.0.10" in lines, lines
    search = next(line for line in lines if line.startswith("search "))
    assert search.split()[1:4] == [f"{ns}.svc.cluster.local", "svc.cluster.local", "cluster.local"]
    assert "options ndots:5" in lines
    assert json.loads(node.kubectl("get", "svc", "kube-dns", "-n", "kube-system", "-o", "json").stdout)[
        "spec"]["clusterIP"] == "10.43.0.10"


def test_kubectl_run_busybox_nslookup_kubernetes_default(node: Node) -> None:
    """The documentation's DNS check, as a user types it (`-i` instead of `-it`: no terminal here;
    `:latest` means pull Always, which the node skips for its built-in busybox:latest). busybox's own
    nslookup would ask for `kubernetes.default.` alone; the image's nslookup walks the search list
    as the system resolver does (kybernetes.images.applets). kubectl's exit status is the
    container's; what it prints may miss a command this quick (the attach can start after it
    ended, as with any kubelet), so the answer itself is read from a second pod's log."""
    test_coredns_runs_from_the_system_image(node)  # the DNS pod is ready (whatever ran first)
    res = node.kubectl("run", "dnscheck", "-i", "--rm", "--restart=Never", "--image=busybox", "--",
                       "nslookup", "kubernetes.default", check=False, timeout=120)
    assert res.returncode == 0, (res.stdout, res.stderr)
    node.kubectl("run", "dnslog", "--restart=Never", "--image=busybox", "--", "nslookup", "kubernetes.default")
    node.wait_pod("default", "dnslog", "Succeeded", lambda p: p.get("status", {}).get("phase") == "Succeeded")
    out = node.kubectl("logs", "dnslog").stdout
    assert "Server:\t\t10.43.0.10" in out, out
    assert "Name:\tkubernetes.default.svc.cluster.local\nAddress: 10.43.0.1\n" in out, out


def test_kubectl_top_with_the_metrics_server_addon(node: Node) -> None:
    """The metrics-server add-on (a pod from the system image, its APIService, the kubelet's
    /metrics/resource with its service account's token): `kubectl top nodes` and `kubectl top pods`
    as on a real cluster, once two scrapes (15 s apart) are in."""
    ns = "top"
    node.kubectl("create", "namespace", ns)
    wait_until(lambda: node.kubectl("get", "sa", "default", "-n", ns, check=False).returncode == 0, 30,
               "the default ServiceAccount")
    node.apply(ns, pod("burn", "while true; do i=0; while [ $i -lt 2000 ]; do i=$((i+1)); done; sleep 0.2; done"))
    node.wait_ready(ns, "burn", timeout=30)

    def available() -> bool:
        obj = node.get("apiservice", "v1beta1.metrics.k8s.io")
        return any(c["type"] == "Available" and c["status"] == "True"
                   for c in (obj.get("status") or {}).get("conditions") or [])

    def ms_log() -> str:
        res = node.kubectl("logs", "-n", "kube-system", "deployment/metrics-server", "--tail=40", check=False)
        return res.stdout + res.stderr

    try:
        # Within the suite's 300 s per test: the pod imports the system image, then scrapes twice.
        wait_until(available, 150, "APIService v1beta1.metrics.k8s.io Available")
    except AssertionError:
        raise AssertionError(ms_log()) from None

    def top(*args: str) -> list[list[str]] | None:
        res = node.kubectl("top", *args, check=False)
        rows = [line.split() for line in res.stdout.strip().splitlines()]
        return rows if res.returncode == 0 and len(rows) > 1 else None

    try:
        nodes = wait_until(lambda: top("nodes"), 40, "kubectl top nodes")
        pods = wait_until(lambda: top("pods", "-n", ns, "--containers"), 40, "kubectl top pods --containers")
    except AssertionError:
        raise AssertionError(ms_log()) from None
    assert nodes[0] == ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]
    assert nodes[1][0] == node.node_name and nodes[1][1].endswith("m") and nodes[1][2].endswith("%")
    assert pods[0] == ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert pods[1][:2] == ["burn", "c"] and pods[1][2].endswith("m") and pods[1][3].endswith("Mi")
    everywhere = wait_until(lambda: top("pods", "-A"), 20, "kubectl top pods -A")
    assert everywhere[0] == ["NAMESPACE", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert {(r[0], r[1].split("-")[0]) for r in everywhere[1:]} >= {(ns, "burn"), ("kube-system", "metrics")}
