"""One resource, several API versions: Events through core/v1 and events.k8s.io/v1, HPAs through
autoscaling/v1 and v2, against a real server with the official client and kubectl."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from kybernetes.testing import ServerProcess

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client, watch  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402

pytestmark = pytest.mark.integration

# The client sends times as Python's isoformat, which has the six fraction digits Go's MicroTime
# needs only when the microseconds are not zero.
EVENT_TIME = "2024-05-01T10:00:00.123456Z"


def core_event(name: str, namespace: str, **kw: Any) -> dict[str, Any]:
    """A new-style core/v1 Event (eventTime set: the events.k8s.io client model requires it)."""
    body = {"metadata": {"name": name}, "involvedObject": {"kind": "Pod", "name": "web-0", "namespace": namespace},
            "reason": "Started", "message": f"{name} happened", "type": "Normal", "eventTime": EVENT_TIME,
            "action": "Start", "reportingComponent": "example.com/ctl", "reportingInstance": "ctl-1"}
    body.update(kw)
    return body


def test_core_event_is_read_watched_and_deleted_through_events_k8s_io(api: client.ApiClient, namespace: str) -> None:
    core, new = client.CoreV1Api(api), client.EventsV1Api(api)
    core.create_namespaced_event(namespace, core_event("seed", namespace))
    seen: list[tuple[str, str, str | None]] = []
    ready = threading.Event()

    def run() -> None:
        w = watch.Watch()
        for ev in w.stream(new.list_namespaced_event, namespace, timeout_seconds=15):
            ready.set()
            obj = ev["object"]
            seen.append((ev["type"], obj.metadata.name, obj.note))
            if len(seen) == 4:
                w.stop()

    t = threading.Thread(target=run)
    t.start()
    assert ready.wait(10)
    core.create_namespaced_event(namespace, core_event("e1", namespace))
    # A core/v1 write of a field the newer API renames: the watcher sees it under the new name.
    core.patch_namespaced_event("e1", namespace, {"series": {"count": 2, "lastObservedTime": EVENT_TIME}})
    got = new.read_namespaced_event("e1", namespace)
    assert got.note == "e1 happened" and got.regarding.name == "web-0" and got.series.count == 2
    assert got.reporting_controller == "example.com/ctl" and got.api_version == "events.k8s.io/v1"
    new.delete_namespaced_event("e1", namespace)
    t.join(20)
    assert seen == [("ADDED", "seed", "seed happened"), ("ADDED", "e1", "e1 happened"),
                    ("MODIFIED", "e1", "e1 happened"), ("DELETED", "e1", "e1 happened")]
    with pytest.raises(ApiException) as e:
        core.read_namespaced_event("e1", namespace)
    assert e.value.status == 404


def test_events_k8s_io_event_is_read_through_core_v1_and_kubectl(server: ServerProcess, api: client.ApiClient,
                                                                 namespace: str) -> None:
    core, new = client.CoreV1Api(api), client.EventsV1Api(api)
    body = {"metadata": {"name": "scaled"}, "eventTime": EVENT_TIME, "reportingController": "example.com/ctl",
            "reportingInstance": "ctl-1", "action": "Scale", "reason": "Scaled", "type": "Normal",
            "note": "scaled web to 3", "regarding": {"kind": "Deployment", "name": "web", "namespace": namespace}}
    new.create_namespaced_event(namespace, body)
    old = core.read_namespaced_event("scaled", namespace)
    assert old.message == "scaled web to 3" and old.involved_object.kind == "Deployment"
    assert old.reporting_component == "example.com/ctl" and old.action == "Scale"
    listed = core.list_namespaced_event(namespace, field_selector="involvedObject.name=web,reportingComponent=example.com/ctl")
    assert [e.metadata.name for e in listed.items] == ["scaled"]
    selected = new.list_namespaced_event(namespace, field_selector="regarding.kind=Deployment,reportingController=example.com/ctl")
    assert [e.metadata.name for e in selected.items] == ["scaled"]
    with pytest.raises(ApiException) as e:
        new.list_namespaced_event(namespace, field_selector="involvedObject.name=web")
    assert e.value.status == 400 and "field label not supported: involvedObject.name" in e.value.body

    out = server.kubectl("events", "-n", namespace).stdout
    assert "Scaled" in out and "Deployment/web" in out and "scaled web to 3" in out
    table = server.kubectl("get", "events.v1.events.k8s.io", "-n", namespace, "-o", "wide").stdout
    assert "deployment/web" in table and "scaled web to 3" in table and "example.com/ctl, ctl-1" in table
    as_yaml = json.loads(server.kubectl("get", "events.v1.events.k8s.io", "scaled", "-n", namespace,
                                        "-o", "json").stdout)
    assert as_yaml["apiVersion"] == "events.k8s.io/v1" and as_yaml["note"] == "scaled web to 3"
    server.kubectl("delete", "event", "scaled", "-n", namespace)
    with pytest.raises(ApiException) as e:
        new.read_namespaced_event("scaled", namespace)
    assert e.value.status == 404


def test_events_k8s_io_writes_are_validated_strictly(api: client.ApiClient, namespace: str) -> None:
    core, new = client.CoreV1Api(api), client.EventsV1Api(api)
    # Through core/v1 an odd type and a count are fine (legacy validation only) ...
    core.create_namespaced_event(namespace, core_event("odd", namespace, type="Odd", count=3))
    # ... but not through events.k8s.io/v1, whose errors name the internal fields.
    body = {"metadata": {"name": "odd2"}, "eventTime": EVENT_TIME, "reportingController": "example.com/ctl",
            "reportingInstance": "ctl-1", "action": "Scale", "reason": "Scaled", "type": "Odd",
            "deprecatedCount": 3, "regarding": {"kind": "Pod", "name": "p", "namespace": namespace}}
    with pytest.raises(ApiException) as e:
        new.create_namespaced_event(namespace, body)
    assert e.value.status == 422
    status = json.loads(e.value.body)
    assert status["details"]["group"] == "events.k8s.io"
    assert [c["field"] for c in status["details"]["causes"]] == ["type", "count"]
    # Updates through events.k8s.io/v1 keep the event immutable (but for its series).
    with pytest.raises(ApiException) as e:
        new.patch_namespaced_event("odd", namespace, {"note": "changed"})
    assert e.value.status == 422 and "message: Invalid value" in e.value.body
    core.patch_namespaced_event("odd", namespace, {"message": "changed"})
    assert new.read_namespaced_event("odd", namespace).note == "changed"


def hpa_v2(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 2, "maxReplicas": 6,
            "metrics": [
                {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "1Gi"}}},
                {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}},
            ],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 120, "selectPolicy": "Min",
                                       "policies": [{"type": "Percent", "value": 10, "periodSeconds": 60}]}},
        },
    }


def test_hpa_is_served_as_autoscaling_v1_and_v2(server: ServerProcess, api: client.ApiClient, namespace: str) -> None:
    v1, v2 = client.AutoscalingV1Api(api), client.AutoscalingV2Api(api)
    v2.create_namespaced_horizontal_pod_autoscaler(namespace, hpa_v2("web"))
    old = v1.read_namespaced_horizontal_pod_autoscaler("web", namespace)
    assert old.spec.target_cpu_utilization_percentage == 60 and old.spec.max_replicas == 6
    annotations = old.metadata.annotations
    assert json.loads(annotations["autoscaling.alpha.kubernetes.io/metrics"]) == [
        {"type": "Resource", "resource": {"name": "memory", "targetAverageValue": "1Gi"}}]
    assert json.loads(annotations["autoscaling.alpha.kubernetes.io/behavior"])["ScaleDown"]["SelectPolicy"] == "Min"
    # A v1 client writes the object back with a change: nothing v1 cannot express is lost.
    old.spec.max_replicas = 8
    old.spec.target_cpu_utilization_percentage = 70
    v1.replace_namespaced_horizontal_pod_autoscaler("web", namespace, old)
    new = v2.read_namespaced_horizontal_pod_autoscaler("web", namespace)
    assert new.spec.max_replicas == 8 and new.metadata.annotations is None
    assert [(m.resource.name, m.resource.target.average_value, m.resource.target.average_utilization)
            for m in new.spec.metrics] == [("memory", "1Gi", None), ("cpu", None, 70)]
    assert new.spec.behavior.scale_down.select_policy == "Min"
    assert new.spec.behavior.scale_down.stabilization_window_seconds == 120
    # Tables come from the same printer through either version.
    for resource in ("horizontalpodautoscalers.v1.autoscaling", "horizontalpodautoscalers.v2.autoscaling"):
        out = server.kubectl("get", resource, "web", "-n", namespace).stdout
        assert "Deployment/web" in out and "memory: <unknown>/1Gi, cpu: <unknown>/70%" in out, out
    # The status subresource too: v1's CPU utilization is v2's current CPU metric.
    status = v1.read_namespaced_horizontal_pod_autoscaler_status("web", namespace)
    status.status = client.V1HorizontalPodAutoscalerStatus(current_replicas=2, desired_replicas=3,
                                                           current_cpu_utilization_percentage=42)
    v1.replace_namespaced_horizontal_pod_autoscaler_status("web", namespace, status)
    new_status = v2.read_namespaced_horizontal_pod_autoscaler("web", namespace).status
    assert new_status.current_replicas == 2 and new_status.desired_replicas == 3
    assert [(m.resource.name, m.resource.current.average_utilization) for m in new_status.current_metrics] == [
        ("cpu", 42)]
    v1.delete_namespaced_horizontal_pod_autoscaler("web", namespace)
    with pytest.raises(ApiException) as e:
        v2.read_namespaced_horizontal_pod_autoscaler("web", namespace)
    assert e.value.status == 404


def test_kubectl_autoscale_writes_autoscaling_v1_read_back_as_v2(server: ServerProcess, namespace: str) -> None:
    server.kubectl("create", "deployment", "web", "--image=busybox", "-n", namespace)
    # kubectl 1.32 sends an autoscaling/v1 HorizontalPodAutoscaler, as protobuf.
    server.kubectl("autoscale", "deployment", "web", "--max=3", "--cpu-percent=50", "-n", namespace)
    got = json.loads(server.kubectl("get", "horizontalpodautoscalers.v2.autoscaling", "web", "-n", namespace, "-o", "json").stdout)
    assert got["spec"]["minReplicas"] == 1 and got["spec"]["maxReplicas"] == 3
    assert got["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]
    old = json.loads(server.kubectl("get", "horizontalpodautoscalers.v1.autoscaling", "web", "-n", namespace, "-o", "json").stdout)
    assert old["spec"]["targetCPUUtilizationPercentage"] == 50
    assert old["status"] == {"currentReplicas": 0, "desiredReplicas": 0}


def test_hpa_v1_watch_sees_v2_writes(api: client.ApiClient, namespace: str) -> None:
    v1, v2 = client.AutoscalingV1Api(api), client.AutoscalingV2Api(api)
    seen: list[tuple[str, int | None]] = []
    ready = threading.Event()
    v2.create_namespaced_horizontal_pod_autoscaler(namespace, hpa_v2("seed"))

    def run() -> None:
        w = watch.Watch()
        for ev in w.stream(v1.list_namespaced_horizontal_pod_autoscaler, namespace, timeout_seconds=15):
            ready.set()
            seen.append((ev["type"], ev["object"].spec.target_cpu_utilization_percentage))
            if len(seen) == 3:
                w.stop()

    t = threading.Thread(target=run)
    t.start()
    assert ready.wait(10)
    v2.patch_namespaced_horizontal_pod_autoscaler("seed", namespace, {"spec": {"metrics": [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 30}}}]}})
    v2.delete_namespaced_horizontal_pod_autoscaler("seed", namespace)
    t.join(20)
    assert seen == [("ADDED", 60), ("MODIFIED", 30), ("DELETED", 30)]


def test_discovery_prefers_autoscaling_v2_and_serves_v1(api: client.ApiClient) -> None:
    groups = {g.name: g for g in client.ApisApi(api).get_api_versions().groups}
    autoscaling = groups["autoscaling"]
    assert autoscaling.preferred_version.version == "v2"
    assert [v.version for v in autoscaling.versions] == ["v2", "v1"]
    res = client.AutoscalingV1Api(api).get_api_resources()
    hpa = next(r for r in res.resources if r.name == "horizontalpodautoscalers")
    assert hpa.short_names == ["hpa"] and hpa.namespaced


def _get(api: client.ApiClient, path: str, accept: str) -> bytes:
    resp = api.call_api("GET", api.configuration.host + path, header_params={"Accept": accept})
    resp.read()
    assert resp.status == 200, resp.data
    return bytes(resp.data)


TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


def test_tables_through_a_view_print_the_stored_form_and_embed_the_view(api: client.ApiClient, namespace: str) -> None:
    client.CoreV1Api(api).create_namespaced_event(namespace, core_event("tabled", namespace))
    base = f"/apis/events.k8s.io/v1/namespaces/{namespace}/events"
    table = json.loads(_get(api, base + "?includeObject=Object", TABLE))
    [row] = table["rows"]
    names = [c["name"] for c in table["columnDefinitions"]]
    assert row["cells"][names.index("Message")] == "tabled happened"
    assert row["cells"][names.index("Object")] == "pod/web-0"
    assert row["object"]["apiVersion"] == "events.k8s.io/v1" and row["object"]["note"] == "tabled happened"
    # A watch of tables goes the same way (the initial ADDED event, then the timeout ends it).
    lines = _get(api, base + "?watch=1&timeoutSeconds=1&includeObject=Object", TABLE).splitlines()
    first = json.loads(lines[0])
    assert first["type"] == "ADDED"
    assert first["object"]["rows"][0]["cells"][names.index("Message")] == "tabled happened"
    assert first["object"]["rows"][0]["object"]["regarding"]["name"] == "web-0"
