"""CPU and memory statistics of the node, its pods and their containers: the kubelet's Summary API.

Contract:

- ``StatsProvider.snapshot()`` takes one :class:`Snapshot`: the node's usage (root cgroup,
  :mod:`kybernetes.kubelet.cgroups`) and every running container's (CRI ``ListContainerStats``),
  joined with ``ListContainers`` and ``ListPodSandbox`` for names, images and start times.
  ``summary_json(snapshot)`` renders it as ``stats/v1alpha1`` ``Summary`` (``/stats/summary``); the
  ``/metrics/resource`` and ``/metrics/cadvisor`` collectors (:mod:`kybernetes.kubelet.resourcemetrics`)
  render the same snapshot.
- Why containers come from the CRI and the node from the cgroups: runc puts each task in
  ``<pod cgroup>/<id>`` (``/k8s.io/<id>`` without a cgroup parent), and only containerd knows which
  cgroup is which container's, and it reads them for cgroup v1 and v2 alike (what the kubelet's CRI
  stats provider relies on too). The node has no CRI call; cAdvisor reads its root cgroup, and so do we.
- A pod's CPU and memory are the sums over its running containers (its pod cgroup is not read;
  the sandbox's pause process is left out, its usage is negligible). Pods without a running
  container are absent, as in the kubelet's CRI provider.
- ``usageNanoCores`` is the rate between this sample and the previous one of the same container (or
  of the node), as the kubelet computes it when the runtime leaves it empty; the first sample of a
  container has none. Cumulative ``usageCoreNanoSeconds`` is always there.
- Times are RFC 3339 at second precision (``metav1.Time``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kybernetes.api.timeutil import format_rfc3339
from kybernetes.kubelet import cgroups
from kybernetes.kubelet.cri import CRIClient, api
from kybernetes.kubelet.runtime import (
    LABEL_CONTAINER_NAME,
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    LABEL_POD_UID,
)

Obj = dict[str, Any]


@dataclass
class ContainerSample:
    """One running container's statistics (cpu_ns in nanoseconds, memory in bytes, times in epoch seconds)."""

    id: str
    name: str
    pod: str
    namespace: str
    pod_uid: str
    image: str
    start: float
    time: float
    cpu_ns: int
    nano_cores: int | None
    working_set: int
    usage: int
    rss: int
    page_faults: int
    major_page_faults: int
    available: int | None = None


@dataclass
class Snapshot:
    """The node and its running containers at one moment."""

    node_name: str
    node_start: float
    time: float
    node: cgroups.Usage
    node_nano_cores: int | None
    memory_capacity: int
    containers: list[ContainerSample] = field(default_factory=list)

    def pods(self) -> dict[tuple[str, str, str], list[ContainerSample]]:
        """Containers grouped by pod (namespace, name, uid), in a stable order."""
        out: dict[tuple[str, str, str], list[ContainerSample]] = {}
        for c in sorted(self.containers, key=lambda c: (c.namespace, c.pod, c.name)):
            out.setdefault((c.namespace, c.pod, c.pod_uid), []).append(c)
        return out


