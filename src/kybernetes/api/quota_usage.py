"""ResourceQuota evaluators: what an object costs, and what a quota has used (pure, no I/O).

Kubernetes' ``pkg/quota/v1/evaluator/core`` and ``generic``: one definition of usage for the two
that need it, the ResourceQuota admission plugin (``kybernetes.apiserver.admission.resourcequota``, which
charges a create) and the ResourceQuota controller (``kybernetes.controllers.resourcequota``,
which recounts ``status.used``), so the two always agree.

:func:`object_usage` says what one object adds to each quota resource name - ``pods``,
``count/pods``, ``requests.cpu``/``cpu``, ``limits.memory``, ``services.nodeports``,
``requests.storage``, ``count/<plural>[.<group>]``, the legacy object counts (``configmaps``,
``secrets``...) - following Kubernetes' pod/service/PVC/generic evaluators. Pods in a terminal
phase, or past their deletion grace period, only count for ``count/pods``. :func:`quota_usage`
sums them for one quota (respecting its scopes), :func:`sources_for` names the (group, plural)
lists a quota needs, and :func:`pod_constraints` is the "must specify" check of quotas on
compute resources.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kybernetes.api import quantity as q
from kybernetes.api.obj import Obj
from kybernetes.api.podutil import is_pod_terminal, pod_resource_totals
from kybernetes.api.storageutil import claim_class
from kybernetes.api.timeutil import parse_rfc3339

Usage = dict[str, str]

# Resource names whose presence in a quota obliges every container to declare them.
COMPUTE_CONSTRAINED = frozenset({"cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory"})
# Legacy object-count names (before count/<resource> existed) and the plural they count.
LEGACY_COUNTS = {
    "configmaps": "configmaps", "secrets": "secrets", "replicationcontrollers": "replicationcontrollers",
    "resourcequotas": "resourcequotas", "persistentvolumeclaims": "persistentvolumeclaims",
    "services": "services",
}
_POD_NAMES = ("pods", "cpu", "memory", "ephemeral-storage")
_STORAGE_CLASS_SUFFIX = ".storageclass.storage.k8s.io/"
_NATIVE = ("cpu", "memory", "ephemeral-storage")


# --- small helpers ---------------------------------------------------------------------------


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _l(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def add_usage(a: Usage, b: Usage) -> Usage:
    out = dict(a)
    for k, val in b.items():
        out[k] = q.add(out[k], val) if k in out else q.canonical(val)
    return out


def pretty(usage: Usage, names: Iterable[str] | None = None) -> str:
    """``a=1,b=2`` sorted by name, like Kubernetes' prettyPrint of a ResourceList."""
    keys = sorted(usage if names is None else names)
    return ",".join(f"{k}={usage.get(k, '0')}" for k in keys)


def count_name(group: str, plural: str) -> str:
    return f"count/{plural}.{group}" if group else f"count/{plural}"


# --- evaluators --------------------------------------------------------------------------------


def pod_is_counted(pod: Obj, now: dt.datetime | None = None) -> bool:
    """Kubernetes' QuotaV1Pod: terminal pods and pods past their deletion grace do not count."""
    if is_pod_terminal(pod):
        return False
    meta = _d(pod.get("metadata"))
    deleted = parse_rfc3339(meta.get("deletionTimestamp"))
    grace = meta.get("deletionGracePeriodSeconds")
    if deleted is not None and isinstance(grace, int):
        now = now or dt.datetime.now(dt.UTC)
        if now > deleted + dt.timedelta(seconds=grace):
            return False
    return True


def _container_totals(spec: Obj, field: str) -> Usage:
    """The pod's effective requests or limits (:func:`~kybernetes.api.podutil.pod_resource_totals`)."""
    def values_of(c: Mapping[str, Any]) -> Usage:
        return {k: q.canonical(str(val)) for k, val in _d(_d(c.get("resources")).get(field)).items()}

    overhead = {k: q.canonical(str(val)) for k, val in _d(spec.get("overhead")).items()}
    return pod_resource_totals(spec, values_of, q.add, _greater, overhead)


def _greater(a: str, b: str) -> bool:
    return q.compare(a, b) > 0


def _compute_names(requests: Usage, limits: Usage) -> Usage:
    """podComputeUsageHelper: requests give ``X`` and ``requests.X``; limits give ``limits.X``."""
    out: Usage = {}
    for name, val in requests.items():
        if name in _NATIVE:
            out[name] = val
            out[f"requests.{name}"] = val
        elif name.startswith("hugepages-") or "/" in name or "." in name:
            out[f"requests.{name}"] = val
    for name, val in limits.items():
        if name in _NATIVE or name.startswith("hugepages-"):
            out[f"limits.{name}"] = val
    return out


def pod_usage(pod: Obj, now: dt.datetime | None = None) -> Usage:
    usage: Usage = {"count/pods": "1"}
    if not pod_is_counted(pod, now):
        return usage
    spec = _d(pod.get("spec"))
    usage["pods"] = "1"
    usage.update(_compute_names(_container_totals(spec, "requests"), _container_totals(spec, "limits")))
    return usage


def service_usage(svc: Obj) -> Usage:
    spec = _d(svc.get("spec"))
    usage: Usage = {"services": "1", "count/services": "1"}
    kind = spec.get("type") or "ClusterIP"
    if kind == "LoadBalancer":
        usage["services.loadbalancers"] = "1"
    if kind in ("NodePort", "LoadBalancer"):
        ports = len(_l(spec.get("ports")))
        usage["services.nodeports"] = str(ports)
    return usage


