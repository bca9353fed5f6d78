"""TTL-after-finished and pod GC against a real API server."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from kybernetes import errors
from kybernetes.client.rest import Client
from kybernetes.client.workqueue import FakeClock
from kybernetes.controllers.job_util import now_dt
from kybernetes.controllers.podgc import PodGCController
from kybernetes.controllers.ttlafterfinished import TTLAfterFinishedController, expires_at
from kybernetes.testing import ServerProcess
from tests.controllers.harness import (
    bind,
    finish,
    job_body,
    make_node,
    namespace,
    rfc3339,
    run_controllers,
    wait_for,
)

pytestmark = pytest.mark.integration
Obj = dict[str, Any]
HOLD = "example.com/hold"


# --- TTL after finished -------------------------------------------------------------------------


def test_expires_at() -> None:
    done = "2024-01-01T00:00:00Z"
    job: Obj = {"metadata": {}, "spec": {"ttlSecondsAfterFinished": 30}, "status": {
        "completionTime": done, "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": done}]}}
    assert expires_at(job) == dt.datetime(2024, 1, 1, 0, 0, 30, tzinfo=dt.UTC)
    failed: Obj = {"metadata": {}, "spec": {"ttlSecondsAfterFinished": 0}, "status": {
        "conditions": [{"type": "Failed", "status": "True", "lastTransitionTime": done}]}}
    assert expires_at(failed) == dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    assert expires_at({"metadata": {}, "spec": {}, "status": job["status"]}) is None  # no TTL
    assert expires_at({"metadata": {}, "spec": {"ttlSecondsAfterFinished": 1}, "status": {}}) is None  # running


async def make_finished_job(c: Client, ns: str, name: str, ttl: int | None, type_: str = "Complete") -> Obj:
    extra = {"ttlSecondsAfterFinished": ttl} if ttl is not None else {}
    job = await c.create("batch/v1", "jobs", job_body(name, **extra), ns)
    # Finished a little in the past: the timestamp has whole seconds, and one written just after
    # the fake clock's wall-time anchor could otherwise round to a second after it, leaving a
    # ttl 0 job 0.x s from expiry on a clock that never moves on its own.
    now = rfc3339(dt.datetime.now(dt.UTC) - dt.timedelta(seconds=2))
    st: Obj = {"startTime": now, "conditions": [
        {"type": type_, "status": "True", "lastTransitionTime": now, "lastProbeTime": now}]}
    if type_ == "Complete":
        st["completionTime"] = now
    return await c.update("batch/v1", "jobs", dict(job, status=st), ns, subresource="status")


async def deleted(c: Client, ns: str, name: str) -> bool:
    try:
        job = await c.get("batch/v1", "jobs", name, ns)
    except errors.NotFound:
        return True
    return bool(job["metadata"].get("deletionTimestamp"))


async def test_ttl_deletes_finished_job(srv: ServerProcess) -> None:
    clock = FakeClock()
    now_dt(clock)
    async with run_controllers(srv, TTLAfterFinishedController, clock=clock) as env:
        c = env.client
        ns = await namespace(c, "ttl")
        await make_finished_job(c, ns, "later", 30)
        await make_finished_job(c, ns, "failed-now", 0, "Failed")
        await make_finished_job(c, ns, "keep", None)
        await wait_for(lambda: deleted(c, ns, "failed-now"), 10, "ttl 0 job deleted")
        assert not await deleted(c, ns, "later")
        await clock.advance(32)
        await wait_for(lambda: deleted(c, ns, "later"), 10, "ttl 30 job deleted")
        job = await c.get("batch/v1", "jobs", "later", ns)
        # Foreground propagation: the job waits for its dependents (no GC runs in this test).
        assert "foregroundDeletion" in job["metadata"].get("finalizers", [])
        assert not await deleted(c, ns, "keep")


# --- pod GC -------------------------------------------------------------------------------------


def pod_body(name: str, *, finalizers: list[str] | None = None) -> Obj:
    meta: Obj = {"name": name}
    if finalizers:
        meta["finalizers"] = finalizers
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


async def pod_names(c: Client, ns: str) -> set[str]:
    items, _ = await c.list_all("v1", "pods", ns)
    return {p["metadata"]["name"] for p in items}


async def release(c: Client, ns: str, name: str) -> None:
    try:
        await c.patch("v1", "pods", name, {"metadata": {"finalizers": None}}, ns)
    except errors.NotFound:
        pass


async def test_podgc_terminated_threshold(srv: ServerProcess) -> None:
    opts = {"terminated-pod-gc-threshold": 3, "podgc-period": 0.2}
    async with run_controllers(srv, PodGCController, options=opts) as env:
        c = env.client
        ns = await namespace(c, "gc-term")
        for i in range(5):
            pod = await c.create("v1", "pods", pod_body(f"p{i}"), ns)
            await finish(c, pod, "Succeeded" if i % 2 else "Failed")
        await c.create("v1", "pods", pod_body("running"), ns)
        await wait_for(lambda: _names_are(c, ns, {"p2", "p3", "p4", "running"}), 10, "oldest two terminated gone")


async def _names_are(c: Client, ns: str, want: set[str]) -> set[str] | None:
    names = await pod_names(c, ns)
    return names if names == want else None


async def test_podgc_orphaned_and_unscheduled_terminating(srv: ServerProcess) -> None:
    opts = {"podgc-period": 0.2, "podgc-quarantine": 0.5}
    async with run_controllers(srv, PodGCController, options=opts) as env:
        c = env.client
        ns = await namespace(c, "gc-orphan")
        await make_node(c, "gc-stays")
        await make_node(c, "gc-goes")
        kept = await c.create("v1", "pods", pod_body("kept"), ns)
        await bind(c, kept, "gc-stays")
        orphan = await c.create("v1", "pods", pod_body("orphan", finalizers=[HOLD]), ns)
        await bind(c, orphan, "gc-goes")
        plain = await c.create("v1", "pods", pod_body("plain-orphan"), ns)
        await bind(c, plain, "gc-goes")
        stuck = await c.create("v1", "pods", pod_body("stuck", finalizers=[HOLD]), ns)
        await c.delete("v1", "nodes", "gc-goes")
        await c.delete("v1", "pods", "stuck", ns)
        # Orphans are failed with the reason recorded, then force-deleted.
        pod = await wait_for(lambda: _deleting(c, ns, "orphan"), 10, "orphan deleted")
        assert pod["status"]["phase"] == "Failed"
        cond = next(x for x in pod["status"]["conditions"] if x["type"] == "DisruptionTarget")
        assert cond["reason"] == "DeletionByPodGC" and cond["status"] == "True"
        await wait_for(lambda: _names_are(c, ns, {"kept", "orphan", "stuck"}), 10, "plain orphan gone")
        # The unscheduled terminating pod is failed and deleted with grace 0.
        stuck = await wait_for(lambda: _phase(c, ns, "stuck", "Failed"), 10, "stuck failed")
        assert stuck["metadata"]["deletionGracePeriodSeconds"] == 0
        for name in ("orphan", "stuck"):
            await release(c, ns, name)
        await wait_for(lambda: _names_are(c, ns, {"kept"}), 10, "released pods gone")
        assert (await c.get("v1", "pods", "kept", ns))["spec"]["nodeName"] == "gc-stays"


async def _deleting(c: Client, ns: str, name: str) -> Obj | None:
    pod = await c.get("v1", "pods", name, ns)
    return pod if pod["metadata"].get("deletionTimestamp") else None


async def _phase(c: Client, ns: str, name: str, phase: str) -> Obj | None:
    pod = await c.get("v1", "pods", name, ns)
    return pod if (pod.get("status") or {}).get("phase") == phase else None
