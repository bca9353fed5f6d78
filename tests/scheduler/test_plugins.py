"""Per-plugin behaviour against Kubernetes' documented semantics: filter verdicts and scores."""

from __future__ import annotations

import pytest

from kybernetes.api.podutil import pod_requests
from kybernetes.scheduler.nodeinfo import PodInfo

from .util import Env, node, only, pod

GI = 1 << 30
MB = 1 << 20


# --- requests ------------------------------------------------------------------------------------

def test_pod_requests_init_containers_sidecars_and_overhead() -> None:
    p = pod("p", "500m", "1Gi")
    p["spec"]["initContainers"] = [
        {"name": "i1", "resources": {"requests": {"cpu": "2", "memory": "100Mi"}}},
        {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "100m"}}},
        {"name": "i2", "resources": {"requests": {"cpu": "1"}}},
    ]
    p["spec"]["overhead"] = {"cpu": "10m"}
    r = pod_requests(p)
    # max(containers 500m + sidecar 100m = 600m, init i1 2000m, sidecar + i2 = 1100m) + 10m overhead
    assert r["cpu"] == 2010
    assert r["memory"] == GI


def test_limits_default_requests_and_nonzero() -> None:
    p = pod("p")
    p["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "1"}}
    pi = PodInfo(p)
    assert pi.requests == {"cpu": 1000}
    assert (pi.nonzero_cpu, pi.nonzero_mem) == (1000, 200 * MB)


# --- NodeResourcesFit ----------------------------------------------------------------------------

@pytest.mark.parametrize(("req", "expected"), [
    (("1", "1Gi"), None),
    (("3", "1Gi"), "NodeResourcesFit: Insufficient cpu"),
    (("1", "4Gi"), "NodeResourcesFit: Insufficient memory"),
    (("3", "4Gi"), "NodeResourcesFit: Insufficient cpu, Insufficient memory"),
])
def test_fit_filter(req: tuple[str, str], expected: str | None) -> None:
    env = Env([node("n1", "4", "4Gi")], [pod("old", "2", "1Gi", node_name="n1")], only("NodeResourcesFit"))
    assert env.filter(pod("p", *req))["n1"] == expected


def test_fit_too_many_pods_and_extended() -> None:
    env = Env([node("n1", pods="1", extra={"example.com/gpu": "1"})], [pod("old", node_name="n1")],
              only("NodeResourcesFit"))
    assert env.filter(pod("p"))["n1"] == "NodeResourcesFit: Too many pods"
    env = Env([node("n1", extra={"example.com/gpu": "1"}), node("n2")], [], only("NodeResourcesFit"))
    p = pod("p")
    p["spec"]["containers"][0]["resources"] = {"requests": {"example.com/gpu": "1"}}
    assert env.filter(p) == {"n1": None, "n2": "NodeResourcesFit: Insufficient example.com/gpu"}
    ignored = Env([node("n2")], [], only("NodeResourcesFit", args={
        "NodeResourcesFit": {"ignoredResourceGroups": ["example.com"]}}))
    assert ignored.filter(p) == {"n2": None}


def test_least_and_most_allocated_scores() -> None:
    # Kubernetes' documented example: node 4000m / 10000 bytes, pod 3000m / 5000.
    nodes = [node("n1", "4", "10000")]
    p = pod("p", "3", "5000")
    assert Env(nodes, [], only("NodeResourcesFit")).scores(p) == {"n1": (25 + 50) // 2}
    most = only("NodeResourcesFit", args={"NodeResourcesFit": {"scoringStrategy": {"type": "MostAllocated"}}})
    assert Env(nodes, [], most).scores(p) == {"n1": (75 + 50) // 2}
    ratio = only("NodeResourcesFit", args={"NodeResourcesFit": {"scoringStrategy": {
        "type": "RequestedToCapacityRatio",
        "resources": [{"name": "cpu", "weight": 1}],
        "requestedToCapacityRatio": {"shape": [{"utilization": 0, "score": 0}, {"utilization": 100, "score": 10}]},
    }}})
    assert Env(nodes, [], ratio).scores(p) == {"n1": 75}


def test_least_allocated_counts_nonzero_defaults() -> None:
    env = Env([node("n1", "1", "1Gi")], [], only("NodeResourcesFit"))
    # 100m of 1000m -> 90; 200Mi of 1024Mi -> 80 (integer arithmetic) -> 85
    assert env.scores(pod("p")) == {"n1": (90 + (1024 - 200) * 100 // 1024) // 2}


def test_balanced_allocation() -> None:
    env = Env([node("n1", "4", "10000"), node("n2", "4", "10000")], [pod("x", "1", "5000", node_name="n2")],
              only("NodeResourcesBalancedAllocation"))
    s = env.scores(pod("p", "3", "5000"))
    assert s["n1"] == 87  # |0.75 - 0.5| / 2 = 0.125
    assert s["n2"] == 100  # cpu (1+3)/4 = 1.0, memory (5000+5000)/10000 = 1.0: perfectly balanced


def test_balanced_allocation_exact() -> None:
    env = Env([node("n2", "4", "10000")], [pod("x", "1", "5000", node_name="n2")],
              only("NodeResourcesBalancedAllocation"))
    assert env.scores(pod("p", "3", "5000")) == {"n2": 100}
    # a pod requesting nothing is skipped (score 0)
    assert env.scores(pod("q")) == {"n2": 0}


# --- simple filters ------------------------------------------------------------------------------

def test_node_unschedulable_and_name() -> None:
    env = Env([node("n1", unschedulable=True), node("n2")], [], only("NodeUnschedulable", "NodeName"))
    assert env.filter(pod("p")) == {"n1": "NodeUnschedulable: node(s) were unschedulable", "n2": None}
    tol = pod("p", tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists",
                                 "effect": "NoSchedule"}])
    assert env.fits(tol) == ["n1", "n2"]
    named = pod("p")
    named["spec"]["nodeName"] = "n2"
    assert env.fits(named) == ["n2"]


def test_node_ports() -> None:
    used = pod("old", node_name="n1", ports=[{"containerPort": 80, "hostPort": 8080}])
    env = Env([node("n1"), node("n2")], [used], only("NodePorts"))
    want = pod("p", ports=[{"containerPort": 80, "hostPort": 8080}])
    assert env.filter(want) == {
        "n1": "NodePorts: node(s) didn't have free ports for the requested pod ports", "n2": None}
    udp = pod("p", ports=[{"containerPort": 80, "hostPort": 8080, "protocol": "UDP"}])
    assert env.fits(udp) == ["n1", "n2"]


# --- TaintToleration -----------------------------------------------------------------------------

def test_taint_filter_and_message() -> None:
    env = Env([node("n1", taints=[{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]),
               node("n2", taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
               node("n3", taints=[{"key": "soft", "effect": "PreferNoSchedule"}])], [], only("TaintToleration"))
    assert env.filter(pod("p")) == {
        "n1": "TaintToleration: node(s) had untolerated taint {node.kubernetes.io/unreachable: }",
        "n2": "TaintToleration: node(s) had untolerated taint {dedicated: gpu}",
        "n3": None,
    }
    tol = pod("p", tolerations=[{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"},
                                {"operator": "Exists", "effect": "NoExecute"}])
    assert env.fits(tol) == ["n1", "n2", "n3"]


def test_taint_prefer_no_schedule_score() -> None:
    soft = {"effect": "PreferNoSchedule"}
    env = Env([node("a"), node("b", taints=[{"key": "x", **soft}]),
               node("c", taints=[{"key": "x", **soft}, {"key": "y", **soft}])], [], only("TaintToleration"))
    assert env.scores(pod("p")) == {"a": 100, "b": 50, "c": 0}
    tol = pod("p", tolerations=[{"key": "y", "operator": "Exists", "effect": "PreferNoSchedule"}])
    assert env.scores(tol) == {"a": 100, "b": 0, "c": 0}


# --- NodeAffinity --------------------------------------------------------------------------------

def _req(*terms: dict) -> dict:
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}}


@pytest.mark.parametrize(("affinity", "fits"), [
    (_req({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}), ["n1"]),
    (_req({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}), ["n2", "n3"]),
    (_req({"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}), ["n2"]),
    (_req({"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}), ["n1", "n3"]),
    (_req({"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["8"]}]}), ["n3"]),
    (_req({"matchExpressions": [{"key": "cores", "operator": "Lt", "values": ["8"]}]}), ["n1"]),
    (_req({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
          {"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}), ["n1", "n2"]),  # ORed terms
    (_req({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]},
                                {"key": "gpu", "operator": "Exists"}]}), ["n2"]),  # ANDed expressions
    (_req({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n3"]}]}), ["n3"]),
    (_req({}), []),  # an empty term matches nothing
])
def test_required_node_affinity(affinity: dict, fits: list[str]) -> None:
    nodes = [node("n1", labels={"zone": "a", "cores": "4"}), node("n2", labels={"zone": "b", "gpu": "1"}),
             node("n3", labels={"zone": "c", "cores": "16"})]
    assert Env(nodes, [], only("NodeAffinity")).fits(pod("p", affinity=affinity)) == fits


def test_node_selector_message_and_preferred_score() -> None:
    nodes = [node("n1", labels={"disk": "ssd", "zone": "a"}), node("n2", labels={"disk": "hdd", "zone": "a"}),
             node("n3", labels={"zone": "b"})]
    env = Env(nodes, [], only("NodeAffinity"))
    assert env.filter(pod("p", nodeSelector={"disk": "ssd"}))["n2"] == \
        "NodeAffinity: node(s) didn't match Pod's node affinity/selector"
    pref = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 80, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}},
        {"weight": 20, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}},
    ]}}
    assert env.scores(pod("p", affinity=pref)) == {"n1": 100, "n2": 20, "n3": 0}


# --- InterPodAffinity ----------------------------------------------------------------------------

ZONES = [node("a1", labels={"zone": "a"}), node("a2", labels={"zone": "a"}), node("b1", labels={"zone": "b"})]


def _term(labels: dict, key: str) -> dict:
    return {"labelSelector": {"matchLabels": labels}, "topologyKey": key}


def test_required_anti_affinity_hostname() -> None:
    env = Env(ZONES, [pod("web-0", labels={"app": "web"}, node_name="a1")], only("InterPodAffinity"))
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        _term({"app": "web"}, "kubernetes.io/hostname")]}}
    assert env.filter(pod("web-1", labels={"app": "web"}, affinity=anti)) == {
        "a1": "InterPodAffinity: node(s) didn't match pod anti-affinity rules", "a2": None, "b1": None}
    zone_anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [_term({"app": "web"}, "zone")]}}
    assert env.fits(pod("web-1", labels={"app": "web"}, affinity=zone_anti)) == ["b1"]


def test_required_affinity_zone_and_first_pod() -> None:
    aff = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [_term({"app": "db"}, "zone")]}}
    env = Env(ZONES, [pod("db", labels={"app": "db"}, node_name="b1")], only("InterPodAffinity"))
    res = env.filter(pod("p", affinity=aff))
    assert res == {"a1": "InterPodAffinity: node(s) didn't match pod affinity rules",
                   "a2": "InterPodAffinity: node(s) didn't match pod affinity rules", "b1": None}
    # No matching pod anywhere: a pod matching its own affinity may go anywhere (first of its group).
    empty = Env(ZONES, [], only("InterPodAffinity"))
    assert empty.fits(pod("db-0", labels={"app": "db"}, affinity=aff)) == ["a1", "a2", "b1"]
    assert empty.fits(pod("other", affinity=aff)) == []


def test_existing_pods_anti_affinity_is_symmetric() -> None:
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [_term({"team": "x"}, "zone")]}}
    env = Env(ZONES, [pod("loner", node_name="a1", affinity=anti)], only("InterPodAffinity"))
    assert env.filter(pod("p", labels={"team": "x"})) == {
        "a1": "InterPodAffinity: node(s) didn't satisfy existing pods anti-affinity rules",
        "a2": "InterPodAffinity: node(s) didn't satisfy existing pods anti-affinity rules", "b1": None}
    assert env.fits(pod("p", labels={"team": "y"})) == ["a1", "a2", "b1"]


def test_namespace_selector() -> None:
    aff = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {**_term({"app": "db"}, "zone"), "namespaceSelector": {"matchLabels": {"env": "prod"}}}]}}
    pods = [pod("db", ns="prod", labels={"app": "db"}, node_name="a1"),
            pod("db", ns="dev", labels={"app": "db"}, node_name="b1")]
    env = Env(ZONES, pods, only("InterPodAffinity"), namespaces={"prod": {"env": "prod"}, "dev": {}})
    assert env.fits(pod("p", affinity=aff)) == ["a1", "a2"]


