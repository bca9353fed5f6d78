"""List rows: each object as ``kubectl get`` prints it, keyed for JSON, plus the console's extras.

Contract:

- The cells are the API server's own printers' (:mod:`kybernetes.apiserver.printers`, the columns
  ``kubectl get`` shows), so a row reads exactly as kubectl's: pods' ``status`` is ``Running``,
  ``CrashLoopBackOff``, ``Completed`` ...; ``ready`` is ``1/1``. A column's key is its title in
  camelCase (``Up-to-date`` -> ``upToDate``, ``Cluster-IP`` -> ``clusterIP``, ``Port(s)`` -> ``ports``).
- Every row holds ``namespace``, ``name``, ``uid`` and every printer column (wide ones too);
  :func:`columns` names the ones a list shows: the printer's default columns (minus Name) and the
  console's picks (pods' ``ip`` and ``node``; nodes' CPU and memory; services' ``endpoints``).
- Extras the printers lack: nodes' ``cpuCapacity``, ``memoryCapacity``, ``cpuAllocatable``,
  ``memoryAllocatable``, ``cpuUsage``, ``memoryUsage`` (``""`` when metrics.k8s.io does not
  answer); services' ``endpoints`` (ready addresses in their EndpointSlices).
- Sorting: :func:`sort_key` orders numbers as numbers and text naturally (``pod-9`` before
  ``pod-10``); ``age`` and ``lastSeen`` sort by their timestamps (ascending age: newest first).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kybernetes.apiserver.printers import columns_for, row_cells

Obj = dict[str, Any]


@dataclass(frozen=True)
class Kind:
    """One resource the console caches: where it is served and how its rows are printed."""

    resource: str
    api_version: str
    kind: str
    namespaced: bool = True
    extra_columns: tuple[tuple[str, str], ...] = ()
    """(key, title) the list shows besides the printer's default columns."""

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]


NODE_RESOURCES = (("cpuCapacity", "CPU capacity"), ("memoryCapacity", "Memory capacity"),
                  ("cpuAllocatable", "CPU allocatable"), ("memoryAllocatable", "Memory allocatable"),
                  ("cpuUsage", "CPU usage"), ("memoryUsage", "Memory usage"))

KINDS: dict[str, Kind] = {k.resource: k for k in (
    Kind("namespaces", "v1", "Namespace", namespaced=False),
    Kind("nodes", "v1", "Node", namespaced=False,
         extra_columns=(("internalIP", "Internal-IP"), *NODE_RESOURCES)),
    Kind("pods", "v1", "Pod", extra_columns=(("ip", "IP"), ("node", "Node"))),
    Kind("deployments", "apps/v1", "Deployment"),
    Kind("replicasets", "apps/v1", "ReplicaSet"),
    Kind("statefulsets", "apps/v1", "StatefulSet"),
    Kind("daemonsets", "apps/v1", "DaemonSet"),
    Kind("jobs", "batch/v1", "Job"),
    Kind("cronjobs", "batch/v1", "CronJob"),
    Kind("services", "v1", "Service", extra_columns=(("endpoints", "Endpoints"),)),
    Kind("events", "v1", "Event"),
    Kind("persistentvolumeclaims", "v1", "PersistentVolumeClaim"),
    Kind("endpointslices", "discovery.k8s.io/v1", "EndpointSlice"),
    Kind("leases", "coordination.k8s.io/v1", "Lease"),
)}

LISTED = ("namespaces", "nodes", "pods", "deployments", "replicasets", "statefulsets", "daemonsets", "jobs",
          "cronjobs", "services", "events", "persistentvolumeclaims")
"""The resources ``/api/list`` serves (EndpointSlices and Leases are cached for the other views)."""

TIME_COLUMNS = {"age": ("metadata", "creationTimestamp"), "lastSeen": ()}


def camel(title: str) -> str:
    """A column title as a JSON key: ``Up-to-date`` -> ``upToDate``, ``IP`` -> ``ip``."""
    words = [w for w in re.split(r"[^A-Za-z0-9]+", title.replace("(s)", "s")) if w]
    if not words:
        return ""
    first = words[0].lower() if words[0].isupper() else words[0][0].lower() + words[0][1:]
    return first + "".join(w if w.isupper() else w[0].upper() + w[1:] for w in words[1:])


