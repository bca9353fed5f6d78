"""The Job controller against a real API server; the tests play kubelet (see harness)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from kybernetes.client.rest import Client
from kybernetes.controllers.job import JobController
from kybernetes.controllers.job_util import (
    COMPLETION_INDEX,
    JOB_TRACKING_FINALIZER,
    format_indexes,
    match_pod_failure_policy,
    parse_indexes,
)
from kybernetes.testing import ServerProcess
from tests.controllers.harness import (
    FakeKubelet,
    condition,
    events_for,
    finish,
    is_active,
    job_body,
    namespace,
    patch,
    pods_of,
    run_controllers,
    wait_for,
)

pytestmark = pytest.mark.integration
Obj = dict[str, Any]
FAST = {"job-backoff-base": 0.02, "job-backoff-max": 0.2}


async def get_job(client: Client, ns: str, name: str) -> Obj:
    return await client.get("batch/v1", "jobs", name, ns)


async def finished(client: Client, ns: str, name: str, type_: str) -> Obj | None:
    job = await get_job(client, ns, name)
    return job if condition(job, type_) else None


async def _reasons(c: Client, ns: str, name: str, want: set[str]) -> bool:
    return want <= {e["reason"] for e in await events_for(c, ns, name)}


# --- unit tests of the helpers ------------------------------------------------------------------


def test_index_ranges() -> None:
    assert format_indexes([5, 0, 1, 2, 7, 8]) == "0-2,5,7-8"
    assert format_indexes([]) == ""
    assert parse_indexes("0-2,5,7-8") == {0, 1, 2, 5, 7, 8}
    assert parse_indexes("0-9", limit=3) == {0, 1, 2}


def test_pod_failure_policy_matching() -> None:
    pod: Obj = {"metadata": {"name": "p", "namespace": "ns"}, "status": {
        "phase": "Failed", "conditions": [{"type": "DisruptionTarget", "status": "True"}],
        "containerStatuses": [{"name": "main", "state": {"terminated": {"exitCode": 42}}},
                              {"name": "side", "state": {"terminated": {"exitCode": 0}}}]}}
    fail = {"rules": [{"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In",
                                                            "values": [42]}}]}
    msg, count, action = match_pod_failure_policy(fail, pod)
    assert action == "FailJob" and count and msg is not None and "exit code 42" in msg
    ignore = {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]}
    assert match_pod_failure_policy(ignore, pod) == (None, False, "Ignore")
    # NotIn: 42 is not in [1, 2] -> matches; exit code 0 never matches.
    notin = {"rules": [{"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [1, 2]}}]}
    assert match_pod_failure_policy(notin, pod)[2] == "Count"
    other = {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [1]}}]}
    assert match_pod_failure_policy(other, pod) == (None, True, None)


# --- the controller -----------------------------------------------------------------------------


async def test_completions_with_parallelism(srv: ServerProcess) -> None:
    async with run_controllers(srv, JobController, options=FAST) as env:
        c = env.client
        ns = await namespace(c, "job-par")
        job = await c.create("batch/v1", "jobs", job_body("work", completions=10, parallelism=3), ns)
        with FakeKubelet(c, ns) as kubelet:
            done = await wait_for(lambda: finished(c, ns, "work", "Complete"), 40, "Complete")
        st = done["status"]
        assert st["succeeded"] == 10 and not st.get("failed") and not st.get("active")
        assert st.get("completionTime") and st.get("startTime")
        assert condition(done, "SuccessCriteriaMet")["reason"] == "CompletionsReached"  # type: ignore[index]
        assert kubelet.max_active <= 3
        pods = await pods_of(c, ns)
        assert len(pods) == 10
        uid = job["metadata"]["uid"]
        for p in pods:
            m = p["metadata"]
            assert m["name"].startswith("work-")
            assert JOB_TRACKING_FINALIZER not in (m.get("finalizers") or [])
            assert m["labels"]["batch.kubernetes.io/job-name"] == "work"
            assert m["labels"]["batch.kubernetes.io/controller-uid"] == uid
            ref = m["ownerReferences"][0]
            assert ref["kind"] == "Job" and ref["uid"] == uid and ref["controller"] is True
        await wait_for(lambda: _reasons(c, ns, "work", {"SuccessfulCreate", "Completed"}), 10, "events")


async def test_backoff_limit_exceeded(srv: ServerProcess) -> None:
    async with run_controllers(srv, JobController, options=FAST) as env:
        c = env.client
        ns = await namespace(c, "job-backoff")
        await c.create("batch/v1", "jobs", job_body("flaky", completions=1, parallelism=1, backoffLimit=2), ns)
        with FakeKubelet(c, ns, policy=lambda p: ("Failed", 1)):
            done = await wait_for(lambda: finished(c, ns, "flaky", "Failed"), 30, "Failed")
        cond = condition(done, "Failed")
        assert cond is not None and cond["reason"] == "BackoffLimitExceeded"
        assert condition(done, "FailureTarget") is not None
        assert done["status"]["failed"] == 3
        assert not done["status"].get("uncountedTerminatedPods")
        assert len(await pods_of(c, ns)) == 3
        await wait_for(lambda: _reasons(c, ns, "flaky", {"BackoffLimitExceeded"}), 10, "events")


async def test_active_deadline(srv: ServerProcess) -> None:
    async with run_controllers(srv, JobController, options=FAST) as env:
        c = env.client
        ns = await namespace(c, "job-deadline")
        await c.create("batch/v1", "jobs", job_body("slow", completions=2, parallelism=2, activeDeadlineSeconds=2), ns)
        done = await wait_for(lambda: finished(c, ns, "slow", "Failed"), 20, "Failed")
        cond = condition(done, "Failed")
        assert cond is not None and cond["reason"] == "DeadlineExceeded"
        assert cond["message"] == "Job was active longer than specified deadline"
        started = dt.datetime.fromisoformat(done["status"]["startTime"].replace("Z", "+00:00"))
        failed_at = dt.datetime.fromisoformat(cond["lastTransitionTime"].replace("Z", "+00:00"))
        assert (failed_at - started).total_seconds() >= 1  # seconds resolution on both
        # The pods it ran were deleted (unbound pods go at once) and not counted as failures.
        await wait_for(lambda: _reasons(c, ns, "slow", {"SuccessfulCreate", "SuccessfulDelete"}), 10, "events")
        assert [p for p in await pods_of(c, ns) if is_active(p)] == []
        assert not done["status"].get("active") and not done["status"].get("failed")


async def _count_active(c: Client, ns: str, n: int) -> list[Obj] | bool:
    """The active pods once there are exactly ``n`` (True for zero, so that it is truthy)."""
    pods = [p for p in await pods_of(c, ns) if is_active(p)]
    if len(pods) != n:
        return False
    return pods or True


async def test_indexed_job(srv: ServerProcess) -> None:
    async with run_controllers(srv, JobController, options=FAST) as env:
        c = env.client
        ns = await namespace(c, "job-indexed")
        await c.create("batch/v1", "jobs",
                       job_body("idx", completions=5, parallelism=2, completionMode="Indexed"), ns)
        with FakeKubelet(c, ns) as kubelet:
            done = await wait_for(lambda: finished(c, ns, "idx", "Complete"), 30, "Complete")
        assert done["status"]["completedIndexes"] == "0-4"
        assert done["status"]["succeeded"] == 5
        assert kubelet.max_active <= 2
        pods = await pods_of(c, ns)
        indexes = sorted(int(p["metadata"]["annotations"][COMPLETION_INDEX]) for p in pods)
        assert indexes == [0, 1, 2, 3, 4]
        for p in pods:
            ix = p["metadata"]["annotations"][COMPLETION_INDEX]
            assert p["metadata"]["labels"][COMPLETION_INDEX] == ix
            assert p["metadata"]["name"].startswith(f"idx-{ix}-")
            assert p["spec"]["hostname"] == f"idx-{ix}"
            env_names = [e["name"] for e in p["spec"]["containers"][0]["env"]]
            assert "JOB_COMPLETION_INDEX" in env_names


async def test_indexed_retries_failed_index(srv: ServerProcess) -> None:
    failed_once: set[str] = set()

    def policy(pod: Obj) -> tuple[str, int]:
        ix = pod["metadata"]["annotations"][COMPLETION_INDEX]
        if ix == "1" and ix not in failed_once:
            failed_once.add(ix)
            return "Failed", 1
        return "Succeeded", 0

    async with run_controllers(srv, JobController, options=FAST) as env:
        c = env.client
        ns = await namespace(c, "job-idx-retry")
        await c.create("batch/v1", "jobs",
                       job_body("idr", completions=3, parallelism=3, completionMode="Indexed"), ns)
        with FakeKubelet(c, ns, policy=policy):
            done = await wait_for(lambda: finished(c, ns, "idr", "Complete"), 30, "Complete")
        assert done["status"]["completedIndexes"] == "0-2"
        assert done["status"]["failed"] == 1
        ones = [p for p in await pods_of(c, ns) if p["metadata"]["annotations"][COMPLETION_INDEX] == "1"]
        assert len(ones) == 2


async def test_pod_failure_policy_fail_job(srv: ServerProcess) -> None:
    pfp = {"rules": [{"action": "FailJob", "onExitCodes": {"containerName": "c", "operator": "In", "values": [42]}}]}
    async with run_controllers(srv, JobController, options=FAST) as env:
        c = env.client
        ns = await namespace(c, "job-pfp")
        await c.create("batch/v1", "jobs", job_body("pfp", completions=4, parallelism=2, backoffLimit=6,
                                                    podFailurePolicy=pfp), ns)
        pods = await wait_for(lambda: _count_active(c, ns, 2), 10, "2 pods")
        await finish(c, pods[0], "Failed", 42)
        with FakeKubelet(c, ns, policy=lambda p: None):  # kills deleted pods as a kubelet would
            done = await wait_for(lambda: finished(c, ns, "pfp", "Failed"), 20, "Failed")
        cond = condition(done, "Failed")
        assert cond is not None and cond["reason"] == "PodFailurePolicy"
        assert "exit code 42" in cond["message"] and "FailJob rule at index 0" in cond["message"]
        assert [p for p in await pods_of(c, ns) if is_active(p)] == []


async def test_pod_failure_policy_ignore(srv: ServerProcess) -> None:
    pfp = {"rules": [{"action": "Ignore", "onExitCodes": {"operator": "In", "values": [3]}}]}
    first: list[str] = []

    def policy(pod: Obj) -> tuple[str, int]:
        if not first:
            first.append(pod["metadata"]["name"])
            return "Failed", 3
        return "Succeeded", 0

    async with run_controllers(srv, JobController, options=FAST) as env:
        c = env.client
        ns = await namespace(c, "job-ignore")
        await c.create("batch/v1", "jobs", job_body("ign", completions=1, parallelism=1, backoffLimit=0,
                                                    podFailurePolicy=pfp), ns)
        with FakeKubelet(c, ns, policy=policy):
            done = await wait_for(lambda: finished(c, ns, "ign", "Complete"), 20, "Complete")
        assert done["status"]["succeeded"] == 1
        assert not done["status"].get("failed")  # ignored failures do not count
        assert len(await pods_of(c, ns)) == 2


async def test_suspend_and_resume(srv: ServerProcess) -> None:
    async with run_controllers(srv, JobController, options=FAST) as env:
        c = env.client
        ns = await namespace(c, "job-suspend")
        await c.create("batch/v1", "jobs", job_body("sus", completions=2, parallelism=2), ns)
        first = await wait_for(lambda: _count_active(c, ns, 2), 10, "2 pods")
        await patch(c, "batch/v1", "jobs", "sus", {"spec": {"suspend": True}}, ns)
        job = await wait_for(lambda: finished(c, ns, "sus", "Suspended"), 10, "Suspended")
        assert condition(job, "Suspended")["reason"] == "JobSuspended"  # type: ignore[index]
        await wait_for(lambda: _count_active(c, ns, 0), 10, "pods deleted")
        job = await wait_for(lambda: _no_active_status(c, ns, "sus"), 10, "status.active 0")
        assert not job["status"].get("startTime")  # cleared while suspended with nothing running
        assert not job["status"].get("failed")  # deleting for suspension is not a failure
        await patch(c, "batch/v1", "jobs", "sus", {"spec": {"suspend": False}}, ns)
        second = await wait_for(lambda: _count_active(c, ns, 2), 10, "2 new pods")
        assert {p["metadata"]["uid"] for p in second}.isdisjoint({p["metadata"]["uid"] for p in first})
        job = await wait_for(lambda: _resumed(c, ns, "sus"), 10, "Suspended=False")
        assert job["status"].get("startTime")
        with FakeKubelet(c, ns):
            await wait_for(lambda: finished(c, ns, "sus", "Complete"), 20, "Complete")
        await wait_for(lambda: _reasons(c, ns, "sus", {"Suspended", "Resumed", "SuccessfulDelete"}), 10, "events")


async def _resumed(c: Client, ns: str, name: str) -> Obj | None:
    job = await get_job(c, ns, name)
    conds = {x["type"]: x for x in job["status"].get("conditions") or []}
    sus = conds.get("Suspended") or {}
    return job if sus.get("status") == "False" and sus.get("reason") == "JobResumed" else None


async def _no_active_status(c: Client, ns: str, name: str) -> Obj | None:
    job = await get_job(c, ns, name)
    return job if not job["status"].get("active") else None


async def test_deleted_pod_is_counted_not_lost(srv: ServerProcess) -> None:
    async with run_controllers(srv, JobController, options=FAST) as env:
        c = env.client
        ns = await namespace(c, "job-deleted")
        await c.create("batch/v1", "jobs", job_body("del", completions=2, parallelism=2), ns)
        pods = await wait_for(lambda: _count_active(c, ns, 2), 10, "2 pods")
        victim = pods[0]["metadata"]["name"]
        await c.delete("v1", "pods", victim, ns)
        # The finalizer holds the pod until the controller has counted it as failed...
        job = await wait_for(lambda: _failed(c, ns, "del", 1), 10, "failed=1")
        assert not job["status"].get("uncountedTerminatedPods")
        # ...then it goes, and a replacement keeps two running.
        await wait_for(lambda: _gone(c, ns, victim), 10, "victim gone")
        await wait_for(lambda: _count_active(c, ns, 2), 10, "replacement")


async def _failed(c: Client, ns: str, name: str, n: int) -> Obj | None:
    job = await get_job(c, ns, name)
    return job if job["status"].get("failed") == n else None


async def _gone(c: Client, ns: str, name: str) -> bool:
    return name not in {p["metadata"]["name"] for p in await pods_of(c, ns)}


async def test_backoff_limit_per_index(srv: ServerProcess) -> None:
    def policy(pod: Obj) -> tuple[str, int]:
        return ("Failed", 1) if pod["metadata"]["annotations"][COMPLETION_INDEX] == "1" else ("Succeeded", 0)

    async with run_controllers(srv, JobController, options=FAST) as env:
        c = env.client
        ns = await namespace(c, "job-per-index")
        await c.create("batch/v1", "jobs", job_body("pix", completions=3, parallelism=3, completionMode="Indexed",
                                                    backoffLimitPerIndex=1), ns)
        with FakeKubelet(c, ns, policy=policy):
            done = await wait_for(lambda: finished(c, ns, "pix", "Failed"), 20, "Failed")
        st = done["status"]
        assert condition(done, "Failed")["reason"] == "FailedIndexes"  # type: ignore[index]
        assert st["failedIndexes"] == "1" and st["completedIndexes"] == "0,2"
        assert st["failed"] == 2  # the first try and one retry of index 1
        ones = [p for p in await pods_of(c, ns) if p["metadata"]["annotations"][COMPLETION_INDEX] == "1"]
        counts = sorted(p["metadata"]["annotations"]["batch.kubernetes.io/job-index-failure-count"] for p in ones)
        assert counts == ["0", "1"]
