"""The invariant checks of :mod:`tests.reliability.faults` on hand-made watch histories: each one
finds the violation it is there for, and passes a history without one."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from tests.reliability.faults import COMPLETIONS, MAX_SURGE, REPLICAS, job_violations, rs_violations


def rs(name: str, replicas: int) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"replicas": replicas}}


def pod(name: str, owner: str, kind: str = "ReplicaSet", phase: str = "Running") -> dict[str, Any]:
    return {"metadata": {"name": name, "ownerReferences": [{"kind": kind, "name": owner}]},
            "spec": {}, "status": {"phase": phase}}


def watch(plural: str, events: list[tuple[int, str, dict[str, Any]]]) -> Any:
    return SimpleNamespace(plural=plural, events=events)


def test_a_rollout_within_its_surge_passes() -> None:
    rss = watch("replicasets", [(1, "LISTED", rs("old", REPLICAS)), (3, "ADDED", rs("new", MAX_SURGE)),
                                (5, "MODIFIED", rs("old", REPLICAS - 1))])
    pods = watch("pods", [*((1, "LISTED", pod(f"o{i}", "old")) for i in range(REPLICAS)),
                          (4, "ADDED", pod("n0", "new"))])
    assert rs_violations(pods, rss) == ([], REPLICAS + MAX_SURGE)


def test_replicasets_asking_for_too_many_and_a_pod_beyond_its_replicaset_are_found() -> None:
    rss = watch("replicasets", [(1, "LISTED", rs("old", REPLICAS)), (2, "ADDED", rs("new", MAX_SURGE + 1))])
    pods = watch("pods", [*((1, "LISTED", pod(f"o{i}", "old")) for i in range(REPLICAS)),
                          (3, "ADDED", pod("o-extra", "old"))])
    violations, most = rs_violations(pods, rss)
    assert f"rv 2: the ReplicaSets ask for {REPLICAS + MAX_SURGE + 1} pods > {REPLICAS + MAX_SURGE}" in violations
    assert f"rv 3: pod o-extra created as #{REPLICAS + 1} of old, which asks for {REPLICAS}" in violations
    assert most == REPLICAS + 1


def test_a_job_succeeding_more_pods_than_its_completions_is_found() -> None:
    done = [(i, "MODIFIED", pod(f"j{i}", "j", "Job", "Succeeded")) for i in range(COMPLETIONS)]
    assert job_violations(watch("pods", done), watch("jobs", [])) == ([], COMPLETIONS)
    extra = [*done, (COMPLETIONS, "MODIFIED", pod("j-extra", "j", "Job", "Succeeded"))]
    jobs = watch("jobs", [(9, "MODIFIED", {"status": {"succeeded": COMPLETIONS + 1}})])
    violations, succeeded = job_violations(watch("pods", extra), jobs)
    assert succeeded == COMPLETIONS + 1
    assert violations[1] == f"rv 9: Job status.succeeded {COMPLETIONS + 1} > {COMPLETIONS}"
