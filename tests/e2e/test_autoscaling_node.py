"""Autoscaling end to end: busybox pods that burn CPU make a HorizontalPodAutoscaler scale their
Deployment up within its sync period, and idle pods let it scale back down once the (shortened)
downscale stabilization window has passed.

A real ``kyb server`` with its node (as root), as a user runs it: the kubelet's resource metrics; the
metrics-server add-on (a pod of the system image behind the APIService ``v1beta1.metrics.k8s.io``,
reaching the kubelet at the node's advertised address, as in test_addons_node); the controller
manager's ``horizontalpodautoscaling`` controller with ``--horizontal-pod-autoscaler-sync-period`` and
``--horizontal-pod-autoscaler-downscale-stabilization`` shortened; the stock kubectl (``kubectl autoscale``). Each pod requests 100m and is
limited to 200m, so three burning pods cost this machine 0.6 of a core at most.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from kybernetes.api.quantity import cpu_millis

from .conftest import Obj, wait_until
from .test_node import BUSYBOX, Node, _pick_network, require_node, running_node

pytestmark = pytest.mark.integration

SYNC_PERIOD = 5  # seconds
DOWNSCALE_WINDOW = 30  # seconds
# Burns CPU (up to its limit) until /tmp/idle exists, then idles.
BURN = "while [ ! -e /tmp/idle ]; do :; done; exec sleep 100000"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    require_node(pods_reach_primary_address=True)  # metrics-server's pod calls the API server there
    octet = _pick_network()
    with running_node(tmp_path_factory.mktemp("kyb-hpa").resolve(), "e2e-hpa", octet,
                      "--bind-address", "", "--disable", "coredns,local-storage",
                      "--kube-controller-manager-arg", f"horizontal-pod-autoscaler-sync-period={SYNC_PERIOD}s",
                      "--kube-controller-manager-arg",
                      f"horizontal-pod-autoscaler-downscale-stabilization={DOWNSCALE_WINDOW}s", addons=True) as n:
        yield n


def deployment(name: str) -> Obj:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {
                         "terminationGracePeriodSeconds": 1,
                         "containers": [{"name": "c", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                                         "command": ["sh", "-c", BURN],
                                         "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "200m"}}}]}}}}


def pod_usage(node: Node, ns: str) -> dict[str, int]:
    """Each pod's CPU in millicores as metrics.k8s.io serves it now (empty if it serves nothing yet)."""
    res = node.kubectl("get", "--raw", f"/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods", check=False)
    if res.returncode != 0:
        return {}
    return {m["metadata"]["name"]: sum(cpu_millis(c["usage"]["cpu"]) for c in m["containers"])
            for m in json.loads(res.stdout)["items"]}


def replicas(node: Node, ns: str) -> int:
    return int(node.get("deployment", "burn", "-n", ns)["spec"]["replicas"])


def rescales(node: Node, ns: str) -> list[str]:
    return [e["message"] for e in node.events(ns, "burn") if e.get("reason") == "SuccessfulRescale"]


def test_cpu_burning_pods_scale_up_and_back_down(node: Node) -> None:
    ns = "hpa"
    node.kubectl("create", "namespace", ns)
    wait_until(lambda: node.kubectl("get", "sa", "default", "-n", ns, check=False).returncode == 0, 30,
               "the default ServiceAccount")
    node.apply(ns, deployment("burn"))
    node.kubectl("autoscale", "deployment", "burn", "-n", ns, "--cpu-percent=50", "--min=1", "--max=3")

    # Scale-up: once metrics-server reports the burning pod (about 200% of its request), the next
    # reconcile, at most one sync period later, scales to 3 (the 4 asked for, capped by --max).
    wait_until(lambda: any(v >= 100 for v in pod_usage(node, ns).values()), 240, "the burning pod's metrics")
    seen_hot = time.monotonic()
    wait_until(lambda: replicas(node, ns) == 3, SYNC_PERIOD + 15, "the scale-up to 3 within a sync period")
    assert time.monotonic() - seen_hot <= SYNC_PERIOD + 15
    # (A first, partial sample may have asked for 2 before.)
    assert wait_until(lambda: rescales(node, ns), 30, "the rescale events")[-1] == (
        "New size: 3; reason: cpu resource utilization (percentage of request) above target")

    # kubectl get hpa shows what a real cluster shows.
    def hot_row() -> list[str] | None:
        header, row = node.kubectl("get", "hpa", "-n", ns).stdout.splitlines()
        assert header.split() == ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"]
        cells = row.split()
        return cells if cells[2] == "cpu:" and cells[3].endswith("%/50%") and cells[3] != "<unknown>/50%" else None
    cells = wait_until(hot_row, 60, "kubectl get hpa with a current value")
    assert cells[:2] == ["burn", "Deployment/burn"] and cells[4:6] == ["1", "3"]

    # Scale-down: every pod stops burning; the HPA waits out the stabilization window after its
    # last high recommendation, then scales to 1.
    def all_running() -> list[str] | None:
        pods = [p for p in node.get("pods", "-n", ns, "-l", "app=burn")["items"]
                if not p["metadata"].get("deletionTimestamp")]
        ready = [p["metadata"]["name"] for p in pods if any(
            c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])]
        return ready if len(pods) == 3 and len(ready) == 3 else None
    for name in wait_until(all_running, 120, "3 running pods"):
        node.kubectl("exec", "-n", ns, name, "--", "touch", "/tmp/idle")
    idle_since = time.monotonic()
    wait_until(lambda: (u := pod_usage(node, ns)) and all(v < 50 for v in u.values()), 180, "idle pods' metrics")
    wait_until(lambda: replicas(node, ns) == 1, DOWNSCALE_WINDOW + 4 * SYNC_PERIOD + 120, "the scale-down to 1")
    assert time.monotonic() - idle_since >= DOWNSCALE_WINDOW - SYNC_PERIOD, "scaled down inside the window"
    assert wait_until(lambda: (r := rescales(node, ns)) and r[-1].startswith("New size: 1;") and r, 30,
                      "the scale-down's event")[-1] == "New size: 1; reason: All metrics below target"
