"""The ``local`` provider: no cloud API, only the machines that joined and what they answer.

Instances (``InstancesV2``): a node's instance is its machine, found at the node's InternalIP.
The provider asks the machine by a TCP connect to the kubelet's port (the Node's
``status.daemonEndpoints.kubeletEndpoint.Port``, 10250 if unset):

=======================================  =============  ==========
the connect                              exists         shut down
=======================================  =============  ==========
succeeds (the kubelet answers)           yes            no
is refused (the machine answers, no      yes            yes
kubelet: the agent is stopped)
times out or the host/network is         no (deleted)   --
unreachable (the machine is gone)
the Node has no InternalIP               yes (cannot    no
                                         judge: never
                                         delete)
the Node's providerID names another      yes (not ours: no
provider (``hollow://`` for hollow       never asked)
nodes, as kwok's carry ``kwok://``)
=======================================  =============  ==========

A node is asked only when its providerID is ``kyb://NODE`` or empty (a kubelet without
``--cloud-provider=external``: Kubernetes' lifecycle controller looks such a node up by name): a
made-up address (a hollow node's) is never dialled.

Metadata: providerID ``kyb://NODE``; the addresses the kubelet reported (the machine's own); zone,
region and instance type from the node's labels if it has them, else from the provider's options
(``--zone``, ``--region``, ``--instance-type``; instance type ``kyb`` by default).

Load balancers (k3s ServiceLB's idea): without a pool, a Service's ingress addresses are the
InternalIPs of the nodes it is given; with ``--lb-pool CIDR`` each Service gets one address of the
pool (``spec.loadBalancerIP`` if it asks for a free one). Which address a Service holds is kept
nowhere but in the Service's own ``status.loadBalancer``: :meth:`LocalCloud.initialize` rebuilds
the allocation from the Services, so a restart neither leaks nor hands out an address twice. The
data plane is kube-proxy's: it answers on ``status.loadBalancer.ingress`` addresses on every node.

Routes: a record of the cluster's route table, kept in memory (an empty table after a restart is
filled again by the route controller). The kernel routes are ``kyb network``'s, on each node: it
routes a node's podCIDR once the route controller has marked the node ``RouteCreated``
(``api/nodenetwork.py``); one writer per machine, see docs/architecture.md ("Cloud controller
manager", "Routes, one owner").
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
from typing import Any

from kybernetes.aiorun import wait_for
from kybernetes.api.obj import Obj
from kybernetes.cloud.provider import (
    ClientBuilder,
    InstanceMetadata,
    InstancesV2,
    LoadBalancer,
    NodeAddress,
    Route,
    Routes,
    Zone,
    Zones,
    default_load_balancer_name,
)
from kybernetes.cloud.registry import ProviderConfig

log = logging.getLogger(__name__)

PROVIDER_NAME = "local"
PROVIDER_ID_PREFIX = "kyb://"
DEFAULT_INSTANCE_TYPE = "kyb"
DEFAULT_KUBELET_PORT = 10250
PROBE_TIMEOUT = 3.0
_GONE_ERRNOS = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ETIMEDOUT}


class MachineGone(Exception):
    pass


def internal_ip(node: Obj) -> str:
    for a in (node.get("status") or {}).get("addresses") or []:
        if a.get("type") == "InternalIP" and a.get("address"):
            return str(a["address"])
    return ""


def kubelet_port(node: Obj) -> int:
    endpoint = ((node.get("status") or {}).get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}
    return int(endpoint.get("Port") or DEFAULT_KUBELET_PORT)


async def probe(address: str, port: int, timeout: float = PROBE_TIMEOUT) -> bool:
    """True if ``address:port`` accepts a connection, False if refused; :class:`MachineGone` if the
    machine does not answer at all (timeout, host or network unreachable)."""
    try:
        _, writer = await wait_for(asyncio.open_connection(address, port), timeout)
    except ConnectionRefusedError:
        return False
    except TimeoutError:
        raise MachineGone(f"{address}:{port}: no answer in {timeout:.0f}s") from None
    except OSError as e:
        if e.errno in _GONE_ERRNOS:
            raise MachineGone(f"{address}:{port}: {e.strerror}") from None
        raise
    writer.close()
    return True


class LocalInstances:
    def __init__(self, zone: str, region: str, instance_type: str, probe_timeout: float) -> None:
        self.zone, self.region, self.instance_type = zone, region, instance_type
        self.probe_timeout = probe_timeout

    async def _answers(self, node: Obj) -> bool | None:
        """True: kubelet answers; False: machine answers, kubelet not; None: not ours, or no address."""
        meta, spec = node.get("metadata") or {}, node.get("spec") or {}
        if spec.get("providerID") not in ("", None, PROVIDER_ID_PREFIX + str(meta.get("name", ""))):
            return None
        address = internal_ip(node)
        if not address:
            return None
        return await probe(address, kubelet_port(node), self.probe_timeout)

    async def instance_exists(self, node: Obj) -> bool:
        try:
            await self._answers(node)
        except MachineGone as e:
            log.info("node %s: machine gone (%s)", node["metadata"]["name"], e)
            return False
        return True

    async def instance_shutdown(self, node: Obj) -> bool:
        try:
            return await self._answers(node) is False
        except MachineGone:
            return False

    async def instance_metadata(self, node: Obj) -> InstanceMetadata:
        labels = (node.get("metadata") or {}).get("labels") or {}
        addresses = [NodeAddress(a["type"], a["address"])
                     for a in (node.get("status") or {}).get("addresses") or [] if a.get("address")]
        return InstanceMetadata(
            provider_id=PROVIDER_ID_PREFIX + node["metadata"]["name"],
            instance_type=labels.get("node.kubernetes.io/instance-type") or self.instance_type,
            node_addresses=addresses,
            zone=labels.get("topology.kubernetes.io/zone") or self.zone,
            region=labels.get("topology.kubernetes.io/region") or self.region)


class LocalLoadBalancer:
    def __init__(self, pool: str) -> None:
        self.pool = ipaddress.ip_network(pool) if pool else None
        self.assigned: dict[str, str] = {}
        """Load balancer name -> its pool address."""

    def in_pool(self, address: str) -> bool:
        try:
            return self.pool is not None and ipaddress.ip_address(address) in self.pool
        except ValueError:
            return False

    def recover(self, services: list[Obj]) -> None:
        """Take back the pool addresses the Services' statuses hold (after a restart)."""
        for svc in services:
            for ingress in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
                ip = ingress.get("ip") or ""
                if self.in_pool(ip) and ip not in self.assigned.values():
                    self.assigned[default_load_balancer_name(svc)] = ip

    def get_load_balancer_name(self, cluster_name: str, service: Obj) -> str:
        return default_load_balancer_name(service)

    async def get_load_balancer(self, cluster_name: str, service: Obj) -> tuple[Obj | None, bool]:
        ip = self.assigned.get(self.get_load_balancer_name(cluster_name, service))
        if ip:
            return {"ingress": [{"ip": ip}]}, True
        if self.pool is None:
            status = (service.get("status") or {}).get("loadBalancer") or {}
            return (status, True) if status.get("ingress") else (None, False)
        return None, False

    def _allocate(self, name: str, service: Obj) -> str:
        assert self.pool is not None
        taken = set(self.assigned.values())
        wanted = str((service.get("spec") or {}).get("loadBalancerIP") or "")
        candidates = [wanted] if wanted else []
        candidates += [str(ip) for ip in self.pool.hosts()]
        for ip in candidates:
            if self.in_pool(ip) and ip not in taken:
                self.assigned[name] = ip
                return ip
        raise RuntimeError(f"no free address in the load balancer pool {self.pool}")

    async def ensure_load_balancer(self, cluster_name: str, service: Obj, nodes: list[Obj]) -> Obj:
        if self.pool is None:
            ips = sorted({ip for ip in (internal_ip(n) for n in nodes) if ip})
            if not ips:
                raise RuntimeError("no node with an InternalIP to balance to")
            return {"ingress": [{"ip": ip} for ip in ips]}
        name = self.get_load_balancer_name(cluster_name, service)
        ip = self.assigned.get(name) or self._allocate(name, service)
        return {"ingress": [{"ip": ip}]}

    async def update_load_balancer(self, cluster_name: str, service: Obj, nodes: list[Obj]) -> None:
        # Nothing to reprogram: kube-proxy on every node answers on the ingress addresses. Without a
        # pool the addresses are the nodes', which the service controller rewrites by ensuring again.
        return None

    async def ensure_load_balancer_deleted(self, cluster_name: str, service: Obj) -> None:
        self.assigned.pop(self.get_load_balancer_name(cluster_name, service), None)


