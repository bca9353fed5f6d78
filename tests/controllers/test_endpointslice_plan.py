"""The EndpointSlice controller's decisions without a server: ``endpointslice_plan`` on plain dicts."""

from __future__ import annotations

from typing import Any

import pytest

from kybernetes.controllers.endpointslice_plan import (
    CONTROLLER_NAME,
    MANAGED_BY_LABEL,
    SERVICE_NAME_LABEL,
    desired_endpoints,
    plan_slices,
    slice_labels,
)

Obj = dict[str, Any]
TRIGGER_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"


def service(ports: list[Obj] | None = None, **labels: str) -> Obj:
    return {"metadata": {"name": "web", "namespace": "ns", "uid": "svc-uid", "labels": labels},
            "spec": {"selector": {"app": "web"}, "clusterIP": "10.43.0.10",
                     "ports": ports if ports is not None else [{"name": "http", "port": 80, "targetPort": 8080}]}}


def pod(i: int, *, ready: bool = True, node: str = "n1") -> Obj:
    return {"metadata": {"name": f"web-{i:03d}", "namespace": "ns", "uid": f"uid-{i}", "labels": {"app": "web"}},
            "spec": {"nodeName": node, "containers": [{"name": "c"}]},
            "status": {"phase": "Running", "podIP": f"10.42.{i // 250}.{i % 250 + 1}",
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def existing_slices(svc: Obj, pods: list[Obj], names: list[str], per_slice: int) -> dict[str, Obj]:
    """Slices as the controller would have written them for ``pods``, named ``names``."""
    if not names:
        return {}
    plan = plan_slices(svc, {}, desired_endpoints(svc, pods, lambda _n: None), trigger=None,
                       max_per_slice=per_slice)
    out = {}
    for name, sl in zip(names, plan.create, strict=True):
        sl["metadata"] = {**sl["metadata"], "name": name, "resourceVersion": "7"}
        out[name] = sl
    return out


def addresses(sl: Obj) -> list[str]:
    return [e["addresses"][0] for e in sl.get("endpoints") or []]


def test_new_service_gets_one_slice_with_every_endpoint() -> None:
    svc = service()
    desired = desired_endpoints(svc, [pod(1), pod(2, ready=False), pod(3, node="n2")], {"n2": "z2"}.get)
    plan = plan_slices(svc, {}, desired, trigger="2026-12-07T12:00:00Z")
    assert not plan.update and not plan.delete
    (sl,) = plan.create
    assert sl["metadata"]["generateName"] == "web-"
    assert sl["metadata"]["labels"][SERVICE_NAME_LABEL] == "web"
    assert sl["metadata"]["labels"][MANAGED_BY_LABEL] == CONTROLLER_NAME
    assert sl["metadata"]["annotations"] == {TRIGGER_ANNOTATION: "2026-12-07T12:00:00Z"}
    assert sl["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    assert addresses(sl) == ["10.42.0.2", "10.42.0.3", "10.42.0.4"]
    assert sl["endpoints"][1]["conditions"] == {"ready": False, "serving": False, "terminating": False}
    assert sl["endpoints"][2]["zone"] == "z2" and "zone" not in sl["endpoints"][0]


CASES = [
    # (what, pods before, slice names, per slice, pods now, updated, deleted, created endpoint counts)
    ("nothing changed: nothing written", [1, 2], ["a"], 100, [1, 2], [], [], []),
    ("a pod gone: its slice is rewritten in place", [1, 2], ["a"], 100, [1], ["a"], [], []),
    ("a new pod joins the slice that has room", [1, 2], ["a"], 100, [1, 2, 3], ["a"], [], []),
    ("more than a slice holds: new slices of at most the limit", [], [], 100, list(range(250)),
     [], [], [100, 100, 50]),
    ("a full slice stays as it is; the newcomer gets a new slice", list(range(3)), ["a"], 3, [0, 1, 2, 3],
     [], [], [1]),
    ("a slice rewritten anyway takes the newcomers first", list(range(6)), ["a", "b"], 3, [0, 1, 3, 4, 5, 6],
     ["a"], [], []),
    ("the last pod gone: one empty placeholder stays", [1, 2, 3, 4], ["a", "b"], 2, [], ["a"], ["b"], []),
]


@pytest.mark.parametrize(("what", "before", "names", "limit", "now", "updated", "deleted", "created"), CASES,
                         ids=[c[0] for c in CASES])
def test_least_churn(what: str, before: list[int], names: list[str], limit: int, now: list[int],
                     updated: list[str], deleted: list[str], created: list[int]) -> None:
    svc = service()
    existing = existing_slices(svc, [pod(i) for i in before], names, limit)
    desired = desired_endpoints(svc, [pod(i) for i in now], lambda _n: None)
    plan = plan_slices(svc, existing, desired, trigger="t", max_per_slice=limit)
    assert [sl["metadata"]["name"] for sl in plan.update] == updated
    assert plan.delete == deleted
    assert [len(sl["endpoints"]) for sl in plan.create] == created
    written = [a for sl in plan.update + plan.create for a in addresses(sl)]
    untouched = [a for n, sl in existing.items() if n not in updated and n not in deleted for a in addresses(sl)]
    assert sorted(written + untouched) == sorted(addresses({"endpoints": [
        e for d in desired.endpoints.values() for e in d.values()]}))
    for sl in plan.update:
        assert sl["metadata"]["annotations"] == {TRIGGER_ANNOTATION: "t"}


def test_placeholder_for_a_service_without_endpoints() -> None:
    svc = service()
    plan = plan_slices(svc, {}, desired_endpoints(svc, [], lambda _n: None), trigger=None)
    (sl,) = plan.create
    assert sl["endpoints"] == [] and sl["ports"] == [] and sl["addressType"] == "IPv4"


def test_changed_port_set_replaces_the_slice() -> None:
    svc = service()
    existing = existing_slices(svc, [pod(1)], ["a"], 100)
    svc2 = service([{"name": "http", "port": 80, "targetPort": 9090}])
    plan = plan_slices(svc2, existing, desired_endpoints(svc2, [pod(1)], lambda _n: None), trigger=None)
    assert plan.delete == ["a"] and not plan.update
    assert plan.create[0]["ports"] == [{"name": "http", "port": 9090, "protocol": "TCP"}]


def test_service_labels_follow_without_a_trigger() -> None:
    svc = service()
    existing = existing_slices(svc, [pod(1)], ["a"], 100)
    relabelled = service(tier="front")
    plan = plan_slices(relabelled, existing, desired_endpoints(relabelled, [pod(1)], lambda _n: None), trigger="t")
    (sl,) = plan.update
    assert sl["metadata"]["labels"] == slice_labels(relabelled) and sl["metadata"]["labels"]["tier"] == "front"
    assert TRIGGER_ANNOTATION not in sl["metadata"]["annotations"]  # its endpoints did not change
