"""The route controller (``cloud-provider/controllers/route``): a route to every node's pod CIDR.

Every ``route-reconciliation-period`` seconds (default 10) and on Node changes, one reconcile:
the provider's routes are listed; routes whose node or CIDR is gone (or that the provider reports
as blackholes) are deleted; a route for each podCIDR of each Node is created where missing (a
failure is a ``FailedToCreateRoute`` Warning event on the Node and is tried again next round).
Then each Node's ``NetworkUnavailable`` condition says the outcome, in Kubernetes' words
(``api/nodenetwork.py``), written only when its status is not already so:

* every pod CIDR of the node has its route: ``False``, ``RouteCreated``;
* a route could not be created, or the node has no pod CIDR but had a route (now deleted):
  ``True``, ``NoRouteCreated``;
* a node without pod CIDRs and without routes is left as it is.

This controller is the authority over which nodes are routed: ``kyb network`` on each node (the
only writer of kernel routes, the local provider's data plane) routes a node managed here only
while its condition is ``False`` (docs/architecture.md, "Routes, one owner"). The local provider
records the table; a real cloud's provider programs its VPC in ``create_route``.
"""

from __future__ import annotations

import logging

from kybernetes.api.nodenetwork import NETWORK_UNAVAILABLE, NO_ROUTE_CREATED, ROUTE_CREATED, network_condition
from kybernetes.api.obj import Obj
from kybernetes.cloud.controllers.base import CloudController, set_network_condition
from kybernetes.cloud.provider import Interface, NodeAddress, Route
from kybernetes.controllers.base import ControllerContext

log = logging.getLogger(__name__)

RECONCILE_KEY = "routes"
RouteKey = tuple[str, str]
"""(target node, destination CIDR)."""


def pod_cidrs(node: Obj) -> list[str]:
    spec = node.get("spec") or {}
    return list(spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else []))


def desired_routes(nodes: list[Obj]) -> dict[RouteKey, Route]:
    """A route per pod CIDR per Node (pure)."""
    out: dict[RouteKey, Route] = {}
    for n in nodes:
        name = n["metadata"]["name"]
        addresses = tuple(NodeAddress(a["type"], a["address"])
                          for a in (n.get("status") or {}).get("addresses") or [] if a.get("address"))
        for cidr in pod_cidrs(n):
            out[(name, cidr)] = Route(f"{name}-{cidr}", name, cidr, addresses)
    return out


def wanted_conditions(nodes: list[Obj], had_routes: set[str], not_created: set[str]) -> dict[str, tuple[str, str, str]]:
    """Node name -> the ``NetworkUnavailable`` (status, reason, message) this round calls for (pure).

    ``had_routes``: nodes with a route in the provider's table when the round began;
    ``not_created``: nodes with a pod CIDR whose route is still missing after it."""
    out: dict[str, tuple[str, str, str]] = {}
    for n in nodes:
        name = n["metadata"]["name"]
        if pod_cidrs(n):
            out[name] = NO_ROUTE_CREATED if name in not_created else ROUTE_CREATED
        elif name in had_routes:
            out[name] = NO_ROUTE_CREATED
    return out


def condition_differs(node: Obj, want: tuple[str, str, str]) -> bool:
    """Kubernetes' test: only the status counts (a ``False`` of another writer is left alone)."""
    c = network_condition(node)
    return c is None or c.get("status") != want[0]


class RouteController(CloudController):
    name = "route-controller"
    workers = 1

    def __init__(self, ctx: ControllerContext, cloud: Interface) -> None:
        super().__init__(ctx, cloud)
        self.nodes = self.informer("v1", "nodes")
        self.period = float(ctx.option("route-reconciliation-period", 10.0))
        self.nodes.add_handler(on_add=self._changed, on_update=lambda _o, n: self._changed(n),
                               on_delete=self._changed)

    def _changed(self, _node: Obj) -> None:
        self.queue.add(RECONCILE_KEY)

    async def run(self) -> None:
        self.queue.add(RECONCILE_KEY)
        await super().run()

    async def sync(self, key: str) -> None:
        try:
            await self.reconcile()
        finally:
            self.queue.add_after(RECONCILE_KEY, self.period)

    async def reconcile(self) -> None:
        routes = self.cloud.routes()
        if routes is None:
            return
        nodes = self.nodes.store.list()
        want = desired_routes(nodes)
        have = {(r.target_node, r.destination_cidr): r for r in await routes.list_routes(self.cluster_name)}
        for k, r in have.items():
            if r.blackhole or k not in want:
                log.info("deleting route %s -> %s", r.destination_cidr, r.target_node)
                await routes.delete_route(self.cluster_name, r)
        by_node = {n["metadata"]["name"]: n for n in nodes}
        not_created: set[str] = set()
        for k, r in want.items():
            if k in have and not have[k].blackhole:
                continue
            node = by_node[r.target_node]
            try:
                await routes.create_route(self.cluster_name, str(node["metadata"].get("uid") or ""), r)
            except Exception as e:  # the provider's failure: reported, tried again next round
                not_created.add(r.target_node)
                msg = f"Could not create route {r.name} {r.destination_cidr} for node {r.target_node}: {e}"
                log.warning("%s", msg)
                self.recorder.event(node, "Warning", "FailedToCreateRoute", msg)
        conditions = wanted_conditions(nodes, {node for node, _ in have}, not_created)
        for name, cond in conditions.items():
            if condition_differs(by_node[name], cond):
                log.info("node %s: %s=%s (%s)", name, NETWORK_UNAVAILABLE, cond[0], cond[1])
                await set_network_condition(self.client, by_node[name], cond)
