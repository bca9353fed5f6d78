"""PodTopologySpread: keep matching pods evenly spread over topology domains.

Constraints come from ``spec.topologySpreadConstraints``; a pod with none gets the system defaults
(zone maxSkew 5 and hostname maxSkew 3, both ScheduleAnyway) with the selector of the Services,
ReplicaSets and StatefulSets that select it -- no such owner, no default spreading.

Which nodes count (``nodeAffinityPolicy`` Honor by default: only nodes matching the pod's
nodeSelector/required affinity; ``nodeTaintsPolicy`` Ignore by default: taints do not matter) and
which pods count (same namespace, matching the selector plus ``matchLabelKeys`` values taken from
the incoming pod, not terminating) follow Kubernetes.

Filter (DoNotSchedule): a node without the topology key is UnschedulableAndUnresolvable; otherwise
``count(domain) + selfMatch - min(count over domains)`` must not exceed maxSkew, where the minimum is
0 when fewer than ``minDomains`` domains exist.

Score (ScheduleAnyway): per constraint ``count(domain) * log(domains + 2) + (maxSkew - 1)``; the
fewer matching pods, the better, normalised as ``100 * (max + min - s) / max``; nodes lacking a key
score 0.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kybernetes.api.label_selectors import LabelSelector, from_label_selector_object, new_requirement
from kybernetes.api.scheduling import RequiredNodeAffinity, tuples_tolerate_taint
from kybernetes.scheduler.aggregate import Contribution, SumsCache
from kybernetes.scheduler.framework import (
    MAX_NODE_SCORE,
    SKIP,
    CycleState,
    LabelCheck,
    Plugin,
    Status,
    unresolvable,
    unschedulable,
)
from kybernetes.scheduler.nodeinfo import HOSTNAME_LABEL, ZONE_LABEL, NodeInfo, PodInfo

REASON = "node(s) didn't match pod topology spread constraints"
REASON_MISSING_LABEL = "node(s) didn't match pod topology spread constraints (missing required label)"

SYSTEM_DEFAULTS: list[Mapping[str, Any]] = [
    {"topologyKey": ZONE_LABEL, "maxSkew": 5, "whenUnsatisfiable": "ScheduleAnyway"},
    {"topologyKey": HOSTNAME_LABEL, "maxSkew": 3, "whenUnsatisfiable": "ScheduleAnyway"},
]


_MEMO_MAX = 200_000
"""Remembered per-node counts beyond which the memo starts over."""


class Constraint:
    __slots__ = ("affinity_policy", "max_skew", "min_domains", "selector", "selector_key", "taints_policy",
                 "topology_key", "when")

    def __init__(self, c: Mapping[str, Any], pi: PodInfo, selector: LabelSelector | None = None) -> None:
        self.max_skew = int(c.get("maxSkew") or 1)
        self.topology_key: str = c.get("topologyKey") or ""
        self.when: str = c.get("whenUnsatisfiable") or "DoNotSchedule"
        self.min_domains = int(c.get("minDomains") or 1)
        self.affinity_policy: str = c.get("nodeAffinityPolicy") or "Honor"
        self.taints_policy: str = c.get("nodeTaintsPolicy") or "Ignore"
        if selector is None:
            selector = from_label_selector_object(c.get("labelSelector"), none_matches=False)
            keys = [k for k in c.get("matchLabelKeys") or () if k in pi.labels]
            if keys:
                # matchLabelKeys: "key In (incoming pod's value)" ANDed to the selector.
                selector = LabelSelector(list(selector.requirements)
                                         + [new_requirement(k, "in", [pi.labels[k]]) for k in keys])
        self.selector = selector
        self.selector_key = repr(selector)

    def counts_node(self, ni: NodeInfo, pi: PodInfo, req: RequiredNodeAffinity) -> bool:
        if self.affinity_policy == "Honor" and not req.matches(ni):
            return False
        if self.taints_policy == "Honor":
            for t in ni.taints:
                if t.get("effect") in ("NoSchedule", "NoExecute") and not tuples_tolerate_taint(pi.tolerations, t):
                    return False
        return True

    def count(self, ni: NodeInfo, ns: str, memo: dict[tuple[int, str, str], int]) -> int:
        """Matching pods on the node, remembered by the node's generation: every cycle counts
        every node, but between two cycles only the nodes whose pods changed have new counts."""
        key = (ni.generation, ns, self.selector_key)
        n = memo.get(key)
        if n is not None:
            return n
        sel = self.selector
        n = 0
        for p in ni.pods.values():
            if p.namespace == ns and not p.terminating and sel.matches(p.labels):
                n += 1
        if len(memo) >= _MEMO_MAX:
            memo.clear()
        memo[key] = n
        return n


def _constraints(pi: PodInfo, when: str, handle: Any) -> list[Constraint]:
    raw = (pi.pod.get("spec") or {}).get("topologySpreadConstraints") or []
    if raw:
        return [Constraint(c, pi) for c in raw if (c.get("whenUnsatisfiable") or "DoNotSchedule") == when]
    if when != "ScheduleAnyway":
        return []
    sel = handle.spread_selector(pi)
    if sel is None or sel.empty:
        return []
    return [Constraint(c, pi, sel) for c in SYSTEM_DEFAULTS]


def _domain_count(c: Constraint, key: str, ns: str, memo: dict[tuple[int, str, str], int]
                  ) -> Callable[[NodeInfo], Contribution]:
    """A node's part of PreFilter's single-constraint count: (its domain, its matching pods)."""
    def contribution(ni: NodeInfo) -> Contribution:
        v = ni.labels.get(key)
        if v is None:
            return ()
        return (((key, v), c.count(ni, ns, memo) if ni.pods else 0),)
    return contribution


class _FilterState:
    __slots__ = ("constraints", "counts", "mins", "self_match")

    def __init__(self, constraints: list[Constraint]) -> None:
        self.constraints = constraints
        self.counts: dict[tuple[str, str], int] = defaultdict(int)
        self.mins: list[int] = []
        self.self_match: list[int] = []
        """1 where the incoming pod matches the constraint's own selector (it will count too)."""


