"""Helpers of the batch controllers (Job, CronJob, TTL-after-finished, pod GC).

Pure functions over plain-dict objects: "now" on a controller clock, Job conditions,
completion-index sets and their compressed string form ("0-2,5"), pod phase predicates, and
``podFailurePolicy`` matching. Kept apart from the controllers so they can be unit-tested and
shared (the CronJob controller needs "is this Job finished", pod GC needs the time helpers).
"""

from __future__ import annotations

import inspect
import logging
import time
import weakref
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from kybernetes.api.obj import Obj
from kybernetes.api.podutil import is_pod_terminal
from kybernetes.api.timeutil import format_rfc3339, parse_rfc3339
from kybernetes.client.workqueue import Clock, RealClock
from kybernetes.controllers.podutil import get_condition, is_terminating, meta, status_of

log = logging.getLogger(__name__)

JOB_TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"  # annotation and label
INDEX_FAILURE_COUNT = "batch.kubernetes.io/job-index-failure-count"
INDEX_IGNORED_FAILURE_COUNT = "batch.kubernetes.io/job-index-ignored-failure-count"
CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"
COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX"


# --- time --------------------------------------------------------------------------------------


# Clock.now() is monotonic; wall-clock time for a non-real clock is anchored to the real time at
# its first use, so a FakeClock starts "now" and then moves only when advanced.
_ANCHORS: weakref.WeakKeyDictionary[Any, tuple[float, float]] = weakref.WeakKeyDictionary()


def now_dt(clock: Clock) -> datetime:
    """Wall-clock "now" (aware, UTC) on the controller's clock.

    The real clock reads the system time (object timestamps written by the API server are on
    it); any other clock maps its monotonic seconds onto the wall time it was first asked at.
    """
    if isinstance(clock, RealClock):
        return datetime.now(UTC)
    anchor = _ANCHORS.get(clock)
    if anchor is None:
        anchor = _ANCHORS[clock] = (clock.now(), time.time())
    return datetime.fromtimestamp(anchor[1] + clock.now() - anchor[0], UTC)


async def emit(recorder: Any, obj: Obj, type_: str, reason: str, message: str) -> None:
    """Record an event; never fails the caller (events are best effort in Kubernetes too)."""
    try:
        res = recorder.event(obj, type_, reason, message)
        if inspect.isawaitable(res):
            await res
    except Exception as e:  # events must not break a sync
        log.debug("event %s for %s failed: %r", reason, (obj.get("metadata") or {}).get("name"), e)


# --- objects -----------------------------------------------------------------------------------


def owner_ref(obj: Obj, *, block: bool = True) -> dict[str, Any]:
    """An ownerReference naming ``obj`` as the controller."""
    m = meta(obj)
    return {"apiVersion": obj.get("apiVersion", ""), "kind": obj.get("kind", ""), "name": m.get("name", ""),
            "uid": m.get("uid", ""), "controller": True, "blockOwnerDeletion": block}


