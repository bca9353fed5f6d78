"""The StatefulSet controller's decisions without a server: ``statefulset_plan`` on plain dicts."""

from __future__ import annotations

from typing import Any

import pytest

from kybernetes.controllers.history import CONTROLLER_REVISION_HASH
from kybernetes.controllers.statefulset_plan import (
    POD_INDEX_LABEL,
    POD_NAME_LABEL,
    plan_update,
    rollout_status,
)

Obj = dict[str, Any]
OLD = {"metadata": {"name": "db-old"}}
NEW = {"metadata": {"name": "db-new"}}


def sts(replicas: int = 3, **spec: Any) -> Obj:
    return {"metadata": {"name": "db", "namespace": "ns", "generation": 2},
            "spec": {"replicas": replicas, **spec}, "status": {}}


def pod(ordinal: int, rev: Obj = OLD, *, state: str = "ready", identity: bool = True) -> Obj:
    """state: ready, starting (running, not ready), failed, terminating."""
    name = f"db-{ordinal}"
    labels = {CONTROLLER_REVISION_HASH: rev["metadata"]["name"]}
    if identity:
        labels |= {POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal)}
    meta: Obj = {"name": name, "labels": labels}
    if state == "terminating":
        meta["deletionTimestamp"] = "2026-12-07T12:00:00Z"
    phase = "Failed" if state == "failed" else "Running"
    ready = "True" if state in ("ready", "terminating") else "False"
    return {"metadata": meta, "status": {"phase": phase, "conditions": [{"type": "Ready", "status": ready,
                                                                           "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}


def actions(plan: Any) -> list[tuple[str, int, str]]:
    """(kind, ordinal, revision name or "") of each action."""
    return [(a.kind, a.ordinal, a.revision["metadata"]["name"] if a.revision else "") for a in plan.actions]


ROLLING = {"updateStrategy": {"type": "RollingUpdate"}}

CASES = [
    # (what, set, pods, current, update, expected actions)
    ("ordered: one pod at a time, lowest first", sts(), [], NEW, NEW, [("create", 0, "db-new")]),
    ("parallel: every missing pod at once", sts(podManagementPolicy="Parallel"), [], NEW, NEW,
     [("create", 0, "db-new"), ("create", 1, "db-new"), ("create", 2, "db-new")]),
    ("ordered: the next waits for a ready predecessor", sts(), [pod(0, NEW, state="starting")], NEW, NEW, []),
    ("ordered: the next follows a ready predecessor", sts(), [pod(0, NEW)], NEW, NEW, [("create", 1, "db-new")]),
    ("a failed replica is deleted, to be recreated", sts(), [pod(0, NEW), pod(1, NEW, state="failed")], NEW, NEW,
     [("delete", 1, "")]),
    ("scale down: the highest ordinal goes first, alone", sts(1), [pod(0, NEW), pod(1, NEW), pod(2, NEW)], NEW, NEW,
     [("condemn", 2, "")]),
    ("scale down waits while a condemned pod terminates", sts(1),
     [pod(0, NEW), pod(1, NEW), pod(2, NEW, state="terminating")], NEW, NEW, []),
    ("rolling update: the highest ordinal on the old revision", sts(**ROLLING), [pod(0), pod(1), pod(2)], OLD, NEW,
     [("delete", 2, "")]),
    ("rolling update waits for the replaced pod to be ready", sts(**ROLLING),
     [pod(0), pod(1), pod(2, NEW, state="starting")], OLD, NEW, []),
    ("rolling update stops at the partition", sts(updateStrategy={"type": "RollingUpdate",
                                                                  "rollingUpdate": {"partition": 2}}),
     [pod(0), pod(1), pod(2, NEW)], OLD, NEW, []),
    ("below the partition a missing pod comes from the current revision",
     sts(updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}),
     [pod(1), pod(2, NEW)], OLD, NEW, [("create", 0, "db-old")]),
    ("OnDelete leaves old pods alone", sts(updateStrategy={"type": "OnDelete"}), [pod(0), pod(1), pod(2)], OLD, NEW,
     []),
    ("lost identity labels are restored", sts(1), [pod(0, NEW, identity=False)], NEW, NEW, [("restore", 0, "")]),
]


@pytest.mark.parametrize(("what", "s", "pods", "current", "update", "expected"), CASES, ids=[c[0] for c in CASES])
def test_plan_update(what: str, s: Obj, pods: list[Obj], current: Obj, update: Obj,
                     expected: list[tuple[str, int, str]]) -> None:
    assert actions(plan_update(s, pods, current, update, 0)) == expected


def test_status_counts_replicas_by_revision() -> None:
    plan = plan_update(sts(**ROLLING), [pod(0), pod(1, NEW), pod(2, NEW, state="starting")], OLD, NEW, 1)
    st = plan.status
    assert (st["replicas"], st["readyReplicas"], st["currentReplicas"], st["updatedReplicas"]) == (3, 2, 1, 2)
    assert (st["currentRevision"], st["updateRevision"], st["observedGeneration"], st["collisionCount"]) == (
        "db-old", "db-new", 2, 1)


def test_rollout_completes_when_every_pod_is_updated_and_ready() -> None:
    s = sts(2, **ROLLING)
    done = rollout_status(s, plan_update(s, [pod(0, NEW), pod(1, NEW)], OLD, NEW, 0).status)
    assert done["currentRevision"] == "db-new" and done["currentReplicas"] == 2
    half = rollout_status(s, plan_update(s, [pod(0), pod(1, NEW)], OLD, NEW, 0).status)
    assert half["currentRevision"] == "db-old" and half["currentReplicas"] == 1
