"""The route controller (``cloud-provider/controllers/route``): a route to every node's pod CIDR.

Every ``route-reconciliation-period`` seconds (default 10) and on Node changes, one reconcile:
the provider's routes are listed; a route for each podCIDR of each Node is created where
missing; routes whose node or CIDR is gone (or that the provider reports as blackholes) are
deleted. A Node whose routes all exist gets the condition ``NetworkUnavailable=False`` with
reason ``RouteCreated`` (Kubernetes' words), written only when it is not already so.

Who programs the kernel is the provider's business: the local provider records the table and
``kyb network`` on each node installs the host-gw routes from the same podCIDRs (one writer
per machine; docs/architecture.md).
"""

from __future__ import annotations

import logging

from kybernetes.api.obj import Obj
from kybernetes.api.timeutil import now_rfc3339
from kybernetes.cloud.controllers.base import CloudController
from kybernetes.cloud.provider import Interface, NodeAddress, Route
from kybernetes.controllers.base import ControllerContext

log = logging.getLogger(__name__)

RECONCILE_KEY = "routes"


def pod_cidrs(node: Obj) -> list[str]:
    spec = node.get("spec") or {}
    return list(spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else []))


def desired_routes(nodes: list[Obj]) -> dict[tuple[str, str], Route]:
    out: dict[tuple[str, str], Route] = {}
    for n in nodes:
        name = n["metadata"]["name"]
        addresses = tuple(NodeAddress(a["type"], a["address"])
                          for a in (n.get("status") or {}).get("addresses") or [] if a.get("address"))
        for cidr in pod_cidrs(n):
            out[(name, cidr)] = Route(f"{name}-{cidr}", name, cidr, addresses)
    return out


def route_created(node: Obj) -> bool:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "NetworkUnavailable":
            return c.get("status") == "False" and c.get("reason") == "RouteCreated"
    return False


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
        for k, r in want.items():
            if k not in have or have[k].blackhole:
                uid = str(by_node[r.target_node]["metadata"].get("uid") or "")
                await routes.create_route(self.cluster_name, uid, r)
        for n in nodes:
            if pod_cidrs(n) and not route_created(n):
                await self._mark_route_created(n)

    async def _mark_route_created(self, node: Obj) -> None:
        now = now_rfc3339()
        cond = {"type": "NetworkUnavailable", "status": "False", "reason": "RouteCreated",
                "message": "RouteController created a route", "lastTransitionTime": now, "lastHeartbeatTime": now}
        conditions = [c for c in (node.get("status") or {}).get("conditions") or []
                      if c.get("type") != "NetworkUnavailable"] + [cond]
        meta = node["metadata"]
        await self.client.patch("v1", "nodes", meta["name"], {
            "metadata": {"resourceVersion": meta.get("resourceVersion")}, "status": {"conditions": conditions}},
            subresource="status")