def rv_int(obj: Obj | None) -> int:
    try:
        return int(meta(obj or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


# --- conditions --------------------------------------------------------------------------------


def condition_true(obj: Obj, type_: str) -> bool:
    c = get_condition(status_of(obj), type_)
    return c is not None and c.get("status") == "True"


def set_condition(st: dict[str, Any], type_: str, cstatus: str, reason: str, message: str, now: datetime, *,
                  add_if_missing: bool = True) -> bool:
    """Ensure a condition in ``st``; lastTransitionTime moves only when the status changes.

    Returns whether anything changed. ``add_if_missing=False`` only updates an existing
    condition (how a Job gets ``Suspended=False`` on resume only if it was ever suspended).
    """
    conds: list[dict[str, Any]] = st.setdefault("conditions", [])
    for c in conds:
        if c.get("type") == type_:
            if c.get("status") == cstatus and c.get("reason") == reason and c.get("message") == message:
                return False
            if c.get("status") != cstatus:
                c["lastTransitionTime"] = format_rfc3339(now)
            c.update(status=cstatus, reason=reason, message=message, lastProbeTime=format_rfc3339(now))
            return True
    if not add_if_missing:
        if not conds:
            st.pop("conditions")
        return False
    conds.append({"type": type_, "status": cstatus, "reason": reason, "message": message,
                  "lastProbeTime": format_rfc3339(now), "lastTransitionTime": format_rfc3339(now)})
    return True


def job_finished(job: Obj) -> str | None:
    """"Complete" or "Failed" when the Job has that condition True, else None."""
    for type_ in ("Complete", "Failed"):
        if condition_true(job, type_):
            return type_
    return None


def job_finish_time(job: Obj) -> datetime | None:
    """When a finished Job finished: completionTime, else its terminal condition's transition."""
    kind = job_finished(job)
    if kind is None:
        return None
    if kind == "Complete" and (t := parse_rfc3339(status_of(job).get("completionTime"))) is not None:
        return t
    cond = get_condition(status_of(job), kind) or {}
    return parse_rfc3339(cond.get("lastTransitionTime"))


# --- pods --------------------------------------------------------------------------------------


def pod_phase(pod: Obj) -> str:
    return str(status_of(pod).get("phase") or "")


def pod_terminating(pod: Obj) -> bool:
    """Being deleted but not finished: its containers may still run."""
    return is_terminating(pod) and not is_pod_terminal(pod)


def has_finalizer(obj: Obj, name: str = JOB_TRACKING_FINALIZER) -> bool:
    return name in (meta(obj).get("finalizers") or [])


def completion_index(pod: Obj) -> int | None:
    """The pod's completion index from its annotation (the label is a copy)."""
    raw = (meta(pod).get("annotations") or {}).get(COMPLETION_INDEX)
    if raw is None:
        raw = (meta(pod).get("labels") or {}).get(COMPLETION_INDEX)
    if not isinstance(raw, str):
        return None
    try:
        ix = int(raw)
    except ValueError:
        return None
    return ix if ix >= 0 and str(ix) == str(raw) else None


# --- index sets --------------------------------------------------------------------------------


def format_indexes(indexes: Iterable[int]) -> str:
    """``{0, 1, 2, 5}`` -> ``"0-2,5"``: the compressed form of ``status.completedIndexes``."""
    out: list[str] = []
    run: list[int] = []
    for ix in sorted(set(indexes)):
        if run and ix == run[-1] + 1:
            run.append(ix)
            continue
        if run:
            out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
        run = [ix]
    if run:
        out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ",".join(out)


def parse_indexes(text: Any, limit: int | None = None) -> set[int]:
    """The inverse of :func:`format_indexes`; malformed parts are skipped, ``limit`` bounds them."""
    out: set[int] = set()
    if not isinstance(text, str):
        return out
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        try:
            first = int(lo)
            last = int(hi) if hi else first
        except ValueError:
            continue
        if limit is not None:
            last = min(last, limit - 1)
        out.update(range(first, last + 1))
    return out


# --- podFailurePolicy --------------------------------------------------------------------------


def _exit_code_rule_matches(pod: Obj, req: dict[str, Any]) -> tuple[str, int] | None:
    """The first terminated container (non-zero exit) matching an onExitCodes requirement."""
    name = req.get("containerName")
    values = set(req.get("values") or [])
    op = req.get("operator")
    st = status_of(pod)
    for cs in (st.get("initContainerStatuses") or []) + (st.get("containerStatuses") or []):
        term = ((cs or {}).get("state") or {}).get("terminated")
        if not isinstance(term, dict):
            continue  # still running or waiting: no exit code to match
        if name is not None and cs.get("name") != name:
            continue
        code = int(term.get("exitCode") or 0)
        if code == 0:
            continue
        if (op == "In" and code in values) or (op == "NotIn" and code not in values):
            return str(cs.get("name", "")), code
    return None


def match_pod_failure_policy(policy: dict[str, Any] | None, pod: Obj) -> tuple[str | None, bool, str | None]:
    """Apply ``spec.podFailurePolicy`` to a failed pod: (FailJob message, count it?, action).

    The first matching rule wins; no match means "Count" (default backoffLimit accounting).
    """
    if not isinstance(policy, dict):
        return None, True, None
    m = meta(pod)
    pod_key = f"{m.get('namespace', '')}/{m.get('name', '')}"
    conditions = [c for c in status_of(pod).get("conditions") or [] if isinstance(c, dict)]
    for i, rule in enumerate(policy.get("rules") or []):
        action = rule.get("action")
        desc: str | None = None
        if isinstance(rule.get("onExitCodes"), dict):
            hit = _exit_code_rule_matches(pod, rule["onExitCodes"])
            if hit is not None:
                desc = f"Container {hit[0]} for pod {pod_key} failed with exit code {hit[1]} " \
                       f"matching {action} rule at index {i}"
        else:
            for pattern in rule.get("onPodConditions") or []:
                want_status = pattern.get("status") or "True"
                if any(c.get("type") == pattern.get("type") and c.get("status") == want_status for c in conditions):
                    desc = f"Pod {pod_key} has condition {pattern.get('type')} matching {action} rule at index {i}"
                    break
        if desc is None:
            continue
        if action == "FailJob":
            return desc, True, action
        if action == "Ignore":
            return None, False, action
        return None, True, action  # Count, FailIndex
    return None, True, None
