"""Pods' storage beside their strategy (Kubernetes' ``pkg/registry/core/pod/storage``): the
``binding`` subresource and the older ``bindings`` resource, ``eviction`` and
``ephemeralcontainers``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kybernetes import errors
from kybernetes.api.fieldset import FieldSet
from kybernetes.api.obj import Obj
from kybernetes.api.structured_merge import FieldDiff
from kybernetes.api.timeutil import now_rfc3339
from kybernetes.apiserver.registry.rest import (
    Reply,
    ResourceREST,
    SubresourceCall,
    SubresourceREST,
    UpdateSubresourceREST,
)

if TYPE_CHECKING:
    from kybernetes.apiserver.registry.request import RequestContext



_BIND_ATTEMPTS = 5


def _binding_changes() -> FieldDiff:
    """What a binding changes among the fields managedFields track: spec.nodeName, set where it
    was unset (status is not tracked for the main resource). The comparison of the pod before
    and after finds exactly this; knowing it saves walking the whole pod on every binding. A new
    one per binding: the entries it is added to may keep it."""
    diff = FieldDiff()
    diff.added = FieldSet.from_paths([("f:spec", "f:nodeName")])
    return diff


def _success() -> Obj:
    return errors.status_object("Success")


async def bind_pod(rest: ResourceREST, namespace: str, name: str, body: Any, ctx: RequestContext) -> None:
    """Assign the pod ``name`` to the Binding's target node: spec.nodeName and PodScheduled=True,
    written past the pod's update rules (which forbid changing spec.nodeName). 409 when the pod
    is being deleted or already bound."""
    if not isinstance(body, dict):
        raise errors.BadRequest("binding must be a Binding object")
    node = (body.get("target") or {}).get("name")
    if not node:
        raise errors.Invalid("Binding", name, [{"reason": "FieldValueRequired", "field": "target.name",
                                                "message": "Required value"}])
    reg, r = rest.registry, rest.resource
    for _attempt in range(_BIND_ATTEMPTS):
        pod = await reg.get(r, namespace, name)
        if pod.get("metadata", {}).get("deletionTimestamp"):
            raise errors.Conflict.of("pods", name, why="pod is being deleted, cannot be assigned to a host")
        if (pod.get("spec") or {}).get("nodeName"):
            raise errors.Conflict.of("pods", name, why=f"pod {name} is already assigned to node "
                                     f"\"{pod['spec']['nodeName']}\"")
        # A copy of only what the binding changes (the object, its metadata, spec and status): the
        # rest is shared with the cached pod, which nothing below mutates (the cache is fed from
        # the store, not from this object). A deep copy of the whole pod cost more than the write.
        new = {**pod, "metadata": {**pod["metadata"]}, "spec": {**pod["spec"], "nodeName": node}}
        status = new["status"] = dict(pod.get("status") or {})
        conds = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                      "lastTransitionTime": now_rfc3339()})
        status["conditions"] = conds
        try:
            await reg.write_prepared(r, namespace, name, new, pod, ctx, changed=_binding_changes())
            return
        except errors.Conflict:
            continue
    raise errors.Conflict.of("pods", name, why="too many conflicting binding attempts")


class BindingREST(SubresourceREST):
    """``pods/NAME/binding`` (POST a Binding): the scheduler's way to bind a pod."""

    methods = frozenset(("POST",))

    async def serve(self, rest: ResourceREST, call: SubresourceCall) -> Reply:
        await bind_pod(rest, call.namespace, call.name, await call.read_body("Binding"), call.ctx)
        return Reply(_success(), 201)


class LegacyBindingREST(SubresourceREST):
    """``POST namespaces/NS/bindings``: the older form of pods/binding, where the Binding names the
    pod in metadata.name. It serves the ``bindings`` resource's create."""

    methods = frozenset(("POST",))

    async def serve(self, rest: ResourceREST, call: SubresourceCall) -> Reply:
        body = await call.read_body("Binding")
        pod_name = (body.get("metadata") or {}).get("name") if isinstance(body, dict) else None
        if not pod_name:
            raise errors.BadRequest("a Binding must name its pod in metadata.name")
        pods = rest.registry.catalogue.get("", "v1", "pods")
        assert pods is not None
        await bind_pod(rest.registry.rest_for(pods), call.namespace, pod_name, body, call.ctx)
        return Reply(_success(), 201)


class EvictionREST(SubresourceREST):
    """``pods/NAME/eviction`` (POST an Eviction): delete the pod if its disruption budgets allow."""

    methods = frozenset(("POST",))

    async def serve(self, rest: ResourceREST, call: SubresourceCall) -> Reply:
        from kybernetes.apiserver import eviction
        from kybernetes.apiserver.registry.store import admit_subresource_create

        body = await call.read_body("Eviction")
        if isinstance(body, dict):
            await admit_subresource_create(rest.registry, rest.resource, "Eviction", call.namespace, call.name,
                                           body, call.ctx, "eviction")
        code, out = await eviction.evict(rest.registry, rest.resource, call.namespace, call.name, body, call.ctx)
        return Reply(out, code)


class EphemeralContainersREST(UpdateSubresourceREST):
    """``pods/NAME/ephemeralcontainers``: GET the pod; PUT or PATCH (kubectl debug sends a
    strategic merge patch) write only its ``spec.ephemeralContainers``, which may only grow
    (:mod:`kybernetes.apiserver.registry.core.ephemeral`, through the pod strategy's
    subresource hooks)."""

    def __init__(self) -> None:
        super().__init__("ephemeralcontainers")
