"""NodeAffinity: ``nodeSelector``, required node affinity (filter) and preferred terms (score).

Required ``nodeSelectorTerms`` are ORed; within a term, ``matchExpressions`` and ``matchFields``
are ANDed; a term with neither matches nothing. Operators In/NotIn/Exists/DoesNotExist/Gt/Lt
(Gt/Lt compare integers; a non-integer label never matches). ``matchFields`` supports
``metadata.name`` only. The plugin arg ``addedAffinity`` (a NodeAffinity object) applies to every
pod of the profile. When every required term pins ``metadata.name In [...]``, PreFilter narrows the
nodes to those names (``PreFilterResult``) so 5,000-node clusters are not walked for nothing.
The matching itself is :mod:`kybernetes.api.scheduling`'s, shared with the DaemonSet controller.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kybernetes.api.scheduling import NodeMatcher, RequiredNodeAffinity, compile_term, compile_terms
from kybernetes.scheduler.framework import SKIP, CycleState, Plugin, Status, default_normalize, unresolvable
from kybernetes.scheduler.nodeinfo import NodeInfo, PodInfo

REASON = "node(s) didn't match Pod's node affinity/selector"


def _state(pi: PodInfo) -> RequiredNodeAffinity:
    # Cached on the pod's dict identity via the cycle state by callers; cheap to build anyway.
    return RequiredNodeAffinity(pi.pod)


class NodeAffinity(Plugin):
    name = "NodeAffinity"

    def __init__(self, args: Mapping[str, Any] | None, handle: Any) -> None:
        super().__init__(args, handle)
        added = (self.args.get("addedAffinity") or {})
        req = (added.get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms")
        self.added_required: NodeMatcher | None = compile_terms(req) if req else None
        self.added_preferred = [(int(p.get("weight") or 0), compile_term(p.get("preference") or {}))
                                for p in added.get("preferredDuringSchedulingIgnoredDuringExecution") or ()]

    def pre_filter(self, state: CycleState, pi: PodInfo) -> Status | None:
        req = _state(pi)
        if req.empty and self.added_required is None:
            return SKIP
        state.data[self.name] = req
        if req.names is not None:
            state.data.setdefault("prefilter_result_plugins", []).append(self.name)
            state.node_names = req.names if state.node_names is None else state.node_names & req.names
            if not state.node_names:
                return unresolvable(REASON)
        return None

    def filter(self, state: CycleState, pi: PodInfo, ni: NodeInfo) -> Status | None:
        req: RequiredNodeAffinity | None = state.data.get(self.name)
        if req is None:
            req = _state(pi)
        if self.added_required is not None and not self.added_required(ni):
            return unresolvable(REASON)
        if not req.matches(ni):
            return unresolvable(REASON)
        return None

    def pre_score(self, state: CycleState, pi: PodInfo, nodes: Sequence[NodeInfo]) -> Status | None:
        prefs = ((((pi.pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {})
                 .get("preferredDuringSchedulingIgnoredDuringExecution") or [])
        terms = [(int(p.get("weight") or 0), compile_term(p.get("preference") or {})) for p in prefs]
        terms += self.added_preferred
        if not terms:
            return SKIP
        state.data[self.name + "/pref"] = terms
        return None

    def score(self, state: CycleState, pi: PodInfo, ni: NodeInfo) -> int:
        return sum(w for w, m in state.data[self.name + "/pref"] if m(ni))

    def normalize_score(self, state: CycleState, pi: PodInfo, scores: list[int]) -> None:
        default_normalize(scores)
