"""What metrics-server keeps and serves: the last two points of every node and container, and the
NodeMetrics / PodMetrics objects made of them.

Contract (metrics-server's ``pkg/storage``):

- ``Storage.store(batches)`` takes one scrape of every node. A point newer than the stored last one
  pushes it to "previous"; an older or equal one keeps the stored previous point when that is older
  than the new one. A container that restarted (its start time after the stored point) starts over.
  A container started less than ``--metric-resolution`` ago but at least 10 s ago gets a synthetic
  previous point at its start time with zero CPU, so new pods show up after one scrape.
- Usage between two points: CPU the cumulative difference over the window (nanocores, printed as a
  ``DecimalSI`` quantity: ``12345n``, ``12m``), memory the last working set (``BinarySI``: ``1536Ki``,
  ``123456789``); the time is the last point's and the window their distance (Go's duration text).
  A decrease in CPU or start time makes no usage. A pod's time and window are its earliest
  container's; a pod is served only when all its containers have two points.
- ``node_metrics``/``pod_metrics`` build the ``metrics.k8s.io/v1beta1`` objects: name, namespace,
  the Node's or Pod's labels, creationTimestamp now, timestamp, window, usage (containers for pods);
  ``table`` is metrics-server's Table: Name, one column per resource, Window.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

from kybernetes.api.quantity import BINARY_SI, DECIMAL_SI, add, format_quantity
from kybernetes.api.timeutil import format_duration, format_rfc3339
from kybernetes.metricsserver.decode import Batch, Point

GROUP, VERSION = "metrics.k8s.io", "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"
FRESH_CONTAINER_MIN = 10.0
"""A new container's minimum age for a synthetic previous point (below it the rate is too noisy)."""

Obj = dict[str, Any]
PodKey = tuple[str, str]


@dataclass(frozen=True)
class Usage:
    timestamp: float
    window_ns: int
    cpu: str
    memory: str


def _ns(seconds: float) -> int:
    """Epoch seconds -> nanoseconds, at the kubelet's millisecond precision (no float noise)."""
    return round(seconds * 1000) * 1_000_000


def usage(last: Point, prev: Point) -> Usage | None:
    """The usage between two points of one node or container (None if the counters went back)."""
    if last.start < prev.start or last.cpu < prev.cpu:
        return None
    window = _ns(last.timestamp) - _ns(prev.timestamp)
    if window <= 0:
        return None
    nanocores = int((last.cpu - prev.cpu) / (window / 1e9))
    return Usage(timestamp=last.timestamp, window_ns=window, cpu=format_quantity(Fraction(nanocores, 10**9), DECIMAL_SI),
                 memory=format_quantity(last.memory, BINARY_SI))


