"""DefaultPreemption (PostFilter): evict lower-priority pods so that a higher-priority pod fits.

For a pod that fits nowhere, and is allowed to preempt (``preemptionPolicy`` not Never, and not
already waiting on a nominated node where lower-priority victims are still terminating):

1. candidate nodes are those that failed with a resolvable status (Unschedulable); nodes that
   failed UnschedulableAndUnresolvable (taints, affinity, ...) cannot be helped by evictions;
2. per candidate (``SelectVictimsOnNode``): remove every pod of lower priority and re-run the
   filters; if the pod still does not fit, the node is out; otherwise add the would-be victims
   back one by one, most important first, PDB-violating ones before the others, keeping each that
   does not break the fit -- what remains are the victims;
3. pick the node (``pickOneNodeForPreemption``): fewest PDB violations, then lowest highest-victim
   priority, lowest priority sum, fewest victims, then the first;
4. set ``status.nominatedNodeName`` on the preemptor, clear it on lower-priority pods nominated to
   the same node, gracefully delete the victims (each gets a ``Preempted`` event).

The preemptor then waits in the queue; the victims' deletion is the cluster event that sends it
back to scheduling. Filters that depend on other nodes' pods (InterPodAffinity,
PodTopologySpread) are re-run from PreFilter on a snapshot where the node's pods changed, so the
what-if is exact rather than approximated.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kybernetes.api.label_selectors import from_label_selector_object
from kybernetes.scheduler.framework import (
    Code,
    CycleState,
    Framework,
    Plugin,
    Status,
    reason_summary,
    unresolvable,
)
from kybernetes.scheduler.nodeinfo import NodeInfo, PodInfo

NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"
MAX_INT32 = 2**31 - 1


class Candidate:
    __slots__ = ("node", "num_pdb_violations", "victims")

    def __init__(self, node: str, victims: list[PodInfo], num_pdb_violations: int) -> None:
        self.node = node
        self.victims = victims
        self.num_pdb_violations = num_pdb_violations

    def sort_key(self) -> tuple[int, int, int, int]:
        highest = max((v.priority for v in self.victims), default=-MAX_INT32 - 1)
        # Kubernetes adds MaxInt32+1 to each priority so that negative priorities still sum up
        # to "more victims = worse".
        total = sum(v.priority + MAX_INT32 + 1 for v in self.victims)
        return (self.num_pdb_violations, highest, total, len(self.victims))


def _more_important_first(p: PodInfo) -> tuple[int, str]:
    return (-p.priority, p.start_time)


class DefaultPreemption(Plugin):
    name = "DefaultPreemption"

    def post_filter(self, state: CycleState, pi: PodInfo,
                    statuses: Mapping[str, Status]) -> tuple[str, Status]:
        snap = self.handle.snapshot
        if pi.preemption_policy == "Never":
            return "", unresolvable("preemption: not eligible due to preemptionPolicy=Never.")
        nominated = ((pi.pod.get("status") or {}).get("nominatedNodeName")) or ""
        if nominated:
            ni = snap.nodes.get(nominated)
            st = statuses.get(nominated)
            if ni is not None and st is not None and st.code == Code.UNSCHEDULABLE and any(
                    p.terminating and p.priority < pi.priority for p in ni.pods.values()):
                return "", unresolvable("preemption: not eligible due to a terminating pod on the nominated node.")
        candidates, node_statuses = self.find_candidates(state, pi, statuses)
        if not candidates:
            msg = (f"preemption: 0/{len(snap.node_list)} nodes are available: "
                   f"{reason_summary(node_statuses.values())}.")
            return "", unresolvable(msg)
        best = min(candidates, key=Candidate.sort_key)
        self.prepare(pi, best)
        return best.node, Status(Code.SUCCESS)

    def find_candidates(self, state: CycleState, pi: PodInfo, statuses: Mapping[str, Status]
                        ) -> tuple[list[Candidate], dict[str, Status]]:
        node_statuses: dict[str, Status] = {}
        candidates: list[Candidate] = []
        for ni in self.handle.snapshot.node_list:
            st = statuses.get(ni.name)
            if st is None or st.code != Code.UNSCHEDULABLE:
                node_statuses[ni.name] = unresolvable(NOT_HELPFUL)
                continue
            victims, violations, fail = self.select_victims(state, pi, ni)
            if fail is not None:
                node_statuses[ni.name] = fail
            else:
                candidates.append(Candidate(ni.name, victims, violations))
        return candidates, node_statuses

    # --- the dry run -----------------------------------------------------------------------------

    def _fits(self, state: CycleState, pi: PodInfo, ni: NodeInfo, global_state: bool) -> Status | None:
        fw: Framework | None = self.handle.framework
        assert fw is not None
        if not global_state:
            return fw.run_filter(state, pi, ni)
        # Cluster-wide plugins must see the changed node: PreFilter again on a patched snapshot.
        original = self.handle.snapshot
        self.handle.snapshot = original.with_node(ni)
        try:
            fresh = CycleState()
            st = fw.run_pre_filter(fresh, pi)
            if st is not None:
                return st
            return fw.run_filter(fresh, pi, ni)
        finally:
            self.handle.snapshot = original

    def select_victims(self, state: CycleState, pi: PodInfo, ni: NodeInfo
                       ) -> tuple[list[PodInfo], int, Status | None]:
        potential = [p for p in ni.pods.values() if p.priority < pi.priority]
        if not potential:
            return [], 0, unresolvable(NO_VICTIMS)
        spec = pi.pod.get("spec") or {}
        global_state = bool(pi.required_affinity or pi.required_anti_affinity
                            or self.handle.snapshot.anti_affinity_pods
                            or spec.get("topologySpreadConstraints"))
        clone = ni.clone()
        for p in potential:
            clone.remove_pod(p)
        st = self._fits(state, pi, clone, global_state)
        if st is not None:
            return [], 0, st
        potential.sort(key=_more_important_first)
        violating, ok = self.split_by_pdb(potential)
        victims: list[PodInfo] = []
        violations = 0
        for group, is_violating in ((violating, True), (ok, False)):
            for p in group:
                clone.add_pod(p)
                if self._fits(state, pi, clone, global_state) is not None:
                    clone.remove_pod(p)
                    victims.append(p)
                    if is_violating:
                        violations += 1
        return victims, violations, None

    def split_by_pdb(self, pods: list[PodInfo]) -> tuple[list[PodInfo], list[PodInfo]]:
        """(pods whose eviction would violate a PodDisruptionBudget, the rest), order kept."""
        pdbs: list[tuple[str, Any, dict[str, Any], list[int]]] = []
        for pdb in self.handle.pdbs:
            meta = pdb.get("metadata") or {}
            sel = (pdb.get("spec") or {}).get("selector")
            if sel is None:
                continue
            status = pdb.get("status") or {}
            pdbs.append((meta.get("namespace") or "", from_label_selector_object(sel),
                         status.get("disruptedPods") or {}, [int(status.get("disruptionsAllowed") or 0)]))
        if not pdbs:
            return [], pods
        violating: list[PodInfo] = []
        ok: list[PodInfo] = []
        for p in pods:
            bad = False
            for ns, sel, disrupted, allowed in pdbs:
                if ns != p.namespace or not sel.matches(p.labels) or p.name in disrupted:
                    continue
                allowed[0] -= 1
                if allowed[0] < 0:
                    bad = True
            (violating if bad else ok).append(p)
        return violating, ok

    # --- acting ----------------------------------------------------------------------------------

    def prepare(self, pi: PodInfo, c: Candidate) -> None:
        h = self.handle
        if h.nominator is not None:
            for other in h.nominator.nominated_on(c.node):
                if other.priority < pi.priority and other.key != pi.key:
                    h.nominator.remove(other)
                    if h.status_patcher is not None:
                        h.status_patcher(other, {"status": {"nominatedNodeName": None}})
            h.nominator.add(pi, c.node)
        if h.status_patcher is not None:
            h.status_patcher(pi, {"status": {"nominatedNodeName": c.node}})
        for v in c.victims:
            if h.pod_deleter is not None:
                h.pod_deleter(v, f"Preempted by pod {pi.uid} on node {c.node}")
