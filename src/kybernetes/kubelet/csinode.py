"""The node's ``storage.k8s.io/v1`` CSINode, as the kubelet's CSI node-info manager keeps it.

Kubernetes' kubelet creates a CSINode named after its Node when it starts, even with no CSI driver
registered (``spec.drivers`` empty), owned by the Node so that it goes with it; drivers add their
entries when they register. kybernetes runs no CSI drivers, so the object lists none. The
``storage.alpha.kubernetes.io/migrated-plugins`` annotation is left out: it names in-tree volume
plugins migrated to CSI drivers, and this kubelet has neither.

A Node registered again (deleted and re-created: a new uid) takes over the existing CSINode by
pointing its owner reference at the new Node, before the garbage collector removes it as orphaned.
"""

from __future__ import annotations

import logging

from kybernetes import errors
from kybernetes.api.obj import Obj
from kybernetes.client.rest import Client

log = logging.getLogger(__name__)

API_VERSION = "storage.k8s.io/v1"


def _owner(node: Obj) -> Obj:
    meta = node.get("metadata") or {}
    return {"apiVersion": "v1", "kind": "Node", "name": meta.get("name", ""), "uid": meta.get("uid", "")}


async def ensure_csi_node(client: Client, node: Obj) -> Obj:
    """Create this node's CSINode, or point an existing one at this Node; returns it."""
    owner = _owner(node)
    name = owner["name"]
    try:
        existing = await client.get(API_VERSION, "csinodes", name)
    except errors.NotFound:
        body = {"apiVersion": API_VERSION, "kind": "CSINode",
                "metadata": {"name": name, "ownerReferences": [owner]}, "spec": {"drivers": []}}
        try:
            created = await client.create(API_VERSION, "csinodes", body)
            log.info("registered CSINode %s", name)
            return created
        except errors.AlreadyExists:
            existing = await client.get(API_VERSION, "csinodes", name)
    owners = (existing.get("metadata") or {}).get("ownerReferences") or []
    if not any(o.get("uid") == owner["uid"] for o in owners if isinstance(o, dict)):
        others = [o for o in owners if isinstance(o, dict) and not (o.get("kind") == "Node" and o.get("name") == name)]
        existing = await client.patch(API_VERSION, "csinodes", name,
                                      {"metadata": {"ownerReferences": [*others, owner]}})
    return existing
