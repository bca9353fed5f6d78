"""ResourceQuota (Kubernetes' ``k8s.io/apiserver/pkg/admission/plugin/resourcequota``, on by
default; validating, CREATE of every built-in namespaced kind but Events).

For each quota of the namespace that tracks something the new object costs (the evaluators of
:mod:`kybernetes.api.quota_usage`), it checks the pod constraints ("failed quota: q:
must specify limits.cpu for: c1; requests.cpu for: c1") and ``used + requested <= hard``
("exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2"), both 403 Forbidden as in
Kubernetes. When every quota admits, it charges them: ``status.used`` is rewritten through
``/status`` with the quota's resourceVersion as a compare-and-swap, so two concurrent creates can
never both take the last unit; the loser re-reads and re-checks.

It is a validating plugin, so it runs after the strategy's validation and after every mutating
plugin (it charges a RuntimeClass's overhead and sees the class Priority chose): an object refused
with 422 is never charged. A dry run checks but charges nothing. Like Kubernetes, a create that
fails after admission (a name already taken) leaves the charge in place until the controller
recounts.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from kybernetes import errors
from kybernetes.api import quantity as q
from kybernetes.api.obj import Obj
from kybernetes.api.quota_usage import (
    Usage,
    matches_quota,
    object_usage,
    pod_constraints,
    pretty,
    quota_usage,
    sources_for,
)
from kybernetes.api.resources import Resource
from kybernetes.apiserver.admission.chain import CREATE, Attributes, Handler, PluginInit, forbidden
from kybernetes.apiserver.registry.request import ListOptions, RequestContext, User
from kybernetes.apiserver.registry.store import Registry

NAME = "ResourceQuota"


_MAX_ATTEMPTS = 10


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


class QuotaAdmission(Handler):
    operations = frozenset({CREATE})

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.resources = frozenset((r.group, r.plural) for r in registry.catalogue.all()
                                   if r.namespaced and r.builtin and "create" in r.verbs and r.kind != "Event")
        self._locks: dict[str, asyncio.Lock] = {}

    async def validate(self, attrs: Attributes) -> None:
        obj = attrs.object
        rq = self.registry.catalogue.get("", "v1", "resourcequotas")
        if rq is None or obj is None or attrs.subresource or not attrs.namespace:
            return
        namespace = attrs.namespace
        cache = await self.registry.cacher.cache_for(rq.key_prefix)
        if not any(True for _ in cache.list(rq.namespace_prefix(namespace))):
            return  # the common case: no quota, nothing to do
        # One admission at a time per namespace in this process: the CAS is what makes it safe
        # across writers; the lock only avoids needless conflicts between our own requests.
        async with self._locks.setdefault(namespace, asyncio.Lock()):
            charged: set[str] = set()
            for _attempt in range(_MAX_ATTEMPTS):
                quotas = (await self.registry.list(rq, namespace, ListOptions())).items
                plans = [plan for quota in sorted(quotas, key=lambda x: x["metadata"]["name"])
                         if quota["metadata"]["name"] not in charged
                         and (plan := await self._plan(attrs, obj, quota)) is not None]
                if attrs.dry_run or not plans:
                    return
                conflict = False
                for quota, new_used in plans:
                    if await self._charge(rq, namespace, quota, new_used):
                        charged.add(quota["metadata"]["name"])
                    else:
                        conflict = True
                if not conflict:
                    return
            raise errors.Conflict.of(rq.plural, "", why="too many concurrent quota updates; please retry")

    async def _plan(self, attrs: Attributes, obj: Obj, quota: Obj) -> tuple[Obj, Usage] | None:
        """The quota's new ``status.used`` with ``obj`` charged, None if it does not track
        ``obj``; 403 if ``obj`` does not fit."""
        if not matches_quota(quota, attrs.group, attrs.resource, obj):
            return None
        qname = quota["metadata"]["name"]
        hard = {k: str(v) for k, v in _d(_d(quota.get("spec")).get("hard")).items()}
        if attrs.group == "" and attrs.resource == "pods":
            problem = pod_constraints(hard, obj)
            if problem:
                raise forbidden(attrs, f"failed quota: {qname}: {problem}")
        delta = object_usage(attrs.group, attrs.resource, obj)
        requested = {k: val for k, val in delta.items() if k in hard}
        if not requested:
            return None
        used = await self._used(attrs.namespace, quota, hard)
        new_used = dict(used)
        exceeded: list[str] = []
        for k, val in requested.items():
            new_used[k] = q.add(used.get(k, "0"), val)
            if q.compare(new_used[k], hard[k]) > 0:
                exceeded.append(k)
        if exceeded:
            raise forbidden(attrs, (f"exceeded quota: {qname}, requested: {pretty(requested, exceeded)}, "
                                    f"used: {pretty(used, exceeded)}, limited: {pretty(hard, exceeded)}"))
        return quota, new_used

    async def _used(self, namespace: str, quota: Obj, hard: Usage) -> Usage:
        used = {k: str(v) for k, v in _d(_d(quota.get("status")).get("used")).items()}
        missing = [k for k in hard if k not in used]
        if missing:
            # The controller has not counted yet: count now, from the watch cache.
            lists: dict[tuple[str, str], list[Obj]] = {}
            for group, plural in sources_for(missing):
                r = next((x for x in self.registry.catalogue.all() if x.group == group and x.plural == plural), None)
                if r is None or not r.namespaced:
                    continue
                c = await self.registry.cacher.cache_for(r.key_prefix)
                lists[(group, plural)] = [o for _k, o in c.list(r.namespace_prefix(namespace))]
            fresh = quota_usage(quota, lambda g, p: lists.get((g, p), []))
            for k in missing:
                used[k] = fresh.get(k, "0")
        return used

    async def _charge(self, rq: Resource, namespace: str, quota: Obj, new_used: Usage) -> bool:
        """Write ``new_used`` into the quota's status; False if the quota changed meanwhile."""
        updated = copy.deepcopy(quota)
        status = updated.setdefault("status", {})
        status["hard"] = dict(_d(_d(quota.get("spec")).get("hard")))
        status["used"] = {**_d(status.get("used")), **new_used}
        ctx = RequestContext(user=User("system:apiserver", ("system:masters",)), field_manager="kube-apiserver")
        try:
            # resourceVersion is in the body: the write is a compare-and-swap on the quota.
            await self.registry.update(rq, namespace, quota["metadata"]["name"], updated, ctx, subresource="status")
        except errors.Conflict:
            return False
        return True


def new(init: PluginInit) -> QuotaAdmission:
    return QuotaAdmission(init.registry)