def pvc_usage(pvc: Obj) -> Usage:
    spec = _d(pvc.get("spec"))
    usage: Usage = {"persistentvolumeclaims": "1", "count/persistentvolumeclaims": "1"}
    storage = _d(_d(spec.get("resources")).get("requests")).get("storage")
    sc = claim_class(pvc)
    if sc:
        usage[f"{sc}{_STORAGE_CLASS_SUFFIX}persistentvolumeclaims"] = "1"
    if storage is not None:
        usage["requests.storage"] = q.canonical(str(storage))
        if sc:
            usage[f"{sc}{_STORAGE_CLASS_SUFFIX}requests.storage"] = q.canonical(str(storage))
    return usage


def object_usage(group: str, plural: str, obj: Obj, now: dt.datetime | None = None) -> Usage:
    """Everything one object adds, under every quota resource name it counts for."""
    if group == "" and plural == "pods":
        return pod_usage(obj, now)
    if group == "" and plural == "services":
        return service_usage(obj)
    if group == "" and plural == "persistentvolumeclaims":
        return pvc_usage(obj)
    usage = {count_name(group, plural): "1"}
    if group == "" and plural in LEGACY_COUNTS:
        usage[plural] = "1"
    return usage


def sources_for(names: Iterable[str]) -> set[tuple[str, str]]:
    """The (group, plural) collections whose objects a quota with these resource names must sum."""
    out: set[tuple[str, str]] = set()
    for name in names:
        if name.startswith("count/"):
            plural, _, group = name[len("count/"):].partition(".")
            out.add((group, plural))
        elif name in LEGACY_COUNTS:
            out.add(("", LEGACY_COUNTS[name]))
        elif name.startswith("services."):
            out.add(("", "services"))
        elif name == "requests.storage" or _STORAGE_CLASS_SUFFIX in name:
            out.add(("", "persistentvolumeclaims"))
        elif (name in _POD_NAMES or name.startswith(("requests.", "limits.", "hugepages-"))):
            out.add(("", "pods"))
    return out


# --- scopes ------------------------------------------------------------------------------------


def _scope_requirements(quota: Obj) -> list[tuple[str, str, list[str]]]:
    spec = _d(quota.get("spec"))
    reqs: list[tuple[str, str, list[str]]] = [(str(s), "Exists", []) for s in _l(spec.get("scopes"))]
    for e in _l(_d(spec.get("scopeSelector")).get("matchExpressions")):
        e = _d(e)
        reqs.append((str(e.get("scopeName")), str(e.get("operator")), [str(x) for x in _l(e.get("values"))]))
    return reqs


def _pod_matches_scope(pod: Obj, scope: str, op: str, values: list[str]) -> bool:
    spec = _d(pod.get("spec"))
    if scope == "PriorityClass":
        pc = spec.get("priorityClassName") or ""
        if op == "Exists":
            return bool(pc)
        if op == "DoesNotExist":
            return not pc
        return (pc in values) == (op == "In")
    if scope in ("Terminating", "NotTerminating"):
        terminating = spec.get("activeDeadlineSeconds") is not None
        return terminating == (scope == "Terminating")
    if scope in ("BestEffort", "NotBestEffort"):
        best = _d(pod.get("status")).get("qosClass") == "BestEffort"
        return best == (scope == "BestEffort")
    if scope == "CrossNamespacePodAffinity":
        return False
    return False


def matches_quota(quota: Obj, group: str, plural: str, obj: Obj) -> bool:
    """An unscoped quota covers every object; scopes only ever select pods (as in Kubernetes)."""
    reqs = _scope_requirements(quota)
    if not reqs:
        return True
    if group != "" or plural != "pods":
        return False
    return all(_pod_matches_scope(obj, s, op, vals) for s, op, vals in reqs)


def quota_usage(quota: Obj, objects: Callable[[str, str], Iterable[Obj]],
                now: dt.datetime | None = None) -> Usage:
    """``status.used`` for a quota: its hard names summed over the namespace's objects."""
    hard = _d(_d(quota.get("spec")).get("hard"))
    used: Usage = {name: "0" for name in hard}
    for group, plural in sources_for(hard):
        for obj in objects(group, plural):
            if not matches_quota(quota, group, plural, obj):
                continue
            for name, val in object_usage(group, plural, obj, now).items():
                if name in used:
                    used[name] = q.add(used[name], val)
    return used


def pod_constraints(hard_names: Iterable[str], pod: Obj) -> str | None:
    """"must specify ..." when a quota tracks cpu/memory and a container does not declare it."""
    required = COMPUTE_CONSTRAINED.intersection(hard_names)
    if not required:
        return None
    missing: dict[str, set[str]] = {}
    spec = _d(pod.get("spec"))
    for c in _l(spec.get("containers")) + _l(spec.get("initContainers")):
        c = _d(c)
        res = _d(c.get("resources"))
        have = _compute_names({k: str(v) for k, v in _d(res.get("requests")).items()},
                              {k: str(v) for k, v in _d(res.get("limits")).items()})
        for name in required - set(have):
            missing.setdefault(name, set()).add(str(c.get("name", "")))
    if not missing:
        return None
    parts = [f"{name} for: {','.join(sorted(missing[name]))}" for name in sorted(missing)]
    return "must specify " + "; ".join(parts)
