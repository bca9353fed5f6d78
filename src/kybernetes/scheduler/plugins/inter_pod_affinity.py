"""InterPodAffinity: required/preferred pod affinity and anti-affinity over topology domains.

PreFilter builds three count maps, ``topologyKey -> value -> count`` (only positive counts):

- ``existing_anti``: domains where an existing pod's *required anti-affinity* matches the incoming
  pod (the symmetric check: the incoming pod may not land next to a pod that refuses it);
- ``affinity``: domains holding an existing pod that matches *all* the incoming pod's required
  affinity terms;
- ``anti``: domains holding an existing pod that matches one of its required anti-affinity terms.

Filter then is dictionary lookups per node, in Kubernetes' order and with its messages and codes:
affinity (UnschedulableAndUnresolvable), anti-affinity, existing pods' anti-affinity (both
Unschedulable: evicting pods can help). A pod whose affinity matches no pod anywhere may still go
where it matches its own terms (the first pod of a group).

Score sums, per domain, the incoming pod's preferred (anti-)affinity weights over matching existing
pods plus the existing pods' preferred terms and required affinity (``hardPodAffinityWeight``,
default 1) that match the incoming pod; normalised min-max to 0-100.
Namespace selectors are evaluated against the namespace labels the scheduler watches.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from kybernetes.scheduler.aggregate import Contribution, SumsCache
from kybernetes.scheduler.framework import (
    MAX_NODE_SCORE,
    SKIP,
    CycleState,
    Plugin,
    Status,
    unresolvable,
    unschedulable,
)
from kybernetes.scheduler.nodeinfo import NodeInfo, PodInfo

REASON_AFFINITY = "node(s) didn't match pod affinity rules"
REASON_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
REASON_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"

Counts = dict[str, dict[str, int]]
_NONE: dict[str, int] = {}


class _PreFilterState:
    """The three count maps; they may be the kept sums themselves (NodeSums), so read only."""

    __slots__ = ("affinity", "anti", "existing_anti")

    def __init__(self) -> None:
        self.existing_anti: Counts = {}
        self.affinity: Counts = {}
        self.anti: Counts = {}


class NeedsNamespaces(Exception):
    """A count depends on namespace labels, which change without any node changing."""


def _walk(nodes: Iterable[NodeInfo], contribution: Callable[[NodeInfo], Contribution]) -> dict[Any, dict[Any, int]]:
    """The sums of ``contribution`` over ``nodes``: NodeSums's answer, computed afresh."""
    out: dict[Any, dict[Any, int]] = defaultdict(lambda: defaultdict(int))
    for ni in nodes:
        for (g, k), n in contribution(ni):
            out[g][k] += n
    return out


def _existing_anti(pi: PodInfo, ns_labels: Mapping[str, Mapping[str, str]], kept: bool = False
                   ) -> Callable[[NodeInfo], Contribution]:
    """A node's pods whose required anti-affinity matches ``pi``, by ``(topologyKey, value)``.

    Depends on ``pi`` only through its namespace and labels (``labels_key``), as the term matches do.
    For kept sums (``kept``) a term with a namespaceSelector that ``pi``'s namespace is not listed
    in raises :class:`NeedsNamespaces`; a walk evaluates it against ``ns_labels``.
    """
    seen: dict[Any, bool] = {}  # the pods of a workload share their terms: each match computed once

    def contribution(ni: NodeInfo) -> Contribution:
        if not ni.pods_with_required_anti_affinity:
            return ()
        labels = ni.labels
        out: dict[tuple[str, str], int] = {}
        for existing in ni.pods_with_required_anti_affinity:
            for term in existing.required_anti_affinity:
                v = labels.get(term.topology_key)
                if v is None:
                    continue
                m = seen.get(term.match_key)
                if m is None:
                    m = seen[term.match_key] = term.matches(pi, ns_labels)
                    if kept and term.namespace_selector is not None and pi.namespace not in term.namespaces:
                        raise NeedsNamespaces
                if m:
                    k = (term.topology_key, v)
                    out[k] = out.get(k, 0) + 1
        return tuple(out.items())
    return contribution


