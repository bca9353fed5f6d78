"""The Deployment controller's decisions without a server: ``deployment_plan`` on plain dicts."""

from __future__ import annotations

from typing import Any

import pytest

from kybernetes.api.timeutil import parse_epoch
from kybernetes.controllers import deployment_plan as plan
from kybernetes.controllers import deployment_util as du

Obj = dict[str, Any]
NOW = 1_800_000_000.0


def deployment(replicas: int = 3, *, surge: Any = 1, unavailable: Any = 0, history: int | None = None,
               **status: Any) -> Obj:
    spec: Obj = {"replicas": replicas, "progressDeadlineSeconds": 600,
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge,
                                                                         "maxUnavailable": unavailable}}}
    if history is not None:
        spec["revisionHistoryLimit"] = history
    return {"metadata": {"name": "web", "namespace": "ns", "generation": 1}, "spec": spec, "status": status}


def rs(name: str, replicas: int, available: int | None = None, *, created: int = 0, revision: int = 1,
       desired: int | None = None) -> Obj:
    annotations = {"deployment.kubernetes.io/revision": str(revision)}
    if desired is not None:
        annotations["deployment.kubernetes.io/desired-replicas"] = str(desired)
    available = replicas if available is None else available
    return {"metadata": {"name": name, "uid": f"uid-{name}", "creationTimestamp": f"2026-12-07T00:00:{created:02d}Z",
                         "annotations": annotations, "generation": 1},
            "spec": {"replicas": replicas},
            "status": {"replicas": replicas, "availableReplicas": available, "readyReplicas": available,
                       "observedGeneration": 1}}


def sizes(pairs: list[tuple[Obj, int]]) -> list[tuple[str, int]]:
    return [(r["metadata"]["name"], n) for r, n in pairs]


NEW_RS_CASES = [
    ("grows within maxSurge", deployment(3), [rs("old", 3)], rs("new", 0), 1),
    ("at the surge limit: stays", deployment(3), [rs("old", 3)], rs("new", 1), None),
    ("right size: nothing", deployment(3), [rs("old", 0)], rs("new", 3), None),
    ("too big: shrinks to replicas at once", deployment(3), [], rs("new", 5), 3),
]


@pytest.mark.parametrize(("what", "d", "old", "new", "expected"), NEW_RS_CASES, ids=[c[0] for c in NEW_RS_CASES])
def test_new_rs_size(what: str, d: Obj, old: list[Obj], new: Obj, expected: int | None) -> None:
    size = plan.new_rs_size(d, [*old, new], new)
    # "at the surge limit" keeps its size: new_rs_new_replicas answers the same size, no write.
    assert size == expected or (expected is None and size == du.rs_replicas(new))


OLD_CASES = [
    ("no availability to spare: nothing", deployment(3), [rs("old", 3)], rs("new", 1, 0), []),
    ("one new pod available: one old pod goes", deployment(3), [rs("old", 3)], rs("new", 1, 1), [("old", 2)]),
    ("unhealthy old pods go first, oldest set first",
     deployment(2, surge=0, unavailable=1), [rs("a", 2, 2, created=1), rs("b", 2, 0, created=2)], rs("new", 0),
     [("a", 1), ("b", 0)]),
    ("old sets already at zero: nothing", deployment(3), [rs("old", 0)], rs("new", 3), []),
]


@pytest.mark.parametrize(("what", "d", "old", "new", "expected"), OLD_CASES, ids=[c[0] for c in OLD_CASES])
def test_old_scale_down(what: str, d: Obj, old: list[Obj], new: Obj, expected: list[tuple[str, int]]) -> None:
    assert sizes(plan.old_scale_down(d, old, new)) == expected


def test_proportional_sizes() -> None:
    d = deployment(5)
    # One active set: it simply takes the new size.
    assert sizes(plan.proportional_sizes(d, rs("new", 3, desired=3), [rs("old", 0)])) == [("new", 5)]
    assert plan.proportional_sizes(d, rs("new", 5, desired=5), []) == []
    # A saturated new set: the old ones go to zero.
    assert sizes(plan.proportional_sizes(d, rs("new", 5, 5, desired=5), [rs("old", 2, desired=5)])) == [("old", 0)]
    # Mid-rollout 10 -> 20 replicas (surge 1): both sets grow in proportion, the total is 21.
    d = deployment(20, status_replicas=0)
    new, old = rs("new", 4, 0, created=2, desired=10), rs("old", 7, created=1, desired=10)
    for r in (new, old):
        r["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"] = "11"
    out = dict(sizes(plan.proportional_sizes(d, new, [old])))
    assert sum(out.values()) == 21 and out["old"] > 7 and out["new"] > 4


def test_history_to_delete_keeps_the_newest_within_the_limit() -> None:
    # Four old sets alive, two kept: the two oldest that are scaled down go (a busy one counts
    # towards the limit but is never deleted).
    d = deployment(history=2)
    old = [rs("r3", 0, revision=3), rs("r1", 0, revision=1), rs("r2", 0, revision=2), rs("busy", 1, revision=0)]
    assert [r["metadata"]["name"] for r in plan.history_to_delete(d, old)] == ["r1", "r2"]
    assert plan.history_to_delete(deployment(), old) == []  # no limit set


def test_rollout_status_times_out_and_comes_back_before_the_deadline() -> None:
    # Counters as the last sync left them: nothing moves, so only the deadline can change the condition.
    d = deployment(3, observedGeneration=1, updatedReplicas=1, readyReplicas=3, availableReplicas=3,
                   unavailableReplicas=1, conditions=[
        {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated", "message": "m",
         "lastUpdateTime": "2027-01-15T08:00:00Z", "lastTransitionTime": "2027-01-15T08:00:00Z"}])
    d["status"]["replicas"] = 4
    rses = [rs("old", 3), rs("new", 1, 0)]
    since = parse_epoch("2027-01-15T08:00:00Z")
    assert since is not None
    before = plan.rollout_status(d, rses, rses[1], since + 100)
    assert before.timed_out is None
    assert plan.recheck_after(d, before.status, since + 100) == pytest.approx(501.0)
    after = plan.rollout_status(d, rses, rses[1], since + 601)
    assert after.timed_out == 'ReplicaSet "new" has timed out progressing.'
    cond = next(c for c in after.status["conditions"] if c["type"] == "Progressing")
    assert (cond["status"], cond["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert plan.recheck_after(d, after.status, since + 601) is None


def test_rollout_status_complete() -> None:
    d = deployment(3)
    st = plan.rollout_status(d, [rs("old", 0, 0), rs("new", 3)], rs("new", 3), NOW).status
    cond = next(c for c in st["conditions"] if c["type"] == "Progressing")
    assert cond["reason"] == "NewReplicaSetAvailable"
    assert (st["replicas"], st["updatedReplicas"], st["availableReplicas"]) == (3, 3, 3)
