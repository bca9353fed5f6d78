"""The Job controller's decisions, as pure functions: (Job, its pods, what is in flight, now) -> plan.

The tracking protocol (see ``job.py``) makes results durable before anything irreversible
happens, so one sync decides in four steps with writes between them; each step here only
decides, and ``JobController._sync_job`` carries the plan out:

1. :func:`count_results` -> :class:`Counting`: which finished pods' results to record, the status
   with them in ``uncountedTerminatedPods`` / ``completedIndexes``, and the interim condition
   (``FailureTarget`` / ``SuccessCriteriaMet``) if the Job reaches one now.
   *The controller writes that status if it records anything, then strips the finalizers.*
2. :func:`settle_counts`: uids whose pod lost its finalizer (or is gone) move from the uncounted
   lists into ``succeeded`` / ``failed``.
3. :func:`plan_pods` -> :class:`PodChanges`: active pods to delete and pods (completion indexes,
   or ``None`` for a non-indexed Job) to create, or how long the failure back-off still holds.
   *The controller deletes and creates.*
4. :func:`finish`: the ``Suspended``, ``Failed`` / ``Complete`` conditions and the pod counts, and
   the events that go with them. *The controller records the events and writes the status.*

Nothing here reads a clock, an informer or the network: tests drive every rule with plain dicts.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kybernetes.api.podutil import is_pod_active, is_pod_ready
from kybernetes.api.timeutil import format_rfc3339, parse_rfc3339
from kybernetes.controllers.job_util import (
    INDEX_FAILURE_COUNT,
    Obj,
    completion_index,
    condition_true,
    format_indexes,
    has_finalizer,
    match_pod_failure_policy,
    parse_indexes,
    pod_phase,
    pod_terminating,
    set_condition,
)
from kybernetes.controllers.podutil import is_terminating, meta, spec_of, status_of

MAX_UNCOUNTED = 500  # Kubernetes' maxUncountedPods: bounds the size of one status write

Target = tuple[str, str, str]
"""An interim condition: (type, reason, message)."""
Event = tuple[str, str, str]
"""An event to record: (type, reason, message)."""


@dataclass
class Counting:
    """Step 1's result: the Job's settings as read once, and what this sync records."""

    status: dict[str, Any]
    indexed: bool
    completions: int | None
    parallelism: int
    suspended: bool
    only_replace_failed: bool
    active_pods: list[Obj]
    terminating: int
    to_finalize: list[Obj] = field(default_factory=list)
    uncounted_succeeded: list[str] = field(default_factory=list)
    uncounted_failed: list[str] = field(default_factory=list)
    new_succeeded: int = 0
    new_failed: int = 0
    done_indexes: set[int] = field(default_factory=set)
    failed_indexes: set[int] = field(default_factory=set)
    index_failures: dict[int, int] = field(default_factory=dict)
    succeeded_total: int = 0
    target: Target | None = None
    new_target: bool = False
    deadline_left: float | None = None

    @property
    def must_record(self) -> bool:
        """Whether the status must be written before any finalizer goes or any pod is deleted."""
        return bool(self.new_succeeded or self.new_failed or (self.target is not None and self.new_target))


@dataclass
class PodChanges:
    """Step 3's result."""

    delete: list[Obj] = field(default_factory=list)
    create: list[int | None] = field(default_factory=list)
    retry_after: float | None = None
    """Set when pods are wanted but the failure back-off (or the informer) holds them back."""


def is_failed(pod: Obj, only_replace_failed: bool) -> bool:
    """``isPodFailed``: Failed phase, or being deleted unless only Failed pods are replaced."""
    phase = pod_phase(pod)
    if phase == "Failed":
        return True
    if only_replace_failed:
        return False
    return is_terminating(pod) and phase != "Succeeded"


def index_failures_of(pod: Obj) -> int:
    try:
        return int((meta(pod).get("annotations") or {}).get(INDEX_FAILURE_COUNT) or 0)
    except ValueError:
        return 0


def restarts(pod: Obj) -> int:
    st = status_of(pod)
    return sum(int((cs or {}).get("restartCount") or 0)
               for cs in (st.get("initContainerStatuses") or []) + (st.get("containerStatuses") or []))


