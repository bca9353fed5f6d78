"""NodeResourcesFit: does the pod's request fit the node's free allocatable; how full would it be.

Filter (``fitsRequest``): the pod count against allocatable ``pods`` ("Too many pods"), then every
requested resource -- cpu, memory, ephemeral-storage, extended -- against allocatable minus the
requests of the pods already there ("Insufficient cpu"); every shortage is reported, which is
why a FailedScheduling message can count "Insufficient cpu" and "Insufficient memory" for the same
node. ``ignoredResources`` / ``ignoredResourceGroups`` args exempt extended resources.

Score, per ``scoringStrategy.type`` over ``scoringStrategy.resources`` (default cpu and memory,
weight 1 each), on "non-zero" requests (a container without a cpu/memory request counts as 100m /
200Mi so empty pods still spread):

- LeastAllocated (default): ``(allocatable - requested) * 100 / allocatable``, weighted mean;
- MostAllocated: ``requested * 100 / allocatable``;
- RequestedToCapacityRatio: a piecewise-linear ``shape`` of (utilization 0-100 -> score 0-10).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kybernetes.scheduler.framework import MAX_NODE_SCORE, CycleState, Plugin, Status, unschedulable
from kybernetes.scheduler.nodeinfo import CPU, EPHEMERAL, MEMORY, PODS, NodeInfo, PodInfo, ScoreMemo

_STANDARD = (CPU, MEMORY, EPHEMERAL)


def insufficient_resources(pi: PodInfo, ni: NodeInfo, ignored: frozenset[str] = frozenset(),
                           ignored_groups: frozenset[str] = frozenset()) -> list[tuple[str, int, int]]:
    """(resource, requested, free) for each resource the node cannot give; [] when the pod fits."""
    out: list[tuple[str, int, int]] = []
    alloc = ni.allocatable
    used = ni.requested
    max_pods = alloc.get(PODS, 0)
    if len(ni.pods) + 1 > max_pods:
        out.append((PODS, 1, max_pods - len(ni.pods)))
    reqs = pi.requests
    if not reqs:
        return out
    for name in _STANDARD:
        want = reqs.get(name)
        if want:
            free = alloc.get(name, 0) - used.get(name, 0)
            if want > free:
                out.append((name, want, free))
    for name, want in reqs.items():
        if name in _STANDARD or name == PODS or not want:
            continue
        if name in ignored or (ignored_groups and name.split("/", 1)[0] in ignored_groups):
            continue
        free = alloc.get(name, 0) - used.get(name, 0)
        if want > free:
            out.append((name, want, free))
    return out


def reason_for(resource: str) -> str:
    return "Too many pods" if resource == PODS else f"Insufficient {resource}"


def least_allocated(requested: int, capacity: int) -> int:
    if capacity == 0 or requested > capacity:
        return 0
    return (capacity - requested) * MAX_NODE_SCORE // capacity


def most_allocated(requested: int, capacity: int) -> int:
    if capacity == 0:
        return 0
    return min(requested, capacity) * MAX_NODE_SCORE // capacity


def broken_linear(shape: Sequence[tuple[int, int]]) -> Callable[[int], int]:
    """``helper.BuildBrokenLinearFunction`` over (utilization, score already scaled to 0-100)."""
    pts = sorted(shape)

    def f(p: int) -> int:
        for i, (x, y) in enumerate(pts):
            if p <= x:
                if i == 0:
                    return y
                x0, y0 = pts[i - 1]
                return y0 + (y - y0) * (p - x0) // (x - x0)
        return pts[-1][1]
    return f


def node_requested(ni: NodeInfo, pi: PodInfo, resource: str, nonzero: bool) -> int:
    """What the node would have requested with the pod on it, per resource."""
    if nonzero and resource == CPU:
        return ni.nonzero_cpu + pi.nonzero_cpu
    if nonzero and resource == MEMORY:
        return ni.nonzero_mem + pi.nonzero_mem
    return ni.requested.get(resource, 0) + pi.requests.get(resource, 0)


class NodeResourcesFit(Plugin):
    name = "NodeResourcesFit"

    def __init__(self, args: Mapping[str, Any] | None, handle: Any) -> None:
        super().__init__(args, handle)
        self.ignored = frozenset(self.args.get("ignoredResources") or ())
        self.ignored_groups = frozenset(self.args.get("ignoredResourceGroups") or ())
        strategy = self.args.get("scoringStrategy") or {}
        self.strategy: str = strategy.get("type") or "LeastAllocated"
        self.resources: list[tuple[str, int]] = [
            (r["name"], int(r.get("weight") or 1)) for r in strategy.get("resources") or ()
        ] or [(CPU, 1), (MEMORY, 1)]
        if self.strategy == "LeastAllocated":
            self.fn = least_allocated
        elif self.strategy == "MostAllocated":
            self.fn = most_allocated
        elif self.strategy == "RequestedToCapacityRatio":
            shape = (strategy.get("requestedToCapacityRatio") or {}).get("shape") or [
                {"utilization": 0, "score": 10}, {"utilization": 100, "score": 0}]
            curve = broken_linear([(int(p["utilization"]), int(p["score"]) * MAX_NODE_SCORE // 10)
                                   for p in shape])

            def ratio(requested: int, capacity: int) -> int:
                if capacity == 0 or requested > capacity:
                    return curve(100)
                return curve(requested * 100 // capacity)
            self.fn = ratio
        else:
            raise ValueError(f"NodeResourcesFit: unknown scoring strategy {self.strategy!r}")
        if self.strategy == "LeastAllocated" and self.resources == [(CPU, 1), (MEMORY, 1)]:
            self.score_all = self._score_all
            self._memo = ScoreMemo()

    def pre_filter(self, state: CycleState, pi: PodInfo) -> Status | None:
        # (cpu, memory, the other requests as a short tuple): Filter is a few comparisons per node.
        reqs = pi.requests
        others = tuple((k, v) for k, v in reqs.items()
                       if k not in (CPU, MEMORY) and k not in self.ignored
                       and not (self.ignored_groups and k.split("/", 1)[0] in self.ignored_groups))
        state.data[self.name] = (reqs.get(CPU, 0), reqs.get(MEMORY, 0), others)
        return None

    def filter(self, state: CycleState, pi: PodInfo, ni: NodeInfo) -> Status | None:
        pre = state.data.get(self.name)
        if pre is None:
            return self._slow_filter(pi, ni)
        cpu, mem, others = pre
        if (len(ni.pods) >= ni.alloc_pods or cpu > ni.alloc_cpu - ni.req_cpu
                or mem > ni.alloc_mem - ni.req_mem):
            return self._slow_filter(pi, ni)
        if others:
            alloc = ni.allocatable
            used = ni.requested
            for name, want in others:
                if want > alloc.get(name, 0) - used.get(name, 0):
                    return self._slow_filter(pi, ni)
        return None

    def _slow_filter(self, pi: PodInfo, ni: NodeInfo) -> Status | None:
        short = insufficient_resources(pi, ni, self.ignored, self.ignored_groups)
        if short:
            return unschedulable(*[reason_for(r) for r, _, _ in short])
        return None

    def _score_all(self, state: CycleState, pi: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        """LeastAllocated over cpu+memory with weight 1 each, the default, with lookups hoisted."""
        pc = pi.nonzero_cpu
        pm = pi.nonzero_mem
        out = []
        memo = self._memo.for_pod((pc, pm))
        for ni in nodes:
            s = memo.get(ni.generation)
            if s is not None:
                out.append(s)
                continue
            ac = ni.alloc_cpu
            am = ni.alloc_mem
            rc = ni.nonzero_cpu + pc
            rm = ni.nonzero_mem + pm
            sc = (ac - rc) * 100 // ac if ac and rc <= ac else 0
            sm = (am - rm) * 100 // am if am and rm <= am else 0
            n = (ac > 0) + (am > 0)
            s = memo[ni.generation] = (sc + sm) // n if n else 0
            out.append(s)
        return out

    def score(self, state: CycleState, pi: PodInfo, ni: NodeInfo) -> int:
        total = weights = 0
        alloc = ni.allocatable
        fn = self.fn
        for name, w in self.resources:
            cap = alloc.get(name, 0)
            if cap == 0:
                continue
            total += fn(node_requested(ni, pi, name, True), cap) * w
            weights += w
        if not weights:
            return 0
        if self.strategy == "RequestedToCapacityRatio":
            return round(total / weights)
        return total // weights
