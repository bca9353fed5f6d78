"""ResourceQuota: what an object costs (the evaluators) and the admission check on create.

Two halves share one definition of usage so that the controller and the admission agree:

* **Evaluators** (pure functions, no I/O): :func:`object_usage` says what one object adds to each
  quota resource name - ``pods``, ``count/pods``, ``requests.cpu``/``cpu``, ``limits.memory``,
  ``services.nodeports``, ``requests.storage``, ``count/<plural>[.<group>]``, the legacy object
  counts (``configmaps``, ``secrets``...) - following Kubernetes' pod/service/PVC/generic
  evaluators. Pods in a terminal phase, or past their deletion grace period, only count for
  ``count/pods``. :func:`quota_usage` sums them for one quota (respecting its scopes) and
  :func:`sources_for` names the (group, plural) lists a quota needs. The ResourceQuota controller
  (``kybernetes.controllers.resourcequota``) uses these to recompute ``status.used``.

* **Admission** (:func:`install`): a create hook on every built-in namespaced kind. For each quota
  of the namespace that tracks something the new object costs, it checks the pod constraints
  ("failed quota: q: must specify limits.cpu for: c1; requests.cpu for: c1") and
  ``used + requested <= hard`` ("exceeded quota: q, requested: pods=1, used: pods=2, limited:
  pods=2"), both 403 Forbidden as in Kubernetes. When every quota admits, the admission charges
  them: ``status.used`` is rewritten through ``/status`` with the quota's resourceVersion as a
  compare-and-swap, so two concurrent creates can never both take the last unit; the loser
  re-reads and re-checks. Like Kubernetes, a create that fails after admission leaves the charge
  in place until the controller reconciles.

Deviations: Kubernetes compares against ``status.hard`` and refuses ("status unknown for quota")
while the controller has not yet filled ``status.used``; here ``spec.hard`` is the limit and a
missing ``status.used`` entry is computed on the spot from the watch cache, so a quota works the
moment it is created. Custom resources (``count/widgets.example.com``) are counted by the
controller but not checked at admission.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from kybernetes import errors
from kybernetes.api import quantity as q
from kybernetes.api.podutil import is_pod_terminal, pod_resource_totals
from kybernetes.api.timeutil import parse_rfc3339

if TYPE_CHECKING:
    from kybernetes.api.resources import Resource
    from kybernetes.apiserver.registry.store import Registry, RequestContext

Obj = dict[str, Any]
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
_MAX_ATTEMPTS = 10


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
    sc = spec.get("storageClassName")
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


# --- admission --------------------------------------------------------------------------------


def admission_forbidden(r: Resource, obj: Obj, message: str) -> errors.Forbidden:
    """An admission plugin's refusal of ``obj`` (Kubernetes' ``admission.NewForbidden``): 403,
    ``<resource> "<name>" is forbidden: <message>``."""
    meta = _d(obj.get("metadata"))
    name = str(meta.get("name") or "")
    gen = meta.get("generateName")
    # Kubernetes admits before the name is generated, so it names the object by its prefix.
    if gen and name.startswith(gen) and len(name) == len(gen[:58]) + 5:
        name = gen
    what = r.group_resource
    text = f'{what} "{name}" is forbidden: {message}' if name else f"{what} is forbidden: {message}"
    details: dict[str, Any] = {"kind": r.plural}
    if name:
        details["name"] = name
    if r.group:
        details["group"] = r.group
    return errors.Forbidden(text, details=details)


class QuotaAdmission:
    """The ResourceQuota admission plugin, installed as create hooks on the registry."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}

    def install(self, registry: Registry) -> None:
        for r in registry.catalogue.all():
            if r.namespaced and r.builtin and "create" in r.verbs and r.kind != "Event":
                registry.create_hooks.setdefault((r.group, r.kind), []).append(self.admit)

    async def admit(self, registry: Registry, r: Resource, obj: Obj, old: Obj | None, ctx: RequestContext) -> None:
        from kybernetes.apiserver.registry.store import ListOptions

        rq = registry.catalogue.get("", "v1", "resourcequotas")
        if rq is None:
            return
        namespace = str(_d(obj.get("metadata")).get("namespace") or "")
        if not namespace:
            return
        cache = await registry.cacher.cache_for(rq.key_prefix)
        if not any(True for _ in cache.list(rq.namespace_prefix(namespace))):
            return  # the common case: no quota, nothing to do
        delta = object_usage(r.group, r.plural, obj)
        # One admission at a time per namespace in this process: the CAS is what makes it safe
        # across writers; the lock only avoids needless conflicts between our own requests.
        lock = self._locks.setdefault(namespace, asyncio.Lock())
        async with lock:
            charged: set[str] = set()
            for _attempt in range(_MAX_ATTEMPTS):
                quotas = (await registry.list(rq, namespace, ListOptions())).items
                plans: list[tuple[Obj, Usage]] = []
                for quota in sorted(quotas, key=lambda x: x["metadata"]["name"]):
                    qname = quota["metadata"]["name"]
                    if qname in charged or not matches_quota(quota, r.group, r.plural, obj):
                        continue
                    hard = {k: str(v) for k, v in _d(_d(quota.get("spec")).get("hard")).items()}
                    if r.group == "" and r.plural == "pods":
                        problem = pod_constraints(hard, obj)
                        if problem:
                            raise admission_forbidden(r, obj, f"failed quota: {qname}: {problem}")
                    requested = {k: val for k, val in delta.items() if k in hard}
                    if not requested:
                        continue
                    used = await self._used(registry, namespace, quota, hard)
                    new_used = dict(used)
                    exceeded: list[str] = []
                    for k, val in requested.items():
                        new_used[k] = q.add(used.get(k, "0"), val)
                        if q.compare(new_used[k], hard[k]) > 0:
                            exceeded.append(k)
                    if exceeded:
                        raise admission_forbidden(r, obj, (
                            f"exceeded quota: {qname}, requested: {pretty(requested, exceeded)}, "
                            f"used: {pretty(used, exceeded)}, limited: {pretty(hard, exceeded)}"))
                    plans.append((quota, new_used))
                if ctx.dry_run or not plans:
                    return
                conflict = False
                for quota, new_used in plans:
                    if await self._charge(registry, rq, namespace, quota, new_used, ctx):
                        charged.add(quota["metadata"]["name"])
                    else:
                        conflict = True
                if not conflict:
                    return
            raise errors.Conflict.of(rq.plural, "", why="too many concurrent quota updates; please retry")

    async def _used(self, registry: Registry, namespace: str, quota: Obj, hard: Usage) -> Usage:
        used = {k: str(v) for k, v in _d(_d(quota.get("status")).get("used")).items()}
        missing = [k for k in hard if k not in used]
        if missing:
            # The controller has not counted yet: count now, from the watch cache.
            lists: dict[tuple[str, str], list[Obj]] = {}
            for group, plural in sources_for(missing):
                r = next((x for x in registry.catalogue.all() if x.group == group and x.plural == plural), None)
                if r is None or not r.namespaced:
                    continue
                c = await registry.cacher.cache_for(r.key_prefix)
                lists[(group, plural)] = [o for _k, o in c.list(r.namespace_prefix(namespace))]
            fresh = quota_usage(quota, lambda g, p: lists.get((g, p), []))
            for k in missing:
                used[k] = fresh.get(k, "0")
        return used

    async def _charge(self, registry: Registry, rq: Resource, namespace: str, quota: Obj, new_used: Usage,
                      ctx: RequestContext) -> bool:
        from kybernetes.apiserver.registry.store import RequestContext as Ctx
        from kybernetes.apiserver.registry.store import User

        updated = copy.deepcopy(quota)
        status = updated.setdefault("status", {})
        status["hard"] = dict(_d(_d(quota.get("spec")).get("hard")))
        status["used"] = {**_d(status.get("used")), **new_used}
        sys_ctx = Ctx(user=User("system:apiserver", ("system:masters",)), field_manager="kube-apiserver",
                      user_agent=ctx.user_agent)
        try:
            # resourceVersion is in the body: the write is a compare-and-swap on the quota.
            await registry.update(rq, namespace, quota["metadata"]["name"], updated, sys_ctx, subresource="status")
        except errors.Conflict:
            return False
        return True


def install(registry: Registry) -> QuotaAdmission:
    """Install the ResourceQuota admission on every built-in namespaced kind's create."""
    plugin = QuotaAdmission()
    plugin.install(registry)
    return plugin


__all__ = [
    "QuotaAdmission",
    "add_usage",
    "count_name",
    "install",
    "matches_quota",
    "object_usage",
    "pod_constraints",
    "pod_is_counted",
    "pod_usage",
    "pretty",
    "quota_usage",
    "sources_for",
]
