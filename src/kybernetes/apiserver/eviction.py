"""The ``pods/eviction`` subresource: delete a pod only if its PodDisruptionBudget allows it.

Kubernetes' ``EvictionREST.Create`` (``pkg/registry/core/pod/storage/eviction.go``), step by step:

1. The body is a ``policy/v1`` (or ``v1beta1``) ``Eviction`` naming the pod of the URL; its
   ``deleteOptions`` are the options of the eventual delete (dry-run from the query or the body).
2. Pods that already caused their disruption - ``Pending``, ``Succeeded``, ``Failed`` or already
   terminating - are deleted without looking at budgets. A resourceVersion precondition is added
   for non-terminal ones so a pod that turns ready meanwhile is not deleted behind a budget's back.
3. Otherwise the budgets of the pod's namespace whose (non-empty) selector matches the pod are
   found. More than one: a ``500`` Status "This pod has more than one PodDisruptionBudget, which
   the eviction subresource does not support." (Kubernetes' answer, rendered as a Status, never an
   exception). None: the pod is deleted.
4. One budget: an unready pod may go without spending the budget when the policy is
   ``AlwaysAllow``, or (``IfHealthyBudget``, the default) when the budget is currently met.
   Otherwise the budget must be processed (``observedGeneration``) and have
   ``disruptionsAllowed >= 1``, else ``429 TooManyRequests`` "Cannot evict pod as it would violate
   the pod's disruption budget." with a ``DisruptionBudget`` cause. The budget is spent by a
   compare-and-swap write of its status (``disruptionsAllowed - 1``, the pod recorded in
   ``disruptedPods`` so the disruption controller does not count it as healthy); a lost CAS
   re-reads the budget and tries again.
5. Before the delete the pod gets the ``DisruptionTarget`` condition
   (``EvictionByEvictionAPI``), then it is deleted with the eviction's delete options (bound pods
   gracefully: the kubelet finishes). The answer is ``201`` with a Success Status.
"""

from __future__ import annotations

import asyncio
import copy
from typing import TYPE_CHECKING, Any

from kybernetes import errors
from kybernetes.api.label_selectors import from_label_selector_object
from kybernetes.api.obj import Obj
from kybernetes.api.podutil import is_pod_ready
from kybernetes.api.policy import set_disruption_allowed_condition
from kybernetes.api.timeutil import now_rfc3339

if TYPE_CHECKING:
    from kybernetes.api.resources import Resource
    from kybernetes.apiserver.registry.request import DeleteOptions, RequestContext
    from kybernetes.apiserver.registry.store import Registry


MAX_DISRUPTED_PODS = 2000
_RETRIES = 20
_RETRY_DELAY = 0.05
VIOLATION = "Cannot evict pod as it would violate the pod's disruption budget."


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def success() -> Obj:
    return errors.status_object("Success")


def _too_many(message: str, retry_after: int) -> errors.TooManyRequests:
    return errors.TooManyRequests(
        VIOLATION, details={"causes": [{"reason": "DisruptionBudget", "message": message}]}, retry_after=retry_after)


def _still_processing(pdb_name: str) -> errors.TooManyRequests:
    return _too_many(f"The disruption budget {pdb_name} is still being processed by the server.", 10)


def _can_ignore_pdb(pod: Obj) -> bool:
    phase = _d(pod.get("status")).get("phase")
    return phase in ("Succeeded", "Failed", "Pending") or bool(_d(pod.get("metadata")).get("deletionTimestamp"))


def _enforce_rv(pod: Obj) -> bool:
    phase = _d(pod.get("status")).get("phase")
    return not (phase in ("Succeeded", "Failed") or _d(pod.get("metadata")).get("deletionTimestamp"))


def _delete_options(body: Obj, query_dry_run: bool) -> DeleteOptions:
    from kybernetes.apiserver.registry.request import DeleteOptions

    raw = body.get("deleteOptions")
    opts = DeleteOptions(dry_run=query_dry_run)
    if raw is None:
        return opts
    if not isinstance(raw, dict):
        raise errors.BadRequest("deleteOptions must be an object")
    grace = raw.get("gracePeriodSeconds")
    if grace is not None:
        if not isinstance(grace, int) or isinstance(grace, bool):
            raise errors.BadRequest("deleteOptions.gracePeriodSeconds must be an integer")
        opts.grace_period_seconds = grace
    if raw.get("propagationPolicy"):
        opts.propagation_policy = str(raw["propagationPolicy"])
    if raw.get("orphanDependents") is True:
        opts.propagation_policy = "Orphan"
    if isinstance(raw.get("preconditions"), dict):
        opts.preconditions = dict(raw["preconditions"])
    body_dry = raw.get("dryRun")
    if body_dry:
        if isinstance(body_dry, str):
            body_dry = [body_dry]
        if not isinstance(body_dry, list) or any(x != "All" for x in body_dry):
            raise errors.BadRequest('dryRun: Unsupported value: supported values: "All"')
        opts.dry_run = True
    return opts


