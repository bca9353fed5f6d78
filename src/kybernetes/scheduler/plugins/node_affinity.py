"""NodeAffinity: ``nodeSelector``, required node affinity (filter) and preferred terms (score).

Required ``nodeSelectorTerms`` are ORed; within a term, ``matchExpressions`` and ``matchFields``
are ANDed; a term with neither matches nothing. Operators In/NotIn/Exists/DoesNotExist/Gt/Lt
(Gt/Lt compare integers; a non-integer label never matches). ``matchFields`` supports
``metadata.name`` only. The plugin arg ``addedAffinity`` (a NodeAffinity object) applies to every
pod of the profile. When every required term pins ``metadata.name In [...]``, PreFilter narrows the
nodes to those names (``PreFilterResult``) so 5,000-node clusters are not walked for nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kybernetes.scheduler.framework import SKIP, CycleState, Plugin, Status, default_normalize, unresolvable
from kybernetes.scheduler.nodeinfo import NodeInfo, PodInfo

REASON = "node(s) didn't match Pod's node affinity/selector"
Matcher = Callable[[NodeInfo], bool]


def _int(s: str | None) -> int | None:
    try:
        return int(s) if s is not None else None
    except ValueError:
        return None


def compile_requirement(req: Mapping[str, Any], field: bool = False) -> Matcher:
    key = req.get("key") or ""
    op = req.get("operator") or ""
    values = list(req.get("values") or ())
    vset = frozenset(values)

    def get(ni: NodeInfo) -> str | None:
        if field:
            return ni.name if key == "metadata.name" else None
        return ni.labels.get(key)

    if op == "In":
        return lambda ni: get(ni) in vset
    if op == "NotIn":
        return lambda ni: get(ni) not in vset
    if op == "Exists" and not field:
        return lambda ni: key in ni.labels
    if op == "DoesNotExist" and not field:
        return lambda ni: key not in ni.labels
    if op in ("Gt", "Lt") and not field and len(values) == 1 and _int(values[0]) is not None:
        bound = int(values[0])
        gt = op == "Gt"

        def cmp(ni: NodeInfo) -> bool:
            v = _int(ni.labels.get(key))
            return v is not None and (v > bound if gt else v < bound)
        return cmp
    return lambda ni: False


def compile_term(term: Mapping[str, Any]) -> Matcher:
    parts = [compile_requirement(r) for r in term.get("matchExpressions") or ()]
    parts += [compile_requirement(r, field=True) for r in term.get("matchFields") or ()]
    if not parts:
        return lambda ni: False
    return lambda ni: all(p(ni) for p in parts)


def compile_terms(terms: Sequence[Mapping[str, Any]]) -> Matcher:
    compiled = [compile_term(t) for t in terms]
    return lambda ni: any(m(ni) for m in compiled)


def _names_from_terms(terms: Sequence[Mapping[str, Any]]) -> set[str] | None:
    """Node names when every term restricts metadata.name with In; else None (no restriction)."""
    out: set[str] = set()
    for t in terms:
        names: set[str] | None = None
        for f in t.get("matchFields") or ():
            if f.get("key") == "metadata.name" and f.get("operator") == "In":
                vals = set(f.get("values") or ())
                names = vals if names is None else names & vals
        if names is None:
            return None
        out |= names
    return out


class RequiredNodeAffinity:
    """``nodeaffinity.GetRequiredNodeAffinity``: nodeSelector AND required terms."""

    __slots__ = ("names", "selector", "terms")

    def __init__(self, pod: Mapping[str, Any]) -> None:
        spec = pod.get("spec") or {}
        self.selector: dict[str, str] = dict(spec.get("nodeSelector") or {})
        req = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution")
        terms = (req or {}).get("nodeSelectorTerms") if req is not None else None
        self.terms: Matcher | None = compile_terms(terms or []) if req is not None else None
        self.names = _names_from_terms(terms or []) if req is not None else None

    @property
    def empty(self) -> bool:
        return not self.selector and self.terms is None

    def matches(self, ni: NodeInfo) -> bool:
        labels = ni.labels
        for k, v in self.selector.items():
            if labels.get(k) != v:
                return False
        return self.terms is None or self.terms(ni)


def _state(pi: PodInfo) -> RequiredNodeAffinity:
    # Cached on the pod's dict identity via the cycle state by callers; cheap to build anyway.
    return RequiredNodeAffinity(pi.pod)


class NodeAffinity(Plugin):
    name = "NodeAffinity"

    def __init__(self, args: Mapping[str, Any] | None, handle: Any) -> None:
        super().__init__(args, handle)
        added = (self.args.get("addedAffinity") or {})
        req = (added.get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms")
        self.added_required: Matcher | None = compile_terms(req) if req else None
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