def _matching(pi: PodInfo, ns_labels: Mapping[str, Mapping[str, str]]) -> Callable[[NodeInfo], Contribution]:
    """A node's pods matching all of ``pi``'s required affinity terms (``("a", key, value)``) and
    each of its required anti-affinity terms (``("x", key, value)``)."""
    aff = pi.required_affinity
    anti = pi.required_anti_affinity
    all_aff: dict[Any, bool] = {}  # by the existing pod's (namespace, labels)
    anti_match: dict[Any, tuple[bool, ...]] = {}

    def contribution(ni: NodeInfo) -> Contribution:
        if not ni.pods:
            return ()
        labels = ni.labels
        out: dict[tuple[tuple[str, str], str], int] = {}
        for existing in ni.pods.values():
            lk = existing.labels_key
            if aff:
                ok = all_aff.get(lk)
                if ok is None:
                    ok = all_aff[lk] = all(t.matches(existing, ns_labels) for t in aff)
                if ok:
                    for t in aff:
                        v = labels.get(t.topology_key)
                        if v is not None:
                            k = (("a", t.topology_key), v)
                            out[k] = out.get(k, 0) + 1
            if anti:
                ms = anti_match.get(lk)
                if ms is None:
                    ms = anti_match[lk] = tuple(t.matches(existing, ns_labels) for t in anti)
                for t, m in zip(anti, ms, strict=True):
                    if m:
                        v = labels.get(t.topology_key)
                        if v is not None:
                            k = (("x", t.topology_key), v)
                            out[k] = out.get(k, 0) + 1
        return tuple(out.items())
    return contribution


