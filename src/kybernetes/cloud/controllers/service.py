"""The service controller (``cloud-provider/controllers/service``): load balancers for Services.

A Service *wants* a load balancer when its type is ``LoadBalancer`` and it names no
``spec.loadBalancerClass`` (a class means another implementation owns it: left alone, as in
Kubernetes). For such a Service, ``sync``:

1. adds the finalizer ``service.kubernetes.io/load-balancer-cleanup`` *before* asking the
   provider for anything, so that nothing the provider allocates can outlive the Service;
2. calls ``EnsureLoadBalancer`` with the nodes that may serve (Ready, without the
   ``node.kubernetes.io/exclude-from-external-load-balancers`` label) and writes the returned
   status to ``status.loadBalancer`` if it differs.

A Service being deleted, or that no longer wants one (type changed) but still has the finalizer:
``EnsureLoadBalancerDeleted``, then ``status.loadBalancer`` cleared (if the Service stays), then
the finalizer removed. Every step is idempotent, so a process killed between any two of them
leaves a Service the next leader's sync finishes. Node changes re-ensure every load balancer.
(``allocateLoadBalancerNodePorts`` is the API server's: it allocates node ports or not; the local
provider does not use node ports.)
"""

from __future__ import annotations

import logging

from kybernetes import errors
from kybernetes.api.obj import Obj
from kybernetes.client.informer import key_of
from kybernetes.cloud.controllers.base import CloudController, ready_status
from kybernetes.cloud.provider import EXCLUDE_LB_LABEL, LB_FINALIZER, Interface
from kybernetes.controllers.base import ControllerContext, split_key

log = logging.getLogger(__name__)


def wants_load_balancer(svc: Obj) -> bool:
    spec = svc.get("spec") or {}
    return spec.get("type") == "LoadBalancer" and not spec.get("loadBalancerClass")


def has_finalizer(svc: Obj) -> bool:
    return LB_FINALIZER in ((svc.get("metadata") or {}).get("finalizers") or [])


def needs_cleanup(svc: Obj) -> bool:
    deleting = bool((svc.get("metadata") or {}).get("deletionTimestamp"))
    return has_finalizer(svc) and (deleting or not wants_load_balancer(svc))


def serving_nodes(nodes: list[Obj]) -> list[Obj]:
    """The nodes a load balancer sends to, by name (Kubernetes' default node predicate, simplified)."""
    ok = [n for n in nodes if ready_status(n) == "True"
          and EXCLUDE_LB_LABEL not in ((n.get("metadata") or {}).get("labels") or {})]
    return sorted(ok, key=lambda n: n["metadata"]["name"])


class ServiceController(CloudController):
    name = "service-controller"
    queue_name = "service"
    workers = 1

    def __init__(self, ctx: ControllerContext, cloud: Interface) -> None:
        super().__init__(ctx, cloud)
        self.services = self.informer("v1", "services")
        self.nodes = self.informer("v1", "nodes")
        self.services.add_handler(on_add=self._maybe_enqueue, on_update=lambda _o, n: self._maybe_enqueue(n),
                                  on_delete=self._maybe_enqueue)
        self.nodes.add_handler(on_add=self._nodes_changed, on_update=self._node_updated,
                               on_delete=self._nodes_changed)

    def _maybe_enqueue(self, svc: Obj) -> None:
        if wants_load_balancer(svc) or has_finalizer(svc):
            self.enqueue(svc)

    def _node_updated(self, old: Obj, new: Obj) -> None:
        if serving_nodes([old]) != serving_nodes([new]) or \
                (old.get("status") or {}).get("addresses") != (new.get("status") or {}).get("addresses"):
            self._nodes_changed(new)

    def _nodes_changed(self, _node: Obj) -> None:
        for svc in self.services.store.list():
            if wants_load_balancer(svc):
                self.queue.add(key_of(svc))

    async def sync(self, key: str) -> None:
        lb = self.cloud.load_balancer()
        svc = self.services.store.get(key)
        if svc is None or lb is None:
            return
        try:
            if needs_cleanup(svc):
                await self._cleanup(svc)
            elif wants_load_balancer(svc) and not svc["metadata"].get("deletionTimestamp"):
                await self._ensure(svc)
        except errors.NotFound:
            return

    async def _ensure(self, svc: Obj) -> None:
        lb = self.cloud.load_balancer()
        assert lb is not None
        ns, name = split_key(key_of(svc))
        if not has_finalizer(svc):
            svc = await self.client.patch("v1", "services", name, {"metadata": {
                "resourceVersion": svc["metadata"].get("resourceVersion"),
                "finalizers": [*(svc["metadata"].get("finalizers") or []), LB_FINALIZER]}}, ns)
        current = (svc.get("status") or {}).get("loadBalancer") or {}
        if not current.get("ingress"):
            self.recorder.event(svc, "Normal", "EnsuringLoadBalancer", "Ensuring load balancer")
        try:
            status = await lb.ensure_load_balancer(self.cluster_name, svc, serving_nodes(self.nodes.store.list()))
        except Exception as e:  # the provider's failure: said on the Service, retried with back-off
            self.recorder.event(svc, "Warning", "SyncLoadBalancerFailed",
                                f"Error syncing load balancer: failed to ensure load balancer: {e}")
            raise
        if status != current:
            await self.client.patch("v1", "services", name, {"status": {"loadBalancer": status}}, ns,
                                    subresource="status")
            self.recorder.event(svc, "Normal", "EnsuredLoadBalancer", "Ensured load balancer")

    async def _cleanup(self, svc: Obj) -> None:
        lb = self.cloud.load_balancer()
        assert lb is not None
        ns, name = split_key(key_of(svc))
        self.recorder.event(svc, "Normal", "DeletingLoadBalancer", "Deleting load balancer")
        try:
            await lb.ensure_load_balancer_deleted(self.cluster_name, svc)
        except Exception as e:
            self.recorder.event(svc, "Warning", "SyncLoadBalancerFailed",
                                f"Error syncing load balancer: failed to delete load balancer: {e}")
            raise
        if not svc["metadata"].get("deletionTimestamp") and ((svc.get("status") or {}).get("loadBalancer") or {}):
            svc = await self.client.patch("v1", "services", name, {"status": {"loadBalancer": {"ingress": None}}}, ns,
                                          subresource="status")
        finalizers = [f for f in svc["metadata"].get("finalizers") or [] if f != LB_FINALIZER]
        await self.client.patch("v1", "services", name, {"metadata": {
            "resourceVersion": svc["metadata"].get("resourceVersion"), "finalizers": finalizers or None}}, ns)
        self.recorder.event(svc, "Normal", "DeletedLoadBalancer", "Deleted load balancer")
