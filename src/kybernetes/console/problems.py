"""What is wrong now: ``/api/problems``, computed per object when it changes.

Contract:

- :func:`object_problems` is a pure function of one object (called on every change of it):
  - a Pending pod whose PodScheduled condition is False: error, its reason (``Unschedulable``)
    and message; a Pending pod with no node and no PodScheduled condition yet: warning
    ``Pending`` once it is :data:`PENDING_GRACE` seconds old (nothing has tried to schedule it);
  - a container (or init container) waiting in ``CrashLoopBackOff``, ``ImagePullBackOff``,
    ``ErrImagePull``, ``CreateContainerConfigError``, ``CreateContainerError`` or
    ``InvalidImageName``: error, per container (``container`` names it; crash loops carry
    ``crashLoop: true``, for which :func:`collect` adds the last log lines);
  - a node whose Ready condition is not True: error ``NotReady`` (or ``Unknown``);
  - a Job with condition Failed=True: error, the condition's reason and message;
  - a Deployment with Progressing=False (``ProgressDeadlineExceeded``: unavailable replicas past
    ``progressDeadlineSeconds``): warning.
- :func:`collect` orders them errors first, then newest first, fills a pending pod's message from
  its last FailedScheduling event when the condition has none, and links each to its journey.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from kybernetes.api.timeutil import parse_rfc3339

Obj = dict[str, Any]

WAITING_PROBLEMS = ("CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError",
                    "CreateContainerError", "InvalidImageName")
PENDING_GRACE = 60.0
JOURNEY_RESOURCES = {"Pod": "pods", "Job": "jobs", "Deployment": "deployments"}


def _cond(obj: Obj, ctype: str) -> Obj | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or () if c.get("type") == ctype), None)


def _problem(severity: str, kind: str, obj: Obj, reason: str, message: str, since: str, **extra: Any) -> Obj:
    meta = obj.get("metadata") or {}
    ns, name = meta.get("namespace") or "", meta.get("name") or ""
    resource = JOURNEY_RESOURCES.get(kind)
    journey = f"/api/journey/{resource}/{ns}/{name}" if resource else ""
    return {"severity": severity, "kind": kind, "namespace": ns, "name": name, "reason": reason,
            "message": message, "since": since or meta.get("creationTimestamp") or "", "journey": journey, **extra}


def pod_problems(pod: Obj) -> list[Obj]:
    status = pod.get("status") or {}
    out: list[Obj] = []
    if status.get("phase") in (None, "", "Pending") and not (pod.get("spec") or {}).get("nodeName"):
        cond = _cond(pod, "PodScheduled")
        if cond is not None and cond.get("status") == "False":
            out.append(_problem("error", "Pod", pod, cond.get("reason") or "Unschedulable", cond.get("message") or "",
                                cond.get("lastTransitionTime") or "", pending=True))
        elif cond is None:
            out.append(_problem("warning", "Pod", pod, "Pending", "no scheduler has tried to place this pod yet",
                                "", pending=True, minAge=PENDING_GRACE))
    for field in ("initContainerStatuses", "containerStatuses"):
        for cs in status.get(field) or ():
            waiting = (cs.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason") or ""
            if reason in WAITING_PROBLEMS:
                last = ((cs.get("lastState") or {}).get("terminated") or {})
                out.append(_problem("error", "Pod", pod, reason, waiting.get("message") or "",
                                    last.get("finishedAt") or "", container=cs.get("name") or "",
                                    restarts=int(cs.get("restartCount") or 0),
                                    crashLoop=reason == "CrashLoopBackOff"))
    return out


def node_problems(node: Obj) -> list[Obj]:
    ready = _cond(node, "Ready")
    if ready is not None and ready.get("status") == "True":
        return []
    if ready is None:
        return [_problem("error", "Node", node, "NotReady", "the node has not reported a Ready condition", "")]
    reason = "NotReady" if ready.get("status") == "False" else "Unknown"
    return [_problem("error", "Node", node, reason, ready.get("message") or ready.get("reason") or "",
                     ready.get("lastTransitionTime") or "")]


def job_problems(job: Obj) -> list[Obj]:
    failed = _cond(job, "Failed")
    if failed is None or failed.get("status") != "True":
        return []
    return [_problem("error", "Job", job, failed.get("reason") or "Failed", failed.get("message") or "",
                     failed.get("lastTransitionTime") or "")]


def deployment_problems(dep: Obj) -> list[Obj]:
    progressing = _cond(dep, "Progressing")
    if progressing is None or progressing.get("status") != "False":
        return []
    return [_problem("warning", "Deployment", dep, progressing.get("reason") or "ProgressDeadlineExceeded",
                     progressing.get("message") or "", progressing.get("lastTransitionTime") or "",
                     unavailable=int((dep.get("status") or {}).get("unavailableReplicas") or 0))]


_BY_RESOURCE: dict[str, Callable[[Obj], list[Obj]]] = {
    "pods": pod_problems, "nodes": node_problems, "jobs": job_problems, "deployments": deployment_problems,
}


def object_problems(resource: str, obj: Obj | None) -> list[Obj]:
    """The problems of one object as it is now (see the module contract)."""
    fn = _BY_RESOURCE.get(resource)
    return fn(obj) if fn is not None and obj is not None else []


def collect(found: list[Obj], now: datetime, last_failed_scheduling: Callable[[str, str], str]) -> list[Obj]:
    """The answer's items from the per-object problems: grace periods applied, pending messages
    filled in (``last_failed_scheduling(namespace, name)``), errors first, then newest first."""
    out = []
    for p in found:
        p = dict(p)
        min_age = p.pop("minAge", None)
        if min_age is not None:
            since = parse_rfc3339(p["since"])
            if since is None or (now - since).total_seconds() < min_age:
                continue
        if p.pop("pending", False) and not p["message"]:
            p["message"] = last_failed_scheduling(p["namespace"], p["name"])
        out.append(p)
    out.sort(key=lambda p: p["since"], reverse=True)
    out.sort(key=lambda p: p["severity"] != "error")
    return out
