"""NodeResourcesBalancedAllocation: prefer nodes whose cpu and memory would be equally used.

Score = ``(1 - std) * 100`` where std is the standard deviation of requested/allocatable fractions
(capped at 1) over the configured resources (cpu and memory by default); for two resources that is
``|f1 - f2| / 2``. It uses the pods' actual requests (not the non-zero defaults) and skips pods
that request none of the resources, as Kubernetes does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from kybernetes.scheduler.framework import MAX_NODE_SCORE, SKIP, CycleState, Plugin, Status
from kybernetes.scheduler.nodeinfo import CPU, MEMORY, NodeInfo, PodInfo, ScoreMemo


class NodeResourcesBalancedAllocation(Plugin):
    name = "NodeResourcesBalancedAllocation"

    def __init__(self, args: Mapping[str, Any] | None, handle: Any) -> None:
        super().__init__(args, handle)
        self.resources = [r["name"] for r in self.args.get("resources") or ()] or [CPU, MEMORY]
        if self.resources == [CPU, MEMORY]:
            self.score_all = self._score_all
            self._memo = ScoreMemo()

    def pre_score(self, state: CycleState, pi: PodInfo, nodes: Sequence[NodeInfo]) -> Status | None:
        if not any(pi.requests.get(r) for r in self.resources):
            return SKIP
        return None

    def _score_all(self, state: CycleState, pi: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        """cpu + memory (the default): std of two fractions is half their difference."""
        pc = pi.requests.get(CPU, 0)
        pm = pi.requests.get(MEMORY, 0)
        out = []
        score = self.score
        memo = self._memo.for_pod((pc, pm))
        for ni in nodes:
            s = memo.get(ni.generation)
            if s is not None:
                out.append(s)
                continue
            ac = ni.alloc_cpu
            am = ni.alloc_mem
            if not ac or not am:
                s = memo[ni.generation] = score(state, pi, ni)
                out.append(s)
                continue
            fc = (ni.req_cpu + pc) / ac
            fm = (ni.req_mem + pm) / am
            if fc > 1:
                fc = 1.0
            if fm > 1:
                fm = 1.0
            s = memo[ni.generation] = int((1 - abs(fc - fm) / 2) * MAX_NODE_SCORE)
            out.append(s)
        return out

    def score(self, state: CycleState, pi: PodInfo, ni: NodeInfo) -> int:
        fractions = []
        alloc = ni.allocatable
        for r in self.resources:
            cap = alloc.get(r, 0)
            if cap == 0:
                continue
            f = (ni.requested.get(r, 0) + pi.requests.get(r, 0)) / cap
            fractions.append(1.0 if f > 1 else f)
        if len(fractions) == 2:
            std = abs(fractions[0] - fractions[1]) / 2
        elif len(fractions) > 2:
            mean = sum(fractions) / len(fractions)
            std = math.sqrt(sum((f - mean) ** 2 for f in fractions) / len(fractions))
        else:
            std = 0.0
        return int((1 - std) * MAX_NODE_SCORE)
