"""Counts kept between cycles (aggregate.NodeSums) give the decisions of a full walk per cycle,
and the label checks PreFilter states let the node loop decide exactly as the Filters would.

Each test runs the same steps twice: on the cache's snapshot (change log: the incremental path)
and on a copy without a change log (the plugins walk every node, as before the change), and
compares PreFilter's counts, every node's Filter result and the nodes chosen.
"""

from __future__ import annotations

import random
from typing import Any

from kybernetes.scheduler.config import SchedulerConfig
from kybernetes.scheduler.framework import CycleState
from kybernetes.scheduler.nodeinfo import PodInfo
from kybernetes.scheduler.scheduler import FitError, Scheduler

from .util import node, pod

ZONE = "topology.kubernetes.io/zone"


def spread_pod(name: str, group: str, skew: int = 1, key: str = ZONE, ns: str = "default") -> dict[str, Any]:
    return pod(name, "100m", "128Mi", ns=ns, labels={"g": group}, topologySpreadConstraints=[
        {"maxSkew": skew, "topologyKey": key, "whenUnsatisfiable": "DoNotSchedule",
         "labelSelector": {"matchLabels": {"g": group}}}])


def anti_pod(name: str, group: str, key: str = "kubernetes.io/hostname") -> dict[str, Any]:
    return pod(name, "100m", "128Mi", labels={"g": group}, affinity={"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"g": group}}, "topologyKey": key}]}})


def cluster(n: int = 12) -> Scheduler:
    s = Scheduler(None, SchedulerConfig(), rng=random.Random(7))
    for i in range(n):
        s.on_node_add(node(f"n{i}", "2", "4Gi", labels={ZONE: f"z{i % 3}"} if i != 5 else {}))
    return s


def filter_view(s: Scheduler, p: dict[str, Any], *, walk: bool) -> tuple[Any, dict[str, str | None]]:
    """(PodTopologySpread's and InterPodAffinity's PreFilter data, node -> Filter verdict)."""
    fw = s.frameworks["default-scheduler"]
    real = fw.handle.snapshot
    if walk:
        fw.handle.snapshot = real.with_node(real.node_list[0])  # an equal copy without a change log
    try:
        pi, state = PodInfo(p), CycleState()
        st = fw.run_pre_filter(state, pi)
        assert st is None, st
        spread = state.data.get("PodTopologySpread")
        aff = state.data.get("InterPodAffinity")
        data = (
            None if spread is None else ({k: v for k, v in spread.counts.items() if v}, spread.mins),
            None if aff is None else tuple({(k, v): n for k, d in m.items() for v, n in d.items() if n}
                                           for m in (aff.existing_anti, aff.affinity, aff.anti)),
        )
        verdicts = {}
        for ni in fw.handle.snapshot.node_list:
            r = fw.run_filter(state, pi, ni)
            verdicts[ni.name] = None if r is None else f"{r.plugin}: {r.message}"
        return data, verdicts
    finally:
        fw.handle.snapshot = real


def fit_view(s: Scheduler, p: dict[str, Any], *, inline: bool) -> tuple[list[str], dict[str, Any]]:
    """find_nodes_that_fit's feasible nodes and statuses; ``inline``: with the label checks of
    PreFilter deciding passing nodes in the node loop (a cycle sampled for metrics calls every
    Filter instead)."""
    fw = s.frameworks["default-scheduler"]
    s.next_start = 0
    state = CycleState(record_plugin_metrics=not inline)
    try:
        feasible = [ni.name for ni in s.find_nodes_that_fit(fw, state, PodInfo(p))]
        statuses: dict[str, Any] = {}
    except FitError as e:
        feasible, statuses = [], {n: (st.plugin, st.code, st.reasons) for n, st in e.statuses.items()}
    if inline and not p["spec"].get("affinity", {}).get("podAffinity"):
        assert set(state.label_checks) >= {"PodTopologySpread", "InterPodAffinity"} & state.data.keys()
    return feasible, statuses


def check(s: Scheduler, p: dict[str, Any]) -> None:
    assert filter_view(s, p, walk=False) == filter_view(s, p, walk=True)
    assert fit_view(s, p, inline=True) == fit_view(s, p, inline=False)


def churn(s: Scheduler, make: Any) -> list[str]:
    """Schedule, delete, relabel, remove and re-add nodes, checking equality at every step."""
    fw = s.frameworks["default-scheduler"]
    chosen = []
    for i in range(14):
        p = make(f"p{i}", "a" if i % 4 else "b")
        check(s, p)
        pi = PodInfo(p)
        ni = s.schedule_pod(fw, CycleState(), pi)
        s.cache.assume(pi, ni.name)
        chosen.append(ni.name)
        if i == 4:
            s.cache.forget(s.cache.pods["default/p1"])
        if i == 6:  # a node moves to another zone
            n3 = node("n3", "2", "4Gi", labels={ZONE: "z2"})
            s.on_node_update(n3, n3)
        if i == 8:
            s.on_node_delete(node(chosen[0]))
        if i == 10:
            s.on_node_add(node("n99", "2", "4Gi", labels={ZONE: "z9"}))
        if i == 11:  # the informer confirms a bound pod (replaces the assumed one)
            bound = make("p2", "a")
            bound["spec"]["nodeName"] = s.cache.pods["default/p2"].node_name
            s.on_pod_add(bound)
        check(s, make("probe", "a"))
    return chosen


def test_spread_counts_follow_changes() -> None:
    churn(cluster(), spread_pod)


def test_spread_on_hostname_and_other_namespace() -> None:
    s = cluster()
    churn(s, lambda n, g: spread_pod(n, g, skew=2, key="kubernetes.io/hostname"))
    check(s, spread_pod("x", "a", ns="other"))


def test_anti_affinity_counts_follow_changes() -> None:
    churn(cluster(), anti_pod)


def test_same_nodes_chosen_as_a_full_walk() -> None:
    for make in (spread_pod, anti_pod, affine_pod):
        incremental, walking = cluster(), cluster()
        walking.cache.snapshot.log = None  # every PreFilter walks the nodes, as before
        walking.cache.snapshot.scoring_affinity_pods += 1_000  # and InterPodAffinity's PreScore
        assert churn(incremental, make) == churn(walking, make)


def affine_pod(name: str, group: str) -> dict[str, Any]:
    return pod(name, "100m", "128Mi", labels={"g": group}, affinity={"podAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"g": group}}, "topologyKey": ZONE}]}})


def test_affinity_counts_follow_changes() -> None:
    churn(cluster(), affine_pod)


def test_namespace_selector_follows_namespace_labels() -> None:
    """Namespace labels change without a node changing: such counts are walked, never kept."""
    s = cluster()
    s.on_namespace({"metadata": {"name": "other", "labels": {"team": "x"}}})
    term = {"labelSelector": {"matchLabels": {"g": "a"}}, "topologyKey": "kubernetes.io/hostname",
            "namespaceSelector": {"matchLabels": {"team": "x"}}}
    s.on_pod_add(pod("guard", "100m", node_name="n0", labels={"g": "z"},
                     affinity={"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}))
    incoming = pod("in", "100m", ns="other", labels={"g": "a"})
    verdicts = filter_view(s, incoming, walk=False)[1]
    assert verdicts["n0"] == "InterPodAffinity: node(s) didn't satisfy existing pods anti-affinity rules"
    check(s, incoming)
    s.on_namespace({"metadata": {"name": "other", "labels": {"team": "y"}}})
    assert filter_view(s, incoming, walk=False)[1]["n0"] is None
    check(s, incoming)
    own = pod("own", "100m", ns="other", labels={"g": "a"}, affinity={"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [{**term, "labelSelector": {"matchLabels": {"g": "z"}},
                                                            "namespaceSelector": {}}]}})
    assert filter_view(s, own, walk=False)[1]["n0"] == "InterPodAffinity: node(s) didn't match pod anti-affinity rules"
    check(s, own)


def test_no_node_fits_gives_the_filters_statuses() -> None:
    """Every node rejected (by a full node, a missing label or a matching pod): the statuses of
    the nodes the label checks turned away are the Filters' own."""
    for make in (anti_pod, lambda n, g: spread_pod(n, g, key="kubernetes.io/hostname")):
        s = cluster(4)
        s.on_node_add(node("full", "0", "4Gi", labels={ZONE: "z0"}))
        fw = s.frameworks["default-scheduler"]
        for i in range(4):
            p = make(f"p{i}", "a")
            check(s, p)
            pi = PodInfo(p)
            s.cache.assume(pi, s.schedule_pod(fw, CycleState(), pi).name)
        assert fit_view(s, make("last", "a"), inline=True)[0] == []
        check(s, make("last", "a"))


def test_remembered_scores_follow_changes() -> None:
    """NodeResourcesFit's and BalancedAllocation's batch scores (remembered by node generation)
    equal their per-node Score through pods added and removed, nodes resized, and pod shapes."""
    s = cluster()
    fw = s.frameworks["default-scheduler"]
    plugins = [fw.plugins["NodeResourcesFit"], fw.plugins["NodeResourcesBalancedAllocation"]]
    for i in range(12):
        p = pod(f"p{i}", ["100m", "700m"][i % 2], ["128Mi", "1Gi", "3Gi"][i % 3])
        pi, state, nodes = PodInfo(p), CycleState(), s.cache.snapshot.node_list
        for plugin in plugins:
            assert plugin.score_all is not None
            for _ in range(2):  # computed, then remembered
                assert plugin.score_all(state, pi, nodes) == [plugin.score(state, pi, ni) for ni in nodes]
        s.cache.assume(pi, s.schedule_pod(fw, CycleState(), pi).name)
        if i == 5:
            s.cache.forget(s.cache.pods["default/p4"])
        if i == 7:
            n1 = node("n1", "3", "6Gi", labels={ZONE: "z1"})
            s.on_node_update(n1, n1)


def test_affinity_pre_score_skips_only_when_no_pod_has_scoring_terms() -> None:
    s = cluster()
    fw = s.frameworks["default-scheduler"]
    ipa = fw.plugins["InterPodAffinity"]
    for i in range(3):
        s.on_pod_add(anti_pod(f"a{i}", "a") | {"spec": {**anti_pod(f"a{i}", "a")["spec"], "nodeName": f"n{i}"}})
    incoming = PodInfo(pod("in", "100m", labels={"g": "a"}))
    nodes = s.cache.snapshot.node_list
    assert ipa.pre_score(CycleState(), incoming, nodes) is not None  # SKIP: required anti-affinity scores nothing
    pref = pod("pref", "100m", node_name="n4", labels={"g": "p"}, affinity={"podAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 5, "podAffinityTerm": {
            "labelSelector": {"matchLabels": {"g": "a"}}, "topologyKey": ZONE}}]}})
    s.on_pod_add(pref)
    state = CycleState()
    assert ipa.pre_score(state, incoming, nodes) is None
    assert state.data["InterPodAffinity/score"] == {(ZONE, "z1"): 5}
    s.on_pod_delete(pref)
    assert s.cache.snapshot.scoring_affinity_pods == 0
    assert ipa.pre_score(CycleState(), incoming, nodes) is not None


def test_inline_filter_follows_nodes_filling_up() -> None:
    """The inline verdicts remembered by node generation change as pods take a node's room,
    a node is resized or tainted, and differ by the pod's requests."""
    s = Scheduler(None, SchedulerConfig(), rng=random.Random(3))
    for i in range(3):
        s.on_node_add(node(f"n{i}", "500m", "1Gi"))
    fw = s.frameworks["default-scheduler"]
    small, big = (lambda n: pod(n, "100m", "128Mi")), (lambda n: pod(n, "300m", "128Mi"))
    for i in range(30):
        for make in (small, big):
            check(s, make(f"probe{i}"))
        if i == 6:
            n0 = node("n0", "900m", "1Gi")
            s.on_node_update(n0, n0)
        if i == 9:
            n1 = node("n1", "500m", "1Gi", taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}])
            s.on_node_update(n1, n1)
        pi = PodInfo(small(f"p{i}"))
        try:
            s.cache.assume(pi, s.schedule_pod(fw, CycleState(), pi).name)
        except FitError:
            break
    else:
        raise AssertionError("the nodes never filled up")