def test_preferred_affinity_score() -> None:
    pref = {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 10, "podAffinityTerm": _term({"app": "cache"}, "zone")}]},
        "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 5, "podAffinityTerm": _term({"app": "web"}, "kubernetes.io/hostname")}]}}
    pods = [pod("cache", labels={"app": "cache"}, node_name="a1"), pod("web", labels={"app": "web"}, node_name="a2")]
    env = Env(ZONES, pods, only("InterPodAffinity"))
    # raw: a1 = 10, a2 = 10 - 5 = 5, b1 = 0 -> min-max normalised
    assert env.scores(pod("p", affinity=pref)) == {"a1": 100, "a2": 50, "b1": 0}


# --- PodTopologySpread ---------------------------------------------------------------------------

def _spread(max_skew: int = 1, key: str = "zone", when: str = "DoNotSchedule", **extra: object) -> list[dict]:
    return [{"maxSkew": max_skew, "topologyKey": key, "whenUnsatisfiable": when,
             "labelSelector": {"matchLabels": {"app": "web"}}, **extra}]


def test_spread_filter_max_skew() -> None:
    nodes = ZONES + [node("nolabel")]
    pods = [pod("w0", labels={"app": "web"}, node_name="a1"), pod("w1", labels={"app": "web"}, node_name="a2")]
    env = Env(nodes, pods, only("PodTopologySpread"))
    res = env.filter(pod("w2", labels={"app": "web"}, topologySpreadConstraints=_spread()))
    assert res == {
        "a1": "PodTopologySpread: node(s) didn't match pod topology spread constraints",
        "a2": "PodTopologySpread: node(s) didn't match pod topology spread constraints",
        "b1": None,
        "nolabel": "PodTopologySpread: node(s) didn't match pod topology spread constraints (missing required label)",
    }
    assert env.fits(pod("w2", labels={"app": "web"}, topologySpreadConstraints=_spread(3))) == ["a1", "a2", "b1"]


