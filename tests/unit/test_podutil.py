"""kybernetes.api.podutil: pod readiness and effective resource requests."""

from __future__ import annotations

from typing import Any

import pytest

from kybernetes.api import quantity as q
from kybernetes.api.podutil import (
    is_pod_active,
    is_pod_ready,
    is_pod_terminal,
    is_running_and_ready,
    pod_condition,
    pod_ready_since,
    pod_requests,
    pod_resource_totals,
    readiness_gates_unmet,
)

Obj = dict[str, Any]
T = "2024-01-02T03:04:05Z"


def _pod(conditions: Any = None, phase: str = "Running") -> Obj:
    return {"status": {"phase": phase, "conditions": conditions}}


@pytest.mark.parametrize(("pod", "ready", "running_ready", "since"), [
    (_pod([{"type": "Ready", "status": "True", "lastTransitionTime": T}]), True, True, 1704164645.0),
    (_pod([{"type": "Ready", "status": "True", "lastTransitionTime": T}], phase="Pending"), True, False, 1704164645.0),
    (_pod([{"type": "Ready", "status": "True"}]), True, True, None),
    (_pod([{"type": "Ready", "status": "False", "lastTransitionTime": T}]), False, False, None),
    (_pod([{"type": "Ready", "status": "Unknown"}]), False, False, None),
    (_pod([{"type": "ContainersReady", "status": "True"}]), False, False, None),
    # The first Ready condition decides, as GetPodCondition returns the first.
    (_pod([{"type": "Ready", "status": "False"}, {"type": "Ready", "status": "True"}]), False, False, None),
    (_pod(["junk", {"type": "Ready", "status": "True"}]), True, True, None),
    (_pod(None), False, False, None),
    ({}, False, False, None),
    ({"status": "broken"}, False, False, None),
])
def test_readiness(pod: Obj, ready: bool, running_ready: bool, since: float | None) -> None:
    assert is_pod_ready(pod) is ready
    assert is_running_and_ready(pod) is running_ready
    assert pod_ready_since(pod) == since


def test_pod_condition_is_the_first_of_its_type() -> None:
    first = {"type": "PodScheduled", "status": "True", "reason": "a"}
    pod = _pod([{"type": "Ready", "status": "False"}, first, {"type": "PodScheduled", "status": "False"}])
    assert pod_condition(pod, "PodScheduled") is first
    assert pod_condition(pod, "Initialized") is None


@pytest.mark.parametrize(("gates", "conditions", "unmet"), [
    ([], [], []),
    ([{"conditionType": "a"}], [{"type": "a", "status": "True"}], []),
    ([{"conditionType": "a"}], [{"type": "a", "status": "False"}], ["a"]),
    ([{"conditionType": "a"}, {"conditionType": "b"}], [{"type": "b", "status": "True"}], ["a"]),
    ([{"conditionType": "b"}, {"conditionType": "a"}], [], ["b", "a"]),
])
def test_readiness_gates(gates: list[Obj], conditions: list[Obj], unmet: list[str]) -> None:
    assert readiness_gates_unmet({"readinessGates": gates}, conditions) == unmet


def _c(cpu: str | None = None, mem: str | None = None, *, sidecar: bool = False, limits: Obj | None = None) -> Obj:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", mem)) if v is not None}
    c: Obj = {"name": "c", "resources": {"requests": requests}}
    if limits:
        c["resources"]["limits"] = limits
    if sidecar:
        c["restartPolicy"] = "Always"
    return c


MI = 1024 * 1024


@pytest.mark.parametrize(("spec", "want"), [
    ({}, {}),
    ({"containers": [_c("100m", "500Mi")]}, {"cpu": 100, "memory": 500 * MI}),
    # App containers add up.
    ({"containers": [_c("100m"), _c("250m", "1Gi")]}, {"cpu": 350, "memory": 1024 * MI}),
    # A plain init container runs alone: the larger of it and the app containers.
    ({"containers": [_c("100m")], "initContainers": [_c("2")]}, {"cpu": 2000}),
    ({"containers": [_c("3")], "initContainers": [_c("2", "1Gi")]}, {"cpu": 3000, "memory": 1024 * MI}),
    # Sidecars run with the app containers and with the init containers after them.
    ({"containers": [_c("100m")], "initContainers": [_c("50m", sidecar=True)]}, {"cpu": 150}),
    ({"containers": [_c("100m")], "initContainers": [_c("500m", sidecar=True), _c("1")]}, {"cpu": 1500}),
    # An init container before the sidecar does not run next to it.
    ({"containers": [_c("100m")], "initContainers": [_c("1"), _c("500m", sidecar=True)]}, {"cpu": 1000}),
    # Overhead comes on top.
    ({"containers": [_c("100m")], "overhead": {"cpu": "10m", "memory": "1Mi"}}, {"cpu": 110, "memory": MI}),
    # A missing request falls back to the limit; zero entries are dropped.
    ({"containers": [_c(limits={"cpu": "1", "memory": "1Gi"})]}, {"cpu": 1000, "memory": 1024 * MI}),
    ({"containers": [_c("0")]}, {}),
    # A malformed quantity counts as 0 instead of raising.
    ({"containers": [_c("lots", "1Mi")]}, {"memory": MI}),
])
def test_pod_requests(spec: Obj, want: dict[str, int]) -> None:
    assert pod_requests({"spec": spec}) == want


def test_totals_are_generic_over_the_value_type() -> None:
    """Quota's form: exact quantities, zero entries kept."""
    spec = {"containers": [_c("100m", "0")], "initContainers": [_c("250m", sidecar=True), _c("1500m")],
            "overhead": {"cpu": "10m"}}

    def values(c: Obj) -> dict[str, str]:
        return {k: q.canonical(str(v)) for k, v in c["resources"]["requests"].items()}

    got = pod_resource_totals(spec, values, q.add, lambda a, b: q.compare(a, b) > 0,
                              {k: q.canonical(v) for k, v in spec["overhead"].items()})
    assert got == {"cpu": "1760m", "memory": "0"}


@pytest.mark.parametrize(("pod", "terminal", "active"), [
    ({"status": {"phase": "Running"}}, False, True),
    ({"status": {"phase": "Pending"}}, False, True),
    ({"status": {"phase": "Succeeded"}}, True, False),
    ({"status": {"phase": "Failed"}}, True, False),
    ({"status": {"phase": "Running"}, "metadata": {"deletionTimestamp": T}}, False, False),
    ({}, False, True),
])
def test_phase_predicates(pod: Obj, terminal: bool, active: bool) -> None:
    assert is_pod_terminal(pod) is terminal
    assert is_pod_active(pod) is active
