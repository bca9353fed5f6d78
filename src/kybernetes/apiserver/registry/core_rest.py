"""The core group's kind-specific subresources (Kubernetes' ``pkg/registry/core/<resource>/storage``).

pods: ``binding`` (:class:`BindingREST`, and the older ``bindings`` resource,
:class:`LegacyBindingREST`), ``eviction`` (:class:`EvictionREST`) and ``ephemeralcontainers``
(:class:`EphemeralContainersREST`); namespaces: ``finalize`` (:class:`FinalizeREST`);
serviceaccounts: ``token`` (:class:`TokenREST`, installed by the server with its token issuer);
replicationcontrollers: ``scale``. Pods' connect subresources (log, exec, attach, portforward) are
:class:`~kybernetes.apiserver.registry.rest.ConnectREST` objects the server installs with its
streaming proxy.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from kybernetes import errors
from kybernetes.api.timeutil import now_rfc3339
from kybernetes.apiserver.registry.rest import (
    REPLICAS_PATHS,
    Reply,
    ResourceREST,
    ScaleREST,
    SubresourceCall,
    SubresourceREST,
    UpdateSubresourceREST,
)

if TYPE_CHECKING:
    from kybernetes.apiserver.registry.store import RequestContext

Obj = dict[str, Any]

_BIND_ATTEMPTS = 5


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
        new = copy.deepcopy(pod)
        new["spec"]["nodeName"] = node
        status = new.setdefault("status", {})
        conds = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                      "lastTransitionTime": now_rfc3339()})
        status["conditions"] = conds
        try:
            await reg.write_prepared(r, namespace, name, new, pod, ctx)
            return
        except errors.Conflict:
            continue
    raise errors.Conflict.of("pods", name, why="too many conflicting binding attempts")


class BindingREST(SubresourceREST):
    """``pods/NAME/binding`` (POST a Binding): the scheduler's way to bind a pod."""

    methods = frozenset(("POST",))

    async def serve(self, rest: ResourceREST, call: SubresourceCall) -> Reply:
        await bind_pod(rest, call.namespace, call.name, await call.read_body(), call.ctx)
        return Reply(_success(), 201)


class LegacyBindingREST(SubresourceREST):
    """``POST namespaces/NS/bindings``: the older form of pods/binding, where the Binding names the
    pod in metadata.name. It serves the ``bindings`` resource's create."""

    methods = frozenset(("POST",))

    async def serve(self, rest: ResourceREST, call: SubresourceCall) -> Reply:
        body = await call.read_body()
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

        code, out = await eviction.evict(rest.registry, rest.resource, call.namespace, call.name,
                                         await call.read_body(), call.ctx)
        return Reply(out, code)


class EphemeralContainersREST(UpdateSubresourceREST):
    """``pods/NAME/ephemeralcontainers``: read and written as the pod itself (the pod's update
    rules say what may change)."""

    def __init__(self) -> None:
        super().__init__("")


class FinalizeREST(UpdateSubresourceREST):
    """``namespaces/NAME/finalize`` (GET, PUT): writes only spec.finalizers (the Namespace
    strategy's subresource rules)."""

    def __init__(self) -> None:
        super().__init__("finalize", frozenset(("GET", "PUT")))


TokenIssuer = Callable[[str, str, Any, "RequestContext"], Awaitable[Obj]]


class TokenREST(SubresourceREST):
    """``serviceaccounts/NAME/token`` (POST a TokenRequest): a token for the account, issued by
    ``issue(namespace, name, body, ctx)`` (the server's service-account token issuer)."""

    methods = frozenset(("POST",))

    def __init__(self, issue: TokenIssuer) -> None:
        self.issue = issue

    async def serve(self, rest: ResourceREST, call: SubresourceCall) -> Reply:
        body = await call.read_body()
        return Reply(await self.issue(call.namespace, call.name, body, call.ctx), 201)


SUBRESOURCES: dict[tuple[str, str], Callable[[], dict[str, SubresourceREST]]] = {
    ("", "pods"): lambda: {"binding": BindingREST(), "eviction": EvictionREST(),
                           "ephemeralcontainers": EphemeralContainersREST()},
    ("", "namespaces"): lambda: {"finalize": FinalizeREST()},
    ("", "replicationcontrollers"): lambda: {"scale": ScaleREST(REPLICAS_PATHS)},
}
"""(group, plural) -> the kind-specific subresources of its REST object."""

CREATE: dict[tuple[str, str], Callable[[], SubresourceREST]] = {
    ("", "bindings"): LegacyBindingREST,
}
"""(group, plural) -> what serves its create instead of the generic store."""

__all__ = [
    "CREATE",
    "SUBRESOURCES",
    "BindingREST",
    "EphemeralContainersREST",
    "EvictionREST",
    "FinalizeREST",
    "LegacyBindingREST",
    "TokenREST",
    "bind_pod",
]