def test_spread_min_domains_and_node_affinity_policy() -> None:
    pods = [pod("w0", labels={"app": "web"}, node_name="b1")]
    env = Env(ZONES, pods, only("PodTopologySpread"))
    # minDomains 3 > 2 zones: the global minimum is 0, so zone b (1 pod) + self = 2 > maxSkew 1.
    assert env.fits(pod("w", labels={"app": "web"}, topologySpreadConstraints=_spread(minDomains=3))) == ["a1", "a2"]
    # Honor nodeAffinity: only zone b counts as a domain, so its minimum is 1 -> b1 fits again.
    sel = pod("w", labels={"app": "web"}, nodeSelector={"zone": "b"}, topologySpreadConstraints=_spread())
    assert env.fits(sel) == ["a1", "a2", "b1"]


def test_spread_score_schedule_anyway() -> None:
    pods = [pod(f"w{i}", labels={"app": "web"}, node_name="a1") for i in range(2)]
    env = Env(ZONES, pods, only("PodTopologySpread"))
    s = env.scores(pod("w", labels={"app": "web"}, topologySpreadConstraints=_spread(when="ScheduleAnyway")))
    assert s["b1"] == 100 and s["a1"] < 100 and s["a1"] == s["a2"]


# --- ImageLocality -------------------------------------------------------------------------------

