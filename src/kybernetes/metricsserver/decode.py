"""A kubelet's ``/metrics/resource`` body as metrics-server reads it: one node point, its pods' container points.

Contract (metrics-server's ``decodeBatch``):

- ``node_cpu_usage_seconds_total`` and ``node_memory_working_set_bytes`` make the node's point;
  ``container_cpu_usage_seconds_total``, ``container_memory_working_set_bytes`` and
  ``container_start_time_seconds`` {container, pod, namespace} its containers'. A sample's
  timestamp (milliseconds) is the point's time; samples without one get the scrape's time.
- The node is left out when its CPU, memory or time is zero; a pod is left out whole when one of
  its containers lacks CPU or memory (a container just starting or just gone).
- Malformed text raises ``ValueError``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families


@dataclass
class Point:
    """One sample: cumulative CPU in nanocore-seconds, working set in bytes, times in epoch seconds."""

    timestamp: float = 0.0
    cpu: int = 0
    memory: int = 0
    start: float = 0.0


@dataclass
class Batch:
    """One scrape of one node."""

    node: Point | None = None
    pods: dict[tuple[str, str], dict[str, Point]] = field(default_factory=dict)  # (namespace, pod) -> container


def decode(text: str, scrape_time: float) -> Batch:
    """The batch of a ``/metrics/resource`` body (see the module contract)."""
    node = Point()
    pods: dict[tuple[str, str], dict[str, Point]] = {}
    try:
        samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    except Exception as err:  # the parser raises bare ValueErrors and worse on garbage
        raise ValueError(f"failed parsing metrics: {err}") from None
    for s in samples:
        at = s.timestamp if s.timestamp is not None else scrape_time
        if s.name == "node_cpu_usage_seconds_total":
            node.cpu, node.timestamp = int(s.value * 1e9), float(at)
        elif s.name == "node_memory_working_set_bytes":
            node.memory, node.timestamp = int(s.value), float(at)
        elif s.name in ("container_cpu_usage_seconds_total", "container_memory_working_set_bytes",
                        "container_start_time_seconds"):
            key = (s.labels.get("namespace", ""), s.labels.get("pod", ""))
            point = pods.setdefault(key, {}).setdefault(s.labels.get("container", ""), Point())
            if s.name == "container_start_time_seconds":
                point.start = float(s.value)
            elif s.name == "container_cpu_usage_seconds_total":
                point.cpu, point.timestamp = int(s.value * 1e9), float(at)
            else:
                point.memory, point.timestamp = int(s.value), float(at)
    batch = Batch(node=node if node.timestamp and node.cpu and node.memory else None)
    for key, containers in pods.items():
        if containers and all(p.cpu and p.memory for p in containers.values()):
            batch.pods[key] = containers
    return batch
