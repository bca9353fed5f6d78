"""``metadata.generation`` of every built-in kind, through the generic store on a real SQLite store.

Kubernetes' rules (each kind's ``PrepareForCreate``/``PrepareForUpdate`` in
``pkg/registry/*/*/strategy.go``, and the generic store's ``markAsDeleting``/``BeforeDelete``):

* kinds that track it start at 1; a change of the spec (``template`` for a PodTemplate; for a
  Deployment also its annotations; for an EndpointSlice anything but metadata, and its labels)
  adds one; metadata, status and ``/status`` writes never do; comparisons are semantic (a
  client that leaves out what the server defaulted, or sends ``[]`` for a missing list, has not
  changed the spec);
* being marked for deletion (finalizers pending) adds one, once;
* the other kinds never get a generation.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from kybernetes.api.resources import Catalogue, Resource
from kybernetes.apiserver.registry import builtin_strategies
from kybernetes.apiserver.registry.request import DeleteOptions, RequestContext
from kybernetes.apiserver.registry.store import Registry
from kybernetes.storage.sqlite import SQLiteStore

Obj = dict[str, Any]
CTX = RequestContext()
LABELS = {"app": "web"}


def pod_template() -> Obj:
    return {"metadata": {"labels": dict(LABELS)}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def workload(replicas: bool = True, **extra: Any) -> Obj:
    spec: Obj = {"selector": {"matchLabels": dict(LABELS)}, "template": pod_template(), **extra}
    if replicas:
        spec["replicas"] = 1
    return spec


def spec_set(field: str, value: Any) -> Callable[[Obj], None]:
    def change(obj: Obj) -> None:
        obj["spec"][field] = value
    return change


def set_image(obj: Obj) -> None:
    obj["template"]["spec"]["containers"][0]["image"] = "busybox:2"


def move_endpoint(obj: Obj) -> None:
    obj["endpoints"] = [{"addresses": ["10.0.0.2"]}]


def add_short_name(obj: Obj) -> None:
    obj["spec"]["names"]["shortNames"] = ["wd"]


CRD: Obj = {
    "group": "example.com", "scope": "Namespaced",
    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
    "versions": [{"name": "v1", "served": True, "storage": True,
                  "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}],
}

# (group, version, plural, body without apiVersion/kind/metadata, a change of the spec)
TRACKED: list[tuple[str, str, str, Obj, Callable[[Obj], None]]] = [
    ("apps", "v1", "deployments", {"spec": workload()}, spec_set("replicas", 3)),
    ("apps", "v1", "replicasets", {"spec": workload()}, spec_set("replicas", 3)),
    ("apps", "v1", "statefulsets", {"spec": workload(serviceName="web")}, spec_set("replicas", 3)),
    ("apps", "v1", "daemonsets", {"spec": workload(replicas=False)}, spec_set("minReadySeconds", 5)),
    ("batch", "v1", "jobs", {"spec": {"template": {"spec": {"restartPolicy": "Never",
                                                            "containers": [{"name": "c", "image": "busybox"}]}}}},
     spec_set("parallelism", 2)),
    ("batch", "v1", "cronjobs", {"spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {
        "spec": {"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox"}]}}}}}},
     spec_set("schedule", "*/7 * * * *")),
    ("", "v1", "replicationcontrollers", {"spec": {"replicas": 1, "selector": dict(LABELS), "template": pod_template()}},
     spec_set("replicas", 3)),
    ("", "v1", "podtemplates", {"template": pod_template()}, set_image),
    ("policy", "v1", "poddisruptionbudgets", {"spec": {"minAvailable": 1, "selector": {"matchLabels": dict(LABELS)}}},
     spec_set("minAvailable", 2)),
    ("networking.k8s.io", "v1", "ingresses",
     {"spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}},
     spec_set("defaultBackend", {"service": {"name": "web", "port": {"number": 81}}})),
    ("networking.k8s.io", "v1", "ingressclasses", {"spec": {"controller": "example.com/ingress"}},
     spec_set("parameters", {"apiGroup": "example.com", "kind": "Params", "name": "p"})),
    ("networking.k8s.io", "v1", "networkpolicies", {"spec": {"podSelector": {}}},
     spec_set("policyTypes", ["Ingress", "Egress"])),
    ("discovery.k8s.io", "v1", "endpointslices", {"addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}]},
     move_endpoint),
    ("apiextensions.k8s.io", "v1", "customresourcedefinitions", {"spec": CRD}, add_short_name),
]

# (group, version, plural, body, a change of what is not metadata)
UNTRACKED: list[tuple[str, str, str, Obj, Callable[[Obj], None]]] = [
    ("", "v1", "configmaps", {"data": {"a": "1"}}, lambda o: o["data"].update(a="2")),
    ("", "v1", "secrets", {"data": {"a": "MQ=="}}, lambda o: o["data"].update(a="Mg==")),
    ("", "v1", "services", {"spec": {"ports": [{"name": "a", "port": 80}]}}, lambda o: o["spec"]["ports"].append({"name": "b", "port": 81})),
    ("", "v1", "pods", {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}, spec_set("activeDeadlineSeconds", 5)),
    ("", "v1", "serviceaccounts", {}, lambda o: o.update(automountServiceAccountToken=False)),
    ("autoscaling", "v2", "horizontalpodautoscalers",
     {"spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 3}},
     spec_set("maxReplicas", 4)),
    ("coordination.k8s.io", "v1", "leases", {"spec": {"holderIdentity": "a"}}, spec_set("holderIdentity", "b")),
    ("scheduling.k8s.io", "v1", "priorityclasses", {"value": 10}, lambda o: o.update(description="d")),
    ("rbac.authorization.k8s.io", "v1", "roles", {"rules": []},
     lambda o: o.update(rules=[{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}])),
]


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[Registry]:
    store = await SQLiteStore.open(str(tmp_path / "state.db"), compact_interval=0)
    reg = Registry(store, Catalogue.builtin(), builtin_strategies())
    await reg.start()
    ns = resource(reg, "", "v1", "namespaces")
    await reg.create(ns, "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}, CTX)
    try:
        yield reg
    finally:
        await reg.stop()
        await store.close()


def resource(reg: Registry, group: str, version: str, plural: str) -> Resource:
    r = reg.catalogue.get(group, version, plural)
    assert r is not None, plural
    return r


async def create(reg: Registry, r: Resource, body: Obj, name: str = "web") -> Obj:
    obj = {"apiVersion": r.api_version, "kind": r.kind, "metadata": {"name": name}, **copy.deepcopy(body)}
    if r.plural == "customresourcedefinitions":
        obj["metadata"]["name"] = "widgets.example.com"
    return await reg.create(r, "default" if r.namespaced else "", obj, CTX)


async def put(reg: Registry, r: Resource, obj: Obj, subresource: str = "") -> Obj:
    meta = obj["metadata"]
    out, _ = await reg.update(r, meta.get("namespace", ""), meta["name"], obj, CTX, subresource=subresource)
    return out


def changed_copy(obj: Obj, change: Callable[[Obj], None]) -> Obj:
    out = copy.deepcopy(obj)
    change(out)
    return out


def generation(obj: Obj) -> int | None:
    return obj["metadata"].get("generation")


@pytest.mark.parametrize(("group", "version", "plural", "body", "change"), TRACKED, ids=[t[2] for t in TRACKED])
async def test_tracked_kinds_move_only_on_a_new_spec(registry: Registry, group: str, version: str, plural: str,
                                                     body: Obj, change: Callable[[Obj], None]) -> None:
    r = resource(registry, group, version, plural)
    obj = await create(registry, r, body)
    assert generation(obj) == 1

    # The body as the client first sent it: the server's defaults are missing, nothing changed.
    resent = {**copy.deepcopy(body), "apiVersion": r.api_version, "kind": r.kind,
              "metadata": copy.deepcopy(obj["metadata"])}
    if plural == "jobs":  # the generated selector and labels must be sent back (as in Kubernetes)
        resent["spec"]["selector"] = obj["spec"]["selector"]
        resent["spec"]["template"]["metadata"] = obj["spec"]["template"]["metadata"]
    obj = await put(registry, r, resent)
    assert generation(obj) == 1

    meta_only = copy.deepcopy(obj)
    meta_only["metadata"]["finalizers"] = ["example.com/hold"]
    meta_only["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap", "name": "o",
                                                 "uid": "6f1c2a9e-0000-4000-8000-000000000001"}]
    if plural != "endpointslices":
        meta_only["metadata"]["labels"] = {"team": "a"}
    if plural != "deployments":
        meta_only["metadata"]["annotations"] = {"note": "x"}
    obj = await put(registry, r, meta_only)
    assert generation(obj) == 1

    if r.plural != "podtemplates" and "status" in obj:
        through_status = copy.deepcopy(obj)
        through_status["spec"] = changed_copy(obj, change)["spec"]  # ignored by /status
        through_status["metadata"]["labels"] = {"written": "through-status"}
        obj = await put(registry, r, through_status, subresource="status")
        assert generation(obj) == 1

    changed = copy.deepcopy(obj)
    change(changed)
    obj = await put(registry, r, changed)
    assert generation(obj) == 2

    # Marked for deletion (the finalizer holds it): one more, once.
    ns = obj["metadata"].get("namespace", "")
    deleted, gone = await registry.delete(r, ns, obj["metadata"]["name"], DeleteOptions(), CTX)
    assert not gone and generation(deleted) == 3
    deleted, gone = await registry.delete(r, ns, obj["metadata"]["name"],
                                          DeleteOptions(propagation_policy="Foreground"), CTX)
    assert not gone and generation(deleted) == 3


async def test_deployment_annotations_are_desired_state_but_not_through_status(registry: Registry) -> None:
    """Kubernetes copies a Deployment's annotations to its ReplicaSets, so an annotation change
    through the main resource is a new generation; the controller's revision annotation goes
    through /status, which keeps it and leaves the generation alone."""
    r = resource(registry, "apps", "v1", "deployments")
    obj = await create(registry, r, {"spec": workload()})
    revised = copy.deepcopy(obj)
    revised["metadata"]["annotations"] = {"deployment.kubernetes.io/revision": "1"}
    revised["status"] = {"observedGeneration": 1}
    obj = await put(registry, r, revised, subresource="status")
    assert generation(obj) == 1
    assert obj["metadata"]["annotations"] == {"deployment.kubernetes.io/revision": "1"}
    noted = copy.deepcopy(obj)
    noted["metadata"]["annotations"]["note"] = "x"
    assert generation(await put(registry, r, noted)) == 2


async def test_endpointslice_labels_are_a_new_generation(registry: Registry) -> None:
    r = resource(registry, "discovery.k8s.io", "v1", "endpointslices")
    obj = await create(registry, r, {"addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}]})
    obj["metadata"]["labels"] = {"kubernetes.io/service-name": "web"}
    assert generation(await put(registry, r, obj)) == 2


async def test_daemonset_template_generation_ignores_missing_defaults(registry: Registry) -> None:
    r = resource(registry, "apps", "v1", "daemonsets")
    body = {"spec": workload(replicas=False)}
    obj = await create(registry, r, body)
    annotation = "deprecated.daemonset.template.generation"
    resent = {**copy.deepcopy(body), "apiVersion": "apps/v1", "kind": "DaemonSet",
              "metadata": copy.deepcopy(obj["metadata"])}
    obj = await put(registry, r, resent)
    assert obj["metadata"]["annotations"][annotation] == "1" and generation(obj) == 1
    set_image(obj["spec"])
    obj = await put(registry, r, obj)
    assert obj["metadata"]["annotations"][annotation] == "2" and generation(obj) == 2


async def test_empty_list_is_no_change(registry: Registry) -> None:
    """Go's Semantic.DeepEqual: an empty list equals a missing one."""
    r = resource(registry, "apps", "v1", "deployments")
    obj = await create(registry, r, {"spec": workload()})
    obj["spec"]["template"]["spec"]["containers"][0]["args"] = []
    obj["spec"]["template"]["spec"]["volumes"] = None
    assert generation(await put(registry, r, obj)) == 1


@pytest.mark.parametrize(("group", "version", "plural", "body", "change"), UNTRACKED, ids=[t[2] for t in UNTRACKED])
async def test_other_kinds_have_no_generation(registry: Registry, group: str, version: str, plural: str,
                                              body: Obj, change: Callable[[Obj], None]) -> None:
    r = resource(registry, group, version, plural)
    obj = await create(registry, r, body)
    assert generation(obj) is None
    change(obj)
    obj = await put(registry, r, obj)
    assert generation(obj) is None