class InterPodAffinity(Plugin):
    name = "InterPodAffinity"

    def __init__(self, args: Mapping[str, Any] | None, handle: Any) -> None:
        super().__init__(args, handle)
        self.hard_weight = int(self.args.get("hardPodAffinityWeight", 1))
        self._sums = SumsCache()

    # --- filtering -------------------------------------------------------------------------------

    def pre_filter(self, state: CycleState, pi: PodInfo) -> Status | None:
        snap = self.handle.snapshot
        if not pi.required_affinity and not pi.required_anti_affinity and not snap.anti_affinity_pods:
            return SKIP
        s = _PreFilterState()
        # Both counts are over existing pods (as in Kubernetes). On the cache's snapshot they are
        # kept between cycles (NodeSums: only the nodes changed since are re-read); a question
        # that depends on namespace labels, or a snapshot without a change log, is walked.
        if snap.anti_affinity_pods:
            sums = self._kept(("existing-anti", pi.labels_key), snap,
                              lambda: _existing_anti(pi, self.handle.namespace_labels, kept=True))
            if sums is None:
                sums = _walk(snap.anti_affinity_nodes(), _existing_anti(pi, self.handle.namespace_labels))
            s.existing_anti = sums
        if pi.required_affinity or pi.required_anti_affinity:
            terms = pi.required_affinity + pi.required_anti_affinity
            sums = None
            if all(t.namespace_selector is None for t in terms):
                key = ("matching", tuple((t.match_key, t.topology_key) for t in pi.required_affinity),
                       tuple((t.match_key, t.topology_key) for t in pi.required_anti_affinity))
                sums = self._kept(key, snap, lambda: _matching(pi, self.handle.namespace_labels))
            if sums is None:
                sums = _walk(snap.node_list, _matching(pi, self.handle.namespace_labels))
            for (which, k), counts in sums.items():
                (s.affinity if which == "a" else s.anti)[k] = counts
        state.data[self.name] = s
        if not pi.required_affinity:
            # Filter's verdict as label checks: the domains of matching pods are forbidden.
            state.label_checks[self.name] = tuple(
                (k, counts, True) for counts_by_key in (s.anti, s.existing_anti)
                for k, counts in counts_by_key.items())
        return None

    def _kept(self, key: Any, snap: Any, contribution: Any) -> dict[Any, dict[Any, int]] | None:
        """The kept sums for ``key``, or None when they cannot be kept (see pre_filter)."""
        if snap.log is None:
            return None
        try:
            return self._sums.get(key, snap, contribution).sums
        except NeedsNamespaces:
            self._sums.discard(key)
            return None

    def filter(self, state: CycleState, pi: PodInfo, ni: NodeInfo) -> Status | None:
        s: _PreFilterState = state.data[self.name]
        labels = ni.labels
        if pi.required_affinity and not self._satisfies_affinity(s, pi, labels):
            return unresolvable(REASON_AFFINITY)
        for t in pi.required_anti_affinity:
            v = labels.get(t.topology_key)
            if v is not None and v in s.anti.get(t.topology_key, _NONE):
                return unschedulable(REASON_ANTI_AFFINITY)
        if s.existing_anti:
            # By topology key (a handful), not by domain: with one pod per node under a hostname
            # term there are as many domains as such pods, and a walk over them for every node
            # made each cycle quadratic.
            for k, counts in s.existing_anti.items():
                v = labels.get(k)
                if v is not None and v in counts:
                    return unschedulable(REASON_EXISTING_ANTI_AFFINITY)
        return None

    def _satisfies_affinity(self, s: _PreFilterState, pi: PodInfo, labels: Mapping[str, str]) -> bool:
        matched = True
        for t in pi.required_affinity:
            v = labels.get(t.topology_key)
            if v is None or v not in s.affinity.get(t.topology_key, _NONE):
                matched = False
                break
        if matched:
            return True
        # No pod anywhere matches: the first pod of a self-affine group may go to any node with
        # the topology keys, if it matches its own terms.
        if not any(s.affinity.values()):
            ns = self.handle.namespace_labels
            if all(t.matches(pi, ns) for t in pi.required_affinity):
                return all(t.topology_key in labels for t in pi.required_affinity)
        return False

    # --- scoring ---------------------------------------------------------------------------------

    def pre_score(self, state: CycleState, pi: PodInfo, nodes: Sequence[NodeInfo]) -> Status | None:
        snap = self.handle.snapshot
        has_pref = bool(pi.preferred_affinity or pi.preferred_anti_affinity)
        if not has_pref and not snap.scoring_affinity_pods:
            return SKIP
        ns = self.handle.namespace_labels
        scores: dict[tuple[str, str], int] = defaultdict(int)
        source = snap.node_list if has_pref else snap.affinity_nodes()
        for ni in source:
            labels = ni.labels
            pods = ni.pods.values() if has_pref else ni.pods_with_affinity
            for existing in pods:
                for w, t in pi.preferred_affinity:
                    v = labels.get(t.topology_key)
                    if v is not None and t.matches(existing, ns):
                        scores[(t.topology_key, v)] += w
                for w, t in pi.preferred_anti_affinity:
                    v = labels.get(t.topology_key)
                    if v is not None and t.matches(existing, ns):
                        scores[(t.topology_key, v)] -= w
                if not existing.has_affinity:
                    continue
                if self.hard_weight:
                    for t in existing.required_affinity:
                        v = labels.get(t.topology_key)
                        if v is not None and t.matches(pi, ns):
                            scores[(t.topology_key, v)] += self.hard_weight
                for w, t in existing.preferred_affinity:
                    v = labels.get(t.topology_key)
                    if v is not None and t.matches(pi, ns):
                        scores[(t.topology_key, v)] += w
                for w, t in existing.preferred_anti_affinity:
                    v = labels.get(t.topology_key)
                    if v is not None and t.matches(pi, ns):
                        scores[(t.topology_key, v)] -= w
        scores = {k: v for k, v in scores.items() if v}
        if not scores:
            return SKIP
        state.data[self.name + "/score"] = scores
        return None

    def score(self, state: CycleState, pi: PodInfo, ni: NodeInfo) -> int:
        labels = ni.labels
        return sum(w for (k, v), w in state.data[self.name + "/score"].items() if labels.get(k) == v)

    def normalize_score(self, state: CycleState, pi: PodInfo, scores: list[int]) -> None:
        if not scores:
            return
        lo, hi = min(scores), max(scores)
        diff = hi - lo
        for i, s in enumerate(scores):
            scores[i] = int(MAX_NODE_SCORE * (s - lo) / diff) if diff > 0 else 0
