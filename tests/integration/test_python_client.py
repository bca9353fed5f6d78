"""The official ``kubernetes`` Python client against a real ``kyb server`` process."""

from __future__ import annotations

import threading
from typing import Any

import pytest

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client, watch  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402

pytestmark = pytest.mark.integration


def test_crud_configmap_and_secret(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    cm = core.create_namespaced_config_map(namespace, {"metadata": {"name": "c1", "labels": {"app": "x"}},
                                                       "data": {"k": "v"}})
    assert cm.metadata.uid and cm.metadata.resource_version
    got = core.read_namespaced_config_map("c1", namespace)
    assert got.data == {"k": "v"}
    got.data["k"] = "v2"
    updated = core.replace_namespaced_config_map("c1", namespace, got)
    assert int(updated.metadata.resource_version) > int(cm.metadata.resource_version)
    # A stale resourceVersion loses the compare-and-swap: 409.
    got.metadata.resource_version = cm.metadata.resource_version
    with pytest.raises(ApiException) as e:
        core.replace_namespaced_config_map("c1", namespace, got)
    assert e.value.status == 409
    secret = core.create_namespaced_secret(namespace, {"metadata": {"name": "s1"}, "stringData": {"pw": "hunter2"}})
    assert secret.data == {"pw": "aHVudGVyMg=="} and not secret.string_data
    core.delete_namespaced_config_map("c1", namespace)
    with pytest.raises(ApiException) as e:
        core.read_namespaced_config_map("c1", namespace)
    assert e.value.status == 404


def test_list_selectors_and_pagination(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    for i in range(7):
        core.create_namespaced_config_map(namespace, {"metadata": {"name": f"p{i}", "labels": {"n": str(i % 2)}}})
    odd = core.list_namespaced_config_map(namespace, label_selector="n=1")
    assert sorted(c.metadata.name for c in odd.items) == ["p1", "p3", "p5"]
    one = core.list_namespaced_config_map(namespace, field_selector="metadata.name=p4")
    assert [c.metadata.name for c in one.items] == ["p4"]
    names: list[str] = []
    page = core.list_namespaced_config_map(namespace, limit=3)
    names += [c.metadata.name for c in page.items]
    while page.metadata._continue:
        page = core.list_namespaced_config_map(namespace, limit=3, _continue=page.metadata._continue)
        names += [c.metadata.name for c in page.items]
    assert [n for n in names if n.startswith("p")] == [f"p{i}" for i in range(7)]
    with pytest.raises(ApiException) as e:
        core.list_namespaced_config_map(namespace, field_selector="spec.bogus=1")
    assert e.value.status == 400


def test_watch_resumes_from_resource_version(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    first = core.create_namespaced_config_map(namespace, {"metadata": {"name": "w0"}})
    rv = first.metadata.resource_version
    for i in range(1, 4):
        core.create_namespaced_config_map(namespace, {"metadata": {"name": f"w{i}"}})
    core.patch_namespaced_config_map("w1", namespace, {"data": {"x": "y"}})
    core.delete_namespaced_config_map("w2", namespace)
    seen: list[tuple[str, str]] = []
    w = watch.Watch()
    for ev in w.stream(core.list_namespaced_config_map, namespace, resource_version=rv, timeout_seconds=5):
        seen.append((ev["type"], ev["object"].metadata.name))
        if len(seen) == 5:
            w.stop()
    assert seen == [("ADDED", "w1"), ("ADDED", "w2"), ("ADDED", "w3"), ("MODIFIED", "w1"), ("DELETED", "w2")]


def test_watch_sees_live_changes(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    events: list[tuple[str, str]] = []
    ready = threading.Event()

    def run() -> None:
        w = watch.Watch()
        for ev in w.stream(core.list_namespaced_config_map, namespace, timeout_seconds=10,
                           label_selector="live=yes"):
            ready.set()
            events.append((ev["type"], ev["object"].metadata.name))
            if len(events) == 5:
                w.stop()

    core.create_namespaced_config_map(namespace, {"metadata": {"name": "seed", "labels": {"live": "yes"}}})
    t = threading.Thread(target=run)
    t.start()
    assert ready.wait(5)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "live", "labels": {"live": "yes"}}})
    core.patch_namespaced_config_map("live", namespace, {"metadata": {"labels": {"live": "no"}}})
    core.patch_namespaced_config_map("live", namespace, {"metadata": {"labels": {"live": "yes"}}})
    core.delete_namespaced_config_map("live", namespace)
    t.join(15)
    # Leaving the selector is a DELETED event and coming back an ADDED one, as in Kubernetes.
    assert events == [("ADDED", "seed"), ("ADDED", "live"), ("DELETED", "live"), ("ADDED", "live"),
                      ("DELETED", "live")]


def test_deployment_patch_and_scale(api: client.ApiClient, namespace: str) -> None:
    apps = client.AppsV1Api(api)
    body: dict[str, Any] = {
        "metadata": {"name": "d1"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}},
                 "template": {"metadata": {"labels": {"a": "b"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
    }
    d = apps.create_namespaced_deployment(namespace, body)
    assert d.spec.strategy.rolling_update.max_surge == "25%"
    apps.patch_namespaced_deployment("d1", namespace, {"spec": {"template": {"spec": {"containers": [
        {"name": "c", "image": "busybox:1.36"}]}}}})
    d = apps.read_namespaced_deployment("d1", namespace)
    assert d.spec.template.spec.containers[0].image == "busybox:1.36" and d.metadata.generation == 2
    scale = apps.read_namespaced_deployment_scale("d1", namespace)
    assert scale.spec.replicas == 1 and scale.status.selector == "a=b"
    apps.patch_namespaced_deployment_scale("d1", namespace, {"spec": {"replicas": 4}})
    assert apps.read_namespaced_deployment("d1", namespace).spec.replicas == 4
    status = apps.read_namespaced_deployment_status("d1", namespace)
    status.status = client.V1DeploymentStatus(replicas=4, observed_generation=3)
    apps.replace_namespaced_deployment_status("d1", namespace, status)
    assert apps.read_namespaced_deployment("d1", namespace).status.replicas == 4


def test_pods_nodes_services_and_binding(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    core.create_node({"metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}}})
    pod = core.create_namespaced_pod(namespace, {"metadata": {"name": "p"},
                                                 "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    assert pod.status.phase == "Pending"
    # The server answers a binding with a Status, which this client cannot read as a V1Binding
    # (kubernetes-client/python#825), hence the raw response.
    resp = core.create_namespaced_binding(namespace, {"metadata": {"name": "p"},
                                                      "target": {"kind": "Node", "name": "n1"}},
                                          _preload_content=False)
    assert resp.status == 201
    pod = core.read_namespaced_pod("p", namespace)
    assert pod.spec.node_name == "n1"
    on_node = core.list_pod_for_all_namespaces(field_selector="spec.nodeName=n1")
    assert [p.metadata.name for p in on_node.items] == ["p"]
    svc = core.create_namespaced_service(namespace, {"metadata": {"name": "s"}, "spec": {
        "type": "NodePort", "selector": {"a": "b"}, "ports": [{"port": 80}]}})
    assert svc.spec.cluster_ip.startswith("10.43.")
    assert 30000 <= svc.spec.ports[0].node_port <= 32767
    assert svc.spec.ports[0].target_port == 80
    svc2 = core.create_namespaced_service(namespace, {"metadata": {"name": "s2"}, "spec": {"ports": [{"port": 80}]}})
    assert svc2.spec.cluster_ip != svc.spec.cluster_ip
    with pytest.raises(ApiException) as e:
        core.create_namespaced_service(namespace, {"metadata": {"name": "s3"}, "spec": {
            "clusterIP": svc.spec.cluster_ip, "ports": [{"port": 80}]}})
    assert e.value.status == 422 and "already allocated" in e.value.body
    # A bound pod is deleted gracefully: marked, with the grace period recorded.
    core.delete_namespaced_pod("p", namespace, grace_period_seconds=5)
    pod = core.read_namespaced_pod("p", namespace)
    assert pod.metadata.deletion_timestamp is not None and pod.metadata.deletion_grace_period_seconds == 5
    core.delete_namespaced_pod("p", namespace, grace_period_seconds=0)
    with pytest.raises(ApiException) as e:
        core.read_namespaced_pod("p", namespace)
    assert e.value.status == 404
    core.delete_node("n1")
