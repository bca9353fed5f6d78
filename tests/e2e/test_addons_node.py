"""A default `kyb server` with its node: the CoreDNS add-on runs from the system image, pods reach the
API server through the kubernetes Service, and pods' resolv.conf points at the cluster DNS.

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

from .conftest import wait_until
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
                      "--bind-address", "", addons=True) as n:
        yield n


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


def test_kubectl_run_busybox_resolves_the_kubernetes_service(node: Node) -> None:
    """The documentation's DNS check, as a user types it (`-i` instead of `-it`: no terminal here;
    `:latest` pulls Always, so IfNotPresent: the node has busybox:latest built in).

    busybox's own nslookup (1.35, Debian's) applies the search list only to names without a dot, so
    `nslookup kubernetes.default` asks for `kubernetes.default.` alone and gets NXDOMAIN from any
    cluster DNS that follows the specification (as on kind or k3s with today's busybox). The name
    without a dot walks the pod's search list, and the full name answers directly. (Debian's static
    busybox cannot use glibc's resolver, so its wget and ping are no help here.)"""
    test_coredns_runs_from_the_system_image(node)  # the DNS pod is ready (whatever ran first)
    script = "sleep 2; nslookup kubernetes.default.svc.cluster.local; nslookup kubernetes; true"
    res = node.kubectl("run", "dnscheck", "-i", "--rm", "--restart=Never", "--image=busybox",
                       "--image-pull-policy=IfNotPresent", "--", "sh", "-c", script, check=False, timeout=120)
    out = res.stdout
    assert "Server:\t\t10.43.0.10" in out, (out, res.stderr)
    assert out.count("Name:\tkubernetes.default.svc.cluster.local\nAddress: 10.43.0.1\n") == 2, (out, res.stderr)
