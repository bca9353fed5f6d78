"""ResourceQuota: what an object costs (the evaluators) and the admission check on create.

The evaluators (what an object costs, what a quota has used) are :mod:`kybernetes.api.quota_usage`,
shared with the ResourceQuota controller (``kybernetes.controllers.resourcequota``) so that the
controller and the admission agree.

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
from typing import TYPE_CHECKING, Any

from kybernetes import errors
from kybernetes.api import quantity as q
from kybernetes.api.quota_usage import (
    Usage,
    matches_quota,
    object_usage,
    pod_constraints,
    pretty,
    quota_usage,
    sources_for,
)

if TYPE_CHECKING:
    from kybernetes.api.resources import Resource
    from kybernetes.apiserver.registry.store import Registry, RequestContext

Obj = dict[str, Any]

_MAX_ATTEMPTS = 10


# --- small helpers ---------------------------------------------------------------------------


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


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


__all__ = ["QuotaAdmission", "install"]
