"""A fake cloud provider for the controller tests: every answer is what the test set, every call recorded."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kybernetes.cloud.provider import (
    ClientBuilder,
    InstanceMetadata,
    InstanceNotFound,
    InstancesV2,
    LoadBalancer,
    NodeAddress,
    Route,
    Routes,
    Zones,
    default_load_balancer_name,
)

Obj = dict[str, Any]


@dataclass
class FakeCloud:
    exists: dict[str, bool] = field(default_factory=dict)
    """Node name -> whether its instance exists (default True)."""
    shutdown: dict[str, bool] = field(default_factory=dict)
    lbs: dict[str, str] = field(default_factory=dict)
    """Load balancer name -> its address."""
    route_table: dict[tuple[str, str], Route] = field(default_factory=dict)
    refuse_routes: set[str] = field(default_factory=set)
    """Node names whose routes ``create_route`` refuses (a provider's failure)."""
    calls: list[tuple[str, str]] = field(default_factory=list)
    next_ip: int = 1

    def provider_name(self) -> str:
        return "fake"

    async def initialize(self, clients: ClientBuilder) -> None:
        self.calls.append(("initialize", ""))

    def instances_v2(self) -> InstancesV2 | None:
        return self  # type: ignore[return-value]

    def load_balancer(self) -> LoadBalancer | None:
        return self  # type: ignore[return-value]

    def routes(self) -> Routes | None:
        return self  # type: ignore[return-value]

    def zones(self) -> Zones | None:
        return None

    def has_cluster_id(self) -> bool:
        return True

    # InstancesV2
    async def instance_exists(self, node: Obj) -> bool:
        return self.exists.get(node["metadata"]["name"], True)

    async def instance_shutdown(self, node: Obj) -> bool:
        return self.shutdown.get(node["metadata"]["name"], False)

    async def instance_metadata(self, node: Obj) -> InstanceMetadata:
        name = node["metadata"]["name"]
        if not self.exists.get(name, True):
            raise InstanceNotFound(name)
        return InstanceMetadata(provider_id=f"fake://{name}", instance_type="fake.large",
                                node_addresses=[NodeAddress("InternalIP", "192.0.2.10"),
                                                NodeAddress("Hostname", name)],
                                zone="zone-a", region="region-1")

    # LoadBalancer
    def get_load_balancer_name(self, cluster_name: str, service: Obj) -> str:
        return default_load_balancer_name(service)

    async def get_load_balancer(self, cluster_name: str, service: Obj) -> tuple[Obj | None, bool]:
        ip = self.lbs.get(self.get_load_balancer_name(cluster_name, service))
        return ({"ingress": [{"ip": ip}]}, True) if ip else (None, False)

    async def ensure_load_balancer(self, cluster_name: str, service: Obj, nodes: list[Obj]) -> Obj:
        name = self.get_load_balancer_name(cluster_name, service)
        self.calls.append(("ensure", service["metadata"]["name"]))
        if name not in self.lbs:
            self.lbs[name] = f"203.0.113.{self.next_ip}"
            self.next_ip += 1
        return {"ingress": [{"ip": self.lbs[name]}]}

    async def update_load_balancer(self, cluster_name: str, service: Obj, nodes: list[Obj]) -> None:
        self.calls.append(("update", service["metadata"]["name"]))

    async def ensure_load_balancer_deleted(self, cluster_name: str, service: Obj) -> None:
        self.calls.append(("delete", service["metadata"]["name"]))
        self.lbs.pop(self.get_load_balancer_name(cluster_name, service), None)

    # Routes
    async def list_routes(self, cluster_name: str) -> list[Route]:
        return list(self.route_table.values())

    async def create_route(self, cluster_name: str, name_hint: str, route: Route) -> None:
        if route.target_node in self.refuse_routes:
            raise RuntimeError(f"route quota exceeded for {route.target_node}")
        self.route_table[(route.target_node, route.destination_cidr)] = route

    async def delete_route(self, cluster_name: str, route: Route) -> None:
        self.route_table.pop((route.target_node, route.destination_cidr), None)
