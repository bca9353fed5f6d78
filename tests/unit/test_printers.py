"""Server-side printing: columns and cells per kind, HumanDuration, Table shape, CRD columns, JSONPath.

Expected cells are what a Kubernetes 1.32 API server returns for the same objects (the server
always renders the wide cells; kubectl hides priority-1 columns itself).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kybernetes.apiserver.printers import columns_for, has_printer, jsonpath_get, row_cells, to_table
from kybernetes.apiserver.printers._common import (
    format_label_selector,
    go_float,
    human_duration,
)
from kybernetes.apiserver.registry import events
from kybernetes.errors import BadRequest

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def ago(**kw: float) -> str:
    return (NOW - timedelta(**kw)).strftime("%Y-%m-%dT%H:%M:%SZ")


def md(name: str, namespace: str | None = "default", **extra: Any) -> dict[str, Any]:
    m: dict[str, Any] = {"name": name, "creationTimestamp": ago(minutes=5), "uid": "u-" + name,
                         "resourceVersion": "42"}
    if namespace:
        m["namespace"] = namespace
    m.update(extra)
    return m


def names(group: str, kind: str, wide: bool = True) -> list[str]:
    return [c.name for c in columns_for(group, kind) if wide or c.priority == 0]


# ------------------------------------------------------------------------------------ HumanDuration


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (timedelta(seconds=-5), "<invalid>"),
        (timedelta(seconds=-2), "<invalid>"),
        (timedelta(seconds=-1.5), "0s"),
        (timedelta(seconds=-1), "0s"),
        (timedelta(0), "0s"),
        (timedelta(seconds=0.9), "0s"),
        (timedelta(seconds=5), "5s"),
        (timedelta(seconds=119), "119s"),
        (timedelta(seconds=120), "2m"),
        (timedelta(seconds=182), "3m2s"),
        (timedelta(minutes=9, seconds=59), "9m59s"),
        (timedelta(minutes=10), "10m"),
        (timedelta(minutes=10, seconds=30), "10m"),
        (timedelta(minutes=179), "179m"),
        (timedelta(hours=3), "3h"),
        (timedelta(hours=3, minutes=5), "3h5m"),
        (timedelta(hours=7, minutes=59), "7h59m"),
        (timedelta(hours=8, minutes=30), "8h"),
        (timedelta(hours=47), "47h"),
        (timedelta(hours=48), "2d"),
        (timedelta(days=2, hours=3), "2d3h"),
        (timedelta(days=7, hours=23), "7d23h"),
        (timedelta(days=8), "8d"),
        (timedelta(days=729), "729d"),
        (timedelta(days=730), "2y"),
        (timedelta(days=731), "2y1d"),
        (timedelta(days=365 * 8), "8y"),
        (timedelta(days=365 * 9 + 100), "9y"),
    ],
)
def test_human_duration(delta: timedelta, expected: str) -> None:
    assert human_duration(delta) == expected


def test_go_float_matches_go_print() -> None:
    assert [go_float(f) for f in (1.5, 100.0, 1e6, 123456.0, 0.0001, 1e-5, -2.25)] == [
        "1.5", "100", "1e+06", "123456", "0.0001", "1e-05", "-2.25",
    ]


def test_label_selector_formatting() -> None:
    assert format_label_selector(None) == "<none>"
    assert format_label_selector({}) == "<none>"
    sel = {
        "matchLabels": {"tier": "web", "app": "x"},
        "matchExpressions": [
            {"key": "env", "operator": "In", "values": ["prod", "dev"]},
            {"key": "zone", "operator": "NotIn", "values": ["b"]},
            {"key": "gpu", "operator": "Exists"},
            {"key": "old", "operator": "DoesNotExist"},
        ],
    }
    assert format_label_selector(sel) == "app=x,env in (dev,prod),gpu,!old,tier=web,zone notin (b)"
    assert format_label_selector({"matchExpressions": [{"key": "a", "operator": "Bogus"}]}) == "<error>"


# ---------------------------------------------------------------------------------------------- Pod


def pod(status: dict[str, Any], *, spec: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": md("web-0", **meta),
        "spec": spec or {"containers": [{"name": "app", "image": "nginx"}]},
        "status": status,
    }


def pod_cells(p: dict[str, Any]) -> list[Any]:
    return row_cells("", "Pod", p, NOW)


def test_pod_columns() -> None:
    cols = columns_for("", "Pod")
    assert [c.name for c in cols] == [
        "Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node", "Readiness Gates",
    ]
    assert [c.priority for c in cols] == [0, 0, 0, 0, 0, 1, 1, 1, 1]
    assert cols[0].format == "name"
    assert all(c.format == "" for c in cols[1:])
    assert {c.type for c in cols} == {"string"}


def test_pod_pending_unscheduled() -> None:
    p = pod({"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]})
    assert pod_cells(p) == ["web-0", "0/1", "Pending", "0", "5m", "<none>", "<none>", "<none>", "<none>"]


def test_pod_scheduling_gated() -> None:
    p = pod({"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]})
    assert pod_cells(p)[2] == "SchedulingGated"


def test_pod_container_creating() -> None:
    p = pod({
        "phase": "Pending",
        "containerStatuses": [{"name": "app", "ready": False, "restartCount": 0,
                               "state": {"waiting": {"reason": "ContainerCreating"}}}],
    }, spec={"nodeName": "node-1", "containers": [{"name": "app", "image": "nginx"}]})
    assert pod_cells(p)[:5] == ["web-0", "0/1", "ContainerCreating", "0", "5m"]
    assert pod_cells(p)[6] == "node-1"


def test_pod_running() -> None:
    p = pod({
        "phase": "Running",
        "podIP": "10.244.0.5",
        "podIPs": [{"ip": "10.244.0.5"}, {"ip": "fd00::5"}],
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [{"name": "app", "ready": True, "restartCount": 0, "started": True,
                               "state": {"running": {"startedAt": ago(minutes=4)}}}],
    }, spec={"nodeName": "node-1", "containers": [{"name": "app", "image": "nginx"}]})
    assert pod_cells(p) == ["web-0", "1/1", "Running", "0", "5m", "10.244.0.5", "node-1", "<none>", "<none>"]


def test_pod_ip_falls_back_to_pod_ip() -> None:
    p = pod({"phase": "Running", "podIP": "10.0.0.9"})
    assert pod_cells(p)[5] == "10.0.0.9"


def test_pod_crash_loop_with_last_restart() -> None:
    p = pod({
        "phase": "Running",
        "containerStatuses": [{
            "name": "app", "ready": False, "restartCount": 3,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                                         "finishedAt": ago(minutes=2)}},
        }],
    })
    assert pod_cells(p)[1:4] == ["0/1", "CrashLoopBackOff", "3 (2m ago)"]


def test_pod_restarts_without_last_state_have_no_suffix() -> None:
    p = pod({"phase": "Running", "containerStatuses": [
        {"name": "app", "ready": True, "restartCount": 2, "state": {"running": {}}}]})
    assert pod_cells(p)[1:4] == ["1/1", "Running", "2"]


def test_pod_completed() -> None:
    p = pod({
        "phase": "Succeeded",
        "containerStatuses": [{"name": "app", "ready": False, "restartCount": 0,
                               "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}],
    })
    assert pod_cells(p)[1:4] == ["0/1", "Completed", "0"]
    table = to_table("", "Pod", [p], now=NOW)
    assert table["rows"][0]["conditions"] == [{
        "type": "Completed", "status": "True", "reason": "Succeeded",
        "message": "The pod has completed successfully.",
    }]


def test_pod_terminated_without_reason() -> None:
    p = pod({"phase": "Failed", "containerStatuses": [
        {"name": "app", "state": {"terminated": {"exitCode": 137}}}]})
    assert pod_cells(p)[2] == "ExitCode:137"
    p = pod({"phase": "Failed", "containerStatuses": [
        {"name": "app", "state": {"terminated": {"exitCode": 0, "signal": 9}}}]})
    assert pod_cells(p)[2] == "Signal:9"


def test_pod_completed_container_next_to_running_one() -> None:
    p = pod({
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "False"}],
        "containerStatuses": [
            {"name": "a", "ready": False, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
            {"name": "b", "ready": True, "state": {"running": {}}},
        ],
    }, spec={"containers": [{"name": "a"}, {"name": "b"}]})
    assert pod_cells(p)[1:3] == ["1/2", "NotReady"]


def test_pod_init_states() -> None:
    spec = {"initContainers": [{"name": "init", "image": "busybox"}],
            "containers": [{"name": "app", "image": "nginx"}]}
    waiting = pod({"phase": "Pending", "initContainerStatuses": [
        {"name": "init", "ready": False, "restartCount": 0, "state": {"running": {}}}]}, spec=spec)
    assert pod_cells(waiting)[1:4] == ["0/1", "Init:0/1", "0"]

    pulling = pod({"phase": "Pending", "initContainerStatuses": [
        {"name": "init", "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}, spec=spec)
    assert pod_cells(pulling)[2] == "Init:ImagePullBackOff"

    failed = pod({"phase": "Pending", "initContainerStatuses": [
        {"name": "init", "restartCount": 2,
         "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(seconds=30)}},
         "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}, spec=spec)
    assert pod_cells(failed)[2:4] == ["Init:Error", "2 (30s ago)"]

    crashed = pod({"phase": "Pending", "initContainerStatuses": [
        {"name": "init", "state": {"terminated": {"exitCode": 3}}}]}, spec=spec)
    assert pod_cells(crashed)[2] == "Init:ExitCode:3"

    done = pod({
        "phase": "Running",
        "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
        "initContainerStatuses": [{"name": "init", "restartCount": 1,
                                   "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}],
        "containerStatuses": [{"name": "app", "ready": True, "state": {"running": {}}}],
    }, spec=spec)
    # Restarts of finished (non-sidecar) init containers no longer count.
    assert pod_cells(done)[1:4] == ["1/1", "Running", "0"]


def test_pod_sidecar_counts_towards_ready_and_total() -> None:
    spec = {"initContainers": [{"name": "proxy", "restartPolicy": "Always"}], "containers": [{"name": "app"}]}
    p = pod({
        "phase": "Running",
        "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
        "initContainerStatuses": [{"name": "proxy", "ready": True, "started": True, "restartCount": 1,
                                   "lastState": {"terminated": {"finishedAt": ago(minutes=3)}},
                                   "state": {"running": {}}}],
        "containerStatuses": [{"name": "app", "ready": True, "state": {"running": {}}}],
    }, spec=spec)
    assert pod_cells(p)[1:4] == ["2/2", "Running", "1 (3m ago)"]


def test_pod_terminating_and_node_lost() -> None:
    running = {"phase": "Running", "containerStatuses": [
        {"name": "app", "ready": True, "state": {"running": {}}}]}
    p = pod(running, deletionTimestamp=ago(seconds=10))
    assert pod_cells(p)[2] == "Terminating"
    lost = pod({**running, "reason": "NodeLost"}, deletionTimestamp=ago(seconds=10))
    assert pod_cells(lost)[2] == "Unknown"
    finished = pod({"phase": "Succeeded"}, deletionTimestamp=ago(seconds=10))
    assert pod_cells(finished)[2] == "Succeeded"


def test_pod_evicted_reason_and_readiness_gates() -> None:
    p = pod({"phase": "Failed", "reason": "Evicted"})
    assert pod_cells(p)[2] == "Evicted"
    gated = pod(
        {"phase": "Running", "nominatedNodeName": "n2",
         "conditions": [{"type": "example.com/lb", "status": "True"}]},
        spec={"containers": [{"name": "app"}],
              "readinessGates": [{"conditionType": "example.com/lb"}, {"conditionType": "x/y"}]},
    )
    assert pod_cells(gated)[7:] == ["n2", "1/2"]


# --------------------------------------------------------------------------------------------- Node


def test_node() -> None:
    node = {
        "kind": "Node",
        "metadata": md("cp-1", None, labels={
            "node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/etcd": "",
            "kubernetes.io/hostname": "cp-1"}),
        "spec": {"unschedulable": True},
        "status": {
            "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
            "addresses": [{"type": "Hostname", "address": "cp-1"}, {"type": "InternalIP", "address": "10.0.0.2"}],
            "nodeInfo": {"kubeletVersion": "v1.32.0", "osImage": "Debian GNU/Linux 12 (bookworm)",
                         "kernelVersion": "6.1.0", "containerRuntimeVersion": "containerd://1.7.0"},
        },
    }
    assert names("", "Node", wide=False) == ["Name", "Status", "Roles", "Age", "Version"]
    assert names("", "Node")[5:] == ["Internal-IP", "External-IP", "OS-Image", "Kernel-Version",
                                     "Container-Runtime"]
    assert row_cells("", "Node", node, NOW) == [
        "cp-1", "Ready,SchedulingDisabled", "control-plane,etcd", "5m", "v1.32.0",
        "10.0.0.2", "<none>", "Debian GNU/Linux 12 (bookworm)", "6.1.0", "containerd://1.7.0",
    ]
    bare = {"metadata": {"name": "n", "labels": {"kubernetes.io/role": "worker"}},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}
    assert row_cells("", "Node", bare, NOW) == [
        "n", "NotReady", "worker", "<unknown>", "", "<none>", "<none>", "<unknown>", "<unknown>", "<unknown>",
    ]
    assert row_cells("", "Node", {"metadata": {"name": "x"}}, NOW)[1:3] == ["Unknown", "<none>"]


# ------------------------------------------------------------------------------------ simple kinds


def test_namespace_configmap_secret_serviceaccount() -> None:
    ns = {"metadata": md("dev", None), "status": {"phase": "Active"}}
    assert names("", "Namespace") == ["Name", "Status", "Age"]
    assert row_cells("", "Namespace", ns, NOW) == ["dev", "Active", "5m"]

    cm = {"metadata": md("cfg"), "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}
    assert names("", "ConfigMap") == ["Name", "Data", "Age"]
    assert row_cells("", "ConfigMap", cm, NOW) == ["cfg", 3, "5m"]

    secret = {"metadata": md("tls"), "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}}
    assert names("", "Secret") == ["Name", "Type", "Data", "Age"]
    assert row_cells("", "Secret", secret, NOW) == ["tls", "kubernetes.io/tls", 2, "5m"]

    sa = {"metadata": md("default")}
    assert names("", "ServiceAccount") == ["Name", "Secrets", "Age"]
    assert row_cells("", "ServiceAccount", sa, NOW) == ["default", 0, "5m"]


# ------------------------------------------------------------------------------------------ Service


def svc(spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": md("web"), "spec": spec, "status": status or {}}


def test_service_columns() -> None:
    assert names("", "Service") == ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age", "Selector"]


def test_service_cluster_ip() -> None:
    s = svc({"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
             "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
             "selector": {"k8s-app": "kube-dns"}})
    assert row_cells("", "Service", s, NOW) == [
        "web", "ClusterIP", "10.96.0.10", "<none>", "53/UDP,53/TCP", "5m", "k8s-app=kube-dns"]


def test_service_node_port_headless_external_name() -> None:
    s = svc({"type": "NodePort", "clusterIP": "10.96.1.1",
             "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]})
    assert row_cells("", "Service", s, NOW)[1:5] == ["NodePort", "10.96.1.1", "<none>", "80:30080/TCP"]
    headless = svc({"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"]})
    assert row_cells("", "Service", headless, NOW)[2:7] == ["None", "<none>", "<none>", "5m", "<none>"]
    untyped = svc({"clusterIP": "10.96.3.3", "ports": [{"port": 8080}]})
    assert row_cells("", "Service", untyped, NOW)[1:5] == ["ClusterIP", "10.96.3.3", "<none>", "8080/TCP"]
    ext = svc({"type": "ExternalName", "externalName": "db.example.com"})
    assert row_cells("", "Service", ext, NOW)[1:4] == ["ExternalName", "<none>", "db.example.com"]


def test_service_load_balancer() -> None:
    spec = {"type": "LoadBalancer", "clusterIP": "10.96.2.2", "ports": [{"port": 443, "nodePort": 31443}]}
    assert row_cells("", "Service", svc(spec), NOW)[3:5] == ["<pending>", "443:31443/TCP"]
    status = {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}, {"hostname": "lb.example.com"},
                                           {"ip": "203.0.113.9"}]}}
    assert row_cells("", "Service", svc(spec, status), NOW)[3] == "203.0.113.9,lb.example.com"
    both = {**spec, "externalIPs": ["198.51.100.1"]}
    assert row_cells("", "Service", svc(both, status), NOW)[3] == "203.0.113.9,lb.example.com,198.51.100.1"


# -------------------------------------------------------------------------------- Endpoints & slices


def test_endpoints() -> None:
    ep = {"metadata": md("web"), "subsets": [
        {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}, {"port": 443}]}]}
    assert names("", "Endpoints") == ["Name", "Endpoints", "Age"]
    assert row_cells("", "Endpoints", ep, NOW) == [
        "web", "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more...", "5m"]
    assert row_cells("", "Endpoints", {"metadata": md("none")}, NOW)[1] == "<none>"
    v6 = {"metadata": md("v6"), "subsets": [{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 8080}]}]}
    assert row_cells("", "Endpoints", v6, NOW)[1] == "[fd00::1]:8080"
    headless = {"metadata": md("h"), "subsets": [{"addresses": [{"ip": "10.0.0.7"}]}]}
    assert row_cells("", "Endpoints", headless, NOW)[1] == "10.0.0.7"


def test_endpoint_slice() -> None:
    es = {"metadata": md("web-abc12"), "addressType": "IPv4",
          "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "metrics"}],
          "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}]}
    assert names("discovery.k8s.io", "EndpointSlice") == ["Name", "AddressType", "Ports", "Endpoints", "Age"]
    assert row_cells("discovery.k8s.io", "EndpointSlice", es, NOW) == [
        "web-abc12", "IPv4", "80,metrics", "10.0.0.1,10.0.0.2", "5m"]
    empty = {"metadata": md("e"), "addressType": "IPv4"}
    assert row_cells("discovery.k8s.io", "EndpointSlice", empty, NOW)[2:4] == ["<unset>", "<unset>"]


# -------------------------------------------------------------------------------------------- Events


def test_core_event() -> None:
    cols = columns_for("", "Event")
    assert [c.name for c in cols] == ["Last Seen", "Type", "Reason", "Object", "Subobject", "Source",
                                      "Message", "First Seen", "Count", "Name"]
    assert [c.name for c in cols if c.priority == 0] == ["Last Seen", "Type", "Reason", "Object", "Message"]
    assert [c.format for c in cols].index("name") == 9
    ev = {
        "metadata": md("web-0.17c3"),
        "involvedObject": {"kind": "Pod", "name": "web-0", "namespace": "default",
                           "fieldPath": "spec.containers{app}"},
        "reason": "Pulled", "message": "Successfully pulled image \"nginx\"\n", "type": "Normal",
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": ago(minutes=10), "lastTimestamp": ago(seconds=30), "count": 4,
    }
    assert row_cells("", "Event", ev, NOW) == [
        "30s", "Normal", "Pulled", "pod/web-0", "spec.containers{app}", "kubelet, node-1",
        "Successfully pulled image \"nginx\"", "10m", 4, "web-0.17c3",
    ]


def test_event_with_series_and_event_time() -> None:
    ev = {
        "metadata": md("x"), "type": "Warning", "reason": "BackOff", "message": "Back-off",
        "involvedObject": {"kind": "Node"},
        "eventTime": ago(minutes=20), "reportingComponent": "kubelet", "reportingInstance": "node-2",
        "series": {"count": 7, "lastObservedTime": ago(minutes=1)},
    }
    assert row_cells("", "Event", ev, NOW) == [
        "60s", "Warning", "BackOff", "node", "", "kubelet, node-2", "Back-off", "20m", 7, "x"]


def test_events_k8s_io_event() -> None:
    ev = {
        "apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": md("e1"),
        "eventTime": ago(minutes=3), "reportingController": "default-scheduler",
        "reportingInstance": "default-scheduler-cp-1", "action": "Binding", "reason": "Scheduled",
        "regarding": {"kind": "Pod", "name": "web-0"}, "note": "Successfully assigned default/web-0",
        "type": "Normal",
    }
    # Served through events.k8s.io/v1, an event is printed from its stored (core) form.
    assert row_cells("", "Event", events.to_core(ev), NOW) == [
        "3m", "Normal", "Scheduled", "pod/web-0", "", "default-scheduler, default-scheduler-cp-1",
        "Successfully assigned default/web-0", "3m", 1, "e1",
    ]


# ------------------------------------------------------------------------------------ quota & volumes


def test_resource_quota() -> None:
    rq = {"metadata": md("q"), "status": {
        "hard": {"requests.cpu": "2", "limits.memory": "2Gi", "pods": "10", "limits.cpu": "4"},
        "used": {"requests.cpu": "500m", "pods": "3", "limits.cpu": "1"}}}
    assert names("", "ResourceQuota") == ["Name", "Request", "Limit", "Age"]
    assert row_cells("", "ResourceQuota", rq, NOW) == [
        "q", "pods: 3/10, requests.cpu: 500m/2", "limits.cpu: 1/4, limits.memory: 0/2Gi", "5m"]


def test_persistent_volume_and_claim() -> None:
    pv = {"metadata": md("pv-1", None), "spec": {
        "capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
        "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "fast",
        "claimRef": {"namespace": "default", "name": "data"}, "volumeMode": "Filesystem"},
        "status": {"phase": "Bound"}}
    assert names("", "PersistentVolume") == [
        "Name", "Capacity", "Access Modes", "Reclaim Policy", "Status", "Claim", "StorageClass",
        "VolumeAttributesClass", "Reason", "Age", "VolumeMode"]
    assert row_cells("", "PersistentVolume", pv, NOW) == [
        "pv-1", "10Gi", "RWO,RWX", "Retain", "Bound", "default/data", "fast", "<unset>", "", "5m",
        "Filesystem"]

    pvc = {"metadata": md("data"), "spec": {"volumeName": "pv-1", "storageClassName": "fast",
                                           "resources": {"requests": {"storage": "5Gi"}}},
           "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "10Gi"}}}
    assert names("", "PersistentVolumeClaim") == [
        "Name", "Status", "Volume", "Capacity", "Access Modes", "StorageClass", "VolumeAttributesClass",
        "Age", "VolumeMode"]
    assert row_cells("", "PersistentVolumeClaim", pvc, NOW) == [
        "data", "Bound", "pv-1", "10Gi", "RWO", "fast", "<unset>", "5m", "<unset>"]
    pending = {"metadata": md("p", deletionTimestamp=ago(seconds=1)), "spec": {}, "status": {"phase": "Pending"}}
    assert row_cells("", "PersistentVolumeClaim", pending, NOW)[1:6] == ["Terminating", "", "", "", ""]
    # GetPersistentVolumeClass: a beta annotation present wins, even when it is empty.
    beta = {**pv, "metadata": md("pv-2", None, annotations={"volume.beta.kubernetes.io/storage-class": ""})}
    assert row_cells("", "PersistentVolume", beta, NOW)[6] == ""


# --------------------------------------------------------------------------------------- workloads


def template(*containers: tuple[str, str]) -> dict[str, Any]:
    return {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": n, "image": i} for n, i in containers]}}


def test_deployment() -> None:
    d = {"metadata": md("web"), "spec": {
        "replicas": 3, "selector": {"matchLabels": {"app": "web"}},
        "template": template(("app", "nginx:1.27"), ("sidecar", "envoy:1.30"))},
        "status": {"replicas": 3, "updatedReplicas": 3, "readyReplicas": 2, "availableReplicas": 2}}
    assert names("apps", "Deployment") == [
        "Name", "Ready", "Up-to-date", "Available", "Age", "Containers", "Images", "Selector"]
    assert row_cells("apps", "Deployment", d, NOW) == [
        "web", "2/3", 3, 2, "5m", "app,sidecar", "nginx:1.27,envoy:1.30", "app=web"]
    fresh = {"metadata": md("new"), "spec": {"template": template()}}
    assert row_cells("apps", "Deployment", fresh, NOW)[1:4] == ["0/1", 0, 0]


def test_replica_set_stateful_set_daemon_set_rc() -> None:
    rs = {"metadata": md("web-5d4f"), "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                                              "template": template(("app", "nginx"))},
          "status": {"replicas": 2, "readyReplicas": 1}}
    assert names("apps", "ReplicaSet", wide=False) == ["Name", "Desired", "Current", "Ready", "Age"]
    assert row_cells("apps", "ReplicaSet", rs, NOW) == ["web-5d4f", 2, 2, 1, "5m", "app", "nginx", "app=web"]

    sts = {"metadata": md("db"), "spec": {"replicas": 3, "template": template(("pg", "postgres:16"))},
           "status": {"readyReplicas": 3}}
    assert names("apps", "StatefulSet") == ["Name", "Ready", "Age", "Containers", "Images"]
    assert row_cells("apps", "StatefulSet", sts, NOW) == ["db", "3/3", "5m", "pg", "postgres:16"]

    ds = {"metadata": md("fluentd"), "spec": {
        "selector": {"matchLabels": {"name": "fluentd"}},
        "template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"},
                              "containers": [{"name": "f", "image": "fluentd"}]}}},
        "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                   "updatedNumberScheduled": 3, "numberAvailable": 2}}
    assert names("apps", "DaemonSet", wide=False) == [
        "Name", "Desired", "Current", "Ready", "Up-to-date", "Available", "Node Selector", "Age"]
    assert row_cells("apps", "DaemonSet", ds, NOW) == [
        "fluentd", 3, 3, 2, 3, 2, "kubernetes.io/os=linux", "5m", "f", "fluentd", "name=fluentd"]

    rc = {"metadata": md("old"), "spec": {"replicas": 1, "selector": {"app": "old"},
                                         "template": template(("c", "img"))},
          "status": {"replicas": 1, "readyReplicas": 1}}
    assert row_cells("", "ReplicationController", rc, NOW) == ["old", 1, 1, 1, "5m", "c", "img", "app=old"]


def test_controller_revision() -> None:
    cr = {"metadata": md("web-7b9", ownerReferences=[
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "controller": True, "uid": "x"}]),
        "revision": 2}
    assert names("apps", "ControllerRevision") == ["Name", "Controller", "Revision", "Age"]
    assert row_cells("apps", "ControllerRevision", cr, NOW) == ["web-7b9", "statefulset.apps/web", 2, "5m"]
    orphan = {"metadata": md("x"), "revision": 1}
    assert row_cells("apps", "ControllerRevision", orphan, NOW)[1] == "<none>"


def test_job() -> None:
    assert names("batch", "Job") == [
        "Name", "Status", "Completions", "Duration", "Age", "Containers", "Images", "Selector"]
    spec = {"completions": 1, "parallelism": 1,
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "abc"}},
            "template": template(("pi", "perl"))}
    done = {"metadata": md("pi"), "spec": spec, "status": {
        "succeeded": 1, "startTime": ago(minutes=4), "completionTime": ago(minutes=3, seconds=30),
        "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]}}
    assert row_cells("batch", "Job", done, NOW) == [
        "pi", "Complete", "1/1", "30s", "5m", "pi", "perl", "batch.kubernetes.io/controller-uid=abc"]
    running = {"metadata": md("r"), "spec": spec, "status": {"startTime": ago(minutes=2), "active": 1}}
    assert row_cells("batch", "Job", running, NOW)[1:4] == ["Running", "0/1", "2m"]
    failed = {"metadata": md("f"), "spec": spec, "status": {
        "conditions": [{"type": "FailureTarget", "status": "True"}, {"type": "Failed", "status": "True"}]}}
    assert row_cells("batch", "Job", failed, NOW)[1:4] == ["Failed", "0/1", ""]
    suspended = {"metadata": md("s"), "spec": {**spec, "completions": None, "parallelism": 3},
                 "status": {"conditions": [{"type": "Suspended", "status": "True"}]}}
    assert row_cells("batch", "Job", suspended, NOW)[1:3] == ["Suspended", "0/1 of 3"]


def test_cron_job() -> None:
    cj = {"metadata": md("hello"), "spec": {
        "schedule": "*/5 * * * *", "suspend": False,
        "jobTemplate": {"spec": {"template": template(("hello", "busybox"))}}},
        "status": {"active": [{"name": "hello-1"}], "lastScheduleTime": ago(minutes=2)}}
    assert names("batch", "CronJob", wide=False) == [
        "Name", "Schedule", "Timezone", "Suspend", "Active", "Last Schedule", "Age"]
    assert row_cells("batch", "CronJob", cj, NOW) == [
        "hello", "*/5 * * * *", "<none>", "False", 1, "2m", "5m", "hello", "busybox", "<none>"]
    tz = {"metadata": md("tz"), "spec": {"schedule": "0 0 * * *", "timeZone": "Etc/UTC"}}
    assert row_cells("batch", "CronJob", tz, NOW)[2:6] == ["Etc/UTC", "<unset>", 0, "<none>"]


def test_hpa() -> None:
    hpa = {"metadata": md("web"), "spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "minReplicas": 1, "maxReplicas": 10,
        "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": 80}}}]},
        "status": {"currentReplicas": 2, "currentMetrics": [
            {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 35}}}]}}
    assert names("autoscaling", "HorizontalPodAutoscaler") == [
        "Name", "Reference", "Targets", "MinPods", "MaxPods", "Replicas", "Age"]
    assert row_cells("autoscaling", "HorizontalPodAutoscaler", hpa, NOW) == [
        "web", "Deployment/web", "cpu: 35%/80%", "1", 10, 2, "5m"]
    unknown = {"metadata": md("u"), "spec": {
        "scaleTargetRef": {"kind": "Deployment", "name": "u"}, "maxReplicas": 3,
        "metrics": [
            {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue",
                                                                           "averageValue": "500Mi"}}},
            {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"averageValue": "1k"}}},
            {"type": "External", "external": {"metric": {"name": "q"}, "target": {"value": "30"}}},
        ]}}
    assert row_cells("autoscaling", "HorizontalPodAutoscaler", unknown, NOW)[2:4] == [
        "memory: <unknown>/500Mi, <unknown>/1k + 1 more...", "<unset>"]


# ------------------------------------------------------------------------------------ other groups


def test_lease_priority_class_pdb() -> None:
    lease = {"metadata": md("kube-scheduler", "kube-system"), "spec": {"holderIdentity": "cp-1_abc"}}
    assert names("coordination.k8s.io", "Lease") == ["Name", "Holder", "Age"]
    assert row_cells("coordination.k8s.io", "Lease", lease, NOW) == ["kube-scheduler", "cp-1_abc", "5m"]

    pc = {"metadata": md("system-cluster-critical", None), "value": 2000000000,
          "preemptionPolicy": "PreemptLowerPriority"}
    assert names("scheduling.k8s.io", "PriorityClass") == [
        "Name", "Value", "Global-Default", "Age", "PreemptionPolicy"]
    assert row_cells("scheduling.k8s.io", "PriorityClass", pc, NOW) == [
        "system-cluster-critical", 2000000000, False, "5m", "PreemptLowerPriority"]

    pdb = {"metadata": md("web"), "spec": {"minAvailable": "50%"}, "status": {"disruptionsAllowed": 1}}
    assert names("policy", "PodDisruptionBudget") == [
        "Name", "Min Available", "Max Unavailable", "Allowed Disruptions", "Age"]
    assert row_cells("policy", "PodDisruptionBudget", pdb, NOW) == ["web", "50%", "N/A", 1, "5m"]
    pdb2 = {"metadata": md("db"), "spec": {"maxUnavailable": 1}}
    assert row_cells("policy", "PodDisruptionBudget", pdb2, NOW)[1:4] == ["N/A", "1", 0]


def test_ingress_ingress_class_network_policy() -> None:
    ing = {"metadata": md("web"), "spec": {
        "ingressClassName": "nginx", "tls": [{"hosts": ["a.example.com"]}],
        "rules": [{"host": "a.example.com"}, {"host": "b.example.com"}, {}, {"host": "c.example.com"},
                  {"host": "d.example.com"}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}}
    assert names("networking.k8s.io", "Ingress") == ["Name", "Class", "Hosts", "Address", "Ports", "Age"]
    assert row_cells("networking.k8s.io", "Ingress", ing, NOW) == [
        "web", "nginx", "a.example.com,b.example.com,c.example.com + 2 more...", "192.0.2.10", "80, 443", "5m"]
    bare = {"metadata": md("b"), "spec": {"defaultBackend": {}}}
    assert row_cells("networking.k8s.io", "Ingress", bare, NOW)[1:5] == ["<none>", "*", "", "80"]

    ic = {"metadata": md("nginx", None), "spec": {"controller": "k8s.io/ingress-nginx", "parameters": {
        "apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "p"}}}
    assert names("networking.k8s.io", "IngressClass") == ["Name", "Controller", "Parameters", "Age"]
    assert row_cells("networking.k8s.io", "IngressClass", ic, NOW) == [
        "nginx", "k8s.io/ingress-nginx", "IngressParameters.k8s.example.com/p", "5m"]

    np = {"metadata": md("deny"), "spec": {"podSelector": {}}}
    assert names("networking.k8s.io", "NetworkPolicy") == ["Name", "Pod-Selector", "Age"]
    assert row_cells("networking.k8s.io", "NetworkPolicy", np, NOW) == ["deny", "<none>", "5m"]
    np2 = {"metadata": md("web"), "spec": {"podSelector": {"matchLabels": {"app": "web"}}}}
    assert row_cells("networking.k8s.io", "NetworkPolicy", np2, NOW)[1] == "app=web"


def test_storage_class() -> None:
    sc = {"metadata": md("standard", None, annotations={
        "storageclass.kubernetes.io/is-default-class": "true"}),
        "provisioner": "rancher.io/local-path", "volumeBindingMode": "WaitForFirstConsumer"}
    assert names("storage.k8s.io", "StorageClass") == [
        "Name", "Provisioner", "ReclaimPolicy", "VolumeBindingMode", "AllowVolumeExpansion", "Age"]
    assert row_cells("storage.k8s.io", "StorageClass", sc, NOW) == [
        "standard (default)", "rancher.io/local-path", "Delete", "WaitForFirstConsumer", False, "5m"]
    other = {"metadata": md("fast", None), "provisioner": "x", "reclaimPolicy": "Retain",
             "allowVolumeExpansion": True}
    assert row_cells("storage.k8s.io", "StorageClass", other, NOW)[:5] == [
        "fast", "x", "Retain", "Immediate", True]


def test_role_bindings() -> None:
    rb = {"metadata": md("admins"), "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                               "kind": "ClusterRole", "name": "admin"},
          "subjects": [{"kind": "User", "name": "alice"}, {"kind": "User", "name": "bob"},
                       {"kind": "Group", "name": "ops"},
                       {"kind": "ServiceAccount", "name": "ci", "namespace": "tools"}]}
    assert names("rbac.authorization.k8s.io", "RoleBinding") == [
        "Name", "Role", "Age", "Users", "Groups", "ServiceAccounts"]
    assert row_cells("rbac.authorization.k8s.io", "RoleBinding", rb, NOW) == [
        "admins", "ClusterRole/admin", "5m", "alice, bob", "ops", "tools/ci"]
    crb = {"metadata": md("view", None), "roleRef": {"kind": "ClusterRole", "name": "view"}}
    assert row_cells("rbac.authorization.k8s.io", "ClusterRoleBinding", crb, NOW) == [
        "view", "ClusterRole/view", "5m", "", "", ""]


@pytest.mark.parametrize(
    ("group", "kind"),
    [
        ("rbac.authorization.k8s.io", "Role"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("", "LimitRange"),
        ("apiextensions.k8s.io", "CustomResourceDefinition"),
        ("example.com", "Unknown"),
    ],
)
def test_default_table_kinds(group: str, kind: str) -> None:
    assert not has_printer(group, kind)
    cols = columns_for(group, kind)
    assert [(c.name, c.type, c.format) for c in cols] == [("Name", "string", "name"), ("Created At", "date", "")]
    obj = {"metadata": {"name": "thing", "creationTimestamp": "2024-04-30T10:20:30Z"}}
    assert row_cells(group, kind, obj, NOW) == ["thing", "2024-04-30T10:20:30Z"]
    assert row_cells(group, kind, {"metadata": {"name": "x"}}, NOW) == ["x", "0001-01-01T00:00:00Z"]


def test_every_builtin_printer_has_matching_cell_count() -> None:
    kinds = [("", k) for k in ("Pod", "PodTemplate", "Node", "Namespace", "ConfigMap", "Secret",
                              "ServiceAccount", "Service", "Endpoints", "Event", "ResourceQuota",
                              "PersistentVolume", "PersistentVolumeClaim", "ReplicationController")]
    kinds += [("apps", "Deployment"), ("apps", "ReplicaSet"), ("apps", "StatefulSet"), ("apps", "DaemonSet"),
              ("apps", "ControllerRevision"), ("batch", "Job"), ("batch", "CronJob"),
              ("autoscaling", "HorizontalPodAutoscaler"), ("coordination.k8s.io", "Lease"),
              ("discovery.k8s.io", "EndpointSlice"),
              ("scheduling.k8s.io", "PriorityClass"), ("policy", "PodDisruptionBudget"),
              ("networking.k8s.io", "Ingress"), ("networking.k8s.io", "IngressClass"),
              ("networking.k8s.io", "NetworkPolicy"), ("storage.k8s.io", "StorageClass"),
              ("rbac.authorization.k8s.io", "RoleBinding"), ("rbac.authorization.k8s.io", "ClusterRoleBinding")]
    for group, kind in kinds:
        assert has_printer(group, kind), kind
        cols = columns_for(group, kind)
        # An empty object must not crash any printer, and must fill every column.
        assert len(row_cells(group, kind, {"metadata": {"name": "n"}}, NOW)) == len(cols), kind
        assert sum(c.format == "name" for c in cols) == 1, kind


# ------------------------------------------------------------------------------------------- Table


def test_table_shape_metadata_rows() -> None:
    objs = [
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": md("a", labels={"app": "x"}), "data": {"k": "v"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": md("b", "other")},
    ]
    table = to_table("", "ConfigMap", objs, now=NOW,
                     list_meta={"resourceVersion": "99", "continue": "", "remainingItemCount": None})
    assert table["kind"] == "Table"
    assert table["apiVersion"] == "meta.k8s.io/v1"
    assert table["metadata"] == {"resourceVersion": "99"}
    assert table["columnDefinitions"][0] == {
        "name": "Name", "type": "string", "format": "name",
        "description": table["columnDefinitions"][0]["description"], "priority": 0}
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Data", "Age"]
    assert set(table["columnDefinitions"][1]) == {"name", "type", "format", "description", "priority"}
    assert table["rows"][0]["cells"] == ["a", 1, "5m"]
    assert table["rows"][0]["object"] == {
        "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": objs[0]["metadata"]}
    assert table["rows"][1]["object"]["metadata"]["namespace"] == "other"
    assert "conditions" not in table["rows"][0]


def test_table_include_object_variants() -> None:
    obj = {"apiVersion": "v1", "kind": "Secret", "metadata": md("s"), "type": "Opaque"}
    assert to_table("", "Secret", [obj], now=NOW, include_object="None")["rows"][0]["object"] is None
    assert to_table("", "Secret", [obj], now=NOW, include_object="Object")["rows"][0]["object"] == obj
    meta_row = to_table("", "Secret", [obj], now=NOW, include_object="")["rows"][0]["object"]
    assert meta_row["kind"] == "PartialObjectMetadata"
    beta = to_table("", "Secret", [obj], now=NOW, api_version="meta.k8s.io/v1beta1")
    assert beta["apiVersion"] == beta["rows"][0]["object"]["apiVersion"] == "meta.k8s.io/v1beta1"
    with pytest.raises(BadRequest, match="unrecognized includeObject"):
        to_table("", "Secret", [obj], now=NOW, include_object="Everything")


def test_table_single_object_and_no_headers() -> None:
    obj = {"metadata": md("s")}
    table = to_table("", "Secret", [obj], now=NOW, no_headers=True)
    assert table["metadata"] == {"resourceVersion": "42"}
    assert table["columnDefinitions"] is None
    empty = to_table("apps", "Deployment", [], now=NOW, list_meta={"resourceVersion": "7", "continue": "tok"})
    assert empty["rows"] == []
    assert empty["metadata"] == {"resourceVersion": "7", "continue": "tok"}


# ------------------------------------------------------------------------------- custom resources


CRD_COLUMNS = [
    {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
    {"name": "First", "type": "string", "jsonPath": ".status.conditions[0].type", "priority": 1},
    {"name": "App", "type": "string", "jsonPath": ".metadata.labels.app\\.kubernetes\\.io/name",
     "description": "The app label"},
    {"name": "Ratio", "type": "number", "jsonPath": ".spec.ratio"},
    {"name": "Paused", "type": "boolean", "jsonPath": ".spec.paused"},
    {"name": "Ports", "type": "string", "jsonPath": ".spec.ports"},
    {"name": "Started", "type": "date", "jsonPath": ".status.startTime"},
    {"name": "Missing", "type": "string", "jsonPath": ".status.nothing.here"},
]


def crontab() -> dict[str, Any]:
    return {
        "apiVersion": "stable.example.com/v1", "kind": "CronTab",
        "metadata": md("my-tab", labels={"app.kubernetes.io/name": "tabby"}),
        "spec": {"replicas": 3, "ratio": 2, "paused": False, "ports": [{"port": 80, "name": "<web>"}]},
        "status": {"startTime": ago(hours=3, minutes=5),
                   "conditions": [{"type": "Synced", "status": "True"}, {"type": "Ready", "status": "False"}]},
    }


def test_custom_resource_columns_and_cells() -> None:
    cols = columns_for("stable.example.com", "CronTab", CRD_COLUMNS)
    assert [c.name for c in cols] == ["Name", "Replicas", "Ready", "First", "App", "Ratio", "Paused", "Ports",
                                      "Started", "Missing"]
    assert cols[0].format == "name"
    assert cols[3].priority == 1
    assert cols[4].description == "The app label"
    assert cols[8].type == "date"
    cells = row_cells("stable.example.com", "CronTab", crontab(), NOW, CRD_COLUMNS)
    assert cells == ["my-tab", 3, "False", "Synced", "tabby", 2.0, False,
                     '[{"name":"\\u003cweb\\u003e","port":80}]', "3h5m", None]


def test_custom_resource_without_columns_gets_age() -> None:
    cols = columns_for("stable.example.com", "CronTab", [])
    assert [(c.name, c.type, c.format) for c in cols] == [("Name", "string", "name"), ("Age", "date", "")]
    table = to_table("stable.example.com", "CronTab", [crontab()], now=NOW, custom_columns=[])
    assert table["rows"][0]["cells"] == ["my-tab", "5m"]
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Age"]


def test_custom_cell_type_coercion() -> None:
    cols = [{"name": "N", "type": "integer", "jsonPath": ".a"},
            {"name": "S", "type": "string", "jsonPath": ".a"},
            {"name": "D", "type": "date", "jsonPath": ".b"},
            {"name": "B", "type": "boolean", "jsonPath": ".a"},
            {"name": "Bad", "type": "string", "jsonPath": ".x[?(@.y=~/re/)]"}]
    obj = {"metadata": {"name": "o"}, "a": 2.7, "b": "not a time"}
    assert row_cells("g", "K", obj, NOW, cols) == ["o", 2, "2.7", "<invalid>", None, None]


# -------------------------------------------------------------------------------------- JSONPath


JP_OBJ = {
    "metadata": {"name": "n", "labels": {"app": "web", "app.kubernetes.io/name": "tabby"}},
    "spec": {"replicas": 3, "items": [{"n": 1}, {"n": 2}, {"n": 3}], "flag": None},
    "status": {"conditions": [
        {"type": "Synced", "status": "True", "age": 5},
        {"type": "Ready", "status": "False", "age": 9},
    ]},
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (".spec.replicas", 3),
        ("{.spec.replicas}", 3),
        ("$.spec.replicas", 3),
        (".status.conditions[0].type", "Synced"),
        (".status.conditions[-1].type", "Ready"),
        (".status.conditions[5].type", None),
        (".metadata.labels.app", "web"),
        ('.status.conditions[?(@.type=="Ready")].status', "False"),
        (".status.conditions[?(@.type=='Synced')].status", "True"),
        ('.status.conditions[?(@.type!="Synced")].type', "Ready"),
        (".status.conditions[?(@.age>6)].type", "Ready"),
        (".status.conditions[?(@.age<=5)].type", "Synced"),
        ('.status.conditions[?(@.type=="Gone")].status', None),
        (".status.conditions[?(@.age)].type", "Synced"),
        (".metadata.labels.app\\.kubernetes\\.io/name", "tabby"),
        (".metadata.labels['app.kubernetes.io/name']", "tabby"),
        (".spec.items[*].n", 1),
        (".spec.items[1:].n", 2),
        ("..type", "Synced"),
        (".spec.missing.deeper", None),
        (".spec.replicas.deeper", None),
        (".spec.flag", None),
        (".spec[", None),
    ],
)
def test_jsonpath_get(path: str, expected: Any) -> None:
    assert jsonpath_get(JP_OBJ, path) == expected


def test_jsonpath_returns_containers() -> None:
    assert jsonpath_get(JP_OBJ, ".metadata.labels") == JP_OBJ["metadata"]["labels"]
    assert jsonpath_get(JP_OBJ, ".spec.items") == [{"n": 1}, {"n": 2}, {"n": 3}]
