"""Classifying requests against Kubernetes 1.32's default FlowSchemas."""

from __future__ import annotations

import copy

import pytest

from kybernetes.apiserver.flowcontrol import bootstrap
from kybernetes.apiserver.flowcontrol.classifier import Classifier

AUTH = "system:authenticated"
NODE = ("system:node:n1", ("system:nodes", AUTH))
ADMIN = ("kubernetes-admin", ("system:masters", AUTH))
SCHEDULER = ("system:kube-scheduler", (AUTH,))
KCM = ("system:kube-controller-manager", (AUTH,))
SA = ("system:serviceaccount:default:app", ("system:serviceaccounts", "system:serviceaccounts:default", AUTH))
KS_SA = ("system:serviceaccount:kube-system:ctrl", ("system:serviceaccounts", "system:serviceaccounts:kube-system",
                                                   AUTH))
ALICE = ("alice", (AUTH,))
ANON = ("system:anonymous", ("system:unauthenticated",))


def defaults() -> list[dict]:
    return [copy.deepcopy(o) for o in (*bootstrap.MANDATORY_FLOW_SCHEMAS, *bootstrap.SUGGESTED_FLOW_SCHEMAS)]


def levels() -> dict[str, tuple[str, str]]:
    return {o["metadata"]["name"]: ("uid-" + o["metadata"]["name"], o["metadata"]["name"])
            for o in (*bootstrap.MANDATORY_PRIORITY_LEVELS, *bootstrap.SUGGESTED_PRIORITY_LEVELS)}


# (who, verb, group, resource, namespace, path) -> (flow schema, priority level)
CASES = [
    (NODE, "update", "coordination.k8s.io", "leases", "kube-node-lease", "", "system-node-high", "node-high"),
    (NODE, "patch", "", "nodes/status", "", "", "system-node-high", "node-high"),
    (NODE, "list", "", "pods", "", "", "system-nodes", "system"),
    (NODE, "get", "", "", "", "/api", "system-nodes", "system"),
    (SCHEDULER, "update", "coordination.k8s.io", "leases", "kube-system", "", "system-leader-election",
     "leader-election"),
    (SCHEDULER, "create", "", "pods/binding", "default", "", "kube-scheduler", "workload-high"),
    (KCM, "update", "", "endpoints", "default", "", "endpoint-controller", "workload-high"),
    (KCM, "list", "apps", "deployments", "", "", "kube-controller-manager", "workload-high"),
    (ADMIN, "delete", "", "pods", "default", "", "exempt", "exempt"),
    (ADMIN, "get", "", "", "", "/openapi/v3", "exempt", "exempt"),
    (SA, "list", "", "pods", "default", "", "service-accounts", "workload-low"),
    (KS_SA, "get", "", "configmaps", "default", "", "workload-leader-election", "leader-election"),
    (KS_SA, "list", "", "pods", "", "", "kube-system-service-accounts", "workload-high"),
    (ALICE, "get", "", "pods", "default", "", "global-default", "global-default"),
    (ALICE, "get", "", "", "", "/healthz", "probes", "exempt"),
    (ALICE, "post", "", "", "", "/healthz", "global-default", "global-default"),
    (ANON, "get", "", "", "", "/livez", "probes", "exempt"),
    (ANON, "get", "", "", "", "/version", "global-default", "global-default"),
]


@pytest.mark.parametrize("who,verb,group,resource,ns,path,fs,pl", CASES)
def test_default_classification(who: tuple[str, tuple[str, ...]], verb: str, group: str, resource: str, ns: str,
                                path: str, fs: str, pl: str) -> None:
    c = Classifier(defaults(), levels())
    m = c.classify(who[0], who[1], verb, group, resource, ns, path, not path)
    assert m is not None
    assert (m.flow_schema, m.priority_level) == (fs, pl)
    assert f"X-Kubernetes-PF-PriorityLevel-UID: uid-{pl}\r\n".encode() in m.headers
    assert m.level == pl
    # The second time comes from the cache, with the same answer.
    assert c.classify(who[0], who[1], verb, group, resource, ns, path, not path) is m


def test_without_global_default_everyone_else_is_catch_all() -> None:
    fss = [fs for fs in defaults() if fs["metadata"]["name"] != "global-default"]
    m = Classifier(fss, levels()).classify("alice", (AUTH,), "get", "", "pods", "default", "", True)
    assert m is not None and m.flow_schema == "catch-all" and m.flow("alice", "default") == "alice"


def test_dangling_flow_schema_is_skipped() -> None:
    fss = defaults()
    fss.append({"metadata": {"name": "mine"}, "spec": {
        "priorityLevelConfiguration": {"name": "missing"}, "matchingPrecedence": 50,
        "rules": [{"subjects": [{"kind": "User", "user": {"name": "alice"}}],
                   "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"],
                                      "namespaces": ["*"], "clusterScope": True}]}]}})
    m = Classifier(fss, levels()).classify("alice", (AUTH,), "get", "", "pods", "default", "", True)
    assert m is not None and m.flow_schema == "global-default"


def test_equal_precedence_goes_by_name_and_namespaced_rule_needs_namespace() -> None:
    def fs(name: str, cluster_scope: bool) -> dict:
        return {"metadata": {"name": name}, "spec": {
            "priorityLevelConfiguration": {"name": "workload-low"}, "matchingPrecedence": 10,
            "distinguisherMethod": {"type": "ByNamespace"},
            "rules": [{"subjects": [{"kind": "Group", "group": {"name": "*"}}],
                       "resourceRules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"],
                                          "namespaces": ["ns1"], "clusterScope": cluster_scope}]}]}}

    c = Classifier([*defaults(), fs("b", True), fs("a", False)], levels())
    m = c.classify("alice", (AUTH,), "get", "", "pods", "ns1", "", True)
    assert m is not None and m.flow_schema == "a" and m.flow("alice", "ns1") == "ns1"
    m = c.classify("alice", (AUTH,), "get", "", "pods", "", "", True)
    assert m is not None and m.flow_schema == "b"
    m = c.classify("alice", (AUTH,), "get", "", "pods", "ns2", "", True)
    assert m is not None and m.flow_schema == "global-default"


def test_non_resource_prefix_glob() -> None:
    fs = {"metadata": {"name": "metrics"}, "spec": {
        "priorityLevelConfiguration": {"name": "system"}, "matchingPrecedence": 5,
        "rules": [{"subjects": [{"kind": "User", "user": {"name": "alice"}}],
                   "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["/metrics/*"]}]}]}}
    c = Classifier([*defaults(), fs], levels())
    assert c.classify("alice", (AUTH,), "get", "", "", "", "/metrics/cadvisor", False).flow_schema == "metrics"  # type: ignore[union-attr]
    assert c.classify("alice", (AUTH,), "get", "", "", "", "/metricsx", False).flow_schema == "global-default"  # type: ignore[union-attr]
