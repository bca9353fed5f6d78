"""Strategies of the core/v1 kinds other than Pod: defaults, validation and update rules."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from kybernetes.api.validation import FieldError
from kybernetes.apiserver.registry.core import STRATEGIES
from kybernetes.apiserver.registry.strategy import ClusterScoped, Strategy


def strategy(kind: str) -> Strategy:
    return STRATEGIES[("", kind)]


def create(kind: str, obj: dict[str, Any]) -> tuple[dict[str, Any], list[FieldError]]:
    s = strategy(kind)
    obj = copy.deepcopy(obj)
    s.prepare_for_create(obj)
    s.default(obj)
    return obj, s.validate(obj)


def update(kind: str, new: dict[str, Any], old: dict[str, Any]) -> tuple[dict[str, Any], list[FieldError]]:
    s = strategy(kind)
    new = copy.deepcopy(new)
    s.prepare_for_update(new, old)
    s.default(new)
    return new, s.validate_update(new, old)


def fields(errs: list[FieldError]) -> list[str]:
    return [e.field for e in errs]


def meta(name: str = "x", namespace: str | None = "default", **extra: Any) -> dict[str, Any]:
    m: dict[str, Any] = {"name": name, **extra}
    if namespace:
        m["namespace"] = namespace
    return m


def test_table_covers_core_kinds() -> None:
    kinds = {"Namespace", "Pod", "Node", "Service", "Endpoints", "ConfigMap", "Secret", "ServiceAccount", "Event",
             "ResourceQuota", "LimitRange", "PersistentVolume", "PersistentVolumeClaim", "ReplicationController",
             "PodTemplate"}
    assert set(STRATEGIES) == {("", k) for k in kinds}
    assert all(s.kind == k for (_, k), s in STRATEGIES.items())
    cluster = {k for (_, k), s in STRATEGIES.items() if isinstance(s, ClusterScoped)}
    assert cluster == {"Namespace", "Node", "PersistentVolume"}
    no_generation = {k for (_, k), s in STRATEGIES.items() if not s.tracks_generation}
    assert {"ConfigMap", "Secret", "Endpoints", "Event", "ServiceAccount", "Namespace"} <= no_generation
    assert strategy("ReplicationController").tracks_generation


# --- Service -------------------------------------------------------------------------------


def svc(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta("web"), "spec": spec}


def test_service_defaults() -> None:
    obj, errs = create("Service", svc(selector={"app": "web"}, ports=[{"port": 80}], clusterIP="10.96.0.10"))
    assert errs == []
    assert obj["spec"] == {
        "selector": {"app": "web"},
        "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
        "clusterIP": "10.96.0.10",
        "clusterIPs": ["10.96.0.10"],
        "type": "ClusterIP",
        "sessionAffinity": "None",
        "internalTrafficPolicy": "Cluster",
        "ipFamilyPolicy": "SingleStack",
        "ipFamilies": ["IPv4"],
    }
    assert obj["status"] == {"loadBalancer": {}}


def test_service_node_port_and_headless_defaults() -> None:
    obj, errs = create("Service", svc(type="LoadBalancer", ports=[{"port": 443, "targetPort": "https"}]))
    assert errs == []
    assert obj["spec"]["externalTrafficPolicy"] == "Cluster"
    assert obj["spec"]["allocateLoadBalancerNodePorts"] is True
    assert obj["spec"]["ports"][0]["targetPort"] == "https"
    obj, errs = create("Service", svc(clusterIP="None"))
    assert errs == []
    assert obj["spec"]["ipFamilyPolicy"] == "RequireDualStack"
    assert obj["spec"]["ipFamilies"] == ["IPv4", "IPv6"]
    obj, errs = create("Service", svc(type="ExternalName", externalName="example.com"))
    assert errs == []
    assert "internalTrafficPolicy" not in obj["spec"] and "ipFamilies" not in obj["spec"]


def test_service_name_is_dns1035() -> None:
    assert strategy("Service").name_validator("1web")
    assert strategy("Service").name_validator("web-1") == []


@pytest.mark.parametrize(("spec", "expected"), [
    ({"selector": {"a": "b"}}, ["spec.ports"]),
    ({"ports": [{"port": 0}]}, ["spec.ports[0].port", "spec.ports[0].targetPort"]),  # targetPort defaults to 0 too
    ({"ports": [{"port": 80}, {"port": 81}]}, ["spec.ports[0].name", "spec.ports[1].name"]),
    ({"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 81}]}, ["spec.ports[1].name"]),
    ({"ports": [{"port": 80, "targetPort": 70000}]}, ["spec.ports[0].targetPort"]),
    ({"ports": [{"port": 80, "targetPort": "not_a_name"}]}, ["spec.ports[0].targetPort"]),
    ({"ports": [{"port": 80, "nodePort": 30080}]}, ["spec.ports[0].nodePort"]),
    ({"type": "Magic", "ports": [{"port": 80}]}, ["spec.type"]),
    ({"type": "ExternalName"}, ["spec.externalName"]),
    ({"type": "NodePort", "clusterIP": "None", "ports": [{"port": 80}]}, ["spec.clusterIPs[0]"]),
    ({"clusterIP": "10.0.0.300", "ports": [{"port": 80}]}, ["spec.clusterIPs[0]"]),
])
def test_service_validation(spec: dict[str, Any], expected: list[str]) -> None:
    _, errs = create("Service", svc(**spec))
    assert fields(errs) == expected


def test_service_messages() -> None:
    _, errs = create("Service", svc(ports=[{"port": 80, "nodePort": 30080}]))
    assert str(errs[0]) == "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"
    _, errs = create("Service", svc())
    assert str(errs[0]) == "spec.ports: Required value"


def test_service_cluster_ip_immutable_but_carried_over() -> None:
    old, _ = create("Service", svc(ports=[{"port": 80}], clusterIP="10.96.0.10"))
    new, errs = update("Service", svc(ports=[{"port": 80}]), old)
    assert errs == []
    assert new["spec"]["clusterIP"] == "10.96.0.10" and new["spec"]["clusterIPs"] == ["10.96.0.10"]
    _, errs = update("Service", svc(ports=[{"port": 80}], clusterIP="10.96.0.11"), old)
    assert "spec.clusterIPs[0]" in fields(errs)
    assert any(e.detail == "may not change once set" for e in errs)


def test_service_node_ports_carried_over() -> None:
    old, _ = create("Service", svc(type="NodePort", ports=[{"port": 80, "nodePort": 30080}], clusterIP="10.96.0.9"))
    new, errs = update("Service", svc(type="NodePort", ports=[{"port": 80}]), old)
    assert errs == []
    assert new["spec"]["ports"][0]["nodePort"] == 30080


def test_endpoints() -> None:
    ep = {"metadata": meta("web"), "subsets": [{"addresses": [{"ip": "10.1.0.5"}, {"ip": "nope"}],
                                                "ports": [{"port": 8080}]}]}
    obj, errs = create("Endpoints", ep)
    assert obj["subsets"][0]["ports"][0]["protocol"] == "TCP"
    assert fields(errs) == ["subsets[0].addresses[1].ip"]
    assert strategy("Endpoints").allow_create_on_update


# --- ConfigMap and Secret ---------------------------------------------------------------------


def test_configmap_keys_and_size() -> None:
    b64 = base64.b64encode(b"\x00\x01").decode()
    _, errs = create("ConfigMap", {"metadata": meta(), "data": {"ok.key": "v", "bad/key": "v", "dup": "x"},
                                   "binaryData": {"dup": b64}})
    assert fields(errs) == ["data[bad/key]", "data[dup]"]
    _, errs = create("ConfigMap", {"metadata": meta(), "data": {"big": "x" * (1024 * 1024 + 1)}})
    assert [e.type for e in errs] == ["FieldValueTooLong"]


def test_configmap_immutable() -> None:
    old, errs = create("ConfigMap", {"metadata": meta(), "data": {"a": "1"}, "immutable": True})
    assert errs == []
    new = copy.deepcopy(old)
    new["metadata"]["labels"] = {"x": "y"}
    assert update("ConfigMap", new, old)[1] == []
    new["data"] = {"a": "2"}
    new["immutable"] = False
    _, errs = update("ConfigMap", new, old)
    assert [str(e) for e in errs] == [
        "immutable: Forbidden: field is immutable when `immutable` is set",
        "data: Forbidden: field is immutable when `immutable` is set",
    ]


def test_secret_string_data_folded() -> None:
    obj, errs = create("Secret", {"metadata": meta(), "data": {"a": base64.b64encode(b"old").decode()},
                                  "stringData": {"a": "new", "b": "bee"}})
    assert errs == []
    assert "stringData" not in obj
    assert obj["type"] == "Opaque"
    assert obj["data"] == {"a": base64.b64encode(b"new").decode(), "b": base64.b64encode(b"bee").decode()}
    new, errs = update("Secret", {"metadata": meta(), "type": "Opaque", "stringData": {"c": "sea"}}, obj)
    assert errs == []
    assert new["data"] == {"c": base64.b64encode(b"sea").decode()}


def test_secret_validation() -> None:
    _, errs = create("Secret", {"metadata": meta(), "data": {"k": "not base64!"}})
    assert fields(errs) == ["data[k]"]
    _, errs = create("Secret", {"metadata": meta(), "type": "kubernetes.io/dockerconfigjson", "data": {}})
    assert [str(e) for e in errs] == ["data[.dockerconfigjson]: Required value"]
    _, errs = create("Secret", {"metadata": meta(), "type": "kubernetes.io/service-account-token"})
    assert fields(errs) == ["metadata.annotations[kubernetes.io/service-account.name]"]
    _, errs = create("Secret", {"metadata": meta(), "type": "kubernetes.io/tls",
                                "data": {"tls.crt": base64.b64encode(b"c").decode()}})
    assert fields(errs) == ["data[tls.key]"]


def test_secret_type_immutable() -> None:
    old, _ = create("Secret", {"metadata": meta(), "stringData": {"a": "b"}})
    _, errs = update("Secret", {"metadata": meta(), "type": "kubernetes.io/basic-auth",
                                "stringData": {"username": "u"}}, old)
    assert [str(e) for e in errs] == ['type: Invalid value: "kubernetes.io/basic-auth": field is immutable']
    assert strategy("Secret").field_selectors["type"](old) == "Opaque"


# --- Namespace and Node ---------------------------------------------------------------------


def test_namespace_create_defaults() -> None:
    obj, errs = create("Namespace", {"metadata": meta("team-a", None), "status": {"phase": "Terminating"}})
    assert errs == []
    assert obj["spec"] == {"finalizers": ["kubernetes"]}
    assert obj["status"] == {"phase": "Active"}
    assert obj["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team-a"}
    assert not strategy("Namespace").tracks_generation
    assert strategy("Namespace").name_validator("a.b")  # a label, not a subdomain


def test_namespace_update_keeps_status_and_checks_finalizers() -> None:
    old, _ = create("Namespace", {"metadata": meta("team-a", None)})
    new, errs = update("Namespace", {"metadata": meta("team-a", None), "spec": {"finalizers": ["mine"]}}, old)
    assert new["status"] == {"phase": "Active"}
    # spec.finalizers change only through namespaces/finalize: a plain update keeps the old ones.
    assert new["spec"]["finalizers"] == ["kubernetes"] and errs == []
    finalized = copy.deepcopy(old)
    finalized["spec"]["finalizers"] = ["mine"]
    assert [str(e) for e in STRATEGIES[("", "Namespace")].validate(finalized)] == [
        'spec.finalizers[0]: Invalid value: "mine": name is neither a standard finalizer name nor is it fully qualified'
    ]


def test_node() -> None:
    node = {"metadata": meta("node-1", None), "status": {"capacity": {"cpu": "4", "pods": "110"}},
            "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"],
                     "taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
                                {"key": "dedicated", "value": "x", "effect": "NoSchedule"},
                                {"key": "k", "effect": "Sometimes"}]}}
    obj, errs = create("Node", node)
    assert obj["status"]["allocatable"] == {"cpu": "4", "pods": "110"}  # kubelet status kept on create
    assert fields(errs) == ["spec.taints[1]", "spec.taints[2].effect"]
    node["spec"]["taints"] = []
    old, _ = create("Node", node)
    changed = copy.deepcopy(old)
    changed["spec"]["podCIDR"] = "10.244.2.0/24"
    changed["spec"]["podCIDRs"] = ["10.244.2.0/24"]
    changed["spec"]["unschedulable"] = True
    _, errs = update("Node", changed, old)
    assert fields(errs) == ["spec.podCIDR", "spec.podCIDRs"]
    assert strategy("Node").field_selectors["spec.unschedulable"](changed) == "true"


# --- volumes ---------------------------------------------------------------------------------


def pvc(**spec: Any) -> dict[str, Any]:
    return {"metadata": meta("data"), "spec": spec}


def test_pvc_defaults_and_validation() -> None:
    obj, errs = create("PersistentVolumeClaim", pvc(accessModes=["ReadWriteOnce"],
                                                    resources={"requests": {"storage": "1Gi"}}))
    assert errs == []
    assert obj["spec"]["volumeMode"] == "Filesystem"
    assert obj["status"] == {"phase": "Pending"}
    _, errs = create("PersistentVolumeClaim", pvc(accessModes=["ReadWriteSometimes"], resources={}))
    assert fields(errs) == ["spec.accessModes", "spec.resources[storage]"]


def test_pvc_immutability() -> None:
    old, _ = create("PersistentVolumeClaim", pvc(accessModes=["ReadWriteOnce"],
                                                 resources={"requests": {"storage": "1Gi"}}))
    changed = copy.deepcopy(old)
    changed["spec"]["accessModes"] = ["ReadWriteMany"]
    _, errs = update("PersistentVolumeClaim", changed, old)
    assert [e.field for e in errs] == ["spec"]
    assert errs[0].detail.startswith("spec is immutable after creation except resources.requests")
    # The binder may set volumeName once.
    bound = copy.deepcopy(old)
    bound["spec"]["volumeName"] = "pv-1"
    assert update("PersistentVolumeClaim", bound, old)[1] == []
    # A bound claim may grow, not shrink.
    bound["status"] = {"phase": "Bound"}
    grown = copy.deepcopy(bound)
    grown["spec"]["resources"]["requests"]["storage"] = "2Gi"
    assert update("PersistentVolumeClaim", grown, bound)[1] == []
    shrunk = copy.deepcopy(bound)
    shrunk["spec"]["resources"]["requests"]["storage"] = "500Mi"
    assert fields(update("PersistentVolumeClaim", shrunk, bound)[1]) == ["spec.resources.requests.storage"]
    # An unbound claim may not be resized.
    resized = copy.deepcopy(old)
    resized["spec"]["resources"]["requests"]["storage"] = "2Gi"
    assert fields(update("PersistentVolumeClaim", resized, old)[1]) == ["spec"]


def test_pv() -> None:
    pv = {"metadata": meta("pv-1", None),
          "spec": {"capacity": {"storage": "5Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/d"}}}
    obj, errs = create("PersistentVolume", pv)
    assert errs == []
    assert obj["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert obj["spec"]["hostPath"] == {"path": "/d", "type": ""}
    assert obj["status"]["phase"] == "Pending" and obj["status"]["lastPhaseTransitionTime"].endswith("Z")
    _, errs = create("PersistentVolume", {"metadata": meta("pv-2", None), "spec": {"nfs": {}, "hostPath": {}}})
    assert fields(errs) == ["spec.accessModes", "spec.capacity", "spec.nfs"]
    changed = copy.deepcopy(obj)
    changed["spec"]["hostPath"] = {"path": "/other", "type": ""}
    assert fields(update("PersistentVolume", changed, obj)[1]) == ["spec.persistentvolumesource"]


def test_pv_last_phase_transition_time() -> None:
    strategy = STRATEGIES[("", "PersistentVolume")]
    old = {"metadata": meta("pv-1", None), "spec": {},
           "status": {"phase": "Pending", "lastPhaseTransitionTime": "2020-01-01T00:00:00Z"}}
    same = {**old, "status": {"phase": "Pending"}}
    strategy.prepare_for_status_update(same, old)
    assert same["status"]["lastPhaseTransitionTime"] == "2020-01-01T00:00:00Z"
    moved = {**old, "status": {"phase": "Available", "lastPhaseTransitionTime": "2020-01-01T00:00:00Z"}}
    strategy.prepare_for_status_update(moved, old)
    assert moved["status"]["lastPhaseTransitionTime"] > "2020-01-01T00:00:00Z"
    chosen = {**old, "status": {"phase": "Bound", "lastPhaseTransitionTime": "2021-01-01T00:00:00Z"}}
    strategy.prepare_for_status_update(chosen, old)
    assert chosen["status"]["lastPhaseTransitionTime"] == "2021-01-01T00:00:00Z"


def test_pvc_without_a_class_may_be_given_one() -> None:
    old, _ = create("PersistentVolumeClaim", pvc(accessModes=["ReadWriteOnce"],
                                                 resources={"requests": {"storage": "1Gi"}}))
    classed = copy.deepcopy(old)
    classed["spec"]["storageClassName"] = "standard"
    assert update("PersistentVolumeClaim", classed, old)[1] == []
    emptied = copy.deepcopy(old)
    emptied["spec"]["storageClassName"] = ""
    assert fields(update("PersistentVolumeClaim", emptied, old)[1]) == ["spec"]
    assert fields(update("PersistentVolumeClaim", copy.deepcopy(old), classed)[1]) == ["spec"]
    changed = copy.deepcopy(classed)
    changed["spec"]["storageClassName"] = "other"
    assert fields(update("PersistentVolumeClaim", changed, classed)[1]) == ["spec"]


# --- the rest ------------------------------------------------------------------------------------


def rc(**spec: Any) -> dict[str, Any]:
    return {"metadata": meta("web"), "spec": spec}


def template(**labels: str) -> dict[str, Any]:
    return {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}


def test_replication_controller() -> None:
    obj, errs = create("ReplicationController", rc(template=template(app="web")))
    assert errs == []
    assert obj["spec"]["replicas"] == 1
    assert obj["spec"]["selector"] == {"app": "web"}
    assert obj["metadata"]["labels"] == {"app": "web"}
    assert obj["spec"]["template"]["spec"]["restartPolicy"] == "Always"
    assert obj["status"] == {"replicas": 0}
    _, errs = create("ReplicationController", rc(selector={"app": "db"}, replicas=-1, template=template(app="web")))
    assert [str(e) for e in errs][:1] == ["spec.replicas: Invalid value: -1: must be greater than or equal to 0"]
    assert fields(errs) == ["spec.replicas", "spec.template.metadata.labels"]
    bad = template(app="web")
    bad["spec"]["restartPolicy"] = "OnFailure"
    _, errs = create("ReplicationController", rc(template=bad))
    assert fields(errs) == ["spec.template.spec.restartPolicy"]


def test_pod_template_kind() -> None:
    obj, errs = create("PodTemplate", {"metadata": meta("t"), "template": template(app="x")})
    assert errs == []
    assert obj["template"]["spec"]["dnsPolicy"] == "ClusterFirst"
    _, errs = create("PodTemplate", {"metadata": meta("t"), "template": {"spec": {"containers": [{"name": "c"}]}}})
    assert fields(errs) == ["template.spec.containers[0].image"]


def test_event() -> None:
    ev = {"metadata": meta("web.1"), "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web"},
          "reason": "Started", "source": {"component": "kubelet"}, "type": "Normal"}
    obj, errs = create("Event", ev)
    assert errs == []
    sel = strategy("Event").field_selectors
    assert sel["involvedObject.kind"](obj) == "Pod"
    assert sel["source"](obj) == "kubelet"
    assert sel["involvedObject.uid"](obj) == ""
    assert strategy("Event").allow_create_on_update and not strategy("Event").tracks_generation
    ev["involvedObject"]["namespace"] = "other"
    assert fields(create("Event", ev)[1]) == ["involvedObject.namespace"]
    new_style = {"metadata": meta("web.2"), "involvedObject": {"kind": "Pod", "namespace": "default"},
                 "eventTime": "2024-01-01T00:00:00.000000Z"}
    # legacyValidateEvent reports the internal name of reportingComponent, and never checks type.
    assert fields(create("Event", new_style)[1]) == ["reportingController", "reportingController",
                                                     "reportingInstance", "action", "reason"]
    assert create("Event", {**ev, "involvedObject": {"kind": "Pod", "namespace": "default"}, "type": "Odd"})[1] == []


def test_resource_quota_and_limit_range() -> None:
    rq = {"metadata": meta("q"), "spec": {"hard": {"pods": "10", "requests.cpu": "4", "count/deployments.apps": "5",
                                                   "limits.memory": "-1Gi"}, "scopes": ["Sometimes"]}}
    obj, errs = create("ResourceQuota", rq)
    assert obj["status"] == {}
    assert fields(errs) == ["spec.hard[limits.memory]", "spec.scopes[0]"]
    lr = {"metadata": meta("l"), "spec": {"limits": [
        {"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"}},
        {"type": "Pod", "max": {"cpu": "1"}, "min": {"cpu": "2"}},
        {"type": "Node"},
    ]}}
    obj, errs = create("LimitRange", lr)
    assert obj["spec"]["limits"][0]["default"] == {"cpu": "2"}
    assert obj["spec"]["limits"][0]["defaultRequest"] == {"cpu": "2", "memory": "64Mi"}
    assert "default" not in obj["spec"]["limits"][1]
    assert fields(errs) == ["spec.limits[1].min[cpu]", "spec.limits[2].type"]



@pytest.mark.parametrize(("items", "expected"), [
    ([{"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}}],
     [("spec.limits[0].min[cpu]", "min value 2 is greater than max value 1"),
      ("spec.limits[0].defaultRequest[cpu]", "min value 2 is greater than default request value 1"),
      ("spec.limits[0].default[cpu]", "min value 2 is greater than default value 1")]),
    ([{"type": "Container", "default": {"memory": "1Gi"}, "defaultRequest": {"memory": "2Gi"}}],
     [("spec.limits[0].defaultRequest[memory]", "default request value 2Gi is greater than default limit value 1Gi")]),
    ([{"type": "Container", "max": {"memory": "1Gi"}, "default": {"memory": "2Gi"}}],
     # defaultRequest defaults to default, so it is over max too.
     [("spec.limits[0].defaultRequest[memory]", "default request value 2Gi is greater than max value 1Gi"),
      ("spec.limits[0].default[memory]", "default value 2Gi is greater than max value 1Gi")]),
    ([{"type": "Container", "maxLimitRequestRatio": {"cpu": "500m"}}],
     [("spec.limits[0].maxLimitRequestRatio[cpu]", "ratio 500m is less than 1")]),
    ([{"type": "Pod", "min": {"cpu": "1"}, "max": {"cpu": "2"}, "maxLimitRequestRatio": {"cpu": "3"}}],
     [("spec.limits[0].maxLimitRequestRatio[cpu]", "ratio 3 is greater than max/min = 2.000000")]),
    ([{"type": "Container", "default": {"example.com/gpu": "2"}, "defaultRequest": {"example.com/gpu": "1"}}],
     [("spec.limits[0].defaultRequest[example.com/gpu]", "default value 2 must equal to defaultRequest value 1 in "
                                                           "example.com/gpu")]),
    ([{"type": "PersistentVolumeClaim", "min": {"cpu": "1"}}],
     [("spec.limits[0].limits", "either minimum or maximum storage value is required, but neither was provided")]),
    ([{"type": "Container", "max": {"cpu": "1"}}, {"type": "Container", "max": {"cpu": "2"}}],
     [("spec.limits[1].type", "")]),
    ([{"type": "Node"}], [("spec.limits[0].type", "must be a standard limit type or fully qualified")]),
    ([{"type": "example.com/Thing", "max": {"cpu": "1"}}], []),
    ([{"type": "Container", "min": {"cpu": "100m"}, "max": {"cpu": "1"}, "maxLimitRequestRatio": {"cpu": "4"}},
      {"type": "PersistentVolumeClaim", "max": {"storage": "2Gi"}}], []),
])
def test_limit_range_validation(items: list[dict[str, Any]], expected: list[tuple[str, str]]) -> None:
    """``ValidateLimitRange``'s cross-checks, with Kubernetes' paths and details."""
    _, errs = create("LimitRange", {"metadata": meta("l"), "spec": {"limits": items}})
    assert [(e.field, e.detail) for e in errs] == expected

def test_service_account() -> None:
    _, errs = create("ServiceAccount", {"metadata": meta("builder"), "secrets": [{"name": "tok"}]})
    assert errs == []
    assert not strategy("ServiceAccount").tracks_generation
