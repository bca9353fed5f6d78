"""Pure helpers of the Deployment controller (``pkg/controller/deployment/util``).

Nothing here talks to the API: rollout arithmetic (surge and unavailability fenceposts,
proportional scaling), revision and replica annotations, conditions, and the status a set of
ReplicaSets adds up to. :mod:`kybernetes.controllers.deployment` does the I/O.

Rounding follows Kubernetes exactly because users compute it by hand: ``maxSurge`` percentages
round up, ``maxUnavailable`` percentages round down, and when both come out 0 one pod may be
unavailable (otherwise a rollout could never start).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

from kybernetes.api.obj import Obj
from kybernetes.api.timeutil import now_rfc3339, parse_epoch
from kybernetes.controllers.history import POD_TEMPLATE_HASH, templates_equal_ignoring_hash
from kybernetes.controllers.podutil import (
    annotations_of,
    get_condition,
    int_field,
    is_terminating,
    meta,
    spec_of,
    status_of,
)

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
ROLLBACK_TO = "deprecated.deployment.rollback.to"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
# Annotations of the Deployment that are not copied onto its ReplicaSets.
SKIP_COPY = frozenset({LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS, ROLLBACK_TO})
MAX_REV_HISTORY_CHARS = 2000

# Condition reasons, as kubectl and dashboards match on them.
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
FAILED_RS_CREATE = "ReplicaSetCreateError"
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"

MAX_INT32 = 2**31 - 1


# --- int-or-percent ------------------------------------------------------------------------------


def scaled_value(value: Any, total: int, round_up: bool) -> int:
    """``intstr.GetScaledValueFromIntOrPercent``."""
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    s = str(value)
    if s.endswith("%"):
        pct = int(s[:-1])
        exact = pct * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(s)


def replicas(d: Obj) -> int:
    return int_field(spec_of(d), "replicas", 1)


def is_rolling(d: Obj) -> bool:
    return ((spec_of(d).get("strategy") or {}).get("type") or "RollingUpdate") == "RollingUpdate"


def resolve_fenceposts(d: Obj) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) in pods; Recreate has neither."""
    if not is_rolling(d):
        return 0, 0
    ru = (spec_of(d).get("strategy") or {}).get("rollingUpdate") or {}
    n = replicas(d)
    surge = scaled_value(ru.get("maxSurge", "25%"), n, True)
    unavailable = scaled_value(ru.get("maxUnavailable", "25%"), n, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_surge(d: Obj) -> int:
    return resolve_fenceposts(d)[0]


def max_unavailable(d: Obj) -> int:
    """``MaxUnavailable``: never more than the replicas (and 0 for Recreate or no replicas)."""
    if not is_rolling(d) or replicas(d) == 0:
        return 0
    return min(resolve_fenceposts(d)[1], replicas(d))


# --- ReplicaSet lists ----------------------------------------------------------------------------


def rs_replicas(rs: Obj | None) -> int:
    return int_field(spec_of(rs), "replicas", 1) if rs else 0


def revision_of(obj: Obj | None) -> int:
    if obj is None:
        return 0
    try:
        return int(annotations_of(obj).get(REVISION, "0"))
    except ValueError:
        return 0


def by_creation(rses: list[Obj], newest_first: bool = False) -> list[Obj]:
    return sorted(rses, key=lambda r: (meta(r).get("creationTimestamp") or "", meta(r).get("name") or ""),
                  reverse=newest_first)


def find_new_rs(d: Obj, rses: list[Obj]) -> Obj | None:
    """The oldest ReplicaSet whose template equals the Deployment's, ignoring the hash label."""
    template = spec_of(d).get("template") or {}
    for rs in by_creation(rses):
        if templates_equal_ignoring_hash(spec_of(rs).get("template") or {}, template):
            return rs
    return None


def find_old_rses(d: Obj, rses: list[Obj], new_rs: Obj | None) -> list[Obj]:
    new_uid = meta(new_rs).get("uid") if new_rs else None
    return [rs for rs in rses if meta(rs).get("uid") != new_uid]


def active(rses: Sequence[Obj | None]) -> list[Obj]:
    return [rs for rs in rses if rs is not None and rs_replicas(rs) > 0]


def find_active_or_latest(new_rs: Obj | None, old: list[Obj]) -> Obj | None:
    if new_rs is None and not old:
        return None
    old_sorted = by_creation(old, newest_first=True)
    act = active([*old_sorted, new_rs])
    if not act:
        return new_rs if new_rs is not None else old_sorted[0]
    if len(act) == 1:
        return act[0]
    return None


def total_spec_replicas(rses: list[Obj]) -> int:
    return sum(rs_replicas(rs) for rs in rses)


def total_status(rses: list[Obj], field: str) -> int:
    return sum(int_field(status_of(rs), field) for rs in rses)


# --- annotations ---------------------------------------------------------------------------------


def set_new_rs_annotations(d: Obj, rs: Obj, new_revision: int, exists: bool) -> bool:
    """Copy the Deployment's annotations and set revision/history on ``rs``; True when anything changed."""
    m = rs.setdefault("metadata", {})
    ann = m.get("annotations")
    if not isinstance(ann, dict):
        ann = m["annotations"] = {}
    changed = False
    for k, v in annotations_of(d).items():
        if k in SKIP_COPY:
            continue
        if ann.get(k) != v:
            ann[k] = v
            changed = True
    old_rev_str = ann.get(REVISION, "")
    old_rev = revision_of(rs)
    if old_rev < new_revision:
        ann[REVISION] = str(new_revision)
        changed = True
        if old_rev_str and exists:
            history = [h for h in ann.get(REVISION_HISTORY, "").split(",") if h]
            history.append(old_rev_str)
            joined = ",".join(history)
            while len(joined) > MAX_REV_HISTORY_CHARS and len(history) > 1:
                history.pop(0)
                joined = ",".join(history)
            ann[REVISION_HISTORY] = joined
    if not exists:
        # A brand-new ReplicaSet also carries the sizing annotations from the start.
        ann[DESIRED_REPLICAS] = str(replicas(d))
        ann[MAX_REPLICAS] = str(replicas(d) + max_surge(d))
        changed = True
    return changed


def set_replicas_annotations(rs: Obj, desired: int, max_replicas: int) -> bool:
    m = rs.setdefault("metadata", {})
    ann = m.get("annotations")
    if not isinstance(ann, dict):
        ann = m["annotations"] = {}
    changed = False
    if ann.get(DESIRED_REPLICAS) != str(desired):
        ann[DESIRED_REPLICAS] = str(desired)
        changed = True
    if ann.get(MAX_REPLICAS) != str(max_replicas):
        ann[MAX_REPLICAS] = str(max_replicas)
        changed = True
    return changed


def desired_replicas_annotation(rs: Obj) -> int | None:
    try:
        return int(annotations_of(rs)[DESIRED_REPLICAS])
    except (KeyError, ValueError):
        return None


def max_replicas_annotation(rs: Obj) -> int | None:
    try:
        return int(annotations_of(rs)[MAX_REPLICAS])
    except (KeyError, ValueError):
        return None


def is_saturated(d: Obj, rs: Obj | None) -> bool:
    if rs is None:
        return False
    return (rs_replicas(rs) == replicas(d) and desired_replicas_annotation(rs) == replicas(d)
            and int_field(status_of(rs), "availableReplicas") == replicas(d))


# --- rollout arithmetic --------------------------------------------------------------------------


def new_rs_new_replicas(d: Obj, all_rses: list[Obj], new_rs: Obj) -> int:
    """How big the new ReplicaSet may be now (``NewRSNewReplicas``)."""
    if not is_rolling(d):
        return replicas(d)
    surge = max_surge(d)
    current = total_spec_replicas(all_rses)
    max_total = replicas(d) + surge
    if current >= max_total:
        return rs_replicas(new_rs)
    scale_up = min(max_total - current, replicas(d) - rs_replicas(new_rs))
    return rs_replicas(new_rs) + max(scale_up, 0)


def rs_fraction(rs: Obj, d: Obj) -> int:
    """``getReplicaSetFraction``: this set's share of a proportional resize."""
    if replicas(d) == 0:
        return -rs_replicas(rs)
    deployment_replicas = replicas(d) + max_surge(d)
    annotated = max_replicas_annotation(rs)
    if annotated is None or annotated == 0:
        annotated = int_field(status_of(d), "replicas")
    if annotated == 0:
        return 0
    size = rs_replicas(rs) * deployment_replicas / annotated
    # Go's math.Round: halves away from zero.
    rounded = math.floor(size + 0.5) if size >= 0 else -math.floor(-size + 0.5)
    return int(rounded) - rs_replicas(rs)


def proportion(rs: Obj, d: Obj, to_add: int, added: int) -> int:
    if rs_replicas(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = rs_fraction(rs, d)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


# --- conditions ----------------------------------------------------------------------------------


def new_condition(ctype: str, status: str, reason: str, message: str) -> dict[str, Any]:
    now = now_rfc3339()
    return {"type": ctype, "status": status, "lastUpdateTime": now, "lastTransitionTime": now,
            "reason": reason, "message": message}


def set_condition(status: dict[str, Any], cond: dict[str, Any]) -> None:
    """``SetDeploymentCondition``: same status and reason is a no-op; same status keeps the transition time."""
    current = get_condition(status, cond["type"])
    if current is not None and current.get("status") == cond["status"] and current.get("reason") == cond["reason"]:
        return
    if current is not None and current.get("status") == cond["status"]:
        cond["lastTransitionTime"] = current.get("lastTransitionTime", cond["lastTransitionTime"])
    conds = [c for c in status.get("conditions") or () if c.get("type") != cond["type"]]
    conds.append(cond)
    status["conditions"] = conds


def has_progress_deadline(d: Obj) -> bool:
    deadline = spec_of(d).get("progressDeadlineSeconds")
    return isinstance(deadline, int) and deadline != MAX_INT32


def deployment_complete(d: Obj, status: dict[str, Any]) -> bool:
    n = replicas(d)
    return (int_field(status, "updatedReplicas") == n and int_field(status, "replicas") == n
            and int_field(status, "availableReplicas") == n
            and int_field(status, "observedGeneration") >= int_field(meta(d), "generation"))


def deployment_progressing(d: Obj, new: dict[str, Any]) -> bool:
    old = status_of(d)
    return (int_field(new, "updatedReplicas") > int_field(old, "updatedReplicas")
            or int_field(new, "replicas") < int_field(old, "replicas")
            or int_field(new, "readyReplicas") > int_field(old, "readyReplicas")
            or int_field(new, "availableReplicas") > int_field(old, "availableReplicas"))


def deployment_timed_out(d: Obj, status: dict[str, Any], now: float) -> bool:
    if not has_progress_deadline(d):
        return False
    cond = get_condition(status, "Progressing")
    if cond is None:
        return False
    if cond.get("reason") == NEW_RS_AVAILABLE:
        return False
    if cond.get("reason") == TIMED_OUT:
        return True
    since = parse_epoch(cond.get("lastUpdateTime"))
    if since is None:
        return False
    return since + int_field(spec_of(d), "progressDeadlineSeconds") < now


def calculate_status(d: Obj, all_rses: list[Obj], new_rs: Obj | None) -> dict[str, Any]:
    """``calculateStatus``: counters from the ReplicaSets and the Available condition."""
    available = total_status(all_rses, "availableReplicas")
    total = total_spec_replicas(all_rses)
    unavailable = max(0, total - available)
    status = copy.deepcopy(status_of(d))
    status.update(
        observedGeneration=int_field(meta(d), "generation"),
        replicas=total_status(all_rses, "replicas"),
        updatedReplicas=int_field(status_of(new_rs), "replicas") if new_rs else 0,
        readyReplicas=total_status(all_rses, "readyReplicas"),
        availableReplicas=available,
        unavailableReplicas=unavailable,
    )
    # Zero counters are omitted on the wire (omitempty), so equality checks need the same shape.
    for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas", "unavailableReplicas"):
        if status[k] == 0:
            del status[k]
    if available >= replicas(d) - max_unavailable(d):
        set_condition(status, new_condition("Available", "True", MIN_AVAILABLE, "Deployment has minimum availability."))
    else:
        set_condition(status, new_condition("Available", "False", MIN_UNAVAILABLE,
                                            "Deployment does not have minimum availability."))
    return status


def clean_template_labels(template: dict[str, Any], hash_: str) -> dict[str, Any]:
    """A copy of the template labelled with the hash (the new ReplicaSet's template)."""
    t = copy.deepcopy(template)
    m = t.setdefault("metadata", {})
    labels = m.get("labels")
    if not isinstance(labels, dict):
        labels = m["labels"] = {}
    labels[POD_TEMPLATE_HASH] = hash_
    return t


def alive(rses: list[Obj]) -> list[Obj]:
    return [rs for rs in rses if not is_terminating(rs)]