class Storage:
    """The last two points of every node and container (see the module contract)."""

    def __init__(self, metric_resolution: float) -> None:
        self.metric_resolution = metric_resolution
        self.nodes: dict[str, Point] = {}
        self.prev_nodes: dict[str, Point] = {}
        self.pods: dict[PodKey, dict[str, Point]] = {}
        self.prev_pods: dict[PodKey, dict[str, Point]] = {}

    def store(self, batches: dict[str, Batch]) -> None:
        nodes: dict[str, Point] = {}
        prev_nodes: dict[str, Point] = {}
        pods: dict[PodKey, dict[str, Point]] = {}
        prev_pods: dict[PodKey, dict[str, Point]] = {}
        for name, batch in batches.items():
            if batch.node is not None:
                nodes[name] = batch.node
                kept = self._previous(batch.node, self.nodes.get(name), self.prev_nodes.get(name))
                if kept is not None:
                    prev_nodes[name] = kept
            for key, containers in batch.pods.items():
                if key in pods:
                    continue  # the same pod from two nodes: the first wins, as metrics-server's duplicate check
                pods[key] = containers
                previous = {c: p for c, p in ((c, self._container_previous(key, c, point))
                                              for c, point in containers.items()) if p is not None}
                if previous:
                    prev_pods[key] = previous
        self.nodes, self.prev_nodes, self.pods, self.prev_pods = nodes, prev_nodes, pods, prev_pods

    @staticmethod
    def _previous(new: Point, last: Point | None, prev: Point | None) -> Point | None:
        if last is None:
            return None
        if new.timestamp > last.timestamp:
            return last
        if prev is not None and prev.timestamp < new.timestamp:
            return prev
        return None

    def _container_previous(self, key: PodKey, container: str, new: Point) -> Point | None:
        age = new.timestamp - new.start
        if new.start and 0 < age < self.metric_resolution and age >= FRESH_CONTAINER_MIN:
            return replace(new, timestamp=new.start, cpu=0)
        last = self.pods.get(key, {}).get(container)
        if last is None or not new.start < last.timestamp:
            return None  # unknown, or restarted since the stored point
        return self._previous(new, last, self.prev_pods.get(key, {}).get(container))

    def node_usage(self, name: str) -> Usage | None:
        last, prev = self.nodes.get(name), self.prev_nodes.get(name)
        return usage(last, prev) if last is not None and prev is not None else None

    def pod_usage(self, namespace: str, name: str) -> tuple[Usage, list[tuple[str, Usage]]] | None:
        """The pod's time and window (its earliest container's) and each container's usage."""
        last, prev = self.pods.get((namespace, name)), self.prev_pods.get((namespace, name))
        if not last or prev is None or any(c not in prev for c in last):
            return None
        containers = [(c, u) for c, u in ((c, usage(point, prev[c])) for c, point in sorted(last.items()))
                      if u is not None]
        if not containers:
            return None
        earliest = min((u for _, u in containers), key=lambda u: u.timestamp)
        return earliest, containers

    def ready(self) -> bool:
        """metrics-server's readiness: some node and some container can be served."""
        return bool(self.prev_nodes) and any(self.prev_pods.values())


def _meta(obj: Obj, now: float) -> Obj:
    m = obj.get("metadata") or {}
    out: Obj = {"name": m.get("name", "")}
    if m.get("namespace"):
        out["namespace"] = m["namespace"]
    out["creationTimestamp"] = format_rfc3339(now)
    if m.get("labels"):
        out["labels"] = dict(m["labels"])
    return out


def node_metrics(node: Obj, u: Usage, now: float) -> Obj:
    """The NodeMetrics of a Node object."""
    return {"kind": "NodeMetrics", "apiVersion": API_VERSION, "metadata": _meta(node, now),
            "timestamp": format_rfc3339(u.timestamp), "window": format_duration(u.window_ns),
            "usage": {"cpu": u.cpu, "memory": u.memory}}


def pod_metrics(pod: Obj, pod_usage: tuple[Usage, list[tuple[str, Usage]]], now: float) -> Obj:
    """The PodMetrics of a Pod object."""
    earliest, containers = pod_usage
    return {"kind": "PodMetrics", "apiVersion": API_VERSION, "metadata": _meta(pod, now),
            "timestamp": format_rfc3339(earliest.timestamp), "window": format_duration(earliest.window_ns),
            "containers": [{"name": c, "usage": {"cpu": u.cpu, "memory": u.memory}} for c, u in containers]}


def metrics_list(kind: str, items: list[Obj]) -> Obj:
    return {"kind": f"{kind}List", "apiVersion": API_VERSION, "metadata": {}, "items": items}


def _sum(quantities: list[str]) -> str:
    total = "0"
    for q in quantities:
        total = add(total, q)
    return total


def table(items: list[Obj]) -> Obj:
    """metrics-server's Table of NodeMetrics or PodMetrics (a pod's usage summed over its containers)."""
    rows = []
    names: list[str] = []
    for item in items:
        if "containers" in item:
            keys = sorted({k for c in item["containers"] for k in c["usage"]})
            use = {k: _sum([c["usage"][k] for c in item["containers"] if k in c["usage"]]) for k in keys}
        else:
            use = item["usage"]
        names = names or sorted(use)
        rows.append({"cells": [item["metadata"]["name"], *(use.get(k, "0") for k in names), item["window"]],
                     "object": item})
    columns = [{"name": "Name", "type": "string", "format": "name", "description": "Name of the resource",
                "priority": 0}]
    columns += [{"name": k, "type": "string", "format": "quantity", "description": "", "priority": 0} for k in names]
    columns.append({"name": "Window", "type": "string", "format": "duration", "description": "", "priority": 0})
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {},
            "columnDefinitions": columns if items else [], "rows": rows}
