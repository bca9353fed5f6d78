"""The Job controller: run pods to completion, count results exactly once, finish the Job.

A port of the behaviour of ``pkg/controller/job`` (Kubernetes 1.31+), written for kybernetes.

Pods. A Job runs up to ``parallelism`` pods from its template while completions remain. Each pod
gets ``generateName: <job>-`` (``<job>-<index>-`` for Indexed Jobs), the template's labels and
annotations, a controller ownerReference, and the ``batch.kubernetes.io/job-tracking`` finalizer.
Indexed Jobs give every pod its completion index (annotation and label), a
``JOB_COMPLETION_INDEX`` env var read from that annotation, and hostname ``<job>-<index>``.

Counting (the tracking protocol). A finished pod keeps its finalizer until its result is
durably in the Job's status, so a pod deleted by anyone (kubectl, pod GC, the node going away)
is never lost and never counted twice:

1. a finished pod that still has the finalizer is added to ``status.uncountedTerminatedPods``
   (Indexed successes go straight into ``completedIndexes``, which is idempotent by itself);
   that status write happens *before* anything irreversible;
2. the finalizer is removed from the pod (a strategic-merge ``$deleteFromPrimitiveList``);
3. uids whose pod no longer has the finalizer (or is gone) move from the uncounted lists into
   ``succeeded``/``failed``.

Every status write is a PUT carrying the resourceVersion we read, so a stale informer copy can
only cause a 409 and a retry, not a double count. The controller also remembers the object its
last write returned and prefers it while the informer lags. Expectations (pods created/deleted/
finalizer removals not yet seen by the informer) keep the controller from acting twice on the
same stale view: it does not create or delete pods until the informer caught up with the last
batch, and it does not count a pod whose finalizer removal is in flight.

Pods the controller itself deletes (suspend, too many active, a failing Job) lose their finalizer
before the delete and are not counted as failures. A pod deleted by someone else while running
counts as failed, unless pods are only replaced once Failed (``podReplacementPolicy: Failed``
or a ``podFailurePolicy``): then it is "terminating" until its phase is Failed.

Failure. ``backoffLimit`` (failed pods, or container restarts under ``restartPolicy:
OnFailure``), ``activeDeadlineSeconds`` (from ``startTime``, reset on resume),
``podFailurePolicy`` (``FailJob`` fails at once; ``Ignore`` does not count; ``FailIndex`` and
``backoffLimitPerIndex`` fail single indexes; ``maxFailedIndexes``) first record the interim
``FailureTarget`` condition and delete the active pods; the terminal ``Failed`` condition follows
once no pod is running or terminating and nothing is uncounted. Success works the same way:
``SuccessCriteriaMet`` (completions reached, or an Indexed ``successPolicy`` rule) and then
``Complete`` with ``completionTime``. Replacement pods after failures are created with an
exponential backoff (``job-backoff-base`` seconds, default 10, doubling, capped at
``job-backoff-max``, default 360), reset by a success.

Suspend deletes active pods and sets ``Suspended=True``; resuming sets it False and restarts the
deadline clock. ``ttlSecondsAfterFinished`` belongs to the TTL-after-finished controller.

Not done: adoption/orphaning of pods by selector (pods are matched by controller uid), per-index
backoff delays, and the ``maxUncountedPods`` batching beyond a plain cap.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kybernetes import errors
from kybernetes.controllers import job_plan as plan
from kybernetes.controllers.base import Controller, ControllerContext, split_key
from kybernetes.controllers.job_util import (
    COMPLETION_INDEX,
    COMPLETION_INDEX_ENV,
    INDEX_FAILURE_COUNT,
    JOB_TRACKING_FINALIZER,
    Obj,
    condition_true,
    emit,
    has_finalizer,
    job_finished,
    now_dt,
    rv_int,
)
from kybernetes.controllers.podutil import controller_ref, is_terminating, meta, spec_of, status_of

log = logging.getLogger(__name__)

JOB_CONTROLLER_MANAGER = "kubernetes.io/job-controller"
EXPECTATIONS_TIMEOUT = 300.0  # seconds; Kubernetes' ExpectationsTimeout
_REMOVE_FINALIZER_PATCH = {"metadata": {"$deleteFromPrimitiveList/finalizers": [JOB_TRACKING_FINALIZER]}}


@dataclass
class _Expectations:
    """What this controller did that the pod informer has not shown yet (real time deadlines)."""

    adds: dict[str, float] = field(default_factory=dict)  # pod name -> expiry
    deletes: dict[str, float] = field(default_factory=dict)  # pod uid -> expiry
    finalizers: dict[str, float] = field(default_factory=dict)  # pod uid -> expiry

    def reconcile(self, owned: list[Obj]) -> None:
        """Drop what the informer now shows (or what expired)."""
        now = time.monotonic()
        by_name = {meta(p).get("name"): p for p in owned}
        by_uid = {meta(p).get("uid"): p for p in owned}
        for n in [n for n, exp in self.adds.items() if n in by_name or exp < now]:
            del self.adds[n]
        for u in [u for u, exp in self.deletes.items()
                  if u not in by_uid or is_terminating(by_uid[u]) or exp < now]:
            del self.deletes[u]
        for u in [u for u, exp in self.finalizers.items()
                  if u not in by_uid or not has_finalizer(by_uid[u]) or exp < now]:
            del self.finalizers[u]

    @property
    def pods_pending(self) -> bool:
        return bool(self.adds or self.deletes)


@dataclass
class _Backoff:
    """Failures since the last success and when the last one was seen (``backoffRecord``)."""

    failures: int = 0
    last_failure: datetime | None = None


class JobController(Controller):
    name = "job-controller"
    queue_name = "job"
    service_account = "job-controller"
    workers = 3

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.jobs = self.informer("batch/v1", "jobs")
        self.pods = self.informer("v1", "pods")
        self.jobs.add_handler(on_add=self.enqueue, on_update=self._job_updated, on_delete=self._job_deleted)
        self.pods.add_handler(on_add=self._pod_changed, on_update=self._pod_updated, on_delete=self._pod_changed)
        self.backoff_base = float(ctx.option("job-backoff-base", 10))
        self.backoff_max = float(ctx.option("job-backoff-max", 360))
        self._expect: dict[str, _Expectations] = {}
        self._backoff: dict[str, _Backoff] = {}
        self._latest: dict[str, Obj] = {}  # the Job as our last write returned it

    # --- event handlers ------------------------------------------------------------------------

    def _job_updated(self, old: Obj, new: Obj) -> None:
        self.enqueue(new)

    def _job_deleted(self, obj: Any) -> None:
        obj = getattr(obj, "obj", obj)  # a tombstone carries the last known object
        if isinstance(obj, dict):
            self.enqueue(obj)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        self._pod_changed(new)

    def _pod_changed(self, pod: Any) -> None:
        pod = getattr(pod, "obj", pod)
        if not isinstance(pod, dict):
            return
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "Job" or not str(ref.get("apiVersion", "")).startswith("batch/"):
            return
        self.queue.add(f"{meta(pod).get('namespace', '')}/{ref.get('name', '')}")

    # --- sync ----------------------------------------------------------------------------------

    def _current(self, key: str) -> Obj | None:
        """The informer's Job, or our own last write if the informer has not caught up with it."""
        job = self.jobs.store.get(key)
        latest = self._latest.get(key)
        if job is None:
            self._latest.pop(key, None)
            return None
        if latest is not None and meta(latest).get("uid") == meta(job).get("uid") and rv_int(latest) > rv_int(job):
            return copy.deepcopy(latest)
        self._latest.pop(key, None)
        return copy.deepcopy(job)

    async def sync(self, key: str) -> None:
        ns, name = split_key(key)
        job = self._current(key)
        # Pods that name this Job (by name) as controller but carry another uid belong to an
        # earlier Job of the same name, or to this one after it was deleted: release them.
        uid = meta(job).get("uid") if job is not None else None
        strays = [p for p in self.pods.store.by_index("namespace", ns)
                  if has_finalizer(p) and (ref := controller_ref(p) or {}).get("kind") == "Job"
                  and ref.get("name") == name and ref.get("uid") != uid]
        if strays:
            await self._remove_finalizers(strays, None)
        if job is None:
            self._expect.pop(key, None)
            self._backoff.pop(key, None)
            return
        owned = [p for p in self.pods.store.by_index("owner", str(uid))
                 if (controller_ref(p) or {}).get("uid") == uid]
        managed_by = spec_of(job).get("managedBy")
        if managed_by not in (None, JOB_CONTROLLER_MANAGER):
            return  # another controller owns this Job's status
        if job_finished(job) is not None or meta(job).get("deletionTimestamp"):
            # Nothing left to count: let any remaining pod go.
            await self._remove_finalizers([p for p in owned if has_finalizer(p)], None)
            self._backoff.pop(key, None)
            return
        exp = self._expect.setdefault(key, _Expectations())
        exp.reconcile(owned)
        await self._sync_job(key, job, owned, exp)

    async def _sync_job(self, key: str, job: Obj, owned: list[Obj], exp: _Expectations) -> None:
        """Carry out the four steps of ``job_plan`` with the writes between them."""
        now = now_dt(self.ctx.clock)
        counting = plan.count_results(job, owned, now, set(exp.finalizers))
        st = counting.status
        # Make the results durable before removing any finalizer or deleting any pod.
        if counting.must_record:
            job = await self._write_status(key, job, st)
            st = copy.deepcopy(status_of(job))
        if counting.new_succeeded:
            self._backoff[key] = _Backoff()
        if counting.new_failed:
            rec = self._backoff.setdefault(key, _Backoff())
            rec.failures += counting.new_failed
            rec.last_failure = now

        released = await self._remove_finalizers(counting.to_finalize, exp)
        still_s, still_f = plan.settle_counts(st, counting, owned, released)

        changes = plan.plan_pods(counting, owned, pods_pending=exp.pods_pending,
                                 backoff_left=self._backoff_left(job, now))
        deleted = await self._delete_pods(job, changes.delete, exp)
        created = await self._create_pods(job, changes.create, counting.index_failures, exp)

        events = plan.finish(st, counting, now, active_now=len(counting.active_pods) + created - deleted,
                             deleted=deleted, still_uncounted=bool(still_s or still_f),
                             pods_pending=exp.pods_pending)
        for type_, reason, message in events:
            await emit(self.recorder, job, type_, reason, message)
        await self._write_status(key, job, st)

        requeue = [changes.retry_after] if changes.retry_after is not None else []
        if still_s or still_f:
            requeue.append(1.0)  # a finalizer removal failed: try again soon
        if counting.deadline_left is not None and counting.target is None:
            requeue.append(max(counting.deadline_left, 0.0) + 0.01)
        if requeue:
            self.queue.add_after(key, min(requeue))

    def _backoff_left(self, job: Obj, now: datetime) -> float:
        rec = self._backoff.get(f"{meta(job).get('namespace', '')}/{meta(job).get('name', '')}")
        if rec is None or rec.failures == 0 or rec.last_failure is None:
            return 0.0
        delay = min(self.backoff_base * (2 ** (rec.failures - 1)), self.backoff_max)
        return delay - (now - rec.last_failure).total_seconds()

    # --- writes --------------------------------------------------------------------------------

    async def _write_status(self, key: str, job: Obj, st: dict[str, Any]) -> Obj:
        if st == status_of(job):
            return job
        body = dict(job)
        body["status"] = st
        out = await self.client.update("batch/v1", "jobs", body, meta(job).get("namespace", ""),
                                       subresource="status")
        self._latest[key] = out
        return out

    def _pod_for(self, job: Obj, index: int | None, index_failures: dict[int, int]) -> Obj:
        m, js = meta(job), spec_of(job)
        template = copy.deepcopy(js.get("template") or {})
        tmeta = template.get("metadata") or {}
        labels = dict(tmeta.get("labels") or {})
        annotations = dict(tmeta.get("annotations") or {})
        pod_spec: dict[str, Any] = template.get("spec") or {}
        name = str(m.get("name"))
        generate = f"{name}-"
        if index is not None:
            annotations[COMPLETION_INDEX] = str(index)
            labels[COMPLETION_INDEX] = str(index)
            if js.get("backoffLimitPerIndex") is not None:
                annotations[INDEX_FAILURE_COUNT] = str(index_failures.get(index, 0))
            generate = f"{name}-{index}-"
            pod_spec.setdefault("hostname", f"{name}-{index}")
            env_var = {"name": COMPLETION_INDEX_ENV, "valueFrom": {"fieldRef": {
                "apiVersion": "v1", "fieldPath": f"metadata.annotations['{COMPLETION_INDEX}']"}}}
            for kind in ("initContainers", "containers"):
                for ctr in pod_spec.get(kind) or []:
                    env = ctr.setdefault("env", [])
                    if not any(e.get("name") == COMPLETION_INDEX_ENV for e in env):
                        env.append(copy.deepcopy(env_var))
        pod_meta: dict[str, Any] = {
            "generateName": generate, "namespace": m.get("namespace", ""), "labels": labels,
            "finalizers": [JOB_TRACKING_FINALIZER],
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": m.get("uid"),
                                 "controller": True, "blockOwnerDeletion": True}],
        }
        if annotations:
            pod_meta["annotations"] = annotations
        return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": pod_spec}

    async def _create_pods(self, job: Obj, indexes: list[int | None], index_failures: dict[int, int],
                           exp: _Expectations) -> int:
        """Create in doubling batches (``slowStartBatch``): a broken template fails one pod, not all."""
        ns = meta(job).get("namespace", "")
        created = 0
        batch = 1
        pos = 0
        first_error: Exception | None = None
        while pos < len(indexes) and first_error is None:
            chunk = indexes[pos:pos + batch]
            pos += len(chunk)
            results = await asyncio.gather(
                *(self.client.create("v1", "pods", self._pod_for(job, ix, index_failures), ns) for ix in chunk),
                return_exceptions=True)
            for res in results:
                if isinstance(res, BaseException):
                    if not isinstance(res, Exception):
                        raise res
                    first_error = first_error or res
                    await emit(self.recorder, job, "Warning", "FailedCreate", f"Error creating: {res}")
                    continue
                pname = meta(res).get("name", "")
                exp.adds[pname] = time.monotonic() + EXPECTATIONS_TIMEOUT
                created += 1
                await emit(self.recorder, job, "Normal", "SuccessfulCreate", f"Created pod: {pname}")
            batch *= 2
        if first_error is not None:
            raise first_error
        return created

    async def _delete_pods(self, job: Obj, pods: list[Obj], exp: _Expectations) -> int:
        """Delete pods the controller gave up on: finalizer first, so they are not counted."""
        if not pods:
            return 0
        await self._remove_finalizers([p for p in pods if has_finalizer(p)], exp)

        async def one(p: Obj) -> bool:
            pm = meta(p)
            try:
                await self.client.delete("v1", "pods", pm.get("name", ""), pm.get("namespace", ""),
                                         preconditions={"uid": pm.get("uid")})
            except (errors.NotFound, errors.Conflict):
                return True  # already gone (or replaced by a namesake)
            exp.deletes[str(pm.get("uid"))] = time.monotonic() + EXPECTATIONS_TIMEOUT
            await emit(self.recorder, job, "Normal", "SuccessfulDelete", f"Deleted pod: {pm.get('name')}")
            return True

        results = await asyncio.gather(*(one(p) for p in pods), return_exceptions=True)
        for res in results:
            if isinstance(res, Exception):
                raise res
        return len(pods)

    async def _remove_finalizers(self, pods: list[Obj], exp: _Expectations | None) -> set[str]:
        """Strip the tracking finalizer; the uids now free of it (including pods already gone)."""

        async def one(p: Obj) -> str:
            pm = meta(p)
            try:
                await self.client.patch("v1", "pods", pm.get("name", ""), _REMOVE_FINALIZER_PATCH,
                                        pm.get("namespace", ""), patch_type="strategic")
            except errors.NotFound:
                pass
            if exp is not None:
                exp.finalizers[str(pm.get("uid"))] = time.monotonic() + EXPECTATIONS_TIMEOUT
            return str(pm.get("uid"))

        results = await asyncio.gather(*(one(p) for p in pods), return_exceptions=True)
        done = {r for r in results if isinstance(r, str)}
        errs = [r for r in results if isinstance(r, Exception)]
        if errs and not done:
            raise errs[0]
        for e in errs:
            log.warning("removing the job-tracking finalizer failed: %r", e)
        return done


CONTROLLERS: list[type[Controller]] = [JobController]

__all__ = ["CONTROLLERS", "JobController", "condition_true"]