def _rv_unset(opts: DeleteOptions) -> bool:
    return not (opts.preconditions or {}).get("resourceVersion")


def _with_rv(opts: DeleteOptions, rv: str) -> DeleteOptions:
    out = copy.copy(opts)
    out.preconditions = {**(opts.preconditions or {}), "resourceVersion": rv}
    return out


class Evictor:
    """One eviction request against the registry."""

    def __init__(self, registry: Registry, pods: Resource, ctx: RequestContext) -> None:
        self.registry = registry
        self.pods = pods
        self.ctx = ctx
        pdbs = registry.catalogue.get("policy", "v1", "poddisruptionbudgets")
        assert pdbs is not None
        self.pdbs = pdbs

    def _ctx(self, dry_run: bool) -> RequestContext:
        c = copy.copy(self.ctx)
        c.dry_run = dry_run
        return c

    async def evict(self, namespace: str, name: str, body: Any) -> tuple[int, Obj]:
        if not isinstance(body, dict):
            raise errors.BadRequest("not a Eviction object")
        if body.get("kind") not in (None, "Eviction") or body.get("apiVersion") not in (None, "policy/v1",
                                                                                         "policy/v1beta1"):
            raise errors.BadRequest(f"not a Eviction object: {body.get('apiVersion')}/{body.get('kind')}")
        meta = _d(body.get("metadata"))
        if meta.get("name") != name:
            raise errors.BadRequest("name in URL does not match name in Eviction object")
        if meta.get("namespace") and meta["namespace"] != namespace:
            raise errors.BadRequest("the namespace of the provided object does not match the namespace sent on the request")
        opts = _delete_options(body, self.ctx.dry_run)

        pod: Obj | None = None
        for _attempt in range(_RETRIES):
            pod = await self.registry.get(self.pods, namespace, name)
            if not _can_ignore_pdb(pod):
                break
            use = opts
            if _enforce_rv(pod) and _rv_unset(opts):
                use = _with_rv(opts, pod["metadata"]["resourceVersion"])
            try:
                await self._mark_and_delete(namespace, name, use)
            except errors.Conflict:
                if not _rv_unset(opts):
                    raise
                await asyncio.sleep(_RETRY_DELAY)
                continue
            return 201, success()
        else:
            raise errors.Conflict.of("pods", name, why="too many conflicting writes; please retry")
        assert pod is not None

        matching = await self._budgets_for(pod)
        if len(matching) > 1:
            return 500, errors.status_object("Failure", "This pod has more than one PodDisruptionBudget, which the "
                                                        "eviction subresource does not support.", code=500)
        pin_rv = False
        pdb_name = ""
        if matching:
            pdb = matching[0]
            pdb_name = pdb["metadata"]["name"]
            status = _d(pdb.get("status"))
            if not is_pod_ready(pod):
                policy = _d(pdb.get("spec")).get("unhealthyPodEvictionPolicy")
                healthy_budget = (int(status.get("currentHealthy") or 0) >= int(status.get("desiredHealthy") or 0)
                                  and int(status.get("desiredHealthy") or 0) > 0)
                # An unready pod does not count as healthy: taking it costs the budget nothing.
                pin_rv = policy == "AlwaysAllow" or healthy_budget
            if not pin_rv:
                await self._check_and_decrement(namespace, name, pdb, opts.dry_run)
        use = _with_rv(opts, pod["metadata"]["resourceVersion"]) if pin_rv else opts
        try:
            await self._mark_and_delete(namespace, name, use)
        except errors.Conflict:
            if pin_rv and _rv_unset(opts):
                # The pod changed (maybe became ready) since we decided: let the client retry.
                raise _still_processing(pdb_name) from None
            raise
        return 201, success()

    async def _budgets_for(self, pod: Obj) -> list[Obj]:
        from kybernetes.apiserver.registry.request import ListOptions

        ns = pod["metadata"]["namespace"]
        labels = _d(pod["metadata"].get("labels"))
        out = []
        for pdb in (await self.registry.list(self.pdbs, ns, ListOptions())).items:
            sel = _d(pdb.get("spec")).get("selector")
            try:
                selector = from_label_selector_object(sel, none_matches=False)
            except errors.StatusError:
                continue  # an invalid selector matches nothing
            # A nil or empty selector must match nothing here, not everything.
            if selector.empty or selector.matches_nothing or not selector.matches(labels):
                continue
            out.append(pdb)
        return out

    async def _check_and_decrement(self, namespace: str, pod_name: str, pdb: Obj, dry_run: bool) -> None:
        name = pdb["metadata"]["name"]
        for _attempt in range(_RETRIES):
            status = copy.deepcopy(_d(pdb.get("status")))
            if int(status.get("observedGeneration") or 0) < int(pdb["metadata"].get("generation") or 0):
                raise _still_processing(name)
            allowed = int(status.get("disruptionsAllowed") or 0)
            if allowed < 0:
                raise errors.Forbidden(f'poddisruptionbudget.policy "{name}" is forbidden: pdb disruptions allowed '
                                       "is negative", details={"name": name, "group": "policy",
                                                               "kind": "poddisruptionbudget"})
            if len(_d(status.get("disruptedPods"))) > MAX_DISRUPTED_PODS:
                raise errors.Forbidden(
                    f'poddisruptionbudget.policy "{name}" is forbidden: DisruptedPods map too big - too many '
                    "evictions not confirmed by PDB controller",
                    details={"name": name, "group": "policy", "kind": "poddisruptionbudget"})
            if allowed == 0:
                raise _too_many(f"The disruption budget {name} needs {int(status.get('desiredHealthy') or 0)} "
                                f"healthy pods and has {int(status.get('currentHealthy') or 0)} currently", 0)
            status["disruptionsAllowed"] = allowed - 1
            if allowed - 1 == 0:
                set_disruption_allowed_condition(status)
            if dry_run:
                return
            status["disruptedPods"] = {**_d(status.get("disruptedPods")), pod_name: now_rfc3339()}
            updated = {**pdb, "status": status}
            try:
                # The budget's resourceVersion is in the body: a compare-and-swap.
                await self.registry.update(self.pdbs, namespace, name, updated, self._ctx(False), subresource="status")
                return
            except errors.Conflict:
                await asyncio.sleep(_RETRY_DELAY)
                pdb = await self.registry.get(self.pdbs, namespace, name)
        raise errors.Timeout(f'couldn\'t update PodDisruptionBudget "{name}" due to conflicts',
                             details={"retryAfterSeconds": 10})

    async def _mark_and_delete(self, namespace: str, name: str, opts: DeleteOptions) -> None:
        if not opts.dry_run:
            opts = await self._add_disruption_condition(namespace, name, opts)
        await self.registry.delete(self.pods, namespace, name, opts, self._ctx(opts.dry_run))

    async def _add_disruption_condition(self, namespace: str, name: str, opts: DeleteOptions) -> DeleteOptions:
        """DisruptionTarget=True on the pod before it goes, so its owner knows why it went."""
        pod = await self.registry.get(self.pods, namespace, name)
        pre = opts.preconditions or {}
        meta = pod["metadata"]
        if pre.get("uid") and pre["uid"] != meta.get("uid"):
            raise errors.Conflict.of("pods", name, why=f"Precondition failed: UID in precondition: {pre['uid']}, "
                                                       f"UID in object meta: {meta.get('uid')}")
        if pre.get("resourceVersion") and pre["resourceVersion"] != meta.get("resourceVersion"):
            raise errors.Conflict.of("pods", name, why="Precondition failed: ResourceVersion in precondition: "
                                                       f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                                                       f"{meta.get('resourceVersion')}")
        new = copy.deepcopy(pod)
        status = new.setdefault("status", {})
        conds = [c for c in status.get("conditions") or [] if _d(c).get("type") != "DisruptionTarget"]
        old = next((c for c in status.get("conditions") or [] if _d(c).get("type") == "DisruptionTarget"), None)
        cond = {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI",
                "message": "Eviction API: evicting", "lastProbeTime": None,
                "lastTransitionTime": _d(old).get("lastTransitionTime") if _d(old).get("status") == "True" else now_rfc3339()}
        conds.append(cond)
        status["conditions"] = conds
        updated, _ = await self.registry.update(self.pods, namespace, name, new, self._ctx(False), subresource="status")
        if not _rv_unset(opts):
            # We moved the resourceVersion ourselves: the caller's precondition follows it.
            return _with_rv(opts, updated["metadata"]["resourceVersion"])
        return opts


async def evict(registry: Registry, pods: Resource, namespace: str, name: str, body: Any,
                ctx: RequestContext) -> tuple[int, Obj]:
    """Handle POST pods/NAME/eviction; returns (HTTP code, Status body). Errors raise StatusError."""
    return await Evictor(registry, pods, ctx).evict(namespace, name, body)


__all__ = ["VIOLATION", "Evictor", "evict"]