class LocalRoutes:
    def __init__(self) -> None:
        self.table: dict[tuple[str, str], Route] = {}

    async def list_routes(self, cluster_name: str) -> list[Route]:
        return list(self.table.values())

    async def create_route(self, cluster_name: str, name_hint: str, route: Route) -> None:
        self.table[(route.target_node, route.destination_cidr)] = route

    async def delete_route(self, cluster_name: str, route: Route) -> None:
        self.table.pop((route.target_node, route.destination_cidr), None)


class LocalZones:
    def __init__(self, zone: str, region: str) -> None:
        self._zone = Zone(zone, region)

    async def get_zone(self) -> Zone:
        return self._zone

    async def get_zone_by_node_name(self, node_name: str) -> Zone:
        return self._zone

    async def get_zone_by_provider_id(self, provider_id: str) -> Zone:
        return self._zone


class LocalCloud:
    """The ``local`` provider (see the module doc)."""

    def __init__(self, *, lb_pool: str = "", zone: str = "", region: str = "",
                 instance_type: str = DEFAULT_INSTANCE_TYPE, probe_timeout: float = PROBE_TIMEOUT) -> None:
        self._instances = LocalInstances(zone, region, instance_type or DEFAULT_INSTANCE_TYPE, probe_timeout)
        self._lb = LocalLoadBalancer(lb_pool)
        self._routes = LocalRoutes()
        self._zones = LocalZones(zone, region)

    @classmethod
    def from_config(cls, config: ProviderConfig) -> LocalCloud:
        o = config.options
        return cls(lb_pool=o.get("lb-pool", ""), zone=o.get("zone", ""), region=o.get("region", ""),
                   instance_type=o.get("instance-type", "") or DEFAULT_INSTANCE_TYPE)

    def provider_name(self) -> str:
        return PROVIDER_NAME

    async def initialize(self, clients: ClientBuilder) -> None:
        client: Any = clients.client()
        services, _ = await client.list_all("v1", "services")
        self._lb.assigned.clear()
        self._lb.recover([s for s in services if (s.get("spec") or {}).get("type") == "LoadBalancer"])

    def instances_v2(self) -> InstancesV2 | None:
        return self._instances

    def load_balancer(self) -> LoadBalancer | None:
        return self._lb

    def routes(self) -> Routes | None:
        return self._routes

    def zones(self) -> Zones | None:
        return self._zones

    def has_cluster_id(self) -> bool:
        return True
