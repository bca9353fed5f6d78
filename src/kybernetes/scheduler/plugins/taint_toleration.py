"""TaintToleration: filter on NoSchedule/NoExecute taints, score by untolerated PreferNoSchedule.

Filter reports the first untolerated taint as ``node(s) had untolerated taint {key: value}``
(UnschedulableAndUnresolvable: evicting pods cannot remove a taint). Score counts the node's
PreferNoSchedule taints the pod does not tolerate -- only tolerations with an empty or
PreferNoSchedule effect count -- and normalises in reverse, so fewer is better.
"""

from __future__ import annotations

from collections.abc import Sequence

from kybernetes.api.scheduling import tuples_tolerate_taint
from kybernetes.scheduler.framework import CycleState, Plugin, Status, default_normalize, unresolvable
from kybernetes.scheduler.nodeinfo import NodeInfo, PodInfo

_FILTER_EFFECTS = ("NoSchedule", "NoExecute")


def untolerated_taint(pi: PodInfo, ni: NodeInfo) -> dict | None:
    for t in ni.taints:
        if t.get("effect") in _FILTER_EFFECTS and not tuples_tolerate_taint(pi.tolerations, t):
            return t
    return None


def taint_reason(t: dict) -> str:
    return f"node(s) had untolerated taint {{{t.get('key') or ''}: {t.get('value') or ''}}}"


class TaintToleration(Plugin):
    name = "TaintToleration"

    def filter(self, state: CycleState, pi: PodInfo, ni: NodeInfo) -> Status | None:
        if not ni.taints:
            return None
        t = untolerated_taint(pi, ni)
        return unresolvable(taint_reason(t)) if t is not None else None

    def pre_score(self, state: CycleState, pi: PodInfo, nodes: Sequence[NodeInfo]) -> Status | None:
        state.data[self.name] = [t for t in pi.tolerations if t[3] in ("", "PreferNoSchedule")]
        return None

    def score(self, state: CycleState, pi: PodInfo, ni: NodeInfo) -> int:
        if not ni.taints:
            return 0
        tols = state.data[self.name]
        return sum(1 for t in ni.taints if t.get("effect") == "PreferNoSchedule" and not tuples_tolerate_taint(tols, t))

    def score_all(self, state: CycleState, pi: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:  # type: ignore[override]
        score = self.score
        return [score(state, pi, ni) if ni.taints else 0 for ni in nodes]

    def normalize_score(self, state: CycleState, pi: PodInfo, scores: list[int]) -> None:
        default_normalize(scores, reverse=True)
