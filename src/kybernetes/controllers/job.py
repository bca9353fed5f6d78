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
from kybernetes.api.podutil import is_pod_active, is_pod_ready
from kybernetes.api.timeutil import format_rfc3339, parse_rfc3339
from kybernetes.controllers.base import Controller, ControllerContext, split_key
from kybernetes.controllers.job_util import (
    COMPLETION_INDEX,
    COMPLETION_INDEX_ENV,
    INDEX_FAILURE_COUNT,
    JOB_TRACKING_FINALIZER,
    Obj,
    completion_index,
    condition_true,
    emit,
    format_indexes,
    has_finalizer,
    job_finished,
    match_pod_failure_policy,
    now_dt,
    parse_indexes,
    pod_phase,
    pod_terminating,
    rv_int,
    set_condition,
)
from kybernetes.controllers.podutil import controller_ref, is_terminating, meta, spec_of, status_of

log = logging.getLogger(__name__)

JOB_CONTROLLER_MANAGER = "kubernetes.io/job-controller"
MAX_UNCOUNTED = 500  # Kubernetes' maxUncountedPods: bounds the size of one status write
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


def _is_failed(pod: Obj, only_replace_failed: bool) -> bool:
    """``isPodFailed``: Failed phase, or being deleted unless only Failed pods are replaced."""
    phase = pod_phase(pod)
    if phase == "Failed":
        return True
    if only_replace_failed:
        return False
    return is_terminating(pod) and phase != "Succeeded"


def _index_failures(pod: Obj) -> int:
    try:
        return int((meta(pod).get("annotations") or {}).get(INDEX_FAILURE_COUNT) or 0)
    except ValueError:
        return 0


def _restarts(pod: Obj) -> int:
    st = status_of(pod)
    return sum(int((cs or {}).get("restartCount") or 0)
               for cs in (st.get("initContainerStatuses") or []) + (st.get("containerStatuses") or []))


def _deletion_rank(pod: Obj) -> tuple[int, int, int, float]:
    """Which active pods to delete first: unscheduled, pending, not ready, newest (``ActivePods``)."""
    created = parse_rfc3339(meta(pod).get("creationTimestamp"))
    return (1 if spec_of(pod).get("nodeName") else 0, 1 if pod_phase(pod) == "Running" else 0,
            1 if is_pod_ready(pod) else 0, -(created.timestamp() if created else 0.0))


def _success_policy_met(policy: Any, succeeded: set[int], completions: int) -> str | None:
    """The message of the first ``successPolicy`` rule the succeeded indexes satisfy."""
    if not isinstance(policy, dict):
        return None
    for i, rule in enumerate(policy.get("rules") or []):
        if not isinstance(rule, dict):
            continue
        want = rule.get("succeededIndexes")
        count = rule.get("succeededCount")
        pool = parse_indexes(want, completions) if isinstance(want, str) else set(range(completions))
        hit = pool & succeeded
        if want is not None and count is None and hit == pool:
            return f"Matched rules at index {i}"
        if count is not None and len(hit) >= int(count):
            return f"Matched rules at index {i}"
    return None


