"""The cloud node controller (``cloud-provider/controllers/node``): initialises new nodes.

A Node registered by a kubelet run with ``--cloud-provider=external`` carries the
``node.cloudprovider.kubernetes.io/uninitialized`` taint. This controller asks the provider for the
instance's metadata and, in one update of the Node (so a half-initialised node is never visible
untainted), sets ``spec.providerID`` (if unset), the topology labels
(``topology.kubernetes.io/zone``/``region``, ``node.kubernetes.io/instance-type``; labels the node
already has are kept) and removes the taint; then writes the instance's addresses into
``status.addresses`` if they differ. A node without the taint is left alone. A lost write
(conflict) is retried from the work queue with the node read afresh.

When the route controller runs (option ``configure-cloud-routes``, set by ``cloud/manager.py``),
a node without a ``NetworkUnavailable`` condition first gets ``True``, ``NoRouteCreated``,
``Node created without a route`` (as GCE's initialisation does), before the taint goes: so
``kyb network`` never routes it before the route controller has created its route
(``api/nodenetwork.py``). Without the route controller nothing would ever clear it, so it is not set.
"""

from __future__ import annotations

import logging

from kybernetes import errors
from kybernetes.api.nodenetwork import CREATED_WITHOUT_ROUTE, network_condition
from kybernetes.api.obj import Obj
from kybernetes.cloud.controllers.base import (
    CloudController,
    has_taint,
    set_network_condition,
    taints_without,
)
from kybernetes.cloud.provider import (
    INSTANCE_TYPE_LABEL,
    REGION_LABEL,
    UNINITIALIZED_TAINT,
    ZONE_LABEL,
    InstanceMetadata,
    Interface,
)
from kybernetes.controllers.base import ControllerContext

log = logging.getLogger(__name__)


def initialized_node(node: Obj, md: InstanceMetadata) -> Obj:
    """The Node as initialisation leaves it (pure): providerID, labels, taint removed."""
    out = dict(node)
    meta = dict(node.get("metadata") or {})
    labels = dict(meta.get("labels") or {})
    for key, value in ((ZONE_LABEL, md.zone), (REGION_LABEL, md.region), (INSTANCE_TYPE_LABEL, md.instance_type),
                       *md.additional_labels.items()):
        if value and key not in labels:
            labels[key] = value
    meta["labels"] = labels
    spec = dict(node.get("spec") or {})
    if not spec.get("providerID"):
        spec["providerID"] = md.provider_id
    spec["taints"] = taints_without(node, UNINITIALIZED_TAINT)
    out["metadata"], out["spec"] = meta, spec
    return out


class CloudNodeController(CloudController):
    name = "cloud-node-controller"
    workers = 1

    def __init__(self, ctx: ControllerContext, cloud: Interface) -> None:
        super().__init__(ctx, cloud)
        self.nodes = self.informer("v1", "nodes")
        self.routes_configured = bool(ctx.option("configure-cloud-routes", False))
        self.nodes.add_handler(on_add=self._maybe_enqueue, on_update=lambda _old, new: self._maybe_enqueue(new))

    def _maybe_enqueue(self, node: Obj) -> None:
        if has_taint(node, UNINITIALIZED_TAINT):
            self.enqueue(node)

    async def sync(self, key: str) -> None:
        instances = self.cloud.instances_v2()
        node = self.nodes.store.get(key)
        if node is None or instances is None or not has_taint(node, UNINITIALIZED_TAINT):
            return
        md = await instances.instance_metadata(node)
        try:
            if self.routes_configured and network_condition(node) is None:
                node = await set_network_condition(self.client, node, CREATED_WITHOUT_ROUTE)
            updated = await self.client.update("v1", "nodes", initialized_node(node, md))
        except errors.NotFound:
            return
        addresses = [a.to_obj() for a in md.node_addresses]
        if addresses and addresses != (updated.get("status") or {}).get("addresses"):
            await self.client.patch("v1", "nodes", key, {"status": {"addresses": addresses}}, subresource="status")
        log.info("initialized node %s (providerID %s)", key, md.provider_id)
        self.recorder.event(updated, "Normal", "Synced", "Node synced successfully")
