"""Strategies of coordination, discovery, scheduling, policy, networking, rbac, autoscaling."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kybernetes.apiserver.registry import builtin_strategies
from kybernetes.apiserver.registry.strategy import Strategy

STRATEGIES = builtin_strategies()


def strat(group: str, kind: str) -> Strategy:
    return STRATEGIES[(group, kind)]


def create(strategy: Strategy, obj: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    obj = copy.deepcopy(obj)
    obj.setdefault("metadata", {}).setdefault("name", "x")
    strategy.prepare_for_create(obj)
    strategy.default(obj)
    return obj, [str(e) for e in strategy.validate(obj)]


def update(strategy: Strategy, old: dict[str, Any], new: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    new = copy.deepcopy(new)
    strategy.prepare_for_update(new, old)
    strategy.default(new)
    return new, [str(e) for e in strategy.validate_update(new, old)]


def test_generation_and_create_on_update_flags() -> None:
    no_generation = [("coordination.k8s.io", "Lease"),
                     ("scheduling.k8s.io", "PriorityClass"),
                     ("rbac.authorization.k8s.io", "Role"), ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
                     ("autoscaling", "HorizontalPodAutoscaler")]
    for key in no_generation:
        assert not STRATEGIES[key].tracks_generation, key
    for key in [("policy", "PodDisruptionBudget"), ("networking.k8s.io", "Ingress"),
                ("networking.k8s.io", "NetworkPolicy"), ("networking.k8s.io", "IngressClass")]:
        assert STRATEGIES[key].tracks_generation, key
    assert strat("coordination.k8s.io", "Lease").allow_create_on_update


# --- Lease, EndpointSlice ---------------------------------------------------------------


def test_lease_duration_must_be_positive() -> None:
    lease = strat("coordination.k8s.io", "Lease")
    assert create(lease, {"spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}})[1] == []
    assert create(lease, {"spec": {"leaseDurationSeconds": 0}})[1] == [
        "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"]


def endpoint_slice(**kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.5"]}],
                            "ports": [{"port": 80}]}
    body.update(kw)
    return body


def test_endpointslice_defaults_and_rules() -> None:
    eps = strat("discovery.k8s.io", "EndpointSlice")
    obj, errs = create(eps, endpoint_slice())
    assert errs == []
    assert obj["ports"] == [{"port": 80, "name": "", "protocol": "TCP"}]
    _, errs = create(eps, endpoint_slice(addressType="IPv5", endpoints=[{"addresses": []}]))
    assert errs == ['addressType: Unsupported value: "IPv5": supported values: "FQDN", "IPv4", "IPv6"',
                    "endpoints[0].addresses: Required value: must contain at least 1 address"]
    _, errs = create(eps, endpoint_slice(endpoints=[{"addresses": ["fe80::1", "127.0.0.1"]}]))
    assert errs == ['endpoints[0].addresses[0]: Invalid value: "fe80::1": must be a valid IPv4 address',
                    'endpoints[0].addresses[1]: Invalid value: "127.0.0.1": may not be in the loopback range '
                    "(127.0.0.0/8, ::1/128)"]


def test_endpointslice_address_type_immutable_and_label_generation() -> None:
    eps = strat("discovery.k8s.io", "EndpointSlice")
    old, _ = create(eps, endpoint_slice())
    old["metadata"]["generation"] = 2
    new = copy.deepcopy(old)
    new["addressType"] = "IPv6"
    new["endpoints"] = [{"addresses": ["2001:db8::1"]}]
    assert update(eps, old, new)[1] == ['addressType: Invalid value: "IPv6": field is immutable']
    relabelled = copy.deepcopy(old)
    relabelled["metadata"]["labels"] = {"kubernetes.io/service-name": "web"}
    relabelled, errs = update(eps, old, relabelled)
    assert errs == [] and eps.generation_changed(relabelled, old)


# --- PriorityClass, PodDisruptionBudget --------------------------------------------------------


def test_priority_class() -> None:
    pc = strat("scheduling.k8s.io", "PriorityClass")
    obj, errs = create(pc, {"metadata": {"name": "high"}, "value": 1000})
    assert errs == [] and obj["preemptionPolicy"] == "PreemptLowerPriority"
    assert create(pc, {"metadata": {"name": "huge"}, "value": 1_000_000_001})[1] == [
        "value: Forbidden: maximum allowed value of a user defined priority is 1000000000"]
    assert create(pc, {"metadata": {"name": "system-foo"}, "value": 5})[1] == [
        "metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. "
        "error: system-foo is not a known system priority class"]
    assert create(pc, {"metadata": {"name": "system-node-critical"}, "value": 2000001000})[1] == []
    new = copy.deepcopy(obj)
    new["value"] = 2000
    assert update(pc, obj, new)[1] == ["value: Forbidden: may not be changed in an update."]


def test_pdb() -> None:
    pdb = strat("policy", "PodDisruptionBudget")
    obj, errs = create(pdb, {"spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}})
    assert errs == []
    assert obj["status"] == {"currentHealthy": 0, "desiredHealthy": 0, "disruptionsAllowed": 0, "expectedPods": 0}
    _, errs = create(pdb, {"spec": {"minAvailable": "50%", "maxUnavailable": 1}})
    assert errs == ["spec: Invalid value: {...}: minAvailable and maxUnavailable cannot be both set"]
    _, errs = create(pdb, {"spec": {"maxUnavailable": "120%", "unhealthyPodEvictionPolicy": "Never"}})
    assert errs == ['spec.maxUnavailable: Invalid value: "120%": must not be greater than 100%',
                    'spec.unhealthyPodEvictionPolicy: Unsupported value: "Never": supported values: '
                    '"AlwaysAllow", "IfHealthyBudget"']


# --- networking --------------------------------------------------------------------------------


def ingress(paths: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"rules": [{"host": "example.com", "http": {"paths": paths}}]}
    body.update(spec)
    return {"metadata": {"name": "web"}, "spec": body}


def backend(name: str = "web", port: Any = None) -> dict[str, Any]:
    return {"service": {"name": name, "port": port if port is not None else {"number": 80}}}


def test_ingress() -> None:
    ing = strat("networking.k8s.io", "Ingress")
    obj, errs = create(ing, ingress([{"path": "/", "pathType": "Prefix", "backend": backend()}]))
    assert errs == [] and obj["status"] == {"loadBalancer": {}}
    _, errs = create(ing, ingress([{"path": "/", "backend": backend()}]))
    assert errs == ["spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified"]
    _, errs = create(ing, ingress([{"path": "a//b", "pathType": "Weird", "backend": backend()},
                                   {"path": "/x", "pathType": "Exact", "backend": {}},
                                   {"path": "/y", "pathType": "Exact", "backend": backend(port={})}]))
    assert errs == [
        'spec.rules[0].http.paths[0].pathType: Unsupported value: "Weird": supported values: '
        '"Exact", "ImplementationSpecific", "Prefix"',
        'spec.rules[0].http.paths[1].backend: Invalid value: "": resource or service backend is required',
        "spec.rules[0].http.paths[2].backend: Required value: port name or number is required",
    ]
    _, errs = create(ing, {"spec": {}})
    assert errs == ["spec: Invalid value: [...]: either `defaultBackend` or `rules` must be specified"]
    _, errs = create(ing, {"spec": {"defaultBackend": backend(port={"name": "http", "number": 80})}})
    assert errs == ['spec.defaultBackend: Invalid value: "": cannot set both port name & port number']


def test_ingress_class() -> None:
    ic = strat("networking.k8s.io", "IngressClass")
    obj, errs = create(ic, {"spec": {"controller": "example.com/ingress",
                                     "parameters": {"kind": "Params", "name": "p"}}})
    assert errs == [] and obj["spec"]["parameters"]["scope"] == "Cluster"
    assert create(ic, {"spec": {"controller": "nginx"}})[1] == [
        'spec.controller: Invalid value: "nginx": must be a domain-prefixed path (such as "acme.io/foo")']
    new = copy.deepcopy(obj)
    new["spec"]["controller"] = "example.com/other"
    assert update(ic, obj, new)[1] == ['spec.controller: Invalid value: "example.com/other": field is immutable']


def test_network_policy() -> None:
    np_ = strat("networking.k8s.io", "NetworkPolicy")
    obj, errs = create(np_, {"spec": {"egress": [{"ports": [{"port": 53}]}]}})
    assert errs == []
    assert obj["spec"]["podSelector"] == {}
    assert obj["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert obj["spec"]["egress"][0]["ports"][0]["protocol"] == "TCP"
    assert create(np_, {"spec": {"podSelector": {}}})[0]["spec"]["policyTypes"] == ["Ingress"]
    _, errs = create(np_, {"spec": {"ingress": [{"from": [{}, {"ipBlock": {"cidr": "10.0.0.0/8",
                                                                          "except": ["192.168.0.0/16"]},
                                                                "podSelector": {}}],
                                                 "ports": [{"port": 80, "endPort": 70}]}]}})
    assert errs == [
        "spec.ingress[0].ports[0].endPort: Invalid value: 80: must be greater than or equal to `port`",
        "spec.ingress[0].from[0]: Required value: must specify a peer",
        'spec.ingress[0].from[1].ipBlock.except[0]: Invalid value: "192.168.0.0/16": must be a strict subset of `cidr`',
        "spec.ingress[0].from[1]: Forbidden: may not specify both ipBlock and another peer",
    ]


# --- rbac, autoscaling ------------------------------------------------------------------------


def test_roles() -> None:
    role = strat("rbac.authorization.k8s.io", "Role")
    assert role.name_validator("a/b") == ["may not contain '/'"]
    assert role.name_validator("system:controller:x") == []
    ok = {"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}
    assert create(role, ok)[1] == []
    _, errs = create(role, {"rules": [{"resources": ["pods"]}, {"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]})
    assert errs == [
        "rules[0].verbs: Required value: verbs must contain at least one value",
        "rules[0].apiGroups: Required value: resource rules must supply at least one api group",
        "rules[1].nonResourceURLs: Invalid value: [...]: namespaced rules cannot apply to non-resource URLs",
    ]
    _, errs = create(role, {"rules": [{"apiGroups": [""], "resources": ["pods", "secrets"], "resourceNames": ["a"],
                                       "verbs": ["get"]}, {"apiGroups": [""], "resources": ["pods"], "verbs": ["fly"]}]})
    assert errs == ["rules[0].resourceNames: Required value: resource names cannot apply to multiple resources"]
    cr = strat("rbac.authorization.k8s.io", "ClusterRole")
    assert create(cr, {"rules": [{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]})[1] == []
    assert create(cr, {"aggregationRule": {}})[1] == [
        "aggregationRule.clusterRoleSelectors: Required value: at least one clusterRoleSelector required if "
        "aggregationRule is non-nil"]


def test_role_bindings() -> None:
    rb = strat("rbac.authorization.k8s.io", "RoleBinding")
    body = {"roleRef": {"kind": "Role", "name": "reader"},
            "subjects": [{"kind": "User", "name": "alice"}, {"kind": "ServiceAccount", "name": "default",
                                                             "namespace": "default"}]}
    obj, errs = create(rb, body)
    assert errs == []
    assert obj["roleRef"]["apiGroup"] == "rbac.authorization.k8s.io"
    assert obj["subjects"][0]["apiGroup"] == "rbac.authorization.k8s.io"
    assert "apiGroup" not in obj["subjects"][1]
    new = copy.deepcopy(obj)
    new["roleRef"]["name"] = "writer"
    assert update(rb, obj, new)[1] == ["roleRef: Invalid value: {...}: cannot change roleRef"]

    crb = strat("rbac.authorization.k8s.io", "ClusterRoleBinding")
    _, errs = create(crb, {"roleRef": {"kind": "Role", "name": "r"},
                           "subjects": [{"kind": "ServiceAccount", "name": "sa"}, {"kind": "Robot", "name": "r2"}]})
    assert errs == [
        'roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole"',
        "subjects[0].namespace: Required value",
        'subjects[1].kind: Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group"',
    ]
    _, errs = create(rb, {"roleRef": {"kind": "Role", "name": "r"}, "subjects": [{"kind": "Group", "name": ""}]})
    assert errs == ["subjects[0].name: Required value",
                    'subjects[0].name: Invalid value: "": group name cannot be empty']


def hpa(**spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                            "maxReplicas": 5}
    body.update(spec)
    return {"metadata": {"name": "web"}, "spec": body}


def test_hpa_defaults() -> None:
    h = strat("autoscaling", "HorizontalPodAutoscaler")
    obj, errs = create(h, hpa(behavior={"scaleDown": {"stabilizationWindowSeconds": 60}}))
    assert errs == []
    spec = obj["spec"]
    assert spec["minReplicas"] == 1
    assert spec["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]
    assert spec["behavior"]["scaleUp"]["policies"][0] == {"type": "Pods", "value": 4, "periodSeconds": 15}
    assert spec["behavior"]["scaleDown"] == {"selectPolicy": "Max", "stabilizationWindowSeconds": 60, "policies": [
        {"type": "Percent", "value": 100, "periodSeconds": 15}]}
    assert obj["status"] == {"desiredReplicas": 0}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"minReplicas": 6}, ["spec.maxReplicas: Invalid value: 5: must be greater than or equal to `minReplicas`"]),
        # Kubernetes reports both: 0 is not positive, and it is below the defaulted minReplicas.
        ({"maxReplicas": 0}, ["spec.maxReplicas: Invalid value: 0: must be greater than 0",
                              "spec.maxReplicas: Invalid value: 0: must be greater than or equal to `minReplicas`"]),
        ({"scaleTargetRef": {}}, ["spec.scaleTargetRef.kind: Required value", "spec.scaleTargetRef.name: Required value"]),
        ({"metrics": [{"type": "Pods", "resource": {"name": "cpu"}}]},
         ["spec.metrics[0].pods: Required value: must populate information for the given metric source",
          "spec.metrics[0].resource: Forbidden: must populate the given metric source only"]),
    ],
)
def test_hpa_validation(spec: dict[str, Any], expected: list[str]) -> None:
    assert create(strat("autoscaling", "HorizontalPodAutoscaler"), hpa(**spec))[1] == expected
