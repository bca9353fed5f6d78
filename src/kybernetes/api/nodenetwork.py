"""A Node's ``NetworkUnavailable`` condition: who may route to its pod CIDR, and its wording.

One rule, shared by its writers (the cloud node controller and the route controller, ``cloud/``)
and its reader (the host-gw planner of ``kyb network``, ``proxy/routes.py``), as Kubernetes' route
controller and a node's data plane share it:

* no ``NetworkUnavailable`` condition and no ``node.cloudprovider.kubernetes.io/uninitialized``
  taint: no cloud-controller-manager manages this node's routes; it is routed;
* the condition with status ``False`` (the route controller's ``RouteCreated``): routed;
* the condition with any other status (``True``: ``NoRouteCreated``, set when the cloud node
  controller initialises a node or the route controller has no route for it): not routed;
* no condition yet but the uninitialized taint: not routed: the cloud node controller sets
  ``NoRouteCreated`` before it removes the taint when the route controller runs, so a node never
  looks unmanaged between its registration and its first route.

The reasons and messages are Kubernetes' own (``cloud-provider/controllers/route``, and the
``Node created without a route`` of GCE's cloud node initialisation).
"""

from __future__ import annotations

from kybernetes.api.obj import Obj

NETWORK_UNAVAILABLE = "NetworkUnavailable"
UNINITIALIZED_TAINT = "node.cloudprovider.kubernetes.io/uninitialized"
"""The kubelet registers with this taint (NoSchedule) under ``--cloud-provider=external``; the
cloud node controller removes it once the node is initialised."""

ROUTE_CREATED = ("False", "RouteCreated", "RouteController created a route")
"""(status, reason, message) once every pod CIDR of the node has its route."""
NO_ROUTE_CREATED = ("True", "NoRouteCreated", "RouteController failed to create a route")
"""(status, reason, message) when the route controller has no route for the node."""
CREATED_WITHOUT_ROUTE = ("True", "NoRouteCreated", "Node created without a route")
"""(status, reason, message) the cloud node controller sets when it initialises a node."""


def network_condition(node: Obj) -> Obj | None:
    """The node's ``NetworkUnavailable`` condition, or None."""
    for c in (node.get("status") or {}).get("conditions") or []:
        if isinstance(c, dict) and c.get("type") == NETWORK_UNAVAILABLE:
            return c
    return None


def pod_network_routable(node: Obj) -> bool:
    """Whether other nodes may route to this node's pod CIDR now (the rule of the module doc)."""
    c = network_condition(node)
    if c is not None:
        return c.get("status") == "False"
    taints = (node.get("spec") or {}).get("taints") or []
    return not any(isinstance(t, dict) and t.get("key") == UNINITIALIZED_TAINT for t in taints)