def test_image_locality() -> None:
    big = {"names": ["docker.io/library/app:1", "app:1"], "sizeBytes": 500 * MB}
    env = Env([node("n1", images=[big]), node("n2")], [], only("ImageLocality"))
    s = env.scores(pod("p", image="app:1"))
    # 500MB * (1 node of 2) = 250MB; (250 - 23) * 100 / (1000 - 23) = 23
    assert s == {"n1": int(100 * (250 * MB - 23 * MB) / (1000 * MB - 23 * MB)), "n2": 0}


# --- indexes and memos that outlive a cycle ----------------------------------------------------

def test_spread_counts_follow_pods_that_come_and_go() -> None:
    """Per-node counts are remembered by generation: a pod added or removed between cycles shows."""
    web = [pod(n, labels={"app": "web"}, node_name="b1") for n in ("w0", "w0b")]
    env = Env(ZONES, web, only("PodTopologySpread"))
    incoming = pod("w", labels={"app": "web"}, topologySpreadConstraints=_spread())
    assert env.fits(incoming) == ["a1", "a2"]  # a: 0, b: 2
    w1 = pod("w1", labels={"app": "web"}, node_name="a1")
    env.cache.add_pod(w1)
    assert env.fits(incoming) == ["a1", "a2"]  # a: 1, b: 2
    env.cache.remove_pod(web[0])
    assert env.fits(incoming) == ["a1", "a2", "b1"]  # a: 1, b: 1
    env.cache.remove_pod(web[1])
    assert env.fits(incoming) == ["b1"]  # a: 1, b: 0
    env.cache.remove_pod(w1)
    assert env.fits(incoming) == ["a1", "a2", "b1"]


def test_anti_affinity_index_follows_pods_and_nodes() -> None:
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        _term({"app": "web"}, "kubernetes.io/hostname")]}}
    env = Env(ZONES, [], only("InterPodAffinity"))
    incoming = pod("w", labels={"app": "web"}, affinity=anti)
    assert env.fits(incoming) == ["a1", "a2", "b1"]
    placed = [pod(f"w{i}", labels={"app": "web"}, affinity=anti, node_name=n) for i, n in enumerate(("a1", "b1"))]
    for p in placed:
        env.cache.add_pod(p)
    snap = env.cache.snapshot
    assert sorted(n.name for n in snap.anti_affinity_nodes()) == ["a1", "b1"]
    assert env.fits(incoming) == ["a2"]
    env.cache.remove_pod(placed[0])
    assert sorted(n.name for n in snap.anti_affinity_nodes()) == ["b1"]
    assert env.fits(incoming) == ["a1", "a2"]
    env.cache.remove_node(node("b1", labels={"zone": "b"}))
    assert snap.anti_affinity_nodes() == []  # b1's pod waits for its node, outside the list
    env.cache.add_node(node("b1", labels={"zone": "b"}))
    assert [n.name for n in snap.anti_affinity_nodes()] == ["b1"]
    assert env.fits(incoming) == ["a1", "a2"]