def deletion_rank(pod: Obj) -> tuple[int, int, int, float]:
    """Which active pods to delete first: unscheduled, pending, not ready, newest (``ActivePods``)."""
    created = parse_rfc3339(meta(pod).get("creationTimestamp"))
    return (1 if spec_of(pod).get("nodeName") else 0, 1 if pod_phase(pod) == "Running" else 0,
            1 if is_pod_ready(pod) else 0, -(created.timestamp() if created else 0.0))


def success_policy_met(policy: Any, succeeded: set[int], completions: int) -> str | None:
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


def uncounted(succeeded: list[str], failed: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if succeeded:
        out["succeeded"] = succeeded
    if failed:
        out["failed"] = failed
    return out


# --- step 1 ------------------------------------------------------------------------------------


def count_results(job: Obj, owned: list[Obj], now: datetime,
                  finalizers_in_flight: set[str] | frozenset[str] = frozenset()) -> Counting:
    """Find finished pods whose result is not recorded yet, and whether the Job now reaches an end."""
    js = spec_of(job)
    st: dict[str, Any] = copy.deepcopy(status_of(job))
    pfp = js.get("podFailurePolicy")
    indexed = js.get("completionMode") == "Indexed"
    c = Counting(status=st, indexed=indexed, completions=js.get("completions"),
                 parallelism=int(js.get("parallelism") or 0), suspended=bool(js.get("suspend")),
                 only_replace_failed=js.get("podReplacementPolicy") == "Failed" or pfp is not None,
                 active_pods=[p for p in owned if is_pod_active(p)],
                 terminating=sum(1 for p in owned if pod_terminating(p)))
    n = int(c.completions or 0)
    per_index: int | None = js.get("backoffLimitPerIndex") if indexed else None
    unc = st.get("uncountedTerminatedPods") or {}
    c.uncounted_succeeded = list(unc.get("succeeded") or [])
    c.uncounted_failed = list(unc.get("failed") or [])
    c.done_indexes = parse_indexes(st.get("completedIndexes"), n) if indexed else set()
    c.failed_indexes = parse_indexes(st.get("failedIndexes"), n) if per_index is not None else set()
    fail_job = _record_finished(c, owned, pfp, per_index, finalizers_in_flight)

    c.succeeded_total = (len(c.done_indexes) if indexed
                         else int(st.get("succeeded") or 0) + len(c.uncounted_succeeded))
    c.deadline_left = _deadline_left(job, st, now, c.suspended)
    c.target = _existing_target(st)
    c.new_target = c.target is None
    if c.target is None:
        c.target = _new_target(job, c, fail_job)
        if c.target is not None:
            set_condition(st, c.target[0], "True", c.target[1], c.target[2], now)
    if indexed:
        st["completedIndexes"] = format_indexes(c.done_indexes)
        st["succeeded"] = len(c.done_indexes)
    if per_index is not None:
        st["failedIndexes"] = format_indexes(c.failed_indexes)
    st["uncountedTerminatedPods"] = uncounted(c.uncounted_succeeded, c.uncounted_failed)
    return c


def _record_finished(c: Counting, owned: list[Obj], pfp: Any, per_index: int | None,
                     finalizers_in_flight: set[str] | frozenset[str]) -> tuple[str, str] | None:
    """Add finished, not yet recorded pods to ``c``; the pod failure policy's FailJob verdict, if any."""
    n = int(c.completions or 0)
    fail_job: tuple[str, str] | None = None
    for p in sorted(owned, key=lambda p: str(meta(p).get("creationTimestamp") or "")):
        puid = str(meta(p).get("uid"))
        ix = completion_index(p) if c.indexed else None
        if ix is not None and pod_phase(p) == "Failed":
            c.index_failures[ix] = max(c.index_failures.get(ix, 0), index_failures_of(p) + 1)
        if not has_finalizer(p) or puid in finalizers_in_flight:
            continue
        if puid in c.uncounted_succeeded or puid in c.uncounted_failed:
            c.to_finalize.append(p)
            continue
        if len(c.uncounted_succeeded) + len(c.uncounted_failed) >= MAX_UNCOUNTED:
            continue
        if pod_phase(p) == "Succeeded":
            c.to_finalize.append(p)
            if not c.indexed:
                c.uncounted_succeeded.append(puid)
                c.new_succeeded += 1
            elif ix is not None and ix < n and ix not in c.done_indexes:
                c.done_indexes.add(ix)
                c.failed_indexes.discard(ix)
                c.new_succeeded += 1
        elif is_failed(p, c.only_replace_failed):
            c.to_finalize.append(p)
            if c.indexed and (ix is None or ix >= n):
                continue  # not a real index: drop it without counting
            count = True
            if pfp is not None:
                msg, count, action = match_pod_failure_policy(pfp, p)
                if msg is not None and fail_job is None:
                    fail_job = ("PodFailurePolicy", msg)
                if action == "FailIndex" and ix is not None:
                    c.failed_indexes.add(ix)
            if count and per_index is not None and ix is not None and index_failures_of(p) + 1 > per_index:
                c.failed_indexes.add(ix)
            if count:
                c.uncounted_failed.append(puid)
                c.new_failed += 1
    return fail_job


def _deadline_left(job: Obj, st: dict[str, Any], now: datetime, suspended: bool) -> float | None:
    """Sets ``startTime`` when the Job starts or resumes; seconds left of ``activeDeadlineSeconds``."""
    resuming = not suspended and condition_true(job, "Suspended")
    if resuming or (not suspended and not st.get("startTime")):
        # A resumed Job starts its deadline afresh: the deadline counts active time only.
        st["startTime"] = format_rfc3339(now)
    start = parse_rfc3339(st.get("startTime"))
    deadline = spec_of(job).get("activeDeadlineSeconds")
    if deadline is None or start is None or suspended:
        return None
    return int(deadline) - (now - start).total_seconds()


def _existing_target(st: dict[str, Any]) -> Target | None:
    target: Target | None = None
    for ctype in ("FailureTarget", "SuccessCriteriaMet"):
        c = next((c for c in st.get("conditions") or [] if c.get("type") == ctype and c.get("status") == "True"),
                 None)
        if c is not None:
            target = (ctype, str(c.get("reason", "")), str(c.get("message", "")))
    return target


def _new_target(job: Obj, c: Counting, fail_job: tuple[str, str] | None) -> Target | None:
    """Whether the Job has failed or succeeded now (the interim conditions), first rule first."""
    js = spec_of(job)
    limit = js.get("backoffLimit")
    backoff_limit = int(limit) if limit is not None else 6
    on_failure = spec_of(js.get("template") or {}).get("restartPolicy") == "OnFailure"
    restart_count = sum(restarts(p) for p in c.active_pods) if on_failure else 0
    failed_total = int(c.status.get("failed") or 0) + len(c.uncounted_failed)
    max_failed_idx = js.get("maxFailedIndexes")
    n = int(c.completions or 0)
    if fail_job is not None:
        return ("FailureTarget", *fail_job)
    if failed_total > backoff_limit or (on_failure and restart_count > 0 and restart_count >= backoff_limit):
        return ("FailureTarget", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
    if max_failed_idx is not None and len(c.failed_indexes) > int(max_failed_idx):
        return ("FailureTarget", "MaxFailedIndexesExceeded",
                "Job has exceeded the specified maximal number of failed indexes")
    if c.deadline_left is not None and c.deadline_left <= 0:
        return ("FailureTarget", "DeadlineExceeded", "Job was active longer than specified deadline")
    if _complete(c):
        return ("SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods")
    if c.indexed and (msg := success_policy_met(js.get("successPolicy"), c.done_indexes, n)):
        return ("SuccessCriteriaMet", "SuccessPolicy", msg)
    if c.indexed and c.failed_indexes and len(c.done_indexes | c.failed_indexes) >= n:
        return ("FailureTarget", "FailedIndexes", "Job has failed indexes")
    return None


def _complete(c: Counting) -> bool:
    if c.indexed:
        return c.completions is not None and len(c.done_indexes) >= c.completions
    if c.completions is None:
        # Work-queue Jobs: done once any pod succeeded and the others have finished.
        return c.succeeded_total > 0 and not c.active_pods
    return c.succeeded_total >= c.completions


# --- step 2 ------------------------------------------------------------------------------------


def settle_counts(st: dict[str, Any], c: Counting, owned: list[Obj], released: set[str]) -> tuple[list[str], list[str]]:
    """Move uids whose pod is free of the finalizer into the counters of ``st``; the rest stays
    uncounted and is returned as (succeeded, failed) still waiting."""
    by_uid = {str(meta(p).get("uid")): p for p in owned}

    def gone(u: str) -> bool:
        p = by_uid.get(u)
        return p is None or u in released or not has_finalizer(p)

    still_s = [u for u in c.uncounted_succeeded if not gone(u)]
    still_f = [u for u in c.uncounted_failed if not gone(u)]
    if not c.indexed:
        st["succeeded"] = int(st.get("succeeded") or 0) + len(c.uncounted_succeeded) - len(still_s)
    st["failed"] = int(st.get("failed") or 0) + len(c.uncounted_failed) - len(still_f)
    st["uncountedTerminatedPods"] = uncounted(still_s, still_f)
    return still_s, still_f


# --- step 3 ------------------------------------------------------------------------------------


def plan_pods(c: Counting, owned: list[Obj], *, pods_pending: bool, backoff_left: float) -> PodChanges:
    """Delete every active pod when the Job ends or is suspended; else move towards the wanted
    number, unless the informer has not shown our last changes yet (``pods_pending``) or the
    failure back-off still holds new pods back (``backoff_left`` seconds)."""
    if c.target is not None or c.suspended:
        return PodChanges(delete=list(c.active_pods))
    if pods_pending:
        return PodChanges(retry_after=1.0)  # safety net; pod events normally arrive first
    terminating = c.terminating if c.only_replace_failed else 0
    changes = _indexed_changes(c, owned, terminating) if c.indexed else _counted_changes(c, terminating)
    if changes.create and backoff_left > 0:
        changes.create = []
        changes.retry_after = backoff_left
    return changes


def _indexed_changes(c: Counting, owned: list[Obj], terminating: int) -> PodChanges:
    n = int(c.completions or 0)
    out = PodChanges()
    keep: dict[int, Obj] = {}
    for p in sorted(c.active_pods, key=deletion_rank, reverse=True):
        ix = completion_index(p)
        if ix is None or ix >= n or ix in c.done_indexes or ix in c.failed_indexes or ix in keep:
            out.delete.append(p)  # no index, finished index, or a duplicate
        else:
            keep[ix] = p
    blocked = {completion_index(p) for p in owned if pod_terminating(p)} if terminating else set()
    pending = [i for i in range(n) if i not in c.done_indexes and i not in c.failed_indexes and i not in keep
               and i not in blocked]
    slots = c.parallelism - len(keep) - len(blocked)
    if slots < 0:
        out.delete += sorted(keep.values(), key=deletion_rank)[: -slots]
    else:
        out.create = list(pending[:slots])
    return out


def _counted_changes(c: Counting, terminating: int) -> PodChanges:
    active = c.active_pods
    if c.completions is None:
        want = len(active) if c.succeeded_total > 0 else c.parallelism
    else:
        want = max(0, min(c.parallelism, c.completions - c.succeeded_total))
    if len(active) > want:
        return PodChanges(delete=sorted(active, key=deletion_rank)[: len(active) - want])
    return PodChanges(create=[None] * max(0, want - len(active) - terminating))


# --- step 4 ------------------------------------------------------------------------------------


def finish(st: dict[str, Any], c: Counting, now: datetime, *, active_now: int, deleted: int,
           still_uncounted: bool, pods_pending: bool) -> list[Event]:
    """Suspend/resume bookkeeping, the terminal condition once nothing runs, terminates or is
    uncounted any more, and the pod counts (Go's omitempty); the events to record."""
    events: list[Event] = []
    if c.suspended:
        if set_condition(st, "Suspended", "True", "JobSuspended", "Job suspended", now):
            events.append(("Normal", "Suspended", "Job suspended"))
        if active_now == 0:
            st.pop("startTime", None)  # lets the template's scheduling fields change (KEP-2926)
    elif set_condition(st, "Suspended", "False", "JobResumed", "Job resumed", now, add_if_missing=False):
        events.append(("Normal", "Resumed", "Job resumed"))
    target = c.target
    if (target is not None and active_now == 0 and c.terminating == 0 and deleted == 0 and not still_uncounted
            and not pods_pending):
        if target[0] == "FailureTarget":
            if set_condition(st, "Failed", "True", target[1], target[2], now):
                events.append(("Warning", target[1], target[2]))
        elif set_condition(st, "Complete", "True", target[1], target[2], now):
            st["completionTime"] = format_rfc3339(now)
            events.append(("Normal", "Completed", "Job completed"))
    st["active"] = active_now
    st["ready"] = sum(1 for p in c.active_pods if is_pod_ready(p))
    st["terminating"] = c.terminating
    for f in ("active", "succeeded", "failed"):
        if not st.get(f):
            st.pop(f, None)  # omitempty, as the Go type serializes
    if not st.get("completedIndexes"):
        st.pop("completedIndexes", None)
    return events
