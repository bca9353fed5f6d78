"""host-gw routes: every other node's pod CIDR through that node's address (flannel's host-gw).

The plan is pure (:func:`desired_routes`: Nodes in, ``{pod CIDR: gateway}`` out); applying it
(:func:`reconcile`) reads the routes that are ours with ``ip -j route show proto 107`` and changes
only the difference with ``ip route replace`` / ``ip route del``. Ours means the route protocol
:data:`ROUTE_PROTOCOL` (``datadir.POD_ROUTE_PROTOCOL``, 107; ``ip route`` prints ``proto 107``)
and the metric :data:`ROUTE_METRIC`: no other route is read, replaced or deleted, and a route of a directly
connected pod network (metric 0: the node's own bridge, or another node sharing this network
namespace) always wins over ours.

Which nodes get a route: those with a ``spec.podCIDR`` (IPv4) and an ``InternalIP`` (else the
first address of the kinds below) whose pod network is routable by its ``NetworkUnavailable``
condition (:func:`kybernetes.api.nodenetwork.pod_network_routable`: when the cloud-controller-manager
manages routes, only once its route controller created the node's route, ``RouteCreated``; a node
without the condition, where no CCM runs, always), except this node and any node whose address is one of this
machine's own (two nodes on one host share its routing table: the other's bridge is already
connected). A gateway that is not on a directly connected network is refused by the kernel
(``Nexthop has invalid gateway``): host-gw needs every node on one L2 segment, as flannel's does;
the failure is reported, the other routes are still programmed, and it is tried again on every
resync.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field

from kybernetes.api.nodenetwork import pod_network_routable
from kybernetes.api.obj import Obj
from kybernetes.datadir import POD_ROUTE_PROTOCOL

log = logging.getLogger(__name__)

ROUTE_PROTOCOL = POD_ROUTE_PROTOCOL
ROUTE_METRIC = 107
ADDRESS_TYPES = ("InternalIP", "ExternalIP")
IP = ["ip"]
"""The ``ip`` command (tests: ``["ip", "-n", NETNS]`` acts in another network namespace)."""


def node_address(node: Obj) -> str | None:
    """The node's IPv4 address other nodes route to: its InternalIP, else its ExternalIP."""
    addresses = (node.get("status") or {}).get("addresses") or []
    for kind in ADDRESS_TYPES:
        for a in addresses:
            if a.get("type") == kind:
                try:
                    ip = ipaddress.ip_address(a.get("address") or "")
                except ValueError:
                    continue
                if ip.version == 4:
                    return str(ip)
    return None


def pod_cidr(node: Obj) -> str | None:
    """The node's IPv4 pod CIDR (``spec.podCIDRs``' IPv4 entry, or ``spec.podCIDR``)."""
    spec = node.get("spec") or {}
    for cidr in [*(spec.get("podCIDRs") or []), spec.get("podCIDR")]:
        try:
            net = ipaddress.ip_network(cidr or "", strict=False)
        except ValueError:
            continue
        if net.version == 4:
            return str(net)
    return None


def desired_routes(nodes: Iterable[Obj], own_node: str, local_addresses: Iterable[str]) -> dict[str, str]:
    """``{pod CIDR: gateway}`` for every other node that has both (see the module doc)."""
    local = set(local_addresses)
    out: dict[str, str] = {}
    for node in sorted(nodes, key=lambda n: (n.get("metadata") or {}).get("name") or ""):
        if (node.get("metadata") or {}).get("name") == own_node or not pod_network_routable(node):
            continue
        cidr, gateway = pod_cidr(node), node_address(node)
        if cidr is None or gateway is None or gateway in local or ipaddress.ip_address(gateway).is_loopback:
            continue
        out.setdefault(cidr, gateway)
    return out


@dataclass
class RouteChanges:
    """What :func:`reconcile` did: routes replaced and deleted, and those the kernel refused."""

    replaced: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # pod CIDR -> the kernel's message


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*IP, *args], capture_output=True, text=True, timeout=10)


def current_routes() -> dict[str, str]:
    """Our routes now: ``{destination: gateway}`` (a route of ours without a gateway maps to "")."""
    res = _ip("-j", "-4", "route", "show", "proto", str(ROUTE_PROTOCOL))
    if res.returncode != 0:
        raise OSError(f"ip route show failed: {res.stderr.strip()}")
    routes = json.loads(res.stdout or "[]")
    return {str(r.get("dst")): str(r.get("gateway") or "") for r in routes
            if r.get("metric", 0) == ROUTE_METRIC}


def local_addresses() -> list[str]:
    """This network namespace's own IPv4 addresses."""
    res = _ip("-j", "-4", "addr", "show")
    if res.returncode != 0:
        return []
    return [str(a["local"]) for link in json.loads(res.stdout or "[]") for a in link.get("addr_info") or []
            if a.get("local")]


def _route_args(cidr: str) -> list[str]:
    return [cidr, "proto", str(ROUTE_PROTOCOL), "metric", str(ROUTE_METRIC)]


def reconcile(want: dict[str, str]) -> RouteChanges:
    """Make our routes ``want``: replace what is missing or different, delete the rest (and a
    route whose replacement the kernel refused: it would still lead to the node's old address)."""
    have = current_routes()
    changes = RouteChanges()
    for cidr, gateway in sorted(want.items()):
        if have.get(cidr) == gateway:
            continue
        res = _ip("route", "replace", *_route_args(cidr), "via", gateway)
        if res.returncode == 0:
            changes.replaced.append(f"{cidr} via {gateway}")
        else:
            changes.failed[cidr] = f"via {gateway}: {res.stderr.strip()}"
    # A route that could not be replaced still points at the node's old address: it goes too.
    for cidr in sorted(set(have) - (set(want) - set(changes.failed))):
        res = _ip("route", "del", *_route_args(cidr))
        if res.returncode == 0:
            changes.deleted.append(cidr)
        else:
            changes.failed[cidr] = f"{changes.failed.get(cidr, '')} delete: {res.stderr.strip()}".strip()
    return changes


def remove_all() -> None:
    """Delete every route of ours (on stop, and by ``kyb killall``)."""
    reconcile({})
