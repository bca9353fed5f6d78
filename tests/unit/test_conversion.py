"""Resources served through several versions: the conversions, the adapted strategies, field labels."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from kybernetes import errors
from kybernetes.api.field_selectors import parse_field_selector
from kybernetes.api.resources import Catalogue
from kybernetes.apiserver.registry import autoscaling, builtin_conversions, builtin_strategies, events
from kybernetes.apiserver.registry.conversion import Conversions, Stored, api_version_only
from kybernetes.apiserver.registry.strategy import Strategy

CAT = Catalogue.builtin()
CORE_EVENTS = CAT.get("", "v1", "events")
NEW_EVENTS = CAT.get("events.k8s.io", "v1", "events")
HPA_V1 = CAT.get("autoscaling", "v1", "horizontalpodautoscalers")
HPA_V2 = CAT.get("autoscaling", "v2", "horizontalpodautoscalers")
assert CORE_EVENTS and NEW_EVENTS and HPA_V1 and HPA_V2
CONV = Conversions(builtin_conversions())
STRATEGIES = builtin_strategies()


def strategy_for(r: Any) -> Strategy:
    """What the registry does: the stored kind's strategy, adapted to the request's version."""
    return CONV.strategy(r, STRATEGIES[(r.stored_in[0], r.kind)])


def test_both_event_apis_and_both_hpa_versions_share_one_storage_prefix() -> None:
    assert NEW_EVENTS.key_prefix == CORE_EVENTS.key_prefix == "/registry/events/"
    assert HPA_V1.key_prefix == HPA_V2.key_prefix == "/registry/horizontalpodautoscalers/"
    # The stored form's own version needs no conversion and keeps its strategy as it is.
    assert CONV.view(CORE_EVENTS) is None and CONV.view(HPA_V2) is None
    assert CONV.strategy(CORE_EVENTS, STRATEGIES[("", "Event")]) is STRATEGIES[("", "Event")]
    assert CAT.groups()["autoscaling"] == ["v2", "v1"]  # v2 preferred, as in 1.32


# --- Events ---------------------------------------------------------------------------------------

META = {"name": "web.1", "namespace": "default", "uid": "u1", "resourceVersion": "7"}
NEW_STYLE_V1 = {
    "kind": "Event", "apiVersion": "events.k8s.io/v1", "metadata": META,
    "eventTime": "2024-01-01T00:00:00.000000Z", "series": {"count": 3, "lastObservedTime": "2024-01-01T00:05:00.000000Z"},
    "reportingController": "example.com/ctl", "reportingInstance": "ctl-1", "action": "Scale", "reason": "Scaled",
    "regarding": {"kind": "Deployment", "namespace": "default", "name": "web", "uid": "d1"},
    "related": {"kind": "ReplicaSet", "name": "web-1"}, "note": "scaled up", "type": "Normal",
    "deprecatedSource": {}, "deprecatedFirstTimestamp": None, "deprecatedLastTimestamp": None,
}
NEW_STYLE_CORE = {
    "kind": "Event", "apiVersion": "v1", "metadata": META,
    "involvedObject": {"kind": "Deployment", "namespace": "default", "name": "web", "uid": "d1"},
    "reason": "Scaled", "message": "scaled up", "source": {}, "firstTimestamp": None, "lastTimestamp": None,
    "type": "Normal", "eventTime": "2024-01-01T00:00:00.000000Z",
    "series": {"count": 3, "lastObservedTime": "2024-01-01T00:05:00.000000Z"}, "action": "Scale",
    "related": {"kind": "ReplicaSet", "name": "web-1"}, "reportingComponent": "example.com/ctl",
    "reportingInstance": "ctl-1",
}
OLD_STYLE_CORE = {
    "kind": "Event", "apiVersion": "v1", "metadata": META,
    "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web-0"}, "reason": "Started",
    "message": "Started container", "source": {"component": "kubelet", "host": "node-1"},
    "firstTimestamp": "2024-01-01T00:00:00Z", "lastTimestamp": "2024-01-01T00:01:00Z", "count": 2,
    "type": "Normal", "eventTime": None, "reportingComponent": "", "reportingInstance": "",
}
OLD_STYLE_V1 = {
    "kind": "Event", "apiVersion": "events.k8s.io/v1", "metadata": META, "eventTime": None, "reason": "Started",
    "regarding": {"kind": "Pod", "namespace": "default", "name": "web-0"}, "note": "Started container",
    "type": "Normal", "deprecatedSource": {"component": "kubelet", "host": "node-1"},
    "deprecatedFirstTimestamp": "2024-01-01T00:00:00Z", "deprecatedLastTimestamp": "2024-01-01T00:01:00Z",
    "deprecatedCount": 2,
}


@pytest.mark.parametrize(("core", "v1"), [(NEW_STYLE_CORE, NEW_STYLE_V1), (OLD_STYLE_CORE, OLD_STYLE_V1)],
                         ids=["new-style", "old-style"])
def test_event_conversion_both_ways_in_go_field_order(core: dict[str, Any], v1: dict[str, Any]) -> None:
    before = copy.deepcopy(core)
    out = events.to_events_v1(core)
    assert out == v1 and list(out) == list(v1)
    assert core == before  # the input (possibly a cached object) is never changed
    back = events.to_core(v1)
    assert back == core and list(back) == list(core)
    assert CONV.to_view(NEW_EVENTS, core) == v1 and CONV.to_storage(NEW_EVENTS, v1) == core


def test_event_conversion_of_a_sparse_object_fills_what_go_always_writes() -> None:
    sparse = {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "x"}, "note": "hi",
              "reportingController": "c"}
    core = events.to_core(sparse)
    assert core == {"kind": "Event", "apiVersion": "v1", "metadata": {"name": "x"}, "involvedObject": {},
                    "message": "hi", "source": {}, "firstTimestamp": None, "lastTimestamp": None, "eventTime": None,
                    "reportingComponent": "c", "reportingInstance": ""}
    # Once canonical, a round trip changes nothing.
    assert events.to_core(events.to_events_v1(core)) == core


def test_events_v1_field_labels_map_onto_core_labels() -> None:
    fs = CONV.field_selector(NEW_EVENTS, parse_field_selector("regarding.name=web,reportingController=c,type!=x"))
    assert sorted(fs.requirements) == [("involvedObject.name", "=", "web"), ("reportingComponent", "=", "c"),
                                       ("type", "!=", "x")]
    with pytest.raises(errors.BadRequest, match=r"field label not supported: involvedObject\.name"):
        CONV.field_selector(NEW_EVENTS, parse_field_selector("involvedObject.name=web"))
    core_fs = parse_field_selector("involvedObject.name=web")
    assert CONV.field_selector(CORE_EVENTS, core_fs) is core_fs


def validate_v1(body: dict[str, Any]) -> list[str]:
    s = strategy_for(NEW_EVENTS)
    obj = copy.deepcopy(body)
    s.prepare_for_create(obj)
    s.default(obj)
    return [str(e) for e in s.validate(obj)]


def new_event(**kw: Any) -> dict[str, Any]:
    body = {k: x for k, x in copy.deepcopy(NEW_STYLE_V1).items() if x is not None and x != {}}
    body.pop("series")
    body.update(kw)
    return body


@pytest.mark.parametrize(("change", "expected"), [
    ({}, []),
    ({"type": "Bogus", "deprecatedCount": 3, "series": {"count": 1}, "action": ""}, [
        "action: Required value",
        'series.count: Invalid value: "": should be at least 2',
        "series.lastObservedTime: Required value",
        'type: Invalid value: "": has invalid value: Bogus',
        'count: Invalid value: "": needs to be unset',
    ]),
    ({"eventTime": None}, ["eventTime: Required value"]),
    ({"deprecatedSource": {"component": "kubelet"}, "deprecatedFirstTimestamp": "2024-01-01T00:00:00Z"}, [
        'firstTimestamp: Invalid value: "": needs to be unset', 'source: Invalid value: "": needs to be unset']),
    ({"metadata": {**META, "namespace": "team"}, "regarding": {"kind": "Node", "name": "n"}, "note": "x" * 1025}, [
        'involvedObject.namespace: Invalid value: "": does not match event.namespace',
        'message: Invalid value: "": can have at most 1024 characters']),
], ids=["valid", "strict-rules", "no-event-time", "deprecated-fields-set", "legacy-rules"])
def test_events_v1_validation_is_strict_and_reports_internal_names(change: dict[str, Any], expected: list[str]) -> None:
    body = new_event(**change)
    if change.get("eventTime", "") is None:
        del body["eventTime"]
    assert validate_v1(body) == expected


def test_the_same_event_through_core_v1_is_not_held_to_the_strict_rules() -> None:
    core = events.to_core(new_event(type="Bogus", deprecatedCount=3))
    assert [str(e) for e in STRATEGIES[("", "Event")].validate(core)] == []


def test_events_v1_update_keeps_the_event_immutable_but_series() -> None:
    s = strategy_for(NEW_EVENTS)
    old = events.to_events_v1(events.to_core(new_event()))
    new = copy.deepcopy(old)
    new["note"] = "changed"
    new["series"] = {"count": 2, "lastObservedTime": "2024-01-01T00:01:00.000000Z"}
    s.prepare_for_update(new, old)
    assert [str(e) for e in s.validate_update(new, old)] == ['message: Invalid value: "changed": field is immutable']
    same = copy.deepcopy(old)
    same["series"] = new["series"]
    assert s.validate_update(same, old) == []
    # An unset string and an empty one are the same value to Go: no change.
    assert s.validate_update({**old, "action": "Scale", "reportingInstance": "ctl-1"}, old) == []


def test_adapted_strategy_keeps_the_metadata_dict_the_store_holds() -> None:
    s = strategy_for(NEW_EVENTS)
    obj = new_event()
    meta = obj["metadata"]
    s.prepare_for_create(obj)
    s.default(obj)
    assert obj["metadata"] is meta
    assert s.allow_create_on_update and not s.tracks_generation and s.name_validator("ok") == []


# --- HorizontalPodAutoscalers ---------------------------------------------------------------------

HPA_META = {"name": "web", "namespace": "default", "annotations": {"team": "a"}}
REF = {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"}


def v2(spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"kind": "HorizontalPodAutoscaler", "apiVersion": "autoscaling/v2", "metadata": copy.deepcopy(HPA_META),
            "spec": {"scaleTargetRef": REF, "minReplicas": 1, "maxReplicas": 5, **spec},
            "status": status or {"desiredReplicas": 0}}


CPU = {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}
MEMORY = {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "1Gi"}}}
PODS = {"type": "Pods", "pods": {"metric": {"name": "qps", "selector": {"matchLabels": {"a": "b"}}},
                                 "target": {"type": "AverageValue", "averageValue": "10"}}}
OBJECT = {"type": "Object", "object": {"describedObject": {"kind": "Ingress", "name": "main", "apiVersion": "networking.k8s.io/v1"},
                                       "target": {"type": "Value", "value": "2k"}, "metric": {"name": "rps"}}}
EXTERNAL = {"type": "External", "external": {"metric": {"name": "queue"}, "target": {"type": "AverageValue", "averageValue": "30"}}}
CONTAINER = {"type": "ContainerResource", "containerResource": {
    "name": "cpu", "container": "app", "target": {"type": "Utilization", "averageUtilization": 60}}}
BEHAVIOR = {"scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                        "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15}]},
            "scaleDown": {"selectPolicy": "Min", "policies": [{"type": "Percent", "value": 10, "periodSeconds": 60}]}}
STATUS = {"currentReplicas": 2, "desiredReplicas": 3, "lastScaleTime": "2024-01-01T00:00:00Z",
          "currentMetrics": [
              {"type": "Resource", "resource": {"name": "cpu", "current": {"averageValue": "120m", "averageUtilization": 40}}},
              {"type": "Pods", "pods": {"metric": {"name": "qps"}, "current": {"averageValue": "12"}}}],
          "conditions": [{"type": "AbleToScale", "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z",
                          "reason": "ReadyForNewScale", "message": "recommended size matches current size"}]}


@pytest.mark.parametrize("obj", [
    v2({"metrics": [CPU]}),
    v2({"metrics": [MEMORY, PODS, OBJECT, EXTERNAL, CONTAINER, CPU]}),
    v2({"metrics": [MEMORY, CPU], "behavior": BEHAVIOR}, STATUS),
], ids=["cpu-only", "every-metric-type", "behavior-and-status"])
def test_hpa_round_trips_through_v1_without_loss(obj: dict[str, Any]) -> None:
    before = copy.deepcopy(obj)
    old = autoscaling.to_v1(obj)
    assert obj == before
    assert old["apiVersion"] == "autoscaling/v1" and old["spec"]["targetCPUUtilizationPercentage"] == 50
    assert autoscaling.to_v2(old) == obj


def test_hpa_v1_annotations_are_kubernetes_shapes() -> None:
    old = autoscaling.to_v1(v2({"metrics": [MEMORY, PODS, CPU], "behavior": BEHAVIOR}, STATUS))
    ann = old["metadata"]["annotations"]
    assert ann["team"] == "a"
    assert json.loads(ann[autoscaling.METRICS]) == [
        {"type": "Resource", "resource": {"name": "memory", "targetAverageValue": "1Gi"}},
        {"type": "Pods", "pods": {"metricName": "qps", "targetAverageValue": "10", "selector": {"matchLabels": {"a": "b"}}}}]
    assert json.loads(ann[autoscaling.CURRENT_METRICS])[0] == {
        "type": "Resource", "resource": {"name": "cpu", "currentAverageUtilization": 40, "currentAverageValue": "120m"}}
    # The internal Go type, marshalled without JSON tags.
    assert ann["autoscaling.alpha.kubernetes.io/behavior"] == (
        '{"ScaleUp":{"StabilizationWindowSeconds":0,"SelectPolicy":"Max","Policies":[{"Type":"Pods","Value":4,'
        '"PeriodSeconds":15}]},"ScaleDown":{"StabilizationWindowSeconds":null,"SelectPolicy":"Min","Policies":'
        '[{"Type":"Percent","Value":10,"PeriodSeconds":60}]}}')
    assert json.loads(ann["autoscaling.alpha.kubernetes.io/conditions"])[0]["reason"] == "ReadyForNewScale"
    assert old["status"] == {"lastScaleTime": "2024-01-01T00:00:00Z", "currentReplicas": 2, "desiredReplicas": 3,
                             "currentCPUUtilizationPercentage": 40}


@pytest.mark.parametrize(("v1_spec", "annotations", "metrics"), [
    ({}, {}, [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]),
    ({"targetCPUUtilizationPercentage": 50}, {}, [CPU]),
    ({"targetCPUUtilizationPercentage": 50},
     {autoscaling.METRICS: '[{"type":"Resource","resource":{"name":"memory","targetAverageValue":"1Gi"}}]'}, [MEMORY, CPU]),
    ({}, {autoscaling.METRICS: "not json"}, [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]),
], ids=["default-cpu", "cpu", "annotation-metrics-first", "malformed-annotation-ignored"])
def test_hpa_v1_to_v2_metrics(v1_spec: dict[str, Any], annotations: dict[str, str], metrics: list[Any]) -> None:
    old = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
           "metadata": {"name": "web", "annotations": {"keep": "me", **annotations}},
           "spec": {"scaleTargetRef": REF, "maxReplicas": 3, **v1_spec}}
    new = autoscaling.to_v2(old)
    assert new["spec"]["metrics"] == metrics
    assert new["metadata"]["annotations"] == {"keep": "me"}
    assert new["status"] == {"desiredReplicas": 0}


def test_hpa_behavior_annotation_is_read_case_insensitively_and_only_when_well_formed() -> None:
    def behavior(text: str) -> Any:
        old = {"apiVersion": "autoscaling/v1", "metadata": {"annotations": {"autoscaling.alpha.kubernetes.io/behavior": text}},
               "spec": {"maxReplicas": 1}}
        return autoscaling.to_v2(old)["spec"].get("behavior")

    assert behavior('{"scaleDown":{"selectPolicy":"Min","policies":[{"type":"Pods","value":1,"periodSeconds":5}]}}') == {
        "scaleDown": {"selectPolicy": "Min", "policies": [{"type": "Pods", "value": 1, "periodSeconds": 5}]}}
    assert behavior("{}") is None
    assert behavior('{"ScaleUp": 3}') is None
    assert behavior("nonsense") is None


def test_hpa_v1_strategy_defaults_and_validates_in_v2_terms() -> None:
    s = strategy_for(HPA_V1)
    assert s.has_status and not s.tracks_generation
    obj = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
           "spec": {"scaleTargetRef": REF, "maxReplicas": 3, "targetCPUUtilizationPercentage": 0},
           "status": {"currentReplicas": 9}}
    s.prepare_for_create(obj)
    s.default(obj)
    assert obj["spec"]["minReplicas"] == 1
    assert obj["status"] == {"currentReplicas": 0, "desiredReplicas": 0}
    assert [str(e) for e in s.validate(obj)] == [
        "spec.metrics[0].resource.target.averageUtilization: Invalid value: 0: must be greater than 0"]


def test_hpa_v2_writes_drop_the_v1_round_trip_annotations() -> None:
    s = STRATEGIES[("autoscaling", "HorizontalPodAutoscaler")]
    obj = v2({"metrics": [CPU]})
    obj["metadata"]["annotations"][autoscaling.METRICS] = "[]"
    s.prepare_for_create(obj)
    assert obj["metadata"]["annotations"] == {"team": "a"}


def test_crd_versions_differ_in_api_version_only() -> None:
    conv = Conversions([Stored(("example.com", "widgets"), "example.com/v1",
                               (api_version_only("example.com/v1beta1", "example.com/v1"),))])
    from kybernetes.api.resources import Resource

    beta = Resource("example.com", "v1beta1", "Widget", "widgets", builtin=False)
    obj = {"apiVersion": "example.com/v1", "kind": "Widget", "spec": {"a": 1}}
    assert conv.to_view(beta, obj) == {**obj, "apiVersion": "example.com/v1beta1"}
    assert conv.to_storage(beta, conv.to_view(beta, obj)) == obj
    base = Strategy()
    assert conv.strategy(beta, base) is base
    conv.unregister(("example.com", "widgets"))
    assert conv.to_view(beta, obj) is obj
