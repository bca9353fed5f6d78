"""The CronJob controller against a real API server, its time driven by a FakeClock.

The FakeClock's wall time starts at the real time (``now_dt`` anchors it on first use), so the
server's creationTimestamps and the controller's "now" agree; tests then jump to fire times.
Jobs are finished by writing their status (no Job controller runs here).
"""

from __future__ import annotations

import datetime as dt
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from kybernetes.client.rest import Client
from kybernetes.client.workqueue import FakeClock
from kybernetes.controllers.cronjob import (
    SCHEDULED_TIMESTAMP,
    CronJobController,
    job_name_for,
    most_recent_time,
)
from kybernetes.controllers.cronschedule import CronSchedule
from kybernetes.controllers.job_util import now_dt
from kybernetes.testing import ServerProcess
from tests.controllers.harness import Env, events_for, namespace, rfc3339, run_controllers, wait_for

pytestmark = pytest.mark.integration
Obj = dict[str, Any]
UTC = dt.UTC


def cronjob_body(name: str, schedule: str = "* * * * *", **spec: Any) -> Obj:
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name}, "spec": {
        "schedule": schedule, **spec,
        "jobTemplate": {"metadata": {"labels": {"team": "a"}, "annotations": {"note": "x"}}, "spec": {
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}}}


async def jobs_of(c: Client, ns: str) -> dict[str, Obj]:
    items, _ = await c.list_all("batch/v1", "jobs", ns)
    return {j["metadata"]["name"]: j for j in items if not j["metadata"].get("deletionTimestamp")}


async def cleanup(c: Client, ns: str) -> None:
    """Delete the test's CronJobs so later tests' controllers (and clocks) leave them alone."""
    items, _ = await c.list_all("batch/v1", "cronjobs", ns)
    for cj in items:
        await c.delete("batch/v1", "cronjobs", cj["metadata"]["name"], ns)


async def advance_to(env: Env, when: dt.datetime) -> None:
    """Move the fake clock to ``when`` (plus a second) and let the woken syncs run."""
    clock = env.clock
    assert isinstance(clock, FakeClock)
    delta = (when - now_dt(clock)).total_seconds() + 1
    if delta > 0:
        await clock.advance(delta)


