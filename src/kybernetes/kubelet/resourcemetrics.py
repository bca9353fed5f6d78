"""The kubelet's ``/metrics/resource`` and ``/metrics/cadvisor``: one stats snapshot as Prometheus metrics.

Contract:

- ``resource_registry(snapshot)`` holds the Resource Metrics endpoint's families with Kubernetes'
  names, help texts and labels (``pkg/kubelet/metrics/collectors/resource_metrics.go``):
  ``node_cpu_usage_seconds_total``, ``node_memory_working_set_bytes``,
  ``container_cpu_usage_seconds_total`` / ``container_memory_working_set_bytes`` /
  ``container_start_time_seconds`` {container, pod, namespace}, ``pod_cpu_usage_seconds_total`` /
  ``pod_memory_working_set_bytes`` {pod, namespace}, ``scrape_error`` and ``resource_scrape_error``
  (1 when the stats could not be read, then nothing else). Usage samples carry the time of their
  stats as the sample timestamp, as the kubelet's do; metrics-server reads them.
- ``cadvisor_registry(snapshot)`` holds cAdvisor's families for the root cgroup (``id="/"``, every
  other label empty) and each running container, with cAdvisor's labels in its order: container,
  id (the container's cgroup, ``/k8s.io/<container id>`` as runc names it here), image, name (the
  container ID), namespace, pod; ``container_cpu_usage_seconds_total`` also has ``cpu="total"``.
- Each scrape builds a fresh registry: containers that went away leave no stale series behind.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from kybernetes.kubelet.leftovers import CGROUP_NAMESPACE
from kybernetes.kubelet.stats import ContainerSample, Snapshot

NS = 1e9  # nanoseconds per second

CONTAINER_LABELS = ["container", "pod", "namespace"]
POD_LABELS = ["pod", "namespace"]
CADVISOR_LABELS = ["container", "id", "image", "name", "namespace", "pod"]


class _Families(Collector):
    """A collector yielding families computed once, at construction."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def _registry(families: list[Metric]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return registry


def _scrape_error(value: float) -> list[Metric]:
    help_text = "1 if there was an error while getting container metrics, 0 otherwise"
    out: list[Metric] = []
    for name in ("scrape_error", "resource_scrape_error"):
        family = GaugeMetricFamily(name, help_text)
        family.add_metric([], value)
        out.append(family)
    return out


def resource_registry(snap: Snapshot | None) -> CollectorRegistry:
    """The ``/metrics/resource`` families of a snapshot (``None``: the stats failed, scrape_error 1)."""
    if snap is None:
        return _registry(_scrape_error(1))
    node_cpu = CounterMetricFamily("node_cpu_usage_seconds", "Cumulative cpu time consumed by the node in core-seconds")
    node_cpu.add_metric([], snap.node.cpu_ns / NS, timestamp=snap.time)
    node_mem = GaugeMetricFamily("node_memory_working_set_bytes", "Current working set of the node in bytes")
    node_mem.add_metric([], snap.node.working_set, timestamp=snap.time)
    start = GaugeMetricFamily("container_start_time_seconds", "Start time of the container since unix epoch in seconds",
                              labels=CONTAINER_LABELS)
    c_cpu = CounterMetricFamily("container_cpu_usage_seconds",
                                "Cumulative cpu time consumed by the container in core-seconds", labels=CONTAINER_LABELS)
    c_mem = GaugeMetricFamily("container_memory_working_set_bytes", "Current working set of the container in bytes",
                              labels=CONTAINER_LABELS)
    p_cpu = CounterMetricFamily("pod_cpu_usage_seconds", "Cumulative cpu time consumed by the pod in core-seconds",
                                labels=POD_LABELS)
    p_mem = GaugeMetricFamily("pod_memory_working_set_bytes", "Current working set of the pod in bytes",
                              labels=POD_LABELS)
    for (namespace, pod, _uid), containers in snap.pods().items():
        for c in containers:
            labels = [c.name, pod, namespace]
            if c.start > 0:
                start.add_metric(labels, c.start)
            c_cpu.add_metric(labels, c.cpu_ns / NS, timestamp=c.time)
            c_mem.add_metric(labels, c.working_set, timestamp=c.time)
        at = max(c.time for c in containers)
        p_cpu.add_metric([pod, namespace], sum(c.cpu_ns for c in containers) / NS, timestamp=at)
        p_mem.add_metric([pod, namespace], sum(c.working_set for c in containers), timestamp=at)
    return _registry([node_cpu, node_mem, start, c_cpu, c_mem, p_cpu, p_mem, *_scrape_error(0)])


def _cadvisor_labels(c: ContainerSample | None) -> list[str]:
    if c is None:
        return ["", "/", "", "", "", ""]
    return [c.name, f"/{CGROUP_NAMESPACE}/{c.id}", c.image, c.id, c.namespace, c.pod]


def cadvisor_registry(snap: Snapshot) -> CollectorRegistry:
    """The ``/metrics/cadvisor`` families of a snapshot (see the module contract)."""
    cpu = CounterMetricFamily("container_cpu_usage_seconds", "Cumulative cpu time consumed in seconds.",
                              labels=[*CADVISOR_LABELS[:1], "cpu", *CADVISOR_LABELS[1:]])
    working_set = GaugeMetricFamily("container_memory_working_set_bytes", "Current working set in bytes.",
                                    labels=CADVISOR_LABELS)
    usage = GaugeMetricFamily("container_memory_usage_bytes",
                              "Current memory usage in bytes, including all memory regardless of when it was accessed",
                              labels=CADVISOR_LABELS)
    rss = GaugeMetricFamily("container_memory_rss", "Size of RSS in bytes.", labels=CADVISOR_LABELS)
    start = GaugeMetricFamily("container_start_time_seconds", "Start time of the container since unix epoch in seconds.",
                              labels=CADVISOR_LABELS)
    last_seen = GaugeMetricFamily("container_last_seen", "Last time a container was seen by the exporter",
                                  labels=CADVISOR_LABELS)
    rows: list[tuple[list[str], float, int, int, int, int, float]] = [
        (_cadvisor_labels(None), snap.time, snap.node.cpu_ns, snap.node.working_set, snap.node.memory_usage,
         snap.node.rss, snap.node_start)]
    rows += [(_cadvisor_labels(c), c.time, c.cpu_ns, c.working_set, c.usage, c.rss, c.start)
             for c in sorted(snap.containers, key=lambda c: (c.namespace, c.pod, c.name))]
    for labels, at, cpu_ns, ws, use, rss_bytes, started in rows:
        cpu.add_metric([labels[0], "total", *labels[1:]], cpu_ns / NS, timestamp=at)
        working_set.add_metric(labels, ws, timestamp=at)
        usage.add_metric(labels, use, timestamp=at)
        rss.add_metric(labels, rss_bytes, timestamp=at)
        start.add_metric(labels, started, timestamp=at)
        last_seen.add_metric(labels, at, timestamp=at)
    return _registry([cpu, working_set, usage, rss, start, last_seen])
