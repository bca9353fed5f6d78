"""The Deployment controller's decisions, as pure functions: (Deployment, its ReplicaSets, now) -> plan.

Each function answers one question of a sync (see ``deployment.py`` for the order of the steps);
the controller writes what it answers:

- :func:`proportional_sizes`: a scaling event (or a paused Deployment) resizes its sets, in
  proportion while a rollout is under way;
- :func:`new_rs_size` and :func:`old_scale_down`: one step of a ``RollingUpdate``: grow the new
  set within ``maxSurge``, else shrink old sets within ``maxUnavailable``, unhealthy pods first;
- :func:`history_to_delete`: the oldest zero-sized old sets beyond ``revisionHistoryLimit``;
- :func:`rollout_status`: the status with ``Progressing`` / ``ReplicaFailure`` conditions, and
  :func:`recheck_after`: when the progress deadline would pass.

Inputs are the objects as the caller last saw them (after its own writes) and ``now``; nothing
here reads an informer or the network (the conditions' own timestamps are stamped by
``deployment_util.new_condition``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kybernetes.api.obj import Obj
from kybernetes.api.timeutil import parse_epoch
from kybernetes.controllers import deployment_util as du
from kybernetes.controllers.podutil import (
    get_condition,
    int_field,
    meta,
    remove_condition,
    spec_of,
    status_of,
)


@dataclass(frozen=True)
class StatusPlan:
    status: dict[str, Any]
    timed_out: str | None = None
    """The message of a ProgressDeadlineExceeded reached in this sync (an event to record)."""


def proportional_sizes(d: Obj, new_rs: Obj | None, old: list[Obj]) -> list[tuple[Obj, int]]:
    """``scale``: each set to resize and its new size, for a changed ``spec.replicas``."""
    target = du.find_active_or_latest(new_rs, old)
    if target is not None:
        return [] if du.rs_replicas(target) == du.replicas(d) else [(target, du.replicas(d))]
    if du.is_saturated(d, new_rs):
        return [(rs, 0) for rs in du.active(old)]
    if not du.is_rolling(d):
        return []
    all_active = du.active([*old, new_rs])
    allowed = du.replicas(d) + du.max_surge(d) if du.replicas(d) > 0 else 0
    to_add = allowed - du.total_spec_replicas(all_active)
    if to_add > 0:
        # Bigger first, then newer: growth goes to the sets that have most of the pods.
        ordered = sorted(all_active, key=lambda r: (-du.rs_replicas(r), -_created(r)))
    elif to_add < 0:
        # Bigger first, then older: shrinking hits old sets before new ones.
        ordered = sorted(all_active, key=lambda r: (-du.rs_replicas(r), meta(r).get("creationTimestamp") or ""))
    else:
        ordered = all_active
    sizes: list[int] = []
    added = 0
    for rs in ordered:
        p = du.proportion(rs, d, to_add, added)
        sizes.append(du.rs_replicas(rs) + p)
        added += p
    if ordered and to_add != 0:
        sizes[0] = max(0, sizes[0] + to_add - added)  # the rounding leftover goes to the first
    return list(zip(ordered, sizes, strict=True))


def _created(rs: Obj) -> float:
    return parse_epoch(meta(rs).get("creationTimestamp")) or 0.0


def new_rs_size(d: Obj, all_rses: list[Obj], new_rs: Obj) -> int | None:
    """The new set's next size in a rolling update, or None when it has the right one."""
    want = du.replicas(d)
    have = du.rs_replicas(new_rs)
    if have == want:
        return None
    if have > want:
        return want
    return du.new_rs_new_replicas(d, all_rses, new_rs)


