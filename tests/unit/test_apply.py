"""Server-side apply and managedFields (kybernetes.api.apply, kybernetes.api.fieldset)."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest

from kybernetes import errors
from kybernetes.api import schema as schemas
from kybernetes.api.apply import apply, update_managed_fields
from kybernetes.api.fieldset import (
    FieldSet,
    fields_v1_difference,
    fields_v1_intersection,
    fields_v1_intersects,
    fields_v1_union,
    key_element,
    path_string,
)
from kybernetes.api.managed_fields import ANCIENT_CHANGES, validate_managed_fields
from kybernetes.api.structured_merge import compare, fieldset_of

DEPLOY = schemas.for_kind("apps", "v1", "Deployment")
CM = schemas.for_kind("", "v1", "ConfigMap")
POD = schemas.for_kind("", "v1", "Pod")
AV = "apps/v1"


class Clock:
    """Deterministic RFC 3339 times, one second apart."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return f"2024-01-01T00:00:{self.n:02d}Z"


@pytest.fixture
def clock() -> Clock:
    return Clock()


def deployment(replicas: int | None = 1, image: str = "nginx:1.25", **spec_extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "nginx", "image": image}]},
        },
    }
    if replicas is not None:
        spec["replicas"] = replicas
    spec.update(spec_extra)
    return {
        "apiVersion": AV,
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": spec,
    }


