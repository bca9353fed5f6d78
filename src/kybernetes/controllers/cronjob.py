"""The CronJob controller: create Jobs on a cron schedule (the behaviour of ``cronjob_controllerv2``).

One sync of a CronJob, in order:

1. **Reconcile ``status.active``** with the Jobs it controls (from the Job informer): an unfinished
   Job missing from the list is added (``UnexpectedJob``), a finished one leaves it
   (``SawCompletedJob``) and a Complete one moves ``lastSuccessfulTime`` forward; a listed Job that
   the API server no longer has is dropped (``MissingJob``).
2. **History limits**: finished Jobs beyond ``successfulJobsHistoryLimit`` /
   ``failedJobsHistoryLimit`` are deleted oldest first (by start time), with Background
   propagation.
3. **Schedule**, unless suspended: the most recent fire time after ``lastScheduleTime`` (or the
   creation time) that is not in the future, in ``spec.timeZone`` (default: UTC, the
   controller's local zone). With ``startingDeadlineSeconds`` nothing older than that window is
   considered; a fire time past its window is skipped with a ``MissSchedule`` event, and more
   than 100 missed times raise ``TooManyMissedTimes``. Then ``concurrencyPolicy``: Forbid waits
   while a Job is active (``JobAlreadyActive``; the time is not consumed, so it may still start
   late), Replace deletes the active Jobs first, Allow just starts another.
4. **Create the Job** named ``<cronjob>-<fire time in minutes since the epoch>`` — the name is
   a function of the fire time, so a retry after a lost answer hits AlreadyExists instead of
   starting the run twice — with the job template's labels, annotations (plus
   ``batch.kubernetes.io/cronjob-scheduled-timestamp``) and spec, and a controller
   ownerReference. Record it in ``status.active`` and ``lastScheduleTime``.
5. Write status if it changed, and **requeue** for the next fire time.

All times come from ``ctx.clock`` (mapped to wall time by :func:`job_util.now_dt`), so tests can
drive schedules with a FakeClock.
"""

from __future__ import annotations

import copy
import logging
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from kybernetes import errors
from kybernetes.api.timeutil import format_rfc3339, parse_rfc3339
from kybernetes.controllers.base import Controller, ControllerContext
from kybernetes.controllers.cronschedule import CronError, CronSchedule, load_zone
from kybernetes.controllers.job_util import Obj, emit, job_finished, now_dt, rv_int
from kybernetes.controllers.podutil import controller_ref, meta, spec_of, status_of

log = logging.getLogger(__name__)

SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"
MANY_MISSED = 100
# Requeue a little after the fire time so "now" is surely past it.
_REQUEUE_SLACK = 0.1


def job_name_for(cronjob_name: str, scheduled: datetime) -> str:
    """``<cronjob>-<minutes since the epoch>``: deterministic per fire time."""
    return f"{cronjob_name}-{int(scheduled.timestamp()) // 60}"


