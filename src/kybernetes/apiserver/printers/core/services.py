"""Printers of Service (external IPs, ports) and Endpoints.

Like every core printer, each row function mirrors Kubernetes' ``printX`` for the kind (see
:mod:`kybernetes.apiserver.printers.core`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kybernetes.apiserver.printers._common import (
    JSON,
    Cells,
    Printer,
    age,
    age_col,
    col,
    dig,
    dint,
    dlist,
    dmap,
    dstr,
    format_labels,
    name_col,
    name_of,
)


def _lb_ingress(ingress: list[Any]) -> list[str]:
    """The load balancer's IPs (or hostnames), de-duplicated and sorted, like a Go string set."""
    found: set[str] = set()
    for i in ingress:
        if isinstance(i, dict):
            if i.get("ip"):
                found.add(str(i["ip"]))
            elif i.get("hostname"):
                found.add(str(i["hostname"]))
    return sorted(found)


def service_external_ip(svc: JSON) -> str:
    spec = dmap(svc, "spec")
    type_ = dstr(spec, "type") or "ClusterIP"
    external = [str(x) for x in dlist(spec, "externalIPs")]
    if type_ in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else "<none>"
    if type_ == "LoadBalancer":
        # The server renders wide cells, so the list is never clipped here.
        lb = _lb_ingress(dlist(svc, "status", "loadBalancer", "ingress"))
        if external:
            return ",".join(lb + external)
        return ",".join(lb) if lb else "<pending>"
    if type_ == "ExternalName":
        return dstr(spec, "externalName")
    return "<unknown>"


def service_ports(svc: JSON) -> str:
    pieces = []
    for p in dlist(svc, "spec", "ports"):
        if not isinstance(p, dict):
            continue
        proto = p.get("protocol") or "TCP"
        node_port = dint(p, "nodePort")
        if node_port > 0:
            pieces.append(f"{dint(p, 'port')}:{node_port}/{proto}")
        else:
            pieces.append(f"{dint(p, 'port')}/{proto}")
    return ",".join(pieces) or "<none>"


def _service_cells(svc: JSON, now: datetime) -> Cells:
    spec = dmap(svc, "spec")
    ips = [str(x) for x in dlist(spec, "clusterIPs")]
    cluster_ip = (ips[0] if ips else "") or dstr(spec, "clusterIP") or "<none>"
    return [
        name_of(svc),
        dstr(spec, "type") or "ClusterIP",  # what defaulting would have filled in
        cluster_ip,
        service_external_ip(svc),
        service_ports(svc),
        age(svc, now),
        format_labels(dig(spec, "selector")),
    ]


SERVICE = Printer(
    (
        name_col(),
        col("Type", description="How the service is exposed."),
        col("Cluster-IP", description="The service's cluster IP address."),
        col("External-IP", description="External addresses the service is reachable at."),
        col("Port(s)", description="The ports the service exposes."),
        age_col(),
        col("Selector", description="The label selector of the pods behind the service.", priority=1),
    ),
    _service_cells,
)

def _join_host_port(host: str, port: int) -> str:
    """Go's ``net.JoinHostPort``: IPv6 addresses get brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def format_endpoints(ep: JSON) -> str:
    subsets = [s for s in dlist(ep, "subsets") if isinstance(s, dict)]
    if not subsets:
        return "<none>"
    shown: list[str] = []
    limit, more, count = 3, False, 0
    for ss in subsets:
        addresses = [a for a in dlist(ss, "addresses") if isinstance(a, dict)]
        ports = [p for p in dlist(ss, "ports") if isinstance(p, dict)]
        if not ports:
            # Headless services may have no ports: just list the addresses.
            count += len(addresses)
            for a in addresses:
                if len(shown) == limit:
                    more = True
                    break
                shown.append(str(a.get("ip", "")))
            continue
        for p in ports:
            count += len(addresses)
            for a in addresses:
                if len(shown) == limit:
                    more = True
                    break
                shown.append(_join_host_port(str(a.get("ip", "")), dint(p, "port")))
    text = ",".join(shown)
    return f"{text} + {count - limit} more..." if more else text


ENDPOINTS = Printer(
    (name_col(), col("Endpoints", description="The addresses and ports of the endpoints."), age_col()),
    lambda o, now: [name_of(o), format_endpoints(o), age(o, now)],
)
