"""metrics-server's pure parts: decoding /metrics/resource, the two-point storage, the objects and tables."""

from __future__ import annotations

import pytest

from kybernetes.metricsserver.decode import Batch, Point, decode
from kybernetes.metricsserver.scraper import kubelet_url, scrape_targets
from kybernetes.metricsserver.storage import Storage, node_metrics, pod_metrics, table, usage

BODY = """# HELP node_cpu_usage_seconds_total Cumulative cpu time consumed by the node in core-seconds
# TYPE node_cpu_usage_seconds_total counter
node_cpu_usage_seconds_total 100.5 1700000000000
# TYPE node_memory_working_set_bytes gauge
node_memory_working_set_bytes 2.097152e+06 1700000000000
# TYPE container_start_time_seconds gauge
container_start_time_seconds{container="app",namespace="default",pod="web"} 1.6999e+09
container_start_time_seconds{container="side",namespace="default",pod="web"} 1.6999e+09
container_start_time_seconds{container="new",namespace="default",pod="half"} 1.6999e+09
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container="app",namespace="default",pod="web"} 2 1700000000100
container_cpu_usage_seconds_total{container="side",namespace="default",pod="web"} 1 1700000000100
# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{container="app",namespace="default",pod="web"} 1024 1700000000100
container_memory_working_set_bytes{container="side",namespace="default",pod="web"} 2048 1700000000100
container_memory_working_set_bytes{container="new",namespace="default",pod="half"} 4096 1700000000100
# TYPE scrape_error gauge
scrape_error 0
"""


def test_decode() -> None:
    b = decode(BODY, 1.0)
    assert b.node == Point(timestamp=1_700_000_000.0, cpu=100_500_000_000, memory=2_097_152)
    assert set(b.pods) == {("default", "web")}  # "half" has no CPU: the whole pod is left out
    app = b.pods[("default", "web")]["app"]
    assert (app.cpu, app.memory, app.timestamp, app.start) == (2_000_000_000, 1024, 1_700_000_000.1, 1.6999e9)
    assert decode("", 5.0) == Batch()  # nothing: no node
    with pytest.raises(ValueError):
        decode("node_cpu_usage_seconds_total{ 1\n", 1.0)


def test_usage_quantities_and_window() -> None:
    prev = Point(timestamp=100.0, cpu=1_000_000_000, memory=10)
    last = Point(timestamp=115.025, cpu=1_150_250_000, memory=1_572_864)
    u = usage(last, prev)
    assert u is not None
    assert (u.cpu, u.memory, u.window_ns) == ("10m", "1536Ki", 15_025_000_000)
    odd = usage(Point(timestamp=101.0, cpu=1_000_012_345, memory=123_456_789), prev)
    assert odd is not None and (odd.cpu, odd.memory) == ("12345n", "123456789")
    assert usage(Point(timestamp=101.0, cpu=5, memory=1), prev) is None  # the counter went back
    assert usage(prev, prev) is None  # no window


def _batch(t: float, cpu: int, start: float = 50.0) -> Batch:
    return Batch(node=Point(timestamp=t, cpu=cpu * 10, memory=4096),
                 pods={("ns", "p"): {"c": Point(timestamp=t, cpu=cpu, memory=2048, start=start)}})


def test_storage_needs_two_points_and_keeps_the_previous() -> None:
    s = Storage(metric_resolution=15)
    s.store({"n1": _batch(100, 1_000_000_000)})
    assert s.node_usage("n1") is None and s.pod_usage("ns", "p") is None and not s.ready()
    s.store({"n1": _batch(110, 2_000_000_000)})
    node = s.node_usage("n1")
    assert node is not None and (node.cpu, node.window_ns) == ("1", 10_000_000_000)
    pod = s.pod_usage("ns", "p")
    assert pod is not None and pod[1][0][0] == "c" and pod[1][0][1].cpu == "100m"
    assert s.ready()
    # The same point again keeps the usage (the previous point is kept).
    s.store({"n1": _batch(110, 2_000_000_000)})
    assert s.node_usage("n1") == node
    # A restarted container (started after the stored point) starts over.
    s.store({"n1": _batch(120, 10, start=115)})
    assert s.pod_usage("ns", "p") is None
    # A node gone from the round is gone.
    s.store({})
    assert s.node_usage("n1") is None


def test_fresh_container_gets_a_start_point() -> None:
    s = Storage(metric_resolution=15)
    s.store({"n1": _batch(112, 600_000_000, start=100)})  # 12 s old: at least 10 s, below the resolution
    pod = s.pod_usage("ns", "p")
    assert pod is not None and pod[0].window_ns == 12_000_000_000 and pod[1][0][1].cpu == "50m"