def _rfc3339_in(t: datetime, tz: tzinfo) -> str:
    text = t.astimezone(tz).replace(microsecond=0).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def most_recent_time(sched: CronSchedule, tz: tzinfo, earliest: datetime, now: datetime) -> tuple[datetime | None, int]:
    """The latest fire time in (earliest, now], and how many fire times that range holds.

    Up to ``MANY_MISSED`` the times are walked one by one. Past that the count is estimated from
    the interval between the first two times (as Kubernetes does) and the latest time is found
    by looking back from ``now`` over growing windows, instead of walking a range that may be
    years long.
    """
    count = 0
    first: datetime | None = None
    second: datetime | None = None
    last: datetime | None = None
    t = sched.next(earliest, tz)
    while t is not None and t <= now:
        count += 1
        last = t
        if count == 1:
            first = t
        elif count == 2:
            second = t
        if count > MANY_MISSED:
            break
        t = sched.next(t, tz)
    if count <= MANY_MISSED:
        return last, count
    assert first is not None and second is not None
    interval = max((second - first).total_seconds(), 1.0)
    count = int((now - first).total_seconds() // interval) + 1
    for window in (timedelta(hours=1), timedelta(days=1), timedelta(days=32), timedelta(days=366),
                   timedelta(days=3660)):
        start = max(earliest, now - window)
        found: datetime | None = None
        t = sched.next(start, tz)
        steps = 0
        while t is not None and t <= now and steps < 10_000:
            found, steps = t, steps + 1
            t = sched.next(t, tz)
        if found is not None:
            return found, max(count, MANY_MISSED + 1)
    return last, max(count, MANY_MISSED + 1)


def _job_ref(job: Obj) -> dict[str, Any]:
    m = meta(job)
    return {"kind": "Job", "namespace": m.get("namespace", ""), "name": m.get("name", ""), "uid": m.get("uid", ""),
            "apiVersion": "batch/v1", "resourceVersion": m.get("resourceVersion", "")}


def _start_key(job: Obj) -> tuple[int, float, str]:
    start = parse_rfc3339(status_of(job).get("startTime"))
    # Jobs that never started sort after the started ones (``byJobStartTime``).
    return (0, start.timestamp(), meta(job).get("name", "")) if start else (1, 0.0, meta(job).get("name", ""))


class CronJobController(Controller):
    name = "cronjob-controller"
    queue_name = "cronjob"
    service_account = "cronjob-controller"
    workers = 2

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.cronjobs = self.informer("batch/v1", "cronjobs")
        self.jobs = self.informer("batch/v1", "jobs")
        self.cronjobs.add_handler(on_add=self.enqueue, on_update=lambda old, new: self.enqueue(new),
                                  on_delete=self.enqueue)
        self.jobs.add_handler(on_add=self._job_changed, on_update=lambda old, new: self._job_changed(new),
                              on_delete=self._job_changed)
        self._latest: dict[str, Obj] = {}

    def _job_changed(self, job: Obj) -> None:
        ref = controller_ref(job)
        if ref and ref.get("kind") == "CronJob" and str(ref.get("apiVersion", "")).startswith("batch/"):
            self.queue.add(f"{meta(job).get('namespace', '')}/{ref.get('name', '')}")

    def _current(self, key: str) -> Obj | None:
        cj = self.cronjobs.store.get(key)
        latest = self._latest.get(key)
        if cj is None:
            self._latest.pop(key, None)
            return None
        if latest is not None and meta(latest).get("uid") == meta(cj).get("uid") and rv_int(latest) > rv_int(cj):
            return copy.deepcopy(latest)
        self._latest.pop(key, None)
        return copy.deepcopy(cj)

    async def sync(self, key: str) -> None:
        cj = self._current(key)
        if cj is None or meta(cj).get("deletionTimestamp"):
            return
        uid = meta(cj).get("uid")
        jobs = [j for j in self.jobs.store.by_index("owner", str(uid)) if (controller_ref(j) or {}).get("uid") == uid]
        st: dict[str, Any] = copy.deepcopy(status_of(cj))
        await self._reconcile_active(cj, jobs, st)
        await self._cleanup_history(cj, jobs, st)
        requeue = await self._schedule(cj, st)
        await self._write_status(key, cj, st)
        if requeue is not None:
            self.queue.add_after(key, max(requeue, 0.0) + _REQUEUE_SLACK)

    # --- 1. status.active ----------------------------------------------------------------------

    async def _reconcile_active(self, cj: Obj, jobs: list[Obj], st: dict[str, Any]) -> None:
        active: list[dict[str, Any]] = list(st.get("active") or [])
        listed = {a.get("uid") for a in active}
        for job in jobs:
            juid = meta(job).get("uid")
            finished = job_finished(job)
            if finished is None and juid not in listed:
                active.append(_job_ref(job))
                listed.add(juid)
                await emit(self.recorder, cj, "Normal", "UnexpectedJob",
                           f"Saw a job that the controller did not create or forgot: {meta(job).get('name')}")
            elif finished is not None and juid in listed:
                active = [a for a in active if a.get("uid") != juid]
                listed.discard(juid)
                await emit(self.recorder, cj, "Normal", "SawCompletedJob",
                           f"Saw completed job: {meta(job).get('name')}, status: {finished}")
            if finished == "Complete":
                done = parse_rfc3339(status_of(job).get("completionTime"))
                last = parse_rfc3339(st.get("lastSuccessfulTime"))
                if done is not None and (last is None or done > last):
                    st["lastSuccessfulTime"] = format_rfc3339(done)
        known = {meta(j).get("uid") for j in jobs}
        for ref in list(active):
            if ref.get("uid") in known:
                continue
            # Not in the cache: ask the API server before believing it is gone.
            found: Obj | None
            try:
                found = await self.client.get("batch/v1", "jobs", ref.get("name", ""), ref.get("namespace", ""))
            except errors.NotFound:
                found = None
            if found is None or meta(found).get("uid") != ref.get("uid"):
                active = [a for a in active if a.get("uid") != ref.get("uid")]
                await emit(self.recorder, cj, "Normal", "MissingJob", f"Active job went missing: {ref.get('name')}")
        if active:
            st["active"] = active
        else:
            st.pop("active", None)

    # --- 2. history limits ---------------------------------------------------------------------

    async def _cleanup_history(self, cj: Obj, jobs: list[Obj], st: dict[str, Any]) -> None:
        cs = spec_of(cj)
        for kind, field in (("Complete", "successfulJobsHistoryLimit"), ("Failed", "failedJobsHistoryLimit")):
            limit = cs.get(field)
            if limit is None:
                continue
            finished = sorted((j for j in jobs if job_finished(j) == kind and not meta(j).get("deletionTimestamp")),
                              key=_start_key)
            for job in finished[: max(0, len(finished) - int(limit))]:
                jm = meta(job)
                try:
                    await self.client.delete("batch/v1", "jobs", jm.get("name", ""), jm.get("namespace", ""),
                                             propagation_policy="Background", preconditions={"uid": jm.get("uid")})
                except (errors.NotFound, errors.Conflict):
                    continue
                await emit(self.recorder, cj, "Normal", "SuccessfulDelete", f"Deleted job {jm.get('name')}")

    # --- 3/4. scheduling -----------------------------------------------------------------------

    async def _schedule(self, cj: Obj, st: dict[str, Any]) -> float | None:
        """Start what is due; the seconds until the next fire time (None: nothing to wait for)."""
        cs = spec_of(cj)
        if cs.get("suspend"):
            return None
        try:
            tz = load_zone(cs.get("timeZone")) if cs.get("timeZone") else None
        except (ValueError, OSError, KeyError):  # ZoneInfoNotFoundError is a KeyError
            await emit(self.recorder, cj, "Warning", "UnknownTimeZone", f"invalid timeZone: {cs.get('timeZone')!r}")
            return None
        try:
            sched = CronSchedule.parse(str(cs.get("schedule") or ""))
        except CronError as e:
            await emit(self.recorder, cj, "Warning", "UnparseableSchedule",
                       f"unparseable schedule: {cs.get('schedule')!r} : {e}")
            return None
        zone = tz if tz is not None else load_zone(sched.zone)
        now = now_dt(self.ctx.clock)
        earliest = parse_rfc3339(st.get("lastScheduleTime")) or parse_rfc3339(meta(cj).get("creationTimestamp")) or now
        deadline = cs.get("startingDeadlineSeconds")
        if deadline is not None:
            # Nothing older than the starting window will be started, so do not even look.
            earliest = max(earliest, now - timedelta(seconds=int(deadline)))
        scheduled, missed = most_recent_time(sched, zone, earliest, now)
        if missed > MANY_MISSED:
            await emit(self.recorder, cj, "Warning", "TooManyMissedTimes",
                       f"too many missed start times: {missed}. Set or decrease .spec.startingDeadlineSeconds "
                       "or check clock skew")
        following = sched.next(now, zone)
        wait = (following - now).total_seconds() if following is not None else None
        if scheduled is None:
            return wait
        if deadline is not None and scheduled + timedelta(seconds=int(deadline)) < now:
            await emit(self.recorder, cj, "Warning", "MissSchedule",
                       f"Missed scheduled time to start a job: {scheduled.astimezone(UTC).strftime('%a, %d %b %Y %H:%M:%S +0000')}")
            return wait
        name = job_name_for(meta(cj).get("name", ""), scheduled)
        active: list[dict[str, Any]] = list(st.get("active") or [])
        if any(a.get("name") == name for a in active) or parse_rfc3339(st.get("lastScheduleTime")) == scheduled:
            return wait  # this fire time is already taken care of
        policy = cs.get("concurrencyPolicy") or "Allow"
        if policy == "Forbid" and active:
            await emit(self.recorder, cj, "Normal", "JobAlreadyActive",
                       "Not starting job because prior execution is running and concurrency policy is Forbid")
            return wait
        if policy == "Replace":
            for ref in active:
                try:
                    await self.client.delete("batch/v1", "jobs", ref.get("name", ""), ref.get("namespace", ""),
                                             propagation_policy="Background", preconditions={"uid": ref.get("uid")})
                except (errors.NotFound, errors.Conflict):
                    pass
                else:
                    await emit(self.recorder, cj, "Normal", "SuccessfulDelete", f"Deleted job {ref.get('name')}")
            active = []
        job = await self._create_job(cj, name, scheduled, zone)
        if job is None:
            return wait
        if job_finished(job) is None and not any(a.get("uid") == meta(job).get("uid") for a in active):
            active.append(_job_ref(job))
        if active:
            st["active"] = active
        else:
            st.pop("active", None)
        st["lastScheduleTime"] = format_rfc3339(scheduled)
        return wait

    async def _create_job(self, cj: Obj, name: str, scheduled: datetime, zone: tzinfo) -> Obj | None:
        cm = meta(cj)
        template = copy.deepcopy(spec_of(cj).get("jobTemplate") or {})
        tmeta = template.get("metadata") or {}
        annotations = dict(tmeta.get("annotations") or {})
        annotations[SCHEDULED_TIMESTAMP] = _rfc3339_in(scheduled, zone)
        job_meta: dict[str, Any] = {
            "name": name, "namespace": cm.get("namespace", ""), "annotations": annotations,
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": cm.get("name", ""),
                                 "uid": cm.get("uid", ""), "controller": True, "blockOwnerDeletion": True}],
        }
        if tmeta.get("labels"):
            job_meta["labels"] = dict(tmeta["labels"])
        body = {"apiVersion": "batch/v1", "kind": "Job", "metadata": job_meta, "spec": template.get("spec") or {}}
        try:
            job = await self.client.create("batch/v1", "jobs", body, cm.get("namespace", ""))
        except errors.AlreadyExists:
            # A retry of a create whose answer was lost, or someone else's Job of that name.
            job = await self.client.get("batch/v1", "jobs", name, cm.get("namespace", ""))
            if (controller_ref(job) or {}).get("uid") != cm.get("uid"):
                await emit(self.recorder, cj, "Warning", "FailedCreate",
                           f"Error creating job: a job named {name} exists and is not controlled by this cronjob")
                return None
            return job
        await emit(self.recorder, cj, "Normal", "SuccessfulCreate", f"Created job {name}")
        return job

    async def _write_status(self, key: str, cj: Obj, st: dict[str, Any]) -> None:
        if st == status_of(cj):
            return
        body = dict(cj)
        body["status"] = st
        self._latest[key] = await self.client.update("batch/v1", "cronjobs", body, meta(cj).get("namespace", ""),
                                                     subresource="status")


CONTROLLERS: list[type[Controller]] = [CronJobController]

__all__ = ["CONTROLLERS", "SCHEDULED_TIMESTAMP", "CronJobController", "job_name_for", "most_recent_time"]
