"""What every cloud controller shares: the project's controller shape plus the provider.

A cloud controller is a :class:`kybernetes.controllers.base.Controller` (informers, a work queue of
keys, ``sync`` safe to run again) that is also handed the :class:`~kybernetes.cloud.provider.Interface`
and the cluster's name. It writes with the cloud-controller-manager's own client (Kubernetes' CCM
runs as ``cloud-controller-manager``, not per-controller ServiceAccounts).
"""

from __future__ import annotations

from kybernetes.api.nodenetwork import NETWORK_UNAVAILABLE
from kybernetes.api.obj import Obj
from kybernetes.api.timeutil import now_rfc3339
from kybernetes.client.rest import Client
from kybernetes.cloud.provider import Interface
from kybernetes.controllers.base import Controller, ControllerContext

DEFAULT_CLUSTER_NAME = "kubernetes"


class CloudController(Controller):
    def __init__(self, ctx: ControllerContext, cloud: Interface) -> None:
        super().__init__(ctx)
        self.cloud = cloud
        self.cluster_name = str(ctx.option("cluster-name", DEFAULT_CLUSTER_NAME))


def ready_status(node: Obj) -> str:
    """The node's Ready condition status: ``True``, ``False`` or ``Unknown`` (also when missing)."""
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return str(c.get("status") or "Unknown")
    return "Unknown"


def has_taint(node: Obj, key: str) -> bool:
    return any(t.get("key") == key for t in (node.get("spec") or {}).get("taints") or [])


def taints_without(node: Obj, key: str) -> list[Obj]:
    return [t for t in (node.get("spec") or {}).get("taints") or [] if t.get("key") != key]


async def set_network_condition(client: Client, node: Obj, want: tuple[str, str, str]) -> Obj:
    """Write the node's ``NetworkUnavailable`` as ``want`` (status, reason, message), its other
    conditions kept, on the node's resourceVersion (a lost race is a Conflict: the caller retries
    from a fresh read); returns the node as written."""
    now = now_rfc3339()
    status, reason, message = want
    cond = {"type": NETWORK_UNAVAILABLE, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": now, "lastHeartbeatTime": now}
    conditions = [c for c in (node.get("status") or {}).get("conditions") or []
                  if c.get("type") != NETWORK_UNAVAILABLE] + [cond]
    meta = node["metadata"]
    return await client.patch("v1", "nodes", meta["name"], {
        "metadata": {"resourceVersion": meta.get("resourceVersion")}, "status": {"conditions": conditions}},
        subresource="status")