class RateCache:
    """Previous (time, cumulative ns) samples per key, turning counters into nanocores."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, int]] = {}

    def rate(self, key: str, at: float, cpu_ns: int) -> int | None:
        prev = self._last.get(key)
        self._last[key] = (at, cpu_ns)
        if prev is None or at <= prev[0] or cpu_ns < prev[1]:
            return None
        return int((cpu_ns - prev[1]) / (at - prev[0]))

    def keep(self, keys: set[str]) -> None:
        """Forgets keys not in ``keys`` (containers that are gone)."""
        for key in self._last.keys() - keys:
            del self._last[key]


def boot_time(proc_root: Path = cgroups.PROC_ROOT) -> float:
    """The node's boot time (``btime`` of /proc/stat): the start time of the root container."""
    for line in (proc_root / "stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return 0.0


def _value(v: Any) -> int:
    return int(v.value) if v is not None else 0


class StatsProvider:
    """Samples the node and its containers (see the module contract)."""

    NODE_KEY = "/"

    def __init__(self, cri: Callable[[], CRIClient], node_name: str, *, memory_capacity: int,
                 cgroup_root: Path = cgroups.CGROUP_ROOT, proc_root: Path = cgroups.PROC_ROOT,
                 clock: Callable[[], float] = time.time) -> None:
        self._cri = cri
        self.node_name = node_name
        self.memory_capacity = memory_capacity
        self.cgroup_root, self.proc_root = cgroup_root, proc_root
        self.clock = clock
        self.rates = RateCache()
        self._lock = asyncio.Lock()

    async def snapshot(self) -> Snapshot:
        async with self._lock:  # one sample at a time: the rate cache is shared
            return await self._snapshot()

    async def _snapshot(self) -> Snapshot:
        cri = self._cri()
        running = api.ContainerFilter(state=api.ContainerStateValue(state=api.CONTAINER_RUNNING))
        containers, sandboxes, stats = await asyncio.gather(
            cri.list_containers(running), cri.list_pod_sandbox(), cri.list_container_stats())
        node = await asyncio.to_thread(cgroups.node_usage, self.cgroup_root, self.proc_root)
        now = self.clock()
        by_sandbox = {s.id: s for s in sandboxes}
        by_id = {s.attributes.id: s for s in stats}
        snap = Snapshot(node_name=self.node_name, node_start=boot_time(self.proc_root), time=now, node=node,
                        node_nano_cores=self.rates.rate(self.NODE_KEY, now, node.cpu_ns),
                        memory_capacity=self.memory_capacity)
        for c in containers:
            st = by_id.get(c.id)
            sandbox = by_sandbox.get(c.pod_sandbox_id)
            if st is None or sandbox is None:
                continue
            snap.containers.append(self._container(c, sandbox, st, now))
        self.rates.keep({self.NODE_KEY} | {c.id for c in snap.containers})
        return snap

    def _container(self, c: Any, sandbox: Any, st: Any, now: float) -> ContainerSample:
        cpu_at = st.cpu.timestamp / 1e9 if st.cpu.timestamp else now
        mem_at = st.memory.timestamp / 1e9 if st.memory.timestamp else now
        cpu_ns = _value(st.cpu.usage_core_nano_seconds)
        nano_cores = self.rates.rate(c.id, cpu_at, cpu_ns)
        if st.cpu.HasField("usage_nano_cores") and st.cpu.usage_nano_cores.value:
            nano_cores = int(st.cpu.usage_nano_cores.value)
        m = st.memory
        return ContainerSample(
            id=c.id, name=c.labels.get(LABEL_CONTAINER_NAME) or c.metadata.name,
            pod=c.labels.get(LABEL_POD_NAME) or sandbox.metadata.name,
            namespace=c.labels.get(LABEL_POD_NAMESPACE) or sandbox.metadata.namespace,
            pod_uid=c.labels.get(LABEL_POD_UID) or sandbox.metadata.uid,
            image=c.image.image or c.image_ref, start=c.created_at / 1e9, time=max(cpu_at, mem_at),
            cpu_ns=cpu_ns, nano_cores=nano_cores, working_set=_value(m.working_set_bytes),
            usage=_value(m.usage_bytes), rss=_value(m.rss_bytes), page_faults=_value(m.page_faults),
            major_page_faults=_value(m.major_page_faults),
            available=int(m.available_bytes.value) if m.HasField("available_bytes") else None)


# ---- the Summary API ----------------------------------------------------------------------------


def _cpu(at: float, cpu_ns: int, nano_cores: int | None) -> Obj:
    out: Obj = {"time": format_rfc3339(at)}
    if nano_cores is not None:
        out["usageNanoCores"] = nano_cores
    out["usageCoreNanoSeconds"] = cpu_ns
    return out


def _memory(at: float, *, available: int | None, usage: int, working_set: int, rss: int, page_faults: int,
            major_page_faults: int) -> Obj:
    out: Obj = {"time": format_rfc3339(at)}
    if available is not None:
        out["availableBytes"] = available
    out.update(usageBytes=usage, workingSetBytes=working_set, rssBytes=rss, pageFaults=page_faults,
               majorPageFaults=major_page_faults)
    return out


def _container_json(c: ContainerSample) -> Obj:
    return {"name": c.name, "startTime": format_rfc3339(c.start),
            "cpu": _cpu(c.time, c.cpu_ns, c.nano_cores),
            "memory": _memory(c.time, available=c.available, usage=c.usage, working_set=c.working_set, rss=c.rss,
                              page_faults=c.page_faults, major_page_faults=c.major_page_faults)}


def _pod_json(namespace: str, name: str, uid: str, containers: list[ContainerSample],
              pod_start: float | None) -> Obj:
    at = max(c.time for c in containers)
    rates = [c.nano_cores for c in containers]
    nano = sum(r for r in rates if r is not None) if all(r is not None for r in rates) else None
    start = pod_start if pod_start is not None else min(c.start for c in containers)
    return {"podRef": {"name": name, "namespace": namespace, "uid": uid}, "startTime": format_rfc3339(start),
            "containers": [_container_json(c) for c in containers],
            "cpu": _cpu(at, sum(c.cpu_ns for c in containers), nano),
            "memory": _memory(at, available=None, usage=sum(c.usage for c in containers),
                              working_set=sum(c.working_set for c in containers),
                              rss=sum(c.rss for c in containers),
                              page_faults=sum(c.page_faults for c in containers),
                              major_page_faults=sum(c.major_page_faults for c in containers))}


def summary_json(snap: Snapshot, pod_starts: dict[str, float] | None = None) -> Obj:
    """``stats/v1alpha1`` ``Summary`` of a snapshot; ``pod_starts`` maps pod UIDs to their status.startTime."""
    n = snap.node
    node = {"nodeName": snap.node_name, "startTime": format_rfc3339(snap.node_start),
            "cpu": _cpu(snap.time, n.cpu_ns, snap.node_nano_cores),
            "memory": _memory(snap.time, available=max(0, snap.memory_capacity - n.working_set),
                              usage=n.memory_usage, working_set=n.working_set, rss=n.rss,
                              page_faults=n.page_faults, major_page_faults=n.major_page_faults)}
    starts = pod_starts or {}
    pods = [_pod_json(ns, name, uid, cs, starts.get(uid)) for (ns, name, uid), cs in snap.pods().items()]
    return {"node": node, "pods": pods}