def old_scale_down(d: Obj, old: list[Obj], new_rs: Obj) -> list[tuple[Obj, int]]:
    """Old sets to shrink in a rolling update (oldest first) and their new sizes: unhealthy
    replicas first (removing them costs no availability), then healthy ones as far as
    ``replicas - maxUnavailable`` available pods allow."""
    if du.total_spec_replicas(old) == 0:
        return []
    all_pods = du.total_spec_replicas([*old, new_rs])
    min_available = du.replicas(d) - du.max_unavailable(d)
    new_unavailable = du.rs_replicas(new_rs) - int_field(status_of(new_rs), "availableReplicas")
    max_scaled_down = all_pods - min_available - new_unavailable
    if max_scaled_down <= 0:
        return []
    old = du.by_creation(old)
    sizes = {meta(rs)["name"]: du.rs_replicas(rs) for rs in old}
    cleaned = 0
    for rs in old:
        if cleaned >= max_scaled_down:
            break
        n = sizes[meta(rs)["name"]]
        unhealthy = n - int_field(status_of(rs), "availableReplicas")
        if n == 0 or unhealthy <= 0:
            continue
        count = min(max_scaled_down - cleaned, unhealthy)
        sizes[meta(rs)["name"]] = n - count
        cleaned += count
    available = sum(int_field(status_of(rs), "availableReplicas") for rs in [*old, new_rs])
    if available > min_available:
        total = min(available - min_available, max_scaled_down - cleaned)
        scaled = 0
        for rs in old:
            if scaled >= total:
                break
            n = sizes[meta(rs)["name"]]
            if n == 0:
                continue
            count = min(n, total - scaled)
            sizes[meta(rs)["name"]] = n - count
            scaled += count
    return [(rs, sizes[meta(rs)["name"]]) for rs in old if sizes[meta(rs)["name"]] != du.rs_replicas(rs)]


def history_to_delete(d: Obj, old: list[Obj]) -> list[Obj]:
    """The oldest fully scaled-down old sets beyond ``revisionHistoryLimit``."""
    limit = spec_of(d).get("revisionHistoryLimit")
    if not isinstance(limit, int):
        return []
    cleanable = du.alive(old)
    diff = len(cleanable) - limit
    out: list[Obj] = []
    for rs in sorted(cleanable, key=lambda r: (du.revision_of(r), meta(r).get("creationTimestamp") or "")):
        if len(out) >= diff:
            break
        st = status_of(rs)
        if (int_field(st, "replicas") != 0 or du.rs_replicas(rs) != 0
                or int_field(meta(rs), "generation") > int_field(st, "observedGeneration")):
            continue
        out.append(rs)
    return out


def rollout_status(d: Obj, all_rses: list[Obj], new_rs: Obj | None, now: float) -> StatusPlan:
    """``syncRolloutStatus``: counters and the Progressing / ReplicaFailure conditions."""
    status = du.calculate_status(d, all_rses, new_rs)
    if not du.has_progress_deadline(d):
        remove_condition(status, "Progressing")
    cond = get_condition(status, "Progressing")
    complete_already = (int_field(status, "replicas") == int_field(status, "updatedReplicas")
                        and cond is not None and cond.get("reason") == du.NEW_RS_AVAILABLE)
    rs_name = meta(new_rs).get("name") if new_rs else ""
    timed_out: str | None = None
    if du.has_progress_deadline(d) and not complete_already:
        if du.deployment_complete(d, status):
            du.set_condition(status, du.new_condition("Progressing", "True", du.NEW_RS_AVAILABLE,
                                                      f'ReplicaSet "{rs_name}" has successfully progressed.'))
        elif du.deployment_progressing(d, status):
            new_cond = du.new_condition("Progressing", "True", du.RS_UPDATED, f'ReplicaSet "{rs_name}" is progressing.')
            if cond is not None and cond.get("status") == "True":
                new_cond["lastTransitionTime"] = cond.get("lastTransitionTime")
            remove_condition(status, "Progressing")
            du.set_condition(status, new_cond)
        elif du.deployment_timed_out(d, status, now):
            timed_out = f'ReplicaSet "{rs_name}" has timed out progressing.'
            du.set_condition(status, du.new_condition("Progressing", "False", du.TIMED_OUT, timed_out))
    failures = [c for rs in all_rses if (c := get_condition(status_of(rs), "ReplicaFailure"))]
    if failures:
        f = failures[0]
        du.set_condition(status, du.new_condition("ReplicaFailure", f.get("status", "True"),
                                                  f.get("reason", ""), f.get("message", "")))
    else:
        remove_condition(status, "ReplicaFailure")
    return StatusPlan(status, timed_out)


def recheck_after(d: Obj, status: dict[str, Any], now: float) -> float | None:
    """Seconds until the progress deadline would pass (plus a second), so that a stuck rollout
    gets its condition; None when there is nothing to wait for."""
    cond = get_condition(status, "Progressing")
    if (not du.has_progress_deadline(d) or cond is None or du.deployment_complete(d, status)
            or cond.get("reason") == du.TIMED_OUT):
        return None
    since = parse_epoch(cond.get("lastUpdateTime"))
    if since is None:
        return None
    return max(since + int_field(spec_of(d), "progressDeadlineSeconds") - now, 0) + 1.0