def entries(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return obj["metadata"].get("managedFields", [])


def entry(obj: dict[str, Any], manager: str, operation: str | None = None) -> dict[str, Any]:
    found = [e for e in entries(obj) if e["manager"] == manager and operation in (None, e["operation"])]
    assert len(found) == 1, entries(obj)
    return found[0]


def owned(obj: dict[str, Any], manager: str, operation: str | None = None) -> set[str]:
    return {path_string(p) for p in FieldSet.from_fields_v1(entry(obj, manager, operation)["fieldsV1"])}


def do_apply(live: dict[str, Any] | None, cfg: dict[str, Any], manager: str, clock: Clock,
             force: bool = False, schema: schemas.Schema | None = DEPLOY, av: str = AV) -> dict[str, Any]:
    return apply(live, cfg, manager, schema, force=force, api_version=av, now=clock)


# --- FieldSet -------------------------------------------------------------------------------

REAL_FIELDS_V1 = {
    "f:metadata": {
        "f:annotations": {".": {}, "f:deployment.kubernetes.io/revision": {}},
        "f:labels": {".": {}, "f:app": {}},
    },
    "f:spec": {
        "f:progressDeadlineSeconds": {},
        "f:replicas": {},
        "f:selector": {},
        "f:strategy": {"f:rollingUpdate": {".": {}, "f:maxSurge": {}, "f:maxUnavailable": {}}, "f:type": {}},
        "f:template": {
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {
                "f:containers": {
                    'k:{"name":"nginx"}': {
                        ".": {},
                        "f:image": {},
                        "f:name": {},
                        "f:ports": {
                            ".": {},
                            'k:{"containerPort":80,"protocol":"TCP"}': {
                                ".": {},
                                "f:containerPort": {},
                                "f:protocol": {},
                            },
                        },
                    }
                },
                "f:restartPolicy": {},
            },
        },
    },
}


def test_fields_v1_round_trip() -> None:
    fs = FieldSet.from_fields_v1(REAL_FIELDS_V1)
    assert fs.to_fields_v1() == REAL_FIELDS_V1
    paths = {path_string(p) for p in fs}
    assert '.spec.template.spec.containers[name="nginx"].image' in paths
    assert '.spec.template.spec.containers[name="nginx"]' in paths
    assert '.spec.template.spec.containers[name="nginx"].ports[containerPort=80,protocol="TCP"]' in paths
    assert ".metadata.labels" in paths and ".metadata.labels.app" in paths
    assert ".spec" not in paths and ".spec.strategy" not in paths
    assert ".spec.strategy.rollingUpdate" in paths
    assert len(fs) == len(paths)
    # The "." of a node and its first field come first, as Kubernetes writes them.
    assert list(fs.to_fields_v1()["f:metadata"]["f:labels"]) == [".", "f:app"]


def test_fields_v1_canonicalises_keys_and_rejects_garbage() -> None:
    fs = FieldSet.from_fields_v1({'k:{ "protocol": "TCP", "containerPort": 80 }': {}})
    assert ('k:{"containerPort":80,"protocol":"TCP"}',) in fs
    for bad in ({"x:y": {}}, {"f:a": []}, {"k:[1]": {}}, {"k:{": {}}, {"i:x": {}}, {"f:a": {".": {"f:b": {}}}}, []):
        with pytest.raises(ValueError):
            FieldSet.from_fields_v1(bad)


def test_set_algebra() -> None:
    a = FieldSet.from_paths([("f:spec", "f:replicas"), ("f:spec", "f:paused"), ("f:metadata", "f:labels")])
    b = FieldSet.from_paths([("f:spec", "f:replicas"), ("f:metadata",)])
    assert {p for p in a & b} == {("f:spec", "f:replicas")}
    assert {p for p in a - b} == {("f:spec", "f:paused"), ("f:metadata", "f:labels")}
    assert {p for p in a | b} == {p for p in a} | {("f:metadata",)}
    # A member removed recursively takes its descendants with it.
    assert {p for p in a.recursive_difference(b)} == {("f:spec", "f:paused")}
    assert a.intersects(b) and not (a - b).intersects(b)
    assert not FieldSet() and FieldSet.from_paths([("f:x",)])
    assert (a - a).empty() and (a - a).to_fields_v1() == {}


def random_set(rng: random.Random) -> FieldSet:
    elements = ["f:a", "f:b", 'k:{"name":"x"}', 'k:{"name":"y"}', 'v:"s"', "i:2", "i:10"]
    return FieldSet.from_paths(
        tuple(rng.choice(elements) for _ in range(rng.randint(1, 4))) for _ in range(rng.randint(0, 8))
    )


def test_encoded_operations_match_fieldset_algebra() -> None:
    rng = random.Random(1234)
    for _ in range(300):
        a, b = random_set(rng), random_set(rng)
        raw = a.to_fields_v1()
        snapshot = copy.deepcopy(raw)
        assert FieldSet.from_fields_v1(raw, trusted=True) == a
        assert FieldSet.from_fields_v1(fields_v1_difference(raw, b)) == a - b
        union = fields_v1_union(raw, b)
        assert FieldSet.from_fields_v1(union) == a | b
        assert union == (a | b).to_fields_v1()  # same key order too
        assert list(union) == list((a | b).to_fields_v1())
        assert fields_v1_intersection(raw, b) == a & b
        assert fields_v1_intersects(raw, b) == (not (a & b).empty())
        assert raw == snapshot  # inputs are never modified
    # Index elements sort numerically, after keys and values.
    fs = FieldSet.from_paths([("i:10",), ("i:2",), ("f:z",), ('k:{"a":1}',)])
    assert list(fs.to_fields_v1()) == ["f:z", 'k:{"a":1}', "i:2", "i:10"]


def test_fieldset_of_deployment() -> None:
    obj = deployment(
        strategy={"type": "RollingUpdate"},
    )
    obj["spec"]["template"]["spec"]["containers"][0].update(
        args=["-a", "-b"],
        ports=[{"containerPort": 80}],
        resources={"limits": {"cpu": "1"}},
    )
    obj["metadata"]["finalizers"] = ["a/b"]
    paths = {path_string(p) for p in fieldset_of(obj, DEPLOY)}
    c = '.spec.template.spec.containers[name="nginx"]'
    assert {
        ".spec.replicas",
        ".spec.selector",  # LabelSelector is an atomic map
        ".spec.strategy.type",
        c,
        c + ".image",
        c + ".args",  # atomic list: one leaf
        c + '.ports[containerPort=80,protocol="TCP"]',  # protocol: defaulted key
        c + '.ports[containerPort=80,protocol="TCP"].containerPort',
        c + ".resources.limits.cpu",
        '.metadata.finalizers[="a/b"]',
        ".metadata.labels.app",
    } <= paths
    assert ".spec" not in paths and ".metadata.labels" not in paths and c + ".args[0]" not in paths


# --- apply ----------------------------------------------------------------------------------


def test_apply_create_sets_apply_entry(clock: Clock) -> None:
    cfg = deployment()
    before = copy.deepcopy(cfg)
    obj = do_apply(None, cfg, "kubectl", clock)
    assert cfg == before
    assert obj["spec"] == deployment()["spec"]
    [e] = entries(obj)
    assert e == {
        "manager": "kubectl",
        "operation": "Apply",
        "apiVersion": "apps/v1",
        "time": "2024-01-01T00:00:01Z",
        "fieldsType": "FieldsV1",
        "fieldsV1": e["fieldsV1"],
    }
    f = e["fieldsV1"]
    assert "f:name" not in f["f:metadata"] and "f:namespace" not in f["f:metadata"]
    assert f["f:metadata"] == {"f:labels": {"f:app": {}}}
    assert f["f:spec"]["f:replicas"] == {}
    assert f["f:spec"]["f:template"]["f:spec"]["f:containers"] == {
        'k:{"name":"nginx"}': {".": {}, "f:image": {}, "f:name": {}}
    }
    assert "f:apiVersion" not in f and "f:kind" not in f


def test_reapply_same_config_is_noop(clock: Clock) -> None:
    obj = do_apply(None, deployment(), "kubectl", clock)
    again = do_apply(obj, deployment(), "kubectl", clock)
    assert again == obj


def test_apply_removes_field_no_longer_applied(clock: Clock) -> None:
    cfg = deployment(replicas=3)
    cfg["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "busybox"})
    cfg["metadata"]["labels"]["tier"] = "front"
    obj = do_apply(None, cfg, "kubectl", clock)
    obj["status"] = {"replicas": 3}
    obj2 = do_apply(obj, deployment(replicas=None), "kubectl", clock)
    assert "replicas" not in obj2["spec"]
    assert [c["name"] for c in obj2["spec"]["template"]["spec"]["containers"]] == ["nginx"]
    assert obj2["metadata"]["labels"] == {"app": "web"}
    assert obj2["status"] == {"replicas": 3}  # status is not the applier's to prune
    assert obj2["metadata"]["name"] == "web"
    assert ".spec.replicas" not in owned(obj2, "kubectl")
    # Dropping everything under a struct removes the struct itself when nobody else owns in it.
    cfg3 = deployment()
    del cfg3["metadata"]["labels"]
    obj3 = do_apply(obj2, cfg3, "kubectl", clock)
    assert "labels" not in obj3["metadata"] and obj3["metadata"]["name"] == "web"


def test_removed_field_kept_when_other_manager_owns_it(clock: Clock) -> None:
    obj = do_apply(None, deployment(replicas=3), "a", clock)
    obj = do_apply(obj, deployment(replicas=3), "b", clock)  # same value: shared
    assert ".spec.replicas" in owned(obj, "a") and ".spec.replicas" in owned(obj, "b")
    obj = do_apply(obj, deployment(replicas=None), "a", clock)
    assert obj["spec"]["replicas"] == 3
    assert ".spec.replicas" not in owned(obj, "a") and ".spec.replicas" in owned(obj, "b")


def test_same_value_from_two_managers_is_shared_no_conflict(clock: Clock) -> None:
    obj = do_apply(None, deployment(replicas=2), "alice", clock)
    obj = do_apply(obj, {"apiVersion": AV, "kind": "Deployment", "metadata": {"name": "web"},
                         "spec": {"replicas": 2}}, "bob", clock)
    assert owned(obj, "bob") == {".spec.replicas"}
    assert ".spec.replicas" in owned(obj, "alice")


def test_conflict_with_apply_manager(clock: Clock) -> None:
    obj = do_apply(None, deployment(replicas=2), "alice", clock)
    cfg = {"apiVersion": AV, "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 5}}
    with pytest.raises(errors.Conflict) as ei:
        do_apply(obj, cfg, "bob", clock)
    err = ei.value
    assert err.code == 409 and err.reason == "Conflict"
    assert err.message == 'Apply failed with 1 conflict: conflict with "alice": .spec.replicas'
    assert err.details == {"causes": [
        {"reason": "FieldManagerConflict", "message": 'conflict with "alice"', "field": ".spec.replicas"}
    ]}
    status = err.status()
    assert status["code"] == 409 and status["details"]["causes"][0]["field"] == ".spec.replicas"


def test_force_takes_ownership(clock: Clock) -> None:
    obj = do_apply(None, deployment(replicas=2), "alice", clock)
    cfg = {"apiVersion": AV, "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 5}}
    obj = do_apply(obj, cfg, "bob", clock, force=True)
    assert obj["spec"]["replicas"] == 5
    assert owned(obj, "bob") == {".spec.replicas"}
    assert ".spec.replicas" not in owned(obj, "alice")
    # alice re-applying her old value now conflicts with bob.
    with pytest.raises(errors.Conflict, match=r'conflict with "bob": \.spec\.replicas'):
        do_apply(obj, deployment(replicas=2), "alice", clock)
    # alice dropping replicas from her config no longer touches bob's field.
    obj = do_apply(obj, deployment(replicas=None), "alice", clock)
    assert obj["spec"]["replicas"] == 5


def test_update_manager_then_apply_conflicts(clock: Clock) -> None:
    obj = do_apply(None, deployment(replicas=2), "kubectl", clock)
    scaled = copy.deepcopy(obj)
    scaled["spec"]["replicas"] = 7
    update_managed_fields(obj, scaled, "kubectl-scale", DEPLOY, api_version=AV, now=clock)
    assert owned(scaled, "kubectl-scale") == {".spec.replicas"}
    assert ".spec.replicas" not in owned(scaled, "kubectl")
    e = entry(scaled, "kubectl-scale")
    assert e["operation"] == "Update" and e["apiVersion"] == AV
    with pytest.raises(errors.Conflict) as ei:
        do_apply(scaled, deployment(replicas=3), "kubectl", clock)
    assert ei.value.message == (
        'Apply failed with 1 conflict: conflict with "kubectl-scale" using apps/v1: .spec.replicas'
    )
    assert ei.value.details == {"causes": [{"reason": "FieldManagerConflict",
                                            "message": 'conflict with "kubectl-scale" using apps/v1',
                                            "field": ".spec.replicas"}]}


def test_multiple_conflicts_message(clock: Clock) -> None:
    obj = do_apply(None, deployment(replicas=2), "alice", clock)
    cfg = deployment(replicas=4, image="nginx:2")
    with pytest.raises(errors.Conflict) as ei:
        do_apply(obj, cfg, "bob", clock)
    assert ei.value.message == (
        'Apply failed with 2 conflicts: conflicts with "alice":\n'
        "- .spec.replicas\n"
        '- .spec.template.spec.containers[name="nginx"].image'
    )
    assert len(ei.value.details["causes"]) == 2  # type: ignore[index]


def test_update_managed_fields_create_and_update(clock: Clock) -> None:
    new = deployment()
    update_managed_fields(None, new, "kubectl-create", DEPLOY, api_version=AV, now=clock)
    f = entry(new, "kubectl-create", "Update")["fieldsV1"]
    # Built-in create: spec existed (as a zero struct) so has no ".", labels map is new.
    assert "." not in f["f:spec"]
    assert f["f:metadata"]["f:labels"] == {".": {}, "f:app": {}}
    assert f["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"nginx"}']["."] == {}
    assert entry(new, "kubectl-create")["time"] == "2024-01-01T00:00:01Z"

    edited = copy.deepcopy(new)
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    edited["metadata"]["labels"]["env"] = "prod"
    update_managed_fields(new, edited, "kubectl-edit", DEPLOY, api_version=AV, now=clock)
    c = '.spec.template.spec.containers[name="nginx"]'
    assert owned(edited, "kubectl-edit") == {c + ".image", ".metadata.labels.env"}
    assert c + ".image" not in owned(edited, "kubectl-create")
    assert c + ".name" in owned(edited, "kubectl-create")

    # A no-op update changes nothing, not even times.
    same = copy.deepcopy(edited)
    update_managed_fields(edited, same, "other", DEPLOY, api_version=AV, now=clock)
    assert same == edited

    # Removing a field takes it from its owner; an owner left with nothing disappears.
    dropped = copy.deepcopy(edited)
    del dropped["metadata"]["labels"]["env"]
    dropped["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.25"
    update_managed_fields(edited, dropped, "kubectl-edit2", DEPLOY, api_version=AV, now=clock)
    assert [e["manager"] for e in entries(dropped)] == ["kubectl-create", "kubectl-edit2"]


def test_update_status_subresource_and_ignored_fields(clock: Clock) -> None:
    obj = do_apply(None, deployment(), "kubectl", clock)
    new = copy.deepcopy(obj)
    new["status"] = {"replicas": 1, "readyReplicas": 1}
    update_managed_fields(obj, new, "kube-controller-manager", DEPLOY, api_version=AV,
                          subresource="status", ignore_top_level=("spec",), now=clock)
    e = entry(new, "kube-controller-manager")
    assert e["subresource"] == "status"
    assert owned(new, "kube-controller-manager") == {".status.replicas", ".status.readyReplicas", ".status"}
    # Main-resource writes ignore status entirely.
    new2 = copy.deepcopy(new)
    new2["status"]["replicas"] = 5
    update_managed_fields(new, new2, "someone", DEPLOY, api_version=AV, now=clock)
    assert new2["metadata"]["managedFields"] == new["metadata"]["managedFields"]


def test_client_sent_managed_fields(clock: Clock) -> None:
    obj = do_apply(None, deployment(), "kubectl", clock)
    # Round-tripping the stored list is accepted as is.
    new = copy.deepcopy(obj)
    update_managed_fields(obj, new, "x", DEPLOY, api_version=AV, now=clock)
    assert new == obj
    # [] and [{}] reset ownership.
    for reset in ([], [{}]):
        new = copy.deepcopy(obj)
        new["metadata"]["managedFields"] = reset
        update_managed_fields(obj, new, "x", DEPLOY, api_version=AV, now=clock)
        assert "managedFields" not in new["metadata"]
    # Malformed entries are a 400.
    for bad in (
        [{"manager": "m", "operation": "Delete", "fieldsType": "FieldsV1", "fieldsV1": {}}],
        [{"manager": "m", "operation": "Update", "fieldsType": "FieldsV2", "fieldsV1": {}}],
        [{"manager": "m", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {"bogus": {}}}],
        [{"manager": "m", "operation": "Update", "fieldsType": "FieldsV1", "time": "yesterday"}],
        "nope",
    ):
        new = copy.deepcopy(obj)
        new["metadata"]["managedFields"] = bad
        with pytest.raises(errors.BadRequest):
            update_managed_fields(obj, new, "x", DEPLOY, api_version=AV, now=clock)
    # A valid replacement list is taken (keys respelled canonically).
    sent = [{"manager": "m", "operation": "Update", "apiVersion": AV, "time": "2020-01-01T00:00:00Z",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]
    assert validate_managed_fields(sent) == sent
    new = copy.deepcopy(obj)
    new["metadata"]["managedFields"] = sent
    update_managed_fields(obj, new, "x", DEPLOY, api_version=AV, now=clock)
    assert entries(new) == sent


def test_apply_rejects_managed_fields_and_missing_manager(clock: Clock) -> None:
    cfg = deployment()
    cfg["metadata"]["managedFields"] = [{"manager": "x"}]
    with pytest.raises(errors.BadRequest, match="managedFields must be nil"):
        do_apply(None, cfg, "kubectl", clock)
    with pytest.raises(errors.BadRequest):
        do_apply(None, deployment(), "", clock)


def test_first_apply_on_unmanaged_object(clock: Clock) -> None:
    live = deployment(replicas=2)
    obj = do_apply(live, {"apiVersion": AV, "kind": "Deployment", "metadata": {"name": "web"},
                          "spec": {"replicas": 2}}, "kubectl", clock)
    assert ".spec.replicas" in owned(obj, "before-first-apply")
    with pytest.raises(errors.Conflict, match='"before-first-apply" using apps/v1'):
        do_apply(live, {"apiVersion": AV, "kind": "Deployment", "metadata": {"name": "web"},
                        "spec": {"replicas": 9}}, "kubectl", clock)


# --- list and map semantics -----------------------------------------------------------------


def test_map_list_containers_merge_by_name(clock: Clock) -> None:
    obj = do_apply(None, deployment(), "a", clock)
    side = {"apiVersion": AV, "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "busybox"}]}}}}
    obj = do_apply(obj, side, "b", clock)
    names = [c["name"] for c in obj["spec"]["template"]["spec"]["containers"]]
    assert names == ["nginx", "sidecar"]
    assert owned(obj, "b") == {'.spec.template.spec.containers[name="sidecar"]',
                               '.spec.template.spec.containers[name="sidecar"].name',
                               '.spec.template.spec.containers[name="sidecar"].image'}
    # b drops its container: only b's item goes.
    side["spec"]["template"]["spec"]["containers"] = []
    obj = do_apply(obj, side, "b", clock)
    assert [c["name"] for c in obj["spec"]["template"]["spec"]["containers"]] == ["nginx"]


def test_map_list_ports_keyed_by_port_and_protocol(clock: Clock) -> None:
    cfg = deployment()
    cfg["spec"]["template"]["spec"]["containers"][0]["ports"] = [
        {"containerPort": 53, "protocol": "UDP", "name": "dns-udp"},
        {"containerPort": 53, "protocol": "TCP", "name": "dns-tcp"},
    ]
    obj = do_apply(None, cfg, "a", clock)
    cfg2 = copy.deepcopy(cfg)
    cfg2["spec"]["template"]["spec"]["containers"][0]["ports"] = [
        {"containerPort": 53, "protocol": "TCP", "name": "dns-tcp"},
    ]
    obj2 = do_apply(obj, cfg2, "a", clock)
    ports = obj2["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert ports == [{"containerPort": 53, "protocol": "TCP", "name": "dns-tcp"}]
    key = key_element({"containerPort": 53, "protocol": "TCP"})
    assert key == 'k:{"containerPort":53,"protocol":"TCP"}'
    f = entry(obj2, "a")["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]
    assert list(f['k:{"name":"nginx"}']["f:ports"]) == [key]


def test_set_list_finalizers_union(clock: Clock) -> None:
    obj = do_apply(None, {**deployment(), "metadata": {"name": "web", "finalizers": ["a.io/x"]}}, "a", clock)
    obj = do_apply(obj, {"apiVersion": AV, "kind": "Deployment",
                         "metadata": {"name": "web", "finalizers": ["b.io/y", "a.io/x"]}}, "b", clock)
    assert obj["metadata"]["finalizers"] == ["b.io/y", "a.io/x"]
    assert owned(obj, "b") == {'.metadata.finalizers[="b.io/y"]', '.metadata.finalizers[="a.io/x"]'}
    obj = do_apply(obj, {"apiVersion": AV, "kind": "Deployment",
                         "metadata": {"name": "web", "finalizers": []}}, "b", clock)
    assert obj["metadata"]["finalizers"] == ["a.io/x"]  # still a's


def test_owner_references_keyed_by_uid(clock: Clock) -> None:
    ref = {"apiVersion": "v1", "kind": "Thing", "name": "t", "uid": "u-1"}
    obj = do_apply(None, {**deployment(), "metadata": {"name": "web", "ownerReferences": [ref]}}, "a", clock)
    paths = owned(obj, "a")
    assert '.metadata.ownerReferences[uid="u-1"]' in paths
    # OwnerReference is an atomic struct: the item is one leaf.
    assert '.metadata.ownerReferences[uid="u-1"].name' not in paths
    ref2 = {**ref, "uid": "u-2", "name": "t2"}
    obj = do_apply(obj, {"apiVersion": AV, "kind": "Deployment",
                         "metadata": {"name": "web", "ownerReferences": [ref2]}}, "b", clock)
    assert [r["uid"] for r in obj["metadata"]["ownerReferences"]] == ["u-1", "u-2"]


def test_atomic_list_replaced_whole(clock: Clock) -> None:
    cfg = deployment()
    cfg["spec"]["template"]["spec"]["containers"][0]["args"] = ["--a", "--b"]
    obj = do_apply(None, cfg, "a", clock)
    cfg2 = copy.deepcopy(cfg)
    cfg2["spec"]["template"]["spec"]["containers"][0]["args"] = ["--c"]
    obj = do_apply(obj, cfg2, "a", clock)
    assert obj["spec"]["template"]["spec"]["containers"][0]["args"] == ["--c"]
    # Another manager changing one element conflicts on the list as a whole.
    cfg3 = {"apiVersion": AV, "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"template": {
        "spec": {"containers": [{"name": "nginx", "args": ["--c", "--d"]}]}}}}
    with pytest.raises(errors.Conflict, match=r'containers\[name="nginx"\]\.args'):
        do_apply(obj, cfg3, "b", clock)


def test_atomic_map_selector(clock: Clock) -> None:
    obj = do_apply(None, deployment(), "a", clock)
    cfg = deployment()
    cfg["spec"]["selector"] = {"matchLabels": {"app": "web", "x": "y"}}
    obj = do_apply(obj, cfg, "a", clock)
    assert obj["spec"]["selector"] == {"matchLabels": {"app": "web", "x": "y"}}
    assert ".spec.selector" in owned(obj, "a")


def test_granular_map_configmap_data(clock: Clock) -> None:
    base = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    obj = do_apply(None, {**base, "data": {"a": "1", "b": "2"}}, "x", clock, schema=CM, av="v1")
    obj = do_apply(obj, {**base, "data": {"c": "3"}}, "y", clock, schema=CM, av="v1")
    assert obj["data"] == {"a": "1", "b": "2", "c": "3"}
    obj = do_apply(obj, {**base, "data": {"a": "1"}}, "x", clock, schema=CM, av="v1")
    assert obj["data"] == {"a": "1", "c": "3"}


def test_duplicate_and_keyless_items_rejected(clock: Clock) -> None:
    cfg = deployment()
    cfg["spec"]["template"]["spec"]["containers"].append({"name": "nginx", "image": "x"})
    with pytest.raises(errors.BadRequest, match="duplicate entries"):
        do_apply(None, cfg, "a", clock)
    cfg = deployment()
    cfg["spec"]["template"]["spec"]["containers"].append({"image": "x"})
    with pytest.raises(errors.BadRequest, match="omits key field"):
        do_apply(None, cfg, "a", clock)


def test_custom_resource_schema() -> None:
    raw = {
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": {
                "type": "object",
                "properties": {
                    "size": {"type": "integer"},
                    "items": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["id"],
                        "items": {"type": "object", "properties": {"id": {"type": "string"},
                                                                   "v": {"type": "integer"}}},
                    },
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                },
            },
        },
    }
    sch = schemas.from_openapi_v3(raw)
    clock = Clock()
    base = {"apiVersion": "ex.io/v1", "kind": "Widget", "metadata": {"name": "w"}}
    obj = apply(None, {**base, "spec": {"size": 1, "items": [{"id": "a", "v": 1}], "tags": ["x"],
                                        "free": {"deep": {"k": 1}}}},
                "m1", sch, force=False, api_version="ex.io/v1", now=clock)
    obj = apply(obj, {**base, "spec": {"items": [{"id": "b", "v": 2}], "tags": ["y"]}},
                "m2", sch, force=True, api_version="ex.io/v1", now=clock)
    assert obj["spec"]["items"] == [{"id": "a", "v": 1}, {"id": "b", "v": 2}]
    assert obj["spec"]["tags"] == ["y"]  # atomic list (default list type)
    assert '.spec.items[id="b"].v' in owned(obj, "m2")
    assert ".spec.tags" not in owned(obj, "m1")
    assert ".spec.free.deep.k" in owned(obj, "m1")
    # Custom resources start from nothing: an Update create owns .spec itself.
    new = {**base, "spec": {"size": 3}}
    update_managed_fields(None, new, "mgr", sch, api_version="ex.io/v1", now=clock)
    assert entry(new, "mgr")["fieldsV1"] == {"f:spec": {".": {}, "f:size": {}}}


def test_schemaless_deduced_rules(clock: Clock) -> None:
    obj = do_apply(None, {"kind": "X", "metadata": {"name": "x"}, "spec": {"a": {"b": 1}, "l": [1, 2]}},
                   "m", clock, schema=None, av="v1")
    assert owned(obj, "m") == {".spec.a.b", ".spec.l"}


def test_compare() -> None:
    a, m, r = compare({"spec": {"replicas": 1, "paused": True}}, {"spec": {"replicas": 2, "minReadySeconds": 3}},
                      DEPLOY)
    assert {path_string(p) for p in a} == {".spec.minReadySeconds"}
    assert {path_string(p) for p in m} == {".spec.replicas"}
    assert {path_string(p) for p in r} == {".spec.paused"}


def test_update_managers_are_capped(clock: Clock) -> None:
    obj = deployment()
    update_managed_fields(None, obj, "creator", DEPLOY, api_version=AV, now=clock)
    for i in range(12):
        new = copy.deepcopy(obj)
        new["metadata"]["labels"][f"l{i}"] = "v"
        update_managed_fields(obj, new, f"m{i}", DEPLOY, api_version=AV, now=clock)
        obj = new
    managers = [e["manager"] for e in entries(obj)]
    assert len(managers) <= 10
    assert ANCIENT_CHANGES in managers and "m11" in managers and "creator" not in managers


# --- performance ----------------------------------------------------------------------------


def big_pod(n: int, image: str = "busybox") -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}},
        "spec": {"containers": [
            {"name": f"c{i}", "image": image, "args": ["sleep", "1"],
             "ports": [{"containerPort": 1000 + i, "protocol": "TCP"}],
             "env": [{"name": "X", "value": str(i)}, {"name": "Y", "value": "y"}],
             "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}
            for i in range(n)
        ]},
    }


def test_hundred_container_pod_update_owns_only_the_changed_field(clock: Clock) -> None:
    # Speed is measured in bench/, not asserted here; this checks the large-object path is right.
    pod = big_pod(100)
    obj = apply(None, pod, "kubectl", POD, force=False, api_version="v1", now=clock)
    assert apply(obj, pod, "kubectl", POD, force=False, api_version="v1", now=clock) == obj
    new = copy.deepcopy(obj)
    new["spec"]["containers"][50]["image"] = "other"
    update_managed_fields(obj, new, "kubectl-edit", POD, api_version="v1", now=clock)
    assert owned(new, "kubectl-edit") == {'.spec.containers[name="c50"].image'}


def _create_entry_the_long_way(obj: dict[str, Any], schema: schemas.Schema | None) -> dict[str, Any]:
    """The create's fieldsV1 through the general route: compare with the baseline, FieldSet,
    the metadata node dropped."""
    from kybernetes.api.apply import _changes
    from kybernetes.api.merge_schema import compile_schema

    diff = _changes(None, obj, compile_schema(schema), ("status",))
    return diff.added.union(diff.modified).to_fields_v1()


@pytest.mark.parametrize("case", ["pod", "deployment", "configmap", "custom", "schemaless", "dup-items",
                                  "nulls-and-empties", "only-metadata", "custom-only-name"])
def test_create_fields_match_the_general_comparison(case: str, clock: Clock) -> None:
    """A create's entry is built in one walk; it must be what compare + FieldSet make."""
    custom = schemas.from_openapi_v3({"type": "object", "properties": {
        "metadata": {"type": "object"},
        "spec": {"type": "object", "properties": {
            "items": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"],
                      "items": {"type": "object", "properties": {"id": {"type": "string"}, "v": {"type": "integer"}}}},
            "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}}}}})
    cases: dict[str, tuple[dict[str, Any], schemas.Schema | None]] = {
        "pod": (big_pod(3), POD),
        "deployment": (deployment(), DEPLOY),
        "configmap": ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                       "data": {"a": "1", "b": ""}, "binaryData": {}}, CM),
        "custom": ({"apiVersion": "ex.io/v1", "kind": "W", "metadata": {"name": "w", "labels": {"x": "y"}},
                    "spec": {"items": [{"id": "a", "v": 1}, {"id": "b"}], "tags": ["x", "y"]}}, custom),
        "schemaless": ({"kind": "X", "metadata": {"name": "x", "annotations": {"a": "b"}},
                        "spec": {"a": {"b": 1}, "l": [1, 2], "e": {}}}, None),
        "dup-items": ({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                       "spec": {"containers": [{"name": "a", "image": "i"}, {"name": "a"}, {"name": "b"},
                                                {"image": "j"}, {}]}}, POD),
        "nulls-and-empties": ({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {}},
                               "spec": {"containers": [], "nodeSelector": None, "volumes": [{"name": "v"}]},
                               "status": {"phase": "Pending"}}, POD),
        "only-metadata": ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}, CM),
        "custom-only-name": ({"apiVersion": "ex.io/v1", "kind": "W", "metadata": {"name": "w"}}, custom),
    }
    obj, schema = cases[case]
    want = _create_entry_the_long_way(copy.deepcopy(obj), schema)
    new = copy.deepcopy(obj)
    update_managed_fields(None, new, "mgr", schema, api_version="v1", now=clock)
    got = [e["fieldsV1"] for e in entries(new)]
    assert json.dumps(got) == json.dumps([want] if want else [])  # key order included
