"""The kubelet's stats and metrics endpoints, scraped from a real kubelet on the tests' containerd.

A pod that burns a little CPU runs on the node; a ServiceAccount bound to a role granting
``nodes/stats`` and ``nodes/metrics`` scrapes ``/stats/summary``, ``/metrics/resource``,
``/metrics/cadvisor`` and ``/metrics`` with its bearer token (the kubelet's webhook authentication
and authorization); the bodies are parsed with prometheus_client's parser. An account without the
grant gets the kubelet's 403, a request without credentials its 401.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kybernetes.client import Client
from tests.kubelet.test_kubelet_e2e import (
    NODE,
    KubeletProcess,
    delete_pod,
    pod,
    running_kubelet,
    running_ready,
    unique,
    wait_node_ready,
    wait_pod,
)
from tests.node.conftest import NodeRuntime

pytestmark = pytest.mark.integration

Obj = dict[str, Any]
BURN = "i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; sleep 3600"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, node_runtime: NodeRuntime) -> Iterator[KubeletProcess]:
    with running_kubelet(tmp_path_factory, node_runtime) as kubelet:
        yield kubelet


@pytest.fixture
async def client(cluster: KubeletProcess) -> AsyncIterator[Client]:
    async with Client.from_kubeconfig(cluster.srv.kubeconfig) as c:
        await wait_node_ready(c, cluster)
        yield c


async def _token(c: Client, name: str, *, granted: bool) -> str:
    """A token of a new ServiceAccount, bound (if ``granted``) to a role for nodes/stats and nodes/metrics."""
    await c.create("v1", "serviceaccounts", {"metadata": {"name": name}}, "default")
    if granted:
        await c.create("rbac.authorization.k8s.io/v1", "clusterroles", {
            "metadata": {"name": name},
            "rules": [{"apiGroups": [""], "resources": ["nodes/stats", "nodes/metrics"], "verbs": ["get"]}]})
        await c.create("rbac.authorization.k8s.io/v1", "clusterrolebindings", {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": "default"}]})
    answer = await c.create("v1", "serviceaccounts", {"apiVersion": "authentication.k8s.io/v1",
                                                      "kind": "TokenRequest", "spec": {}},
                            "default", name=name, subresource="token")
    return str(answer["status"]["token"])


class Scraper:
    def __init__(self, port: int) -> None:
        self.base = f"https://127.0.0.1:{port}"
        self.ctx = ssl.create_default_context()
        self.ctx.check_hostname = False
        self.ctx.verify_mode = ssl.CERT_NONE  # loopback; the serving certificate is not what is tested

    async def get(self, path: str, token: str | None) -> tuple[int, str]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with aiohttp.ClientSession() as session, session.get(
                self.base + path, headers=headers, ssl=self.ctx, timeout=aiohttp.ClientTimeout(total=30)) as resp:
            return resp.status, await resp.text()


def _samples(text: str) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


async def _until(check: Any, what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what} within {timeout}s"
        await asyncio.sleep(0.5)


async def test_stats_and_metrics_endpoints(client: Client, cluster: KubeletProcess) -> None:
    name = unique("burn")
    await client.create("v1", "pods", pod(name, ["sh", "-c", BURN]), "default")
    try:
        await wait_pod(client, name, running_ready, cluster)
        node = await client.get("v1", "nodes", NODE)
        kubelet = Scraper(node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"])
        token = await _token(client, unique("scraper"), granted=True)
        other = await _token(client, unique("nobody"), granted=False)

        # Authentication and authorization, the kubelet's way.
        assert (await kubelet.get("/metrics/resource", None))[0] == 401
        assert (await kubelet.get("/metrics/resource", "not-a-token"))[0] == 401
        status, body = await kubelet.get("/stats/summary", other)
        assert status == 403
        assert "Forbidden (user=system:serviceaccount:default:nobody" in body
        assert "verb=get, resource=nodes, subresource=stats)" in body
        assert (await kubelet.get("/pods", token))[0] == 403  # nodes/proxy was not granted

        # /metrics/resource: the pod's container, with usage, once its stats are in.
        async def resource() -> dict[str, list[Any]] | None:
            status, text = await kubelet.get("/metrics/resource", token)
            assert status == 200, text
            found = _samples(text)
            ours = [s for s in found.get("container_cpu_usage_seconds_total", []) if s.labels.get("pod") == name]
            return found if ours else None

        found = await _until(resource, f"{name}'s container in /metrics/resource")
        assert found["scrape_error"][0].value == 0
        assert found["node_cpu_usage_seconds_total"][0].value > 0
        assert found["node_memory_working_set_bytes"][0].value > 0
        cpu = next(s for s in found["container_cpu_usage_seconds_total"] if s.labels["pod"] == name)
        assert cpu.labels == {"container": "main", "pod": name, "namespace": "default"}
        assert cpu.value > 0 and cpu.timestamp is not None
        mem = next(s for s in found["container_memory_working_set_bytes"] if s.labels["pod"] == name)
        assert mem.value > 0
        pod_cpu = next(s for s in found["pod_cpu_usage_seconds_total"] if s.labels["pod"] == name)
        assert pod_cpu.labels == {"pod": name, "namespace": "default"} and pod_cpu.value == cpu.value
        start = next(s for s in found["container_start_time_seconds"] if s.labels["pod"] == name)
        assert abs(start.value - time.time()) < 600

        # /metrics/cadvisor: cAdvisor's labels, the root cgroup and the container's.
        status, text = await kubelet.get("/metrics/cadvisor", token)
        assert status == 200, text
        cad = _samples(text)["container_cpu_usage_seconds_total"]
        root = next(s for s in cad if s.labels["id"] == "/")
        assert root.labels == {"container": "", "cpu": "total", "id": "/", "image": "", "name": "",
                               "namespace": "", "pod": ""}
        mine = next(s for s in cad if s.labels["pod"] == name)
        assert mine.labels["container"] == "main" and mine.labels["namespace"] == "default"
        assert mine.labels["id"] == f"/k8s.io/{mine.labels['name']}" and mine.labels["image"]

        # /stats/summary: the Summary API's JSON; usageNanoCores once two samples exist.
        status, text = await kubelet.get("/stats/summary", token)
        assert status == 200, text
        summary = await _summary(kubelet, token)
        assert summary["node"]["nodeName"] == NODE
        assert summary["node"]["cpu"]["usageCoreNanoSeconds"] > 0
        assert summary["node"]["memory"]["workingSetBytes"] > 0
        entry = next(p for p in summary["pods"] if p["podRef"]["name"] == name)
        assert entry["podRef"]["namespace"] == "default" and entry["podRef"]["uid"]
        (container,) = entry["containers"]
        assert container["name"] == "main"
        assert container["cpu"]["usageCoreNanoSeconds"] > 0 and "usageNanoCores" in container["cpu"]
        assert container["memory"]["workingSetBytes"] > 0

        # /metrics: the kubelet's own (the gauges follow the PLEG's next relist; the start duration
        # is observed when the Running status is written, which may come just after).
        async def own_metrics() -> dict[str, list[Any]] | None:
            status, text = await kubelet.get("/metrics", token)
            assert status == 200, text
            found = _samples(text)
            started = found["kubelet_pod_start_duration_seconds_count"][0].value >= 1
            return found if found["kubelet_running_pods"][0].value >= 1 and started else None

        own = await _until(own_metrics, "kubelet_running_pods >= 1 and a pod start observed")
        running = {s.labels["container_state"]: s.value for s in own["kubelet_running_containers"]}
        assert running["running"] >= 1
        ops = {s.labels["operation_type"]: s.value for s in own["kubelet_runtime_operations_total"]}
        assert ops["list_podsandbox"] > 0 and ops["run_podsandbox"] >= 1 and ops["list_container_stats"] >= 1
        assert any(s.labels.get("operation_type") == "create_container"
                   for s in own["kubelet_runtime_operations_duration_seconds_bucket"])
        assert own["kubelet_pod_start_duration_seconds_count"][0].value >= 1
        assert own["kubelet_pleg_relist_duration_seconds_count"][0].value > 0
        assert "process_cpu_seconds_total" in own
    finally:
        await delete_pod(client, name)


async def _summary(kubelet: Scraper, token: str) -> Obj:
    import json

    async def with_rate() -> Obj | None:
        status, text = await kubelet.get("/stats/summary", token)
        assert status == 200, text
        doc: Obj = json.loads(text)
        pods = [p for p in doc["pods"] if p["podRef"]["namespace"] == "default"]
        return doc if pods and all("usageNanoCores" in c["cpu"] for p in pods for c in p["containers"]) else None

    return await _until(with_rate, "a summary with usageNanoCores")  # type: ignore[no-any-return]
