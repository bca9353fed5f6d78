"""explain_pod: per-node verdicts, scores, and the smallest change that would make a pod fit."""

from __future__ import annotations

from kybernetes.scheduler.explain import explain_pod

from .util import node, pod


def test_explain_fitting_pod_scores() -> None:
    exp = explain_pod(pod("p", "100m"), [node("a"), node("b", "1")], [pod("x", "500m", node_name="b")])
    assert exp.chosen == "a"
    verdicts = {v.node: v for v in exp.nodes}
    assert verdicts["a"].fits and verdicts["a"].total > verdicts["b"].total
    assert set(verdicts["a"].scores) >= {"NodeResourcesFit", "TaintToleration"}
    assert "fits 2/2" in exp.render()


def test_explain_resource_and_taint_suggestions() -> None:
    nodes = [node("n1", "1"), node("n2", "2"), node("t", "8", taints=[{"key": "gpu", "value": "x", "effect": "NoSchedule"}])]
    exp = explain_pod(pod("p", "2500m"), nodes, [pod("x", "250m", node_name="n2")])
    assert exp.chosen is None
    # "count reason" strings sorted as text, as Kubernetes' FitError does
    assert exp.message == ("0/3 nodes are available: 1 node(s) had untolerated taint {gpu: x}, "
                           "2 Insufficient cpu.")
    assert "lower cpu request by 750m to fit n2" in exp.suggestions
    assert "tolerate taint(s) gpu=x:NoSchedule to fit t" in exp.suggestions
    d = exp.to_dict()
    assert {n["node"]: n["plugin"] for n in d["nodes"]} == {
        "n1": "NodeResourcesFit", "n2": "NodeResourcesFit", "t": "TaintToleration"}


def test_explain_relaxing_constraints() -> None:
    nodes = [node("a1", labels={"zone": "a"}), node("b1", labels={"zone": "b"})]
    pods = [pod("w0", labels={"app": "w"}, node_name="a1"), pod("w1", labels={"app": "w"}, node_name="b1")]
    spread = [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
               "labelSelector": {"matchLabels": {"app": "w"}}}]
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "w"}}, "topologyKey": "zone"}]}}
    p = pod("w2", labels={"app": "w"}, affinity=anti, topologySpreadConstraints=spread, nodeSelector={"zone": "a"})
    exp = explain_pod(p, nodes, pods)
    assert exp.chosen is None
    text = "\n".join(exp.suggestions)
    assert "removing required podAntiAffinity term 0 (topologyKey zone) would let the pod fit 1 node(s), e.g. a1" in text
    assert "removing the nodeSelector/required node affinity alone would not help" in text