def _label_checks(s: _FilterState) -> tuple[LabelCheck, ...] | None:
    """Filter's verdict as label checks: the domains whose count is already too high are forbidden.
    None when a domain without a count (0) would fail too (``maxSkew < selfMatch - min``, which
    validation does not let through): no set of values could say that."""
    out = []
    for i, c in enumerate(s.constraints):
        over = c.max_skew + s.mins[i] - s.self_match[i]  # a domain fails when its count > this
        if over < 0:
            return None
        out.append((c.topology_key, {v for (k, v), n in s.counts.items() if k == c.topology_key and n > over},
                    False))
    return tuple(out)


class PodTopologySpread(Plugin):
    name = "PodTopologySpread"

    def __init__(self, args: Mapping[str, Any] | None, handle: Any) -> None:
        super().__init__(args, handle)
        # defaultingType List replaces the system defaults with the profile's own.
        defaults = self.args.get("defaultConstraints")
        listed = self.args.get("defaultingType") == "List"
        self.system: list[Mapping[str, Any]] = list(defaults or []) if listed else SYSTEM_DEFAULTS
        self._memo: dict[tuple[int, str, str], int] = {}
        self._sums = SumsCache()
        """Matching pods per domain by (namespace, selector, topology key), for PreFilter."""

    def pre_filter(self, state: CycleState, pi: PodInfo) -> Status | None:
        cs = _constraints(pi, "DoNotSchedule", self.handle)
        if not cs:
            return SKIP
        s = _FilterState(cs)
        req = RequiredNodeAffinity(pi.pod)
        keys = [c.topology_key for c in cs]
        domains: list[set[str]] = [set() for _ in cs]
        # This walks every node for every pod (as Kubernetes does, with 16 goroutines): keep the
        # per-node work to label lookups. A node needs checking only when node affinity is honoured
        # and the pod has any, or taints are honoured; a node without pods adds no count.
        checks = [(c.affinity_policy == "Honor" and not req.empty) or c.taints_policy == "Honor" for c in cs]
        todo = list(zip(cs, keys, domains, checks, strict=True))
        counts, ns, memo = s.counts, pi.namespace, self._memo
        snap = self.handle.snapshot
        if len(todo) == 1 and not checks[0] and snap.log is not None:
            # The common case, one constraint and nothing to check per node: the counts per domain
            # are kept between cycles, and only the nodes changed since the last cycle re-counted.
            c, key, dom, _ = todo[0]
            sums = self._sums.get((ns, c.selector_key, key), snap, lambda: _domain_count(c, key, ns, memo))
            dom.update(sums.nodes.get(key, ()))
            for v, n in sums.sums.get(key, {}).items():
                counts[(key, v)] = n
        elif len(todo) == 1 and not checks[0]:
            c, key, dom, _ = todo[0]
            for ni in snap.node_list:
                v = ni.labels.get(key)
                if v is None:
                    continue
                dom.add(v)
                if ni.pods:
                    counts[(key, v)] += c.count(ni, ns, memo)
        else:
            for ni in snap.node_list:
                labels = ni.labels
                if not all(k in labels for k in keys):
                    continue
                pods = ni.pods
                for c, key, dom, check in todo:
                    if check and not c.counts_node(ni, pi, req):
                        continue
                    v = labels[key]
                    dom.add(v)
                    if pods:
                        counts[(key, v)] += c.count(ni, ns, memo)
        s.self_match = [1 if c.selector.matches(pi.labels) else 0 for c in cs]
        for i, c in enumerate(cs):
            if len(domains[i]) < c.min_domains:
                s.mins.append(0)
            else:
                s.mins.append(min((s.counts[(c.topology_key, v)] for v in domains[i]), default=0))
        state.data[self.name] = s
        verdict = _label_checks(s)
        if verdict is not None:
            state.label_checks[self.name] = verdict
        return None

    def filter(self, state: CycleState, pi: PodInfo, ni: NodeInfo) -> Status | None:
        s: _FilterState = state.data[self.name]
        labels = ni.labels
        for i, c in enumerate(s.constraints):
            v = labels.get(c.topology_key)
            if v is None:
                return unresolvable(REASON_MISSING_LABEL)
            if s.counts.get((c.topology_key, v), 0) + s.self_match[i] - s.mins[i] > c.max_skew:
                return unschedulable(REASON)
        return None

    # --- scoring ---------------------------------------------------------------------------------

    def pre_score(self, state: CycleState, pi: PodInfo, nodes: Sequence[NodeInfo]) -> Status | None:
        raw = (pi.pod.get("spec") or {}).get("topologySpreadConstraints") or []
        if raw:
            cs = [Constraint(c, pi) for c in raw if c.get("whenUnsatisfiable") == "ScheduleAnyway"]
        else:
            sel = self.handle.spread_selector(pi)
            cs = [] if sel is None or sel.empty else [Constraint(c, pi, sel) for c in self.system]
        if not cs:
            return SKIP
        req = RequiredNodeAffinity(pi.pod)
        keys = [c.topology_key for c in cs]
        # Topology sizes from the feasible nodes; hostname domains are the feasible nodes themselves.
        eligible = [ni for ni in nodes if all(k in ni.labels for k in keys)]
        sizes = [len({ni.labels[c.topology_key] for ni in eligible}) for c in cs]
        weights = [math.log(n + 2) for n in sizes]
        counts: dict[tuple[str, str], int] = defaultdict(int)
        wanted = [{ni.labels[c.topology_key] for ni in eligible} for c in cs]
        for i, c in enumerate(cs):
            if c.topology_key == HOSTNAME_LABEL:
                source: Sequence[NodeInfo] = eligible
            else:
                source = self.handle.snapshot.node_list
            check = (c.affinity_policy == "Honor" and not req.empty) or c.taints_policy == "Honor"
            key, want = c.topology_key, wanted[i]
            for ni in source:
                if not ni.pods:
                    continue  # adds nothing
                v = ni.labels.get(key)
                if v is None or v not in want or not all(k in ni.labels for k in keys):
                    continue
                if check and not c.counts_node(ni, pi, req):
                    continue
                counts[(key, v)] += c.count(ni, pi.namespace, self._memo)
        state.data[self.name + "/score"] = (cs, weights, counts, keys)
        return None

    def score(self, state: CycleState, pi: PodInfo, ni: NodeInfo) -> int:
        cs, weights, counts, keys = state.data[self.name + "/score"]
        labels = ni.labels
        if not all(k in labels for k in keys):
            return -1  # marks "ignored": normalised to 0 below
        total = 0.0
        for i, c in enumerate(cs):
            total += counts.get((c.topology_key, labels[c.topology_key]), 0) * weights[i] + (c.max_skew - 1)
        return round(total)

    def normalize_score(self, state: CycleState, pi: PodInfo, scores: list[int]) -> None:
        valid = [s for s in scores if s >= 0]
        if not valid:
            scores[:] = [0] * len(scores)
            return
        lo, hi = min(valid), max(valid)
        for i, s in enumerate(scores):
            if s < 0:
                scores[i] = 0
            elif hi == 0:
                scores[i] = MAX_NODE_SCORE
            else:
                scores[i] = MAX_NODE_SCORE * (hi + lo - s) // hi
