"""The Job controller's decisions without a server: ``job_plan`` driven by plain dicts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kybernetes.api.timeutil import format_rfc3339 as fmt_time
from kybernetes.controllers import job_plan as plan
from kybernetes.controllers.job_util import COMPLETION_INDEX, JOB_TRACKING_FINALIZER

NOW = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)
Obj = dict[str, Any]


def job(**spec: Any) -> Obj:
    status = spec.pop("status", {})
    base = {"parallelism": 1, "completions": 1, "template": {"spec": {"restartPolicy": "Never"}}}
    return {"metadata": {"name": "j", "namespace": "ns", "uid": "job-uid"}, "spec": base | spec, "status": status}


def pod(uid: str, phase: str = "Running", *, index: int | None = None, finalizer: bool = True, node: str = "n1",
        ready: bool = False, created: int = 0, deleting: bool = False) -> Obj:
    meta: Obj = {"name": f"p-{uid}", "uid": uid, "creationTimestamp": fmt_time(NOW + timedelta(seconds=created))}
    if finalizer:
        meta["finalizers"] = [JOB_TRACKING_FINALIZER]
    if index is not None:
        meta["annotations"] = {COMPLETION_INDEX: str(index)}
    if deleting:
        meta["deletionTimestamp"] = fmt_time(NOW)
    status: Obj = {"phase": phase}
    if ready:
        status["conditions"] = [{"type": "Ready", "status": "True"}]
    return {"metadata": meta, "spec": {"nodeName": node} if node else {}, "status": status}


def condition(st: Obj, type_: str) -> Obj | None:
    return next((c for c in st.get("conditions") or [] if c["type"] == type_), None)


# --- step 1: counting -----------------------------------------------------------------------------

COUNT_CASES = [
    # (what, job, pods, in-flight finalizers, expected target reason, new_succeeded, new_failed)
    ("a success completes a one-pod Job", job(), [pod("a", "Succeeded")], set(), "CompletionsReached", 1, 0),
    ("a success short of completions", job(completions=2), [pod("a", "Succeeded")], set(), None, 1, 0),
    ("a failure within the backoff limit", job(backoffLimit=1), [pod("a", "Failed")], set(), None, 0, 1),
    ("a failure beyond the backoff limit", job(backoffLimit=0), [pod("a", "Failed")], set(),
     "BackoffLimitExceeded", 0, 1),
    ("a finalizer removal in flight is not counted again", job(), [pod("a", "Succeeded")], {"a"}, None, 0, 0),
    ("a pod without the finalizer was counted already", job(completions=2), [pod("a", "Succeeded", finalizer=False)],
     set(), None, 0, 0),
    ("a running pod deleted by someone else counts as failed", job(backoffLimit=0),
     [pod("a", "Running", deleting=True)], set(), "BackoffLimitExceeded", 0, 1),
    ("...unless only Failed pods are replaced", job(backoffLimit=0, podReplacementPolicy="Failed"),
     [pod("a", "Running", deleting=True)], set(), None, 0, 0),
    ("the pod failure policy fails the Job", job(podFailurePolicy={"rules": [
        {"action": "FailJob", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]}),
     [pod("a", "Failed") | {"status": {"phase": "Failed", "conditions": [
         {"type": "DisruptionTarget", "status": "True"}]}}], set(), "PodFailurePolicy", 0, 1),
    ("the deadline passed", job(activeDeadlineSeconds=10, status={"startTime": fmt_time(NOW - timedelta(seconds=11))}),
     [pod("a")], set(), "DeadlineExceeded", 0, 0),
    ("every index succeeded", job(completionMode="Indexed", completions=2, parallelism=2,
                                  status={"completedIndexes": "0"}),
     [pod("b", "Succeeded", index=1)], set(), "CompletionsReached", 1, 0),
    ("a success policy is met", job(completionMode="Indexed", completions=3, parallelism=3,
                                    successPolicy={"rules": [{"succeededIndexes": "1"}]}),
     [pod("b", "Succeeded", index=1)], set(), "SuccessPolicy", 1, 0),
]


@pytest.mark.parametrize(("what", "j", "pods", "in_flight", "reason", "new_s", "new_f"), COUNT_CASES,
                         ids=[c[0] for c in COUNT_CASES])
def test_count_results(what: str, j: Obj, pods: list[Obj], in_flight: set[str], reason: str | None,
                       new_s: int, new_f: int) -> None:
    c = plan.count_results(j, pods, NOW, in_flight)
    assert (c.new_succeeded, c.new_failed) == (new_s, new_f)
    assert (c.target[1] if c.target else None) == reason
    assert c.must_record == bool(new_s or new_f or reason)
    if reason:
        assert condition(c.status, c.target[0])["status"] == "True"  # type: ignore[index]


def test_count_records_before_anything_irreversible() -> None:
    c = plan.count_results(job(completions=3, parallelism=3), [pod("a", "Succeeded"), pod("b", "Failed"), pod("c")],
                           NOW)
    assert c.status["uncountedTerminatedPods"] == {"succeeded": ["a"], "failed": ["b"]}
    assert [p["metadata"]["uid"] for p in c.to_finalize] == ["a", "b"]
    assert c.status["startTime"] == fmt_time(NOW)
    assert "succeeded" not in c.status  # counted only once the finalizers are gone (step 2)


def test_an_existing_target_is_kept_not_renewed() -> None:
    st = {"conditions": [{"type": "FailureTarget", "status": "True", "reason": "DeadlineExceeded", "message": "m"}]}
    c = plan.count_results(job(status=st), [pod("a")], NOW)
    assert c.target == ("FailureTarget", "DeadlineExceeded", "m") and not c.new_target and not c.must_record


def test_suspended_job_has_no_start_time() -> None:
    c = plan.count_results(job(suspend=True), [], NOW)
    assert "startTime" not in c.status and c.deadline_left is None


# --- step 2: settling -----------------------------------------------------------------------------

def test_settle_moves_released_uids_into_the_counters() -> None:
    pods = [pod("a", "Succeeded"), pod("b", "Failed")]
    c = plan.count_results(job(completions=3, parallelism=3), pods, NOW)
    st = dict(c.status)
    still = plan.settle_counts(st, c, pods, released={"a"})
    assert still == ([], ["b"])
    assert st["succeeded"] == 1 and st["failed"] == 0
    assert st["uncountedTerminatedPods"] == {"failed": ["b"]}


# --- step 3: pods ---------------------------------------------------------------------------------

def _uids(pods: list[Obj]) -> list[str]:
    return [p["metadata"]["uid"] for p in pods]


POD_CASES = [
    # (what, job, pods, pods_pending, backoff_left, deleted uids, created, retry_after)
    ("creates up to parallelism", job(completions=5, parallelism=3, status={"succeeded": 1}), [pod("a")],
     False, 0.0, [], [None, None], None),
    ("no more than the completions left", job(completions=2, parallelism=3, status={"succeeded": 1}), [],
     False, 0.0, [], [None], None),
    ("too many: unscheduled, then pending, then newest go first", job(completions=5, parallelism=1),
     [pod("old", ready=True), pod("new", ready=True, created=5), pod("unsched", node="")],
     False, 0.0, ["unsched", "new"], [], None),
    ("the back-off holds new pods", job(completions=2, parallelism=2), [], False, 7.5, [], [], 7.5),
    ("the informer has not caught up", job(completions=2, parallelism=2), [], True, 0.0, [], [], 1.0),
    ("a finished Job deletes what still runs", job(backoffLimit=0), [pod("run"), pod("bad", "Failed")],
     False, 0.0, ["run"], [], None),
    ("a suspended Job deletes its pods", job(suspend=True), [pod("run")], False, 0.0, ["run"], [], None),
    ("indexed: the missing indexes, up to parallelism",
     job(completionMode="Indexed", completions=4, parallelism=2, status={"completedIndexes": "0"}),
     [pod("one", index=1)], False, 0.0, [], [2], None),
    ("indexed: a duplicate index goes",
     job(completionMode="Indexed", completions=4, parallelism=2),
     [pod("x", index=1, ready=True), pod("y", index=1)], False, 0.0, ["y"], [0], None),
]


@pytest.mark.parametrize(("what", "j", "pods", "pending", "backoff", "deleted", "created", "retry"), POD_CASES,
                         ids=[c[0] for c in POD_CASES])
def test_plan_pods(what: str, j: Obj, pods: list[Obj], pending: bool, backoff: float, deleted: list[str],
                   created: list[int | None], retry: float | None) -> None:
    c = plan.count_results(j, pods, NOW)
    changes = plan.plan_pods(c, pods, pods_pending=pending, backoff_left=backoff)
    assert sorted(_uids(changes.delete)) == sorted(deleted)
    assert changes.create == created
    assert changes.retry_after == retry


# --- step 4: finishing ----------------------------------------------------------------------------

def test_finish_completes_once_nothing_runs() -> None:
    pods = [pod("a", "Succeeded", finalizer=False)]
    c = plan.count_results(job(status={"succeeded": 1}), pods, NOW)
    st = dict(c.status)
    events = plan.finish(st, c, NOW, active_now=0, deleted=0, still_uncounted=False, pods_pending=False)
    assert events == [("Normal", "Completed", "Job completed")]
    assert condition(st, "Complete")["status"] == "True"  # type: ignore[index]
    assert st["completionTime"] == fmt_time(NOW) and "active" not in st


def test_finish_waits_while_a_result_is_uncounted() -> None:
    c = plan.count_results(job(backoffLimit=0), [pod("a", "Failed")], NOW)
    st = dict(c.status)
    events = plan.finish(st, c, NOW, active_now=0, deleted=0, still_uncounted=True, pods_pending=False)
    assert events == [] and condition(st, "Failed") is None


def test_finish_suspends_and_resumes() -> None:
    c = plan.count_results(job(suspend=True), [], NOW)
    st = dict(c.status)
    assert plan.finish(st, c, NOW, active_now=0, deleted=0, still_uncounted=False,
                       pods_pending=False) == [("Normal", "Suspended", "Job suspended")]
    resumed = job(status=st)
    resumed["status"]["conditions"] = st["conditions"]
    c = plan.count_results(resumed, [], NOW)
    st = dict(c.status)
    assert plan.finish(st, c, NOW, active_now=1, deleted=0, still_uncounted=False,
                       pods_pending=False) == [("Normal", "Resumed", "Job resumed")]
    assert condition(st, "Suspended")["status"] == "False"  # type: ignore[index]
