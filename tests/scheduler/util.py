"""Builders for scheduler tests: nodes and pods as plain dicts, a framework over a fresh cache."""

from __future__ import annotations

from typing import Any

from kybernetes.scheduler.cache import Cache
from kybernetes.scheduler.config import Profile, build_profile
from kybernetes.scheduler.framework import EXTENSION_POINTS, CycleState, Framework, Handle, implements
from kybernetes.scheduler.nodeinfo import PodInfo
from kybernetes.scheduler.plugins import REGISTRY
from kybernetes.scheduler.volumes import VolumeStore

Obj = dict[str, Any]


def node(name: str, cpu: str = "4", mem: str = "8Gi", pods: str = "110", *, labels: dict[str, str] | None = None,
         taints: list[Obj] | None = None, unschedulable: bool = False, images: list[Obj] | None = None,
         extra: dict[str, str] | None = None) -> Obj:
    alloc = {"cpu": cpu, "memory": mem, "pods": pods, **(extra or {})}
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": {"taints": taints or [], "unschedulable": unschedulable},
        "status": {"allocatable": alloc, "capacity": alloc, "images": images or [],
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }


def pod(name: str, cpu: str | None = None, mem: str | None = None, *, ns: str = "default",
        labels: dict[str, str] | None = None, node_name: str = "", priority: int | None = None,
        image: str = "busybox", **spec: Any) -> Obj:
    req = {}
    if cpu:
        req["cpu"] = cpu
    if mem:
        req["memory"] = mem
    container: Obj = {"name": "c", "image": image, "resources": {"requests": req} if req else {}}
    if "ports" in spec:
        container["ports"] = spec.pop("ports")
    s: Obj = {"containers": [container], "schedulerName": "default-scheduler", **spec}
    if node_name:
        s["nodeName"] = node_name
    if priority is not None:
        s["priority"] = priority
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "uid": f"uid-{ns}-{name}", "labels": labels or {},
                         "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": s, "status": {"phase": "Pending"}}


def only(*names: str, args: dict[str, Obj] | None = None) -> Profile:
    """A profile with just these plugins, at every extension point each implements, weight 1."""
    points = {p: [(n, 1) for n in names if implements(REGISTRY[n], p)] for p in EXTENSION_POINTS}
    return Profile(points=points, plugin_args=args or {})


class Env:
    def __init__(self, nodes: list[Obj], pods: list[Obj] = (), profile: Profile | None = None,  # type: ignore[assignment]
                 namespaces: dict[str, dict[str, str]] | None = None, volumes: VolumeStore | None = None) -> None:
        self.cache = Cache.from_objects(nodes, list(pods))
        self.handle = Handle(self.cache.snapshot)
        if volumes is not None:
            self.handle.volumes = volumes
        self.handle.namespace_labels = namespaces or {}
        self.fw = Framework(profile or build_profile({}), self.handle)

    def filter(self, p: Obj) -> dict[str, str | None]:
        """node -> None (fits) or "Plugin: reasons"."""
        pi = PodInfo(p)
        state = CycleState()
        st = self.fw.run_pre_filter(state, pi)
        if st is not None:
            return {n.name: f"{st.plugin}: {st.message}" for n in self.cache.snapshot.node_list}
        out: dict[str, str | None] = {}
        for ni in self.cache.snapshot.node_list:
            r = self.fw.run_filter(state, pi, ni)
            out[ni.name] = None if r is None else f"{r.plugin}: {r.message}"
        return out

    def fits(self, p: Obj) -> list[str]:
        return sorted(n for n, r in self.filter(p).items() if r is None)

    def scores(self, p: Obj, nodes: list[str] | None = None) -> dict[str, int]:
        pi = PodInfo(p)
        state = CycleState()
        assert self.fw.run_pre_filter(state, pi) is None
        nis = [n for n in self.cache.snapshot.node_list if nodes is None or n.name in nodes]
        self.fw.run_pre_score(state, pi, nis)
        totals = self.fw.run_score(state, pi, nis)
        return {ni.name: totals[i] for i, ni in enumerate(nis)}
