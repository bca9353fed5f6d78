"""The cloud provider contract: k8s.io/cloud-provider's ``cloud.go``, as Python protocols.

A provider is an :class:`Interface`: its name and, for each capability it has, an object
implementing that capability's protocol (``None`` where it has none: the controllers that need
it then do nothing, as Kubernetes' do when ``LoadBalancer()`` returns ``false``). Every method
may raise; a controller retries the object it was working on with back-off, so a method must be
safe to call again with the same arguments (idempotent) and must tolerate being interrupted at
any point (the process can be killed between any two steps).

Objects (Nodes, Services) are passed as the API's JSON dicts and must not be mutated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

# Re-exported: its home is api.nodenetwork, since kyb network's route planner reads it too.
from kybernetes.api.nodenetwork import UNINITIALIZED_TAINT as UNINITIALIZED_TAINT
from kybernetes.api.obj import Obj

SHUTDOWN_TAINT = "node.cloudprovider.kubernetes.io/shutdown"
"""The node lifecycle controller's taint (NoSchedule) on a NotReady node whose instance is shut down."""
LB_FINALIZER = "service.kubernetes.io/load-balancer-cleanup"
ZONE_LABEL = "topology.kubernetes.io/zone"
REGION_LABEL = "topology.kubernetes.io/region"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
EXCLUDE_LB_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"


class InstanceNotFound(Exception):
    """``cloudprovider.InstanceNotFound``: the provider knows of no instance for the node."""


@dataclass(frozen=True)
class NodeAddress:
    type: str
    """``InternalIP``, ``ExternalIP``, ``Hostname``, ``InternalDNS`` or ``ExternalDNS``."""
    address: str

    def to_obj(self) -> Obj:
        return {"type": self.type, "address": self.address}


@dataclass
class InstanceMetadata:
    """What the cloud node controller writes onto a Node (``cloudprovider.InstanceMetadata``)."""

    provider_id: str
    instance_type: str = ""
    node_addresses: list[NodeAddress] = field(default_factory=list)
    zone: str = ""
    region: str = ""
    additional_labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Zone:
    failure_domain: str = ""
    region: str = ""


@dataclass(frozen=True)
class Route:
    """A route to a node's pod CIDR (``cloudprovider.Route``)."""

    name: str
    target_node: str
    destination_cidr: str
    target_node_addresses: tuple[NodeAddress, ...] = ()
    blackhole: bool = False
    """The provider reports a route whose target is gone; the route controller deletes it."""


@runtime_checkable
class InstancesV2(Protocol):
    """Instances as the controllers see them; every method takes the Node."""

    async def instance_exists(self, node: Obj) -> bool:
        """Whether the node's instance exists; False means it is gone for good (the node lifecycle
        controller then deletes the Node)."""

    async def instance_shutdown(self, node: Obj) -> bool:
        """Whether the instance exists but is shut down (the Node gets :data:`SHUTDOWN_TAINT`)."""

    async def instance_metadata(self, node: Obj) -> InstanceMetadata:
        """The node's providerID, addresses, type, zone and region; raises :class:`InstanceNotFound`."""


@runtime_checkable
class LoadBalancer(Protocol):
    """Load balancers for Services of type LoadBalancer; ``cluster_name`` scopes their names."""

    async def get_load_balancer(self, cluster_name: str, service: Obj) -> tuple[Obj | None, bool]:
        """The load balancer's current status (a ``LoadBalancerStatus`` dict) and whether it exists."""

    def get_load_balancer_name(self, cluster_name: str, service: Obj) -> str:
        """A stable name for the service's load balancer; the same service always gets the same name."""

    async def ensure_load_balancer(self, cluster_name: str, service: Obj, nodes: list[Obj]) -> Obj:
        """Create or update the load balancer so that it forwards the service's ports to ``nodes``;
        return its status (``{"ingress": [...]}``). Called again after any failure: must not
        allocate a second address for a service that already has one."""

    async def update_load_balancer(self, cluster_name: str, service: Obj, nodes: list[Obj]) -> None:
        """Point an existing load balancer at a new set of nodes."""

    async def ensure_load_balancer_deleted(self, cluster_name: str, service: Obj) -> None:
        """Delete the load balancer and free what it holds; succeeds when there is none."""


@runtime_checkable
class Routes(Protocol):
    """The cluster's routes to each node's pod CIDR."""

    async def list_routes(self, cluster_name: str) -> list[Route]:
        """Every route this cluster's route controller created and that still exists."""

    async def create_route(self, cluster_name: str, name_hint: str, route: Route) -> None:
        """Create ``route`` (idempotent); ``name_hint`` is the Node's uid, for providers that need names."""

    async def delete_route(self, cluster_name: str, route: Route) -> None:
        """Delete ``route`` (idempotent)."""


@runtime_checkable
class Zones(Protocol):
    async def get_zone(self) -> Zone:
        """The zone of the machine this process runs on."""

    async def get_zone_by_node_name(self, node_name: str) -> Zone:
        """The zone of a node."""

    async def get_zone_by_provider_id(self, provider_id: str) -> Zone:
        """The zone of an instance."""


class ClientBuilder(Protocol):
    """What :meth:`Interface.initialize` gets: API clients (``cloudprovider.ControllerClientBuilder``)."""

    def client(self) -> Any:
        """A :class:`kybernetes.client.rest.Client` with the cloud-controller-manager's identity."""


class Interface(Protocol):
    """A cloud provider (``cloudprovider.Interface``)."""

    def provider_name(self) -> str:
        """The name it is registered under (``--cloud-provider``)."""

    async def initialize(self, clients: ClientBuilder) -> None:
        """Called once per leadership term before any controller runs; may read the cluster (e.g.
        to recover state kept in API objects after a restart)."""

    def instances_v2(self) -> InstancesV2 | None: ...

    def load_balancer(self) -> LoadBalancer | None: ...

    def routes(self) -> Routes | None: ...

    def zones(self) -> Zones | None: ...

    def has_cluster_id(self) -> bool:
        """Whether the provider can tell this cluster's resources from others'."""


def default_load_balancer_name(service: Obj) -> str:
    """Kubernetes' ``DefaultLoadBalancerName``: ``a`` and the Service's uid without dashes, at most 32 characters."""
    uid = str((service.get("metadata") or {}).get("uid") or "").replace("-", "")
    return ("a" + uid)[:32]