class JobController(Controller):
    name = "job-controller"
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
        now = now_dt(self.ctx.clock)
        js = spec_of(job)
        old_status = status_of(job)
        st: dict[str, Any] = copy.deepcopy(old_status)
        indexed = js.get("completionMode") == "Indexed"
        completions: int | None = js.get("completions")
        parallelism = int(js.get("parallelism") or 0)
        suspended = bool(js.get("suspend"))
        pfp = js.get("podFailurePolicy")
        only_failed = js.get("podReplacementPolicy") == "Failed" or pfp is not None
        per_index: int | None = js.get("backoffLimitPerIndex") if indexed else None
        n_completions = int(completions or 0)

        uncounted = st.get("uncountedTerminatedPods") or {}
        unc_s: list[str] = list(uncounted.get("succeeded") or [])
        unc_f: list[str] = list(uncounted.get("failed") or [])
        done_idx = parse_indexes(st.get("completedIndexes"), n_completions) if indexed else set()
        failed_idx = parse_indexes(st.get("failedIndexes"), n_completions) if per_index is not None else set()
        index_failures: dict[int, int] = {}
        to_finalize: list[Obj] = []
        new_succeeded = new_failed = 0
        fail_job: tuple[str, str] | None = None

        # 1. Find finished pods whose result is not recorded yet.
        for p in sorted(owned, key=lambda p: str(meta(p).get("creationTimestamp") or "")):
            puid = str(meta(p).get("uid"))
            ix = completion_index(p) if indexed else None
            if ix is not None and pod_phase(p) == "Failed":
                index_failures[ix] = max(index_failures.get(ix, 0), _index_failures(p) + 1)
            if not has_finalizer(p) or puid in exp.finalizers:
                continue
            if puid in unc_s or puid in unc_f:
                to_finalize.append(p)
                continue
            if len(unc_s) + len(unc_f) >= MAX_UNCOUNTED:
                continue
            if pod_phase(p) == "Succeeded":
                to_finalize.append(p)
                if indexed:
                    if ix is not None and ix < n_completions and ix not in done_idx:
                        done_idx.add(ix)
                        failed_idx.discard(ix)
                        new_succeeded += 1
                else:
                    unc_s.append(puid)
                    new_succeeded += 1
            elif _is_failed(p, only_failed):
                to_finalize.append(p)
                if indexed and (ix is None or ix >= n_completions):
                    continue  # not a real index: drop it without counting
                count = True
                if pfp is not None:
                    msg, count, action = match_pod_failure_policy(pfp, p)
                    if msg is not None and fail_job is None:
                        fail_job = ("PodFailurePolicy", msg)
                    if action == "FailIndex" and ix is not None:
                        failed_idx.add(ix)
                if count and per_index is not None and ix is not None and _index_failures(p) + 1 > per_index:
                    failed_idx.add(ix)
                if count:
                    unc_f.append(puid)
                    new_failed += 1

        succeeded_total = len(done_idx) if indexed else int(st.get("succeeded") or 0) + len(unc_s)
        failed_total = int(st.get("failed") or 0) + len(unc_f)
        active_pods = [p for p in owned if is_pod_active(p)]
        terminating = sum(1 for p in owned if pod_terminating(p))

        # 2. Deadlines and start time.
        resuming = not suspended and condition_true(job, "Suspended")
        if resuming or (not suspended and not st.get("startTime")):
            # A resumed Job starts its deadline afresh: the deadline counts active time only.
            st["startTime"] = format_rfc3339(now)
        start = parse_rfc3339(st.get("startTime"))
        deadline = js.get("activeDeadlineSeconds")
        deadline_left: float | None = None
        if deadline is not None and start is not None and not suspended:
            deadline_left = int(deadline) - (now - start).total_seconds()

        # 3. Decide whether the Job has failed or succeeded (the interim conditions).
        target: tuple[str, str, str] | None = None  # (type, reason, message)
        for ctype in ("FailureTarget", "SuccessCriteriaMet"):
            c = next((c for c in st.get("conditions") or [] if c.get("type") == ctype and c.get("status") == "True"),
                     None)
            if c is not None:
                target = (ctype, str(c.get("reason", "")), str(c.get("message", "")))
        new_target = target is None
        if target is None:
            limit = js.get("backoffLimit")
            backoff_limit = int(limit) if limit is not None else 6
            on_failure = (spec_of(js.get("template") or {}).get("restartPolicy") == "OnFailure")
            restarts = sum(_restarts(p) for p in active_pods) if on_failure else 0
            max_failed_idx = js.get("maxFailedIndexes")
            if fail_job is not None:
                target = ("FailureTarget", *fail_job)
            elif failed_total > backoff_limit or (on_failure and restarts > 0 and restarts >= backoff_limit):
                target = ("FailureTarget", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
            elif max_failed_idx is not None and len(failed_idx) > int(max_failed_idx):
                target = ("FailureTarget", "MaxFailedIndexesExceeded",
                          "Job has exceeded the specified maximal number of failed indexes")
            elif deadline_left is not None and deadline_left <= 0:
                target = ("FailureTarget", "DeadlineExceeded", "Job was active longer than specified deadline")
            elif self._complete(js, indexed, completions, succeeded_total, done_idx, active_pods):
                target = ("SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods")
            elif indexed and (msg := _success_policy_met(js.get("successPolicy"), done_idx, n_completions)):
                target = ("SuccessCriteriaMet", "SuccessPolicy", msg)
            elif indexed and failed_idx and len(done_idx | failed_idx) >= n_completions:
                target = ("FailureTarget", "FailedIndexes", "Job has failed indexes")
        if target is not None and new_target:
            set_condition(st, target[0], "True", target[1], target[2], now)

        if indexed:
            st["completedIndexes"] = format_indexes(done_idx)
            st["succeeded"] = len(done_idx)
        if per_index is not None:
            st["failedIndexes"] = format_indexes(failed_idx)
        st["uncountedTerminatedPods"] = _uncounted(unc_s, unc_f)

        # 4. Make the results durable before removing any finalizer or deleting any pod.
        if new_succeeded or new_failed or (target is not None and new_target):
            job = await self._write_status(key, job, st)
            st = copy.deepcopy(status_of(job))
        if new_succeeded:
            self._backoff[key] = _Backoff()
        if new_failed:
            rec = self._backoff.setdefault(key, _Backoff())
            rec.failures += new_failed
            rec.last_failure = now

        # 5. Remove finalizers of recorded pods; move what is released into the counters.
        released = await self._remove_finalizers(to_finalize, exp)
        by_uid = {str(meta(p).get("uid")): p for p in owned}

        def gone(u: str) -> bool:
            p = by_uid.get(u)
            return p is None or u in released or not has_finalizer(p)

        still_s = [u for u in unc_s if not gone(u)]
        still_f = [u for u in unc_f if not gone(u)]
        if not indexed:
            st["succeeded"] = int(st.get("succeeded") or 0) + len(unc_s) - len(still_s)
        st["failed"] = int(st.get("failed") or 0) + len(unc_f) - len(still_f)
        st["uncountedTerminatedPods"] = _uncounted(still_s, still_f)

        # 6. Manage pods: delete when finishing or suspended, else create up to what is wanted.
        created = deleted = 0
        requeue: list[float] = []
        if target is not None or suspended:
            deleted = await self._delete_pods(job, active_pods, exp)
        elif not exp.pods_pending:
            created, deleted, wait = await self._manage(
                job, active_pods, owned, exp, indexed=indexed, completions=completions, parallelism=parallelism,
                succeeded=succeeded_total, terminating=terminating if only_failed else 0, done_idx=done_idx,
                failed_idx=failed_idx, index_failures=index_failures, now=now)
            if wait is not None:
                requeue.append(wait)
        else:
            requeue.append(1.0)  # safety net; pod events normally arrive first
        active_now = len(active_pods) + created - deleted

        # 7. Suspend/resume bookkeeping.
        if suspended:
            if set_condition(st, "Suspended", "True", "JobSuspended", "Job suspended", now):
                await emit(self.recorder, job, "Normal", "Suspended", "Job suspended")
            if active_now == 0:
                st.pop("startTime", None)  # lets the template's scheduling fields change (KEP-2926)
        elif set_condition(st, "Suspended", "False", "JobResumed", "Job resumed", now, add_if_missing=False):
            await emit(self.recorder, job, "Normal", "Resumed", "Job resumed")

        # 8. The terminal condition once nothing runs, terminates or is uncounted any more.
        if (target is not None and active_now == 0 and terminating == 0 and deleted == 0 and not still_s
                and not still_f and not exp.pods_pending):
            if target[0] == "FailureTarget":
                if set_condition(st, "Failed", "True", target[1], target[2], now):
                    await emit(self.recorder, job, "Warning", target[1], target[2])
            elif set_condition(st, "Complete", "True", target[1], target[2], now):
                st["completionTime"] = format_rfc3339(now)
                await emit(self.recorder, job, "Normal", "Completed", "Job completed")

        st["active"] = active_now
        st["ready"] = sum(1 for p in active_pods if is_pod_ready(p))
        st["terminating"] = terminating
        for f in ("active", "succeeded", "failed"):
            if not st.get(f):
                st.pop(f, None)  # omitempty, as the Go type serializes
        if not st.get("completedIndexes"):
            st.pop("completedIndexes", None)
        await self._write_status(key, job, st)

        if still_s or still_f:
            requeue.append(1.0)  # a finalizer removal failed: try again soon
        if deadline_left is not None and target is None:
            requeue.append(max(deadline_left, 0.0) + 0.01)
        if requeue:
            self.queue.add_after(key, min(requeue))

    @staticmethod
    def _complete(js: dict[str, Any], indexed: bool, completions: int | None, succeeded: int,
                  done_idx: set[int], active_pods: list[Obj]) -> bool:
        if indexed:
            return completions is not None and len(done_idx) >= completions
        if completions is None:
            # Work-queue Jobs: done once any pod succeeded and the others have finished.
            return succeeded > 0 and not active_pods
        return succeeded >= completions

    async def _manage(self, job: Obj, active_pods: list[Obj], owned: list[Obj], exp: _Expectations, *,
                      indexed: bool, completions: int | None, parallelism: int, succeeded: int,
                      terminating: int, done_idx: set[int], failed_idx: set[int],
                      index_failures: dict[int, int], now: datetime) -> tuple[int, int, float | None]:
        """Create or delete pods towards the wanted number; (created, deleted, retry-after)."""
        to_delete: list[Obj] = []
        to_create: list[int | None] = []
        if indexed:
            n = int(completions or 0)
            keep: dict[int, Obj] = {}
            for p in sorted(active_pods, key=_deletion_rank, reverse=True):
                ix = completion_index(p)
                if ix is None or ix >= n or ix in done_idx or ix in failed_idx or ix in keep:
                    to_delete.append(p)  # no index, finished index, or a duplicate
                else:
                    keep[ix] = p
            blocked = {completion_index(p) for p in owned if pod_terminating(p)} if terminating else set()
            pending = [i for i in range(n) if i not in done_idx and i not in failed_idx and i not in keep
                       and i not in blocked]
            slots = parallelism - len(keep) - len(blocked)
            if slots < 0:
                extra = sorted(keep.values(), key=_deletion_rank)[: -slots]
                to_delete += extra
            else:
                to_create = list(pending[:slots])
        else:
            if completions is None:
                want = len(active_pods) if succeeded > 0 else parallelism
            else:
                want = max(0, min(parallelism, completions - succeeded))
            if len(active_pods) > want:
                to_delete = sorted(active_pods, key=_deletion_rank)[: len(active_pods) - want]
            else:
                to_create = [None] * max(0, want - len(active_pods) - terminating)
        deleted = await self._delete_pods(job, to_delete, exp) if to_delete else 0
        if not to_create:
            return 0, deleted, None
        wait = self._backoff_left(job, now)
        if wait > 0:
            return 0, deleted, wait
        created = await self._create_pods(job, to_create, index_failures, exp)
        return created, deleted, None

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


def _uncounted(succeeded: list[str], failed: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if succeeded:
        out["succeeded"] = succeeded
    if failed:
        out["failed"] = failed
    return out


CONTROLLERS: list[type[Controller]] = [JobController]

__all__ = ["CONTROLLERS", "JobController", "condition_true"]
