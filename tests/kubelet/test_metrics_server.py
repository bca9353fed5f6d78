"""metrics-server end to end below the add-on: a real kubelet on the tests' containerd, `kyb metrics-server`
as a process with the add-on's ServiceAccount and RBAC, reached through the aggregation layer (the
add-on's APIService, a Service whose EndpointSlice names this machine's address), and kubectl.

`kubectl top nodes` and `kubectl top pods` (with --containers, -A and a label selector) print what a
cluster with metrics-server prints; the raw NodeMetrics and PodMetrics are metrics-server's; a
missing pod is metrics-server's 404; kubectl get's table has metrics-server's columns.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kybernetes.addons import AddonSettings, metrics_server_objects
from kybernetes.testing import ServerProcess, free_port, stop_process
from tests.integration.aggregatedserver import host_address
from tests.kubelet.test_kubelet_e2e import NODE, KubeletProcess, _remove_kubelet_pods, pod
from tests.node.conftest import NodeRuntime, require_runtime

pytestmark = pytest.mark.integration

Obj = dict[str, Any]
BURN_LOOP = "while true; do i=0; while [ $i -lt 2000 ]; do i=$((i+1)); done; sleep 0.2; done"


class MetricsServer:
    def __init__(self, srv: ServerProcess, address: str, work: Path) -> None:
        token = srv.kubectl("create", "token", "metrics-server", "-n", "kube-system", "--duration", "2h").stdout.strip()
        kubeconfig = work / "metrics-server.kubeconfig"
        kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "ms",
            "clusters": [{"name": "c", "cluster": {"server": srv.url,
                                                   "certificate-authority": str(srv.data_dir / "tls" / "ca.crt")}}],
            "users": [{"name": "ms", "user": {"token": token}}],
            "contexts": [{"name": "ms", "context": {"cluster": "c", "user": "ms"}}]}))
        self.address = address
        self.port = free_port()
        self.log_path = work / "metrics-server.log"
        args = [sys.executable, "-m", "kybernetes.cli", "metrics-server", "--kubeconfig", str(kubeconfig),
                "--bind-address", address, "--secure-port", str(self.port), "--cert-dir", str(work / "certs"),
                "--kubelet-preferred-address-types", "InternalIP", "--kubelet-use-node-status-port",
                "--metric-resolution", "2s", "-v"]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def get(self, path: str, token: str | None) -> tuple[int, str]:
        """A request straight to metrics-server (not through the aggregator), with a bearer token."""
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # its own self-signed CA
        req = urllib.request.Request(f"https://{self.address}:{self.port}{path}",
                                     headers={"Authorization": f"Bearer {token}"} if token else {})
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def stop(self) -> None:
        stop_process(self.proc, 15)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, node_runtime: NodeRuntime) -> Iterator[Any]:
    require_runtime()
    address = host_address()
    if not address:
        if os.environ.get("CI"):
            pytest.fail("no global IPv4 address on this machine")
        pytest.skip("this machine has no global IPv4 address for an EndpointSlice (loopback is refused)")
    srv = ServerProcess.start(tmp_path_factory.mktemp("apiserver"), "--apiservice-resync-period", "1")
    kubelet = KubeletProcess(srv, node_runtime, tmp_path_factory.mktemp("kubelet"))
    ms = None
    try:
        kubelet.start()
        # The add-on's account, roles and APIService; the Service is ours: it points at this machine.
        for obj in metrics_server_objects(AddonSettings(image="unused")):
            if obj["kind"] not in ("Deployment", "Service"):
                srv.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(obj))
        ms = MetricsServer(srv, address, tmp_path_factory.mktemp("metrics-server"))
        for doc in (
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "metrics-server", "namespace": "kube-system"},
             "spec": {"ports": [{"name": "https", "port": 443, "targetPort": ms.port}]}},
            {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
             "metadata": {"name": "metrics-server-1", "namespace": "kube-system",
                          "labels": {"kubernetes.io/service-name": "metrics-server"}},
             "addressType": "IPv4", "ports": [{"name": "https", "port": ms.port}],
             "endpoints": [{"addresses": [address], "conditions": {"ready": True}}]}):
            srv.kubectl("create", "-f", "-", input=json.dumps(doc))
        yield srv, kubelet, ms
    finally:
        if ms is not None:
            ms.stop()
        kubelet.stop()
        srv.stop()
        asyncio.run(_remove_kubelet_pods(node_runtime))


def _until(fn: Any, timeout: float, what: str, logs: Any = lambda: "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = fn()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout}s\n{logs()}")
        time.sleep(0.5)


def _table(text: str) -> list[list[str]]:
    return [line.split() for line in text.strip().splitlines()]


def test_kubectl_top(cluster: Any) -> None:
    srv, _kubelet, ms = cluster
    name = "burner"
    manifest = pod(name, ["sh", "-c", BURN_LOOP])
    manifest["metadata"]["labels"] = {"app": "burn"}
    srv.kubectl("create", "-f", "-", input=json.dumps(manifest))

    def available() -> bool:
        obj = json.loads(srv.kubectl("get", "apiservice", "v1beta1.metrics.k8s.io", "-o", "json").stdout)
        return any(c["type"] == "Available" and c["status"] == "True"
                   for c in (obj.get("status") or {}).get("conditions") or [])

    _until(available, 60, "APIService v1beta1.metrics.k8s.io Available", ms.log)

    def top(*args: str) -> list[list[str]] | None:
        res = srv.kubectl("top", *args, check=False)
        return _table(res.stdout) if res.returncode == 0 and name in res.stdout else None

    # Nodes: a row once two scrapes are in.
    nodes = _until(lambda: (lambda t: t if t and len(t) > 1 else None)(
        _table(srv.kubectl("top", "nodes", check=False).stdout)), 90, "kubectl top nodes", ms.log)
    assert nodes[0] == ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]
    row = next(r for r in nodes[1:] if r[0] == NODE)
    assert re.fullmatch(r"\d+m", row[1]) and re.fullmatch(r"\d+%", row[2])
    assert re.fullmatch(r"\d+Mi", row[3]) and re.fullmatch(r"\d+%", row[4])

    pods = _until(lambda: top("pods"), 90, "kubectl top pods shows the pod", ms.log)
    assert pods[0] == ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert pods[1][0] == name and re.fullmatch(r"\d+m", pods[1][1]) and re.fullmatch(r"\d+Mi", pods[1][2])
    containers = _table(srv.kubectl("top", "pods", "--containers").stdout)
    assert containers[0] == ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert containers[1][:2] == [name, "main"]
    everywhere = _table(srv.kubectl("top", "pods", "-A").stdout)
    assert everywhere[0] == ["NAMESPACE", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert ["default", name] in [r[:2] for r in everywhere[1:]]
    assert _table(srv.kubectl("top", "pods", "-l", "app=burn").stdout)[1][0] == name
    none = srv.kubectl("top", "pods", "-l", "app=nothing", check=False)
    assert "No resources found in default namespace." in none.stdout + none.stderr

    one = _table(srv.kubectl("top", "pod", name).stdout)
    assert one[0] == ["NAME", "CPU(cores)", "MEMORY(bytes)"] and one[1][0] == name
    assert _table(srv.kubectl("top", "node", NODE).stdout)[1][0] == NODE
    nope = srv.kubectl("top", "pod", "nope", check=False)
    assert nope.returncode != 0
    assert 'Error from server (NotFound): podmetrics.metrics.k8s.io "default/nope" not found' in nope.stderr

    # The objects themselves, as metrics-server serves them.
    raw = json.loads(srv.kubectl("get", "--raw", f"/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/{name}").stdout)
    assert raw["kind"] == "PodMetrics" and raw["apiVersion"] == "metrics.k8s.io/v1beta1"
    assert raw["metadata"]["labels"] == {"app": "burn"} and raw["metadata"]["namespace"] == "default"
    assert re.fullmatch(r"\d+(\.\d+)?s", raw["window"]) and raw["timestamp"].endswith("Z")
    assert [c["name"] for c in raw["containers"]] == ["main"]
    assert set(raw["containers"][0]["usage"]) == {"cpu", "memory"}
    node = json.loads(srv.kubectl("get", "--raw", f"/apis/metrics.k8s.io/v1beta1/nodes/{NODE}").stdout)
    assert node["kind"] == "NodeMetrics" and set(node["usage"]) == {"cpu", "memory"}
    missing = srv.kubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/nope", check=False)
    assert missing.returncode != 0 and 'podmetrics.metrics.k8s.io "default/nope" not found' in missing.stderr
    # kubectl get prints metrics-server's table.
    header = srv.kubectl("get", "nodes.metrics.k8s.io").stdout.splitlines()[0].split()
    assert header == ["NAME", "CPU", "MEMORY", "WINDOW"]
    # The group's OpenAPI, merged by the aggregator: kubectl explain.
    explained = _until(lambda: (lambda r: r.stdout if r.returncode == 0 else None)(
        srv.kubectl("explain", "nodemetrics", check=False)), 30, "kubectl explain nodemetrics", ms.log)
    assert "GROUP:      metrics.k8s.io\nKIND:       NodeMetrics\nVERSION:    v1beta1" in explained
    assert "NodeMetrics sets resource usage metrics of a node." in explained
    usage = srv.kubectl("explain", "podmetrics.containers").stdout
    assert "ContainerMetrics sets resource usage metrics of a container." in usage and "usage" in usage
    meta = srv.kubectl("explain", "podmetrics.metadata").stdout  # the API server's own ObjectMeta
    assert "ObjectMeta is metadata that all persisted resources must have" in meta
    srv.kubectl("delete", "pod", name, "--grace-period=0", "--force", check=False)


def _token(srv: ServerProcess, name: str, clusterrole: str = "") -> str:
    """A token of a new ServiceAccount in default, bound to ``clusterrole`` if given."""
    srv.kubectl("create", "serviceaccount", name)
    if clusterrole:
        srv.kubectl("create", "clusterrolebinding", name, f"--clusterrole={clusterrole}",
                    f"--serviceaccount=default:{name}")
    return srv.kubectl("create", "token", name).stdout.strip()


def test_direct_access_is_authenticated_and_authorized(cluster: Any) -> None:
    """Without the aggregator: bearer tokens (TokenReview) and SubjectAccessReviews, with the API server's words."""
    srv, _kubelet, ms = cluster
    _until(lambda: ms.get("/healthz", None)[0] == 200, 30, "metrics-server answering", ms.log)
    assert ms.get("/apis/metrics.k8s.io/v1beta1/nodes", None)[0] == 401
    assert ms.get("/apis/metrics.k8s.io/v1beta1/nodes", "not-a-token")[0] == 401
    nobody = _token(srv, "nobody")
    status, body = ms.get("/apis/metrics.k8s.io/v1beta1/nodes", nobody)
    assert status == 403
    assert json.loads(body)["message"] == (
        'nodes.metrics.k8s.io is forbidden: User "system:serviceaccount:default:nobody" cannot list resource '
        '"nodes" in API group "metrics.k8s.io" at the cluster scope')
    reader = _token(srv, "reader", "system:aggregated-metrics-reader")
    status, body = _until(lambda: (lambda r: r if r[0] == 200 else None)(
        ms.get("/apis/metrics.k8s.io/v1beta1/nodes", reader)), 30, "the reader allowed", ms.log)
    assert json.loads(body)["kind"] == "NodeMetricsList"
    status, body = ms.get("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods?labelSelector=a%20in", reader)
    assert status == 400 and json.loads(body)["reason"] == "BadRequest"
    monitor = _token(srv, "monitor", "system:monitoring")
    status, body = _until(lambda: (lambda r: r if r[0] == 200 else None)(ms.get("/metrics", monitor)), 30,
                          "/metrics for system:monitoring", ms.log)
    assert "process_cpu_seconds_total" in body