@dataclass
class Row:
    """One object's precomputed row and what sorting needs of it."""

    cells: dict[str, Any]
    times: dict[str, str] = field(default_factory=dict)
    """Timestamps of the time columns (``age``, ``lastSeen``): they sort by these."""
    labels: Mapping[str, str] = field(default_factory=dict)
    search: str = ""
    """The name in lower case, which ``q`` searches."""
    _keys: dict[str, tuple[Any, ...]] = field(default_factory=dict, repr=False)

    def key(self, column: str) -> tuple[Any, ...]:
        """The :func:`sort_key` of a column's cell, computed once per row (rows are replaced on change)."""
        k = self._keys.get(column)
        if k is None:
            k = self._keys[column] = (sort_key(self.cells.get(column)), self.cells["namespace"], self.cells["name"])
        return k


def columns(kind: Kind) -> list[dict[str, str]]:
    """The columns a list of ``kind`` shows, in order: ``[{"key", "title"}]``."""
    out = [{"key": camel(c.name), "title": c.name} for c in columns_for(kind.group, kind.kind)
           if c.priority == 0 and c.format != "name"]
    known = {c["key"] for c in out}
    out += [{"key": k, "title": t} for k, t in kind.extra_columns if k not in known]
    return out


def _keys(kind: Kind) -> list[str]:
    return [camel(c.name) for c in columns_for(kind.group, kind.kind)]


_KEYS: dict[str, list[str]] = {}


def event_time(ev: Mapping[str, Any]) -> str:
    """When an Event was last seen (kubectl's rule: series, then lastTimestamp, eventTime, creation)."""
    series = ev.get("series") or {}
    return str(series.get("lastObservedTime") or ev.get("lastTimestamp") or ev.get("eventTime")
               or (ev.get("metadata") or {}).get("creationTimestamp") or "")


def make_row(kind: Kind, obj: Obj, now: datetime, extras: Mapping[str, Any] | None = None) -> Row:
    """The row of ``obj`` at ``now`` (ages are relative to it); ``extras`` are the console's columns."""
    keys = _KEYS.get(kind.resource)
    if keys is None:
        keys = _KEYS[kind.resource] = _keys(kind)
    meta = obj.get("metadata") or {}
    cells: dict[str, Any] = {"namespace": meta.get("namespace") or "", "name": meta.get("name") or "",
                             "uid": meta.get("uid") or ""}
    for key, value in zip(keys, row_cells(kind.group, kind.kind, obj, now), strict=False):
        if key != "name":
            cells[key] = value
    if kind.resource == "events":
        cells["name"] = meta.get("name") or ""
    if extras:
        cells.update(extras)
    times = {"age": str(meta.get("creationTimestamp") or "")}
    if kind.resource == "events":
        times["lastSeen"] = event_time(obj)
    return Row(cells, times, meta.get("labels") or {}, cells["name"].lower())


def node_extras(node: Obj, usage: Mapping[str, str] | None) -> dict[str, Any]:
    """Nodes' CPU and memory columns (capacity and allocatable as the node reports them)."""
    status = node.get("status") or {}
    cap, alloc = status.get("capacity") or {}, status.get("allocatable") or {}
    ip = next((a.get("address", "") for a in status.get("addresses") or () if a.get("type") == "InternalIP"), "")
    return {"internalIP": ip, "cpuCapacity": cap.get("cpu", ""), "memoryCapacity": cap.get("memory", ""),
            "cpuAllocatable": alloc.get("cpu", ""), "memoryAllocatable": alloc.get("memory", ""),
            "cpuUsage": (usage or {}).get("cpu", ""), "memoryUsage": (usage or {}).get("memory", "")}


def ready_endpoints(slice_: Obj) -> int:
    """Ready addresses of one EndpointSlice (``ready`` unset counts as ready, as Kubernetes reads it)."""
    n = 0
    for ep in slice_.get("endpoints") or ():
        if (ep.get("conditions") or {}).get("ready", True) is not False:
            n += len(ep.get("addresses") or ())
    return n


_NATURAL = re.compile(r"(\d+)")


def sort_key(value: Any) -> tuple[Any, ...]:
    """Numbers before text; numbers by value; text case-insensitively with digit runs as numbers."""
    if isinstance(value, bool):
        return (1, (str(value),))
    if isinstance(value, int | float):
        return (0, value)
    if value is None:
        return (2, ())
    parts = _NATURAL.split(str(value).lower())
    return (1, tuple((0, int(p), "") if i % 2 else (1, 0, p) for i, p in enumerate(parts) if p))