def test_objects_and_tables() -> None:
    s = Storage(metric_resolution=15)
    s.store({"n1": _batch(1_700_000_000, 1_000_000_000)})
    s.store({"n1": _batch(1_700_000_015, 4_000_000_000)})
    node = {"metadata": {"name": "n1", "labels": {"role": "x"}}}
    u = s.node_usage("n1")
    assert u is not None
    nm = node_metrics(node, u, 1_700_000_020)
    assert nm == {"kind": "NodeMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
                  "metadata": {"name": "n1", "creationTimestamp": "2023-11-14T22:13:40Z", "labels": {"role": "x"}},
                  "timestamp": "2023-11-14T22:13:35Z", "window": "15s", "usage": {"cpu": "2", "memory": "4Ki"}}
    pu = s.pod_usage("ns", "p")
    assert pu is not None
    pm = pod_metrics({"metadata": {"name": "p", "namespace": "ns"}}, pu, 1_700_000_020)
    assert pm["metadata"] == {"name": "p", "namespace": "ns", "creationTimestamp": "2023-11-14T22:13:40Z"}
    assert pm["containers"] == [{"name": "c", "usage": {"cpu": "200m", "memory": "2Ki"}}]
    t = table([pm])
    assert [c["name"] for c in t["columnDefinitions"]] == ["Name", "cpu", "memory", "Window"]
    assert t["rows"][0]["cells"] == ["p", "200m", "2Ki", "15s"]
    assert table([])["rows"] == []


def test_kubelet_url() -> None:
    node = {"status": {"addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.5"}],
                       "daemonEndpoints": {"kubeletEndpoint": {"Port": 10251}}}}
    assert kubelet_url(node, ("InternalIP", "Hostname"), 10250) == "https://10.0.0.5:10251/metrics/resource"
    assert kubelet_url(node, ("Hostname",), 10250, use_node_status_port=False) == "https://n1:10250/metrics/resource"
    assert kubelet_url(node, ("ExternalIP",), 10250) is None


def test_hollow_nodes_are_never_dialled() -> None:
    hollow = {"metadata": {"name": "h"}, "spec": {"providerID": "hollow://h"}}
    real = {"metadata": {"name": "r"}, "spec": {"providerID": "kyb://r"}}
    bare = {"metadata": {"name": "b"}}
    assert scrape_targets([hollow, real, bare]) == [real, bare]


def test_openapi_documents() -> None:
    from kybernetes.metricsserver import openapi

    core = {"io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta": {
                "type": "object", "properties": {"managedFields": {"type": "array", "items": {
                    "$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ManagedFieldsEntry"}}}},
            "io.k8s.apimachinery.pkg.apis.meta.v1.ManagedFieldsEntry": {"type": "object"},
            "io.k8s.api.core.v1.Pod": {"type": "object"}}
    doc = openapi.v3_document(core)
    names = set(doc["components"]["schemas"])
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ManagedFieldsEntry" in names  # reached through ObjectMeta
    assert "io.k8s.api.core.v1.Pod" not in names  # not referenced
    assert {"io.k8s.metrics.pkg.apis.metrics.v1beta1.NodeMetrics",
            "io.k8s.metrics.pkg.apis.metrics.v1beta1.PodMetricsList"} <= names
    assert set(doc["paths"]) == {
        "/apis/metrics.k8s.io/v1beta1/nodes", "/apis/metrics.k8s.io/v1beta1/nodes/{name}",
        "/apis/metrics.k8s.io/v1beta1/pods", "/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods",
        "/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods/{name}"}
    get = doc["paths"]["/apis/metrics.k8s.io/v1beta1/nodes/{name}"]["get"]
    assert get["x-kubernetes-group-version-kind"] == {"group": "metrics.k8s.io", "kind": "NodeMetrics",
                                                      "version": "v1beta1"}
    v2 = openapi.v2_document()
    assert v2["paths"]["/apis/metrics.k8s.io/v1beta1/pods"]["get"]["responses"]["200"]["schema"] == {
        "$ref": "#/definitions/io.k8s.metrics.pkg.apis.metrics.v1beta1.PodMetricsList"}
    index = openapi.v3_index(b"{}")
    assert index["paths"]["apis/metrics.k8s.io/v1beta1"]["serverRelativeURL"].startswith(
        "/openapi/v3/apis/metrics.k8s.io/v1beta1?hash=")