def next_minute(env: Env, *created: Obj) -> dt.datetime:
    """The first whole minute after both the fake "now" and the objects' creation times."""
    now = now_dt(env.clock)
    for obj in created:
        made = dt.datetime.fromisoformat(obj["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
        now = max(now, made)
    return now.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)


async def finish_job(c: Client, job: Obj, type_: str = "Complete", start: dt.datetime | None = None) -> None:
    now = rfc3339()
    st: Obj = {"startTime": rfc3339(start) if start else now, "conditions": [
        {"type": type_, "status": "True", "lastTransitionTime": now, "lastProbeTime": now}]}
    if type_ == "Complete":
        st["completionTime"] = now
        st["succeeded"] = 1
    else:
        st["failed"] = 1
    body = dict(job, status=st)
    await c.update("batch/v1", "jobs", body, job["metadata"]["namespace"], subresource="status")


async def cronjob(c: Client, ns: str, name: str) -> Obj:
    return await c.get("batch/v1", "cronjobs", name, ns)


def test_most_recent_time_counts_missed() -> None:
    sched = CronSchedule.parse("* * * * *")
    t0 = dt.datetime(2024, 1, 1, tzinfo=UTC)
    assert most_recent_time(sched, UTC, t0, t0 + dt.timedelta(seconds=30)) == (None, 0)
    assert most_recent_time(sched, UTC, t0, t0 + dt.timedelta(minutes=5, seconds=3)) == (
        t0 + dt.timedelta(minutes=5), 5)
    last, missed = most_recent_time(sched, UTC, t0, t0 + dt.timedelta(days=3, seconds=10))
    assert last == t0 + dt.timedelta(days=3) and missed > 100
    assert job_name_for("cj", dt.datetime(2024, 1, 1, 0, 1, tzinfo=UTC)) == f"cj-{1704067260 // 60}"


async def test_fires_on_schedule(srv: ServerProcess) -> None:
    clock = FakeClock()
    now_dt(clock)  # anchor the fake wall clock at the real time
    async with run_controllers(srv, CronJobController, clock=clock) as env:
        c = env.client
        ns = await namespace(c, "cj-fire")
        cj = await c.create("batch/v1", "cronjobs", cronjob_body("tick"), ns)
        fire = next_minute(env, cj)
        await advance_to(env, fire)
        name = job_name_for("tick", fire)
        jobs = await wait_for(lambda: _has_jobs(c, ns, {name}), 10, f"job {name}")
        job = jobs[name]
        assert job["metadata"]["labels"]["team"] == "a"
        assert job["metadata"]["annotations"]["note"] == "x"
        assert job["metadata"]["annotations"][SCHEDULED_TIMESTAMP] == fire.strftime("%Y-%m-%dT%H:%M:%SZ")
        ref = job["metadata"]["ownerReferences"][0]
        assert ref["kind"] == "CronJob" and ref["name"] == "tick" and ref["controller"] is True
        cj = await wait_for(lambda: _active_names(c, ns, "tick", [name]), 10, "status.active")
        assert cj["status"]["lastScheduleTime"] == fire.strftime("%Y-%m-%dT%H:%M:%SZ")
        # Finishing the Job empties status.active and sets lastSuccessfulTime.
        await finish_job(c, job)
        cj = await wait_for(lambda: _active_names(c, ns, "tick", []), 10, "active emptied")
        assert cj["status"].get("lastSuccessfulTime")
        await wait_for(lambda: _has_event(c, ns, "tick", "SuccessfulCreate"), 10, "SuccessfulCreate event")
        await wait_for(lambda: _has_event(c, ns, "tick", "SawCompletedJob"), 10, "SawCompletedJob event")
        await cleanup(c, ns)


async def _has_jobs(c: Client, ns: str, names: set[str]) -> dict[str, Obj] | None:
    jobs = await jobs_of(c, ns)
    return jobs if set(jobs) == names else None


async def _active_names(c: Client, ns: str, name: str, want: list[str]) -> Obj | None:
    cj = await cronjob(c, ns, name)
    have = sorted(a["name"] for a in (cj.get("status") or {}).get("active") or [])
    return cj if have == sorted(want) else None


async def test_forbid_skips_while_active(srv: ServerProcess) -> None:
    clock = FakeClock()
    now_dt(clock)
    async with run_controllers(srv, CronJobController, clock=clock) as env:
        c = env.client
        ns = await namespace(c, "cj-forbid")
        cj = await c.create("batch/v1", "cronjobs", cronjob_body("one", concurrencyPolicy="Forbid"), ns)
        first = next_minute(env, cj)
        await advance_to(env, first)
        n1 = job_name_for("one", first)
        jobs = await wait_for(lambda: _has_jobs(c, ns, {n1}), 10, "first job")
        second = first + dt.timedelta(minutes=1)
        await advance_to(env, second)
        await wait_for(lambda: _has_event(c, ns, "one", "JobAlreadyActive"), 10, "JobAlreadyActive")
        assert set(await jobs_of(c, ns)) == {n1}
        # Once the first run finishes, the held-back run starts (late, but within no deadline).
        await finish_job(c, jobs[n1])
        n2 = job_name_for("one", second)
        await wait_for(lambda: _has_jobs(c, ns, {n1, n2}), 10, "second job")
        await cleanup(c, ns)


async def _has_event(c: Client, ns: str, name: str, reason: str) -> bool:
    return any(e["reason"] == reason for e in await events_for(c, ns, name))


async def test_replace_replaces_active(srv: ServerProcess) -> None:
    clock = FakeClock()
    now_dt(clock)
    async with run_controllers(srv, CronJobController, clock=clock) as env:
        c = env.client
        ns = await namespace(c, "cj-replace")
        cj = await c.create("batch/v1", "cronjobs", cronjob_body("rep", concurrencyPolicy="Replace"), ns)
        first = next_minute(env, cj)
        await advance_to(env, first)
        n1 = job_name_for("rep", first)
        await wait_for(lambda: _has_jobs(c, ns, {n1}), 10, "first job")
        second = first + dt.timedelta(minutes=1)
        await advance_to(env, second)
        n2 = job_name_for("rep", second)
        await wait_for(lambda: _has_jobs(c, ns, {n2}), 10, "replacement")
        await wait_for(lambda: _active_names(c, ns, "rep", [n2]), 10, "active is the new job")
        await cleanup(c, ns)


async def test_history_limits_prune_oldest(srv: ServerProcess) -> None:
    clock = FakeClock()
    now_dt(clock)
    async with run_controllers(srv, CronJobController, clock=clock) as env:
        c = env.client
        ns = await namespace(c, "cj-history")
        cj = await c.create("batch/v1", "cronjobs", cronjob_body(
            "hist", successfulJobsHistoryLimit=1, failedJobsHistoryLimit=0), ns)
        t = next_minute(env, cj)
        names = []
        for i in range(3):
            await advance_to(env, t)
            name = job_name_for("hist", t)
            names.append(name)
            jobs = await wait_for(partial(_job_present, c, ns, name), 10, f"job {name}")
            await finish_job(c, jobs[name], "Failed" if i == 1 else "Complete", start=t)
            t += dt.timedelta(minutes=1)
        # Succeeded: only the newest is kept; failed: none.
        await wait_for(lambda: _has_jobs(c, ns, {names[2]}), 10, "pruned history")
        await wait_for(lambda: _has_event(c, ns, "hist", "SuccessfulDelete"), 10, "SuccessfulDelete event")
        await cleanup(c, ns)


async def _job_present(c: Client, ns: str, name: str) -> dict[str, Obj] | None:
    jobs = await jobs_of(c, ns)
    return jobs if name in jobs else None


async def test_starting_deadline_and_missed_times(srv: ServerProcess) -> None:
    clock = FakeClock()
    now_dt(clock)
    async with run_controllers(srv, CronJobController, clock=clock) as env:
        c = env.client
        ns = await namespace(c, "cj-deadline")
        a = await c.create("batch/v1", "cronjobs", cronjob_body("late", startingDeadlineSeconds=30), ns)
        b = await c.create("batch/v1", "cronjobs", cronjob_body("many"), ns)
        boundary = next_minute(env, a, b)
        # 45 s past the fire time is outside the 30 s window: "late" skips it.
        await advance_to(env, boundary + dt.timedelta(seconds=44))
        many_name = job_name_for("many", boundary)
        await wait_for(lambda: _has_jobs(c, ns, {many_name}), 10, "many's first job")
        assert "late" not in {n.rsplit("-", 1)[0] for n in await jobs_of(c, ns)}
        # The next fire time is caught within the window.
        nxt = boundary + dt.timedelta(minutes=1)
        await advance_to(env, nxt + dt.timedelta(seconds=4))
        await wait_for(lambda: _job_present(c, ns, job_name_for("late", nxt)), 10, "late's job")
        # Three hours later "many" has missed more than 100 times: one job for the latest time.
        far = nxt + dt.timedelta(hours=3)
        await advance_to(env, far)
        await wait_for(lambda: _job_present(c, ns, job_name_for("many", far)), 10, "many's catch-up job")
        await wait_for(lambda: _has_event(c, ns, "many", "TooManyMissedTimes"), 10, "TooManyMissedTimes")
        assert len([n for n in await jobs_of(c, ns) if n.startswith("many-")]) <= 3
        await cleanup(c, ns)


async def test_time_zone_and_suspend(srv: ServerProcess) -> None:
    clock = FakeClock()
    now_dt(clock)
    ny = ZoneInfo("America/New_York")
    async with run_controllers(srv, CronJobController, clock=clock) as env:
        c = env.client
        ns = await namespace(c, "cj-tz")
        await c.create("batch/v1", "cronjobs", cronjob_body("nine", "0 9 * * *", timeZone="America/New_York"), ns)
        await c.create("batch/v1", "cronjobs", cronjob_body("off", suspend=True), ns)
        fire = CronSchedule.parse("0 9 * * *").next(now_dt(clock), ny)
        assert fire is not None
        await advance_to(env, fire)
        name = job_name_for("nine", fire)
        jobs = await wait_for(lambda: _job_present(c, ns, name), 10, "9 am job")
        stamp = jobs[name]["metadata"]["annotations"][SCHEDULED_TIMESTAMP]
        assert stamp.startswith(fire.astimezone(ny).strftime("%Y-%m-%dT09:00:00"))
        assert stamp.endswith(("-05:00", "-04:00"))
        assert not [n for n in jobs if n.startswith("off-")]  # suspended: nothing ran
        await cleanup(c, ns)
