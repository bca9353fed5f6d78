"""Services + EndpointSlices -> :class:`ServicePort`: what the data plane needs of each Service port.

One :class:`ServicePort` per (Service, port, protocol) with IPv4 ClusterIPs inside the service
range. Its endpoints are categorized as kube-proxy's ``CategorizeEndpoints`` does (without
topology hints, which we do not implement):

- ``endpoints``: the ones "Cluster" traffic policy uses: the ready endpoints; if none is ready
  anywhere, the serving-and-terminating ones;
- ``local_endpoints``: the ones "Local" traffic policy uses: ready endpoints on this node
  (EndpointSlice ``nodeName`` equal to the proxy's node name); if none, the serving-and-terminating
  ones on this node.

A Service "has endpoints" when ``endpoints`` is not empty. Traffic policies follow kube-proxy's
``BaseServicePortInfo``: ``externalTrafficPolicy: Local`` applies to NodePort, LoadBalancer and
externalIPs traffic of externally accessible Services (NodePort, LoadBalancer, and ClusterIP with
externalIPs); ``internalTrafficPolicy: Local`` to ClusterIP traffic. ``healthCheckNodePort`` is taken for LoadBalancer Services with
``externalTrafficPolicy: Local``, the only ones the API server gives one.

LoadBalancer addresses are the ``status.loadBalancer.ingress[].ip`` a cloud controller wrote, except
those with ``ipMode: Proxy`` (kube-proxy skips them: that load balancer sends traffic to the
nodes itself, so pods must reach it rather than be short-circuited); ``loadBalancerSourceRanges``
restrict who may reach those addresses (never the NodePorts, as in kube-proxy).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from kybernetes.api.obj import Obj

log = logging.getLogger(__name__)

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
DEFAULT_AFFINITY_TIMEOUT = 10800
PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}


@dataclass(frozen=True, order=True)
class Endpoint:
    ip: str
    port: int


@dataclass
class ServicePort:
    """One (Service, port) as the data plane sees it."""

    namespace: str
    name: str
    port_name: str
    protocol: str  # nft spelling: tcp, udp, sctp
    port: int
    cluster_ips: list[str] = field(default_factory=list)
    node_port: int = 0
    endpoints: list[Endpoint] = field(default_factory=list)  # for "Cluster" traffic policy
    affinity_timeout: int = 0  # seconds; 0 = no session affinity
    external_ips: list[str] = field(default_factory=list)
    local_endpoints: list[Endpoint] = field(default_factory=list)  # for "Local" traffic policy
    external_local: bool = False  # externalTrafficPolicy: Local (NodePort, LoadBalancer, externalIPs)
    internal_local: bool = False  # internalTrafficPolicy: Local (ClusterIP)
    health_check_node_port: int = 0
    local_ready: int = 0  # distinct ready local endpoint addresses (the health check's count)
    # status.loadBalancer.ingress[].ip, but not those with ipMode Proxy (the load balancer proxies
    # to the nodes, so its address must not be short-circuited here), as kube-proxy's LoadBalancerVIPs
    load_balancer_ips: list[str] = field(default_factory=list)
    source_ranges: list[str] = field(default_factory=list)  # spec.loadBalancerSourceRanges (IPv4 CIDRs)

    @property
    def id(self) -> str:
        return f"{self.namespace}/{self.name}/{self.protocol}/{self.port_name or self.port}"

    @property
    def externally_accessible(self) -> bool:
        return bool(self.node_port or self.external_ips or self.load_balancer_ips)

    @property
    def uses_cluster_endpoints(self) -> bool:
        """Whether some traffic uses "Cluster" policy (external "Local" still short-circuits pods to it)."""
        return not self.internal_local or self.externally_accessible

    @property
    def uses_local_endpoints(self) -> bool:
        return self.internal_local or (self.external_local and self.externally_accessible)


# ---- from API objects to ServicePorts ------------------------------------------------------------


def _endpoint_usable(ep: Obj) -> tuple[bool, bool]:
    """(ready, serving-and-terminating) per the EndpointSlice API: an unset ``ready`` means ready,
    an unset ``serving`` means the same as ``ready``."""
    conds = ep.get("conditions") or {}
    ready = conds.get("ready") is not False
    serving = conds.get("serving")
    serving = ready if serving is None else bool(serving)
    terminating = conds.get("terminating") is True
    return ready, serving and terminating


def _ipv4_cluster_ips(spec: Obj, cidr: ipaddress.IPv4Network | ipaddress.IPv6Network, what: str) -> list[str]:
    ips: list[str] = []
    for ip in spec.get("clusterIPs") or [spec.get("clusterIP")]:
        try:
            addr = ipaddress.ip_address(ip or "")
        except ValueError:
            continue  # None, "None" (headless), ""
        if addr.version == 4 and addr in cidr:
            ips.append(str(addr))
        else:
            log.debug("service %s: ClusterIP %s outside %s, ignored", what, ip, cidr)
    return ips


def _ipv4s(values: Iterable[object]) -> list[str]:
    out: list[str] = []
    for v in values:
        try:
            addr = ipaddress.ip_address(str(v))
        except ValueError:
            continue
        if addr.version == 4:
            out.append(str(addr))
    return sorted(set(out), key=ipaddress.IPv4Address)


def load_balancer_ips(svc: Obj) -> list[str]:
    """The Service's load-balancer addresses this node captures: IPv4 ``status.loadBalancer.ingress[].ip``
    whose ``ipMode`` is not ``Proxy`` (unset means ``VIP``), as kube-proxy's LoadBalancerVIPs."""
    ingress = (((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress")) or []
    return _ipv4s(i.get("ip") for i in ingress if isinstance(i, dict) and i.get("ip") and i.get("ipMode") != "Proxy")


def _ipv4_cidrs(values: Iterable[object]) -> list[str]:
    """IPv4 CIDRs (kube-proxy trims spaces; anything that does not parse is left out)."""
    out: set[ipaddress.IPv4Network] = set()
    for v in values:
        try:
            net = ipaddress.ip_network(str(v).strip(), strict=False)
        except ValueError:
            continue
        if net.version == 4:
            out.add(ipaddress.IPv4Network(net))
    return [str(n) for n in sorted(out)]


@dataclass
class _Categorized:
    ready: set[Endpoint] = field(default_factory=set)
    terminating: set[Endpoint] = field(default_factory=set)
    local_ready: set[Endpoint] = field(default_factory=set)
    local_terminating: set[Endpoint] = field(default_factory=set)


def _categorize(slices: list[Obj], sp: Obj, node_name: str) -> _Categorized:
    """The usable endpoints of Service port ``sp`` in its slices (matched by port name and protocol)."""
    port_name, protocol = sp.get("name") or "", sp.get("protocol") or "TCP"
    out = _Categorized()
    for sl in slices:
        target = next((int(p["port"]) for p in sl.get("ports") or []
                       if (p.get("name") or "") == port_name and p.get("port")
                       and (p.get("protocol") or "TCP") == protocol), None)
        if target is None:
            continue
        for ep in sl.get("endpoints") or []:
            is_ready, is_terminating = _endpoint_usable(ep)
            local = bool(node_name) and ep.get("nodeName") == node_name
            for addr in (ep.get("addresses") or [])[:1]:  # one address per endpoint (API rule)
                e = Endpoint(addr, target)
                if is_ready:
                    out.ready.add(e)
                    if local:
                        out.local_ready.add(e)
                elif is_terminating:
                    out.terminating.add(e)
                    if local:
                        out.local_terminating.add(e)
    return out


def build_service_ports(services: Iterable[Obj], slices: Iterable[Obj], service_cidr: str,
                        node_name: str = "") -> list[ServicePort]:
    """Join Services with their EndpointSlices (label ``kubernetes.io/service-name``), sorted by id.

    Only IPv4 ClusterIPs inside ``service_cidr`` are taken (anything else is not ours to capture);
    ExternalName and headless Services have no ClusterIP and so no rules. Slice ports are matched to
    Service ports by name and protocol, and give the endpoint's target port. ``node_name`` is this
    node's name: endpoints whose ``nodeName`` equals it are local.
    """
    cidr = ipaddress.ip_network(service_cidr)
    by_service: dict[tuple[str, str], list[Obj]] = {}
    for sl in slices:
        meta = sl.get("metadata") or {}
        svc_name = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if svc_name and (sl.get("addressType") or "IPv4") == "IPv4":
            by_service.setdefault((meta.get("namespace") or "", svc_name), []).append(sl)
    out: list[ServicePort] = []
    for svc in services:
        meta = svc.get("metadata") or {}
        spec = svc.get("spec") or {}
        ns, name = meta.get("namespace") or "", meta.get("name") or ""
        if spec.get("type") == "ExternalName":
            continue
        ips = _ipv4_cluster_ips(spec, cidr, f"{ns}/{name}")
        if not ips:
            continue
        out.extend(_service_ports(svc, ips, by_service.get((ns, name), []), node_name))
    out.sort(key=lambda p: p.id)
    return out


def _service_ports(svc: Obj, cluster_ips: list[str], slices: list[Obj], node_name: str) -> list[ServicePort]:
    meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
    affinity = 0
    if spec.get("sessionAffinity") == "ClientIP":
        cfg = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
        affinity = int(cfg.get("timeoutSeconds") or DEFAULT_AFFINITY_TIMEOUT)
    svc_type = spec.get("type") or "ClusterIP"
    with_nodeports = svc_type in ("NodePort", "LoadBalancer")
    external_ips = _ipv4s(spec.get("externalIPs") or [])
    lb_ips = load_balancer_ips(svc)
    # kube-proxy's ExternalPolicyLocal: externally accessible (ExternallyAccessible) and Local.
    accessible = with_nodeports or bool(lb_ips) or (svc_type == "ClusterIP" and bool(spec.get("externalIPs")))
    external_local = accessible and spec.get("externalTrafficPolicy") == "Local"
    health = int(spec.get("healthCheckNodePort") or 0) if external_local and svc_type == "LoadBalancer" else 0
    out: list[ServicePort] = []
    for sp in spec.get("ports") or []:
        proto = PROTOCOLS.get(sp.get("protocol") or "TCP")
        if proto is None:
            continue
        eps = _categorize(slices, sp, node_name)
        out.append(ServicePort(
            namespace=meta.get("namespace") or "", name=meta.get("name") or "", port_name=sp.get("name") or "",
            protocol=proto, port=int(sp.get("port") or 0), cluster_ips=cluster_ips,
            node_port=int(sp.get("nodePort") or 0) if with_nodeports else 0,
            endpoints=sorted(eps.ready or eps.terminating), affinity_timeout=affinity,
            external_ips=external_ips, local_endpoints=sorted(eps.local_ready or eps.local_terminating),
            local_ready=len({e.ip for e in eps.local_ready}),
            external_local=external_local, internal_local=spec.get("internalTrafficPolicy") == "Local",
            health_check_node_port=health, load_balancer_ips=lb_ips,
            source_ranges=_ipv4_cidrs(spec.get("loadBalancerSourceRanges") or []) if lb_ips else [],
        ))
    return out


def local_ready_endpoints(ports: Iterable[ServicePort]) -> dict[tuple[str, str], int]:
    """Per Service (namespace, name) with a health-check node port: its ready local endpoints (the
    most any of its ports has)."""
    out: dict[tuple[str, str], int] = {}
    for p in ports:
        if p.health_check_node_port:
            key = (p.namespace, p.name)
            out[key] = max(out.get(key, 0), p.local_ready)
    return out


def health_check_node_ports(ports: Iterable[ServicePort]) -> dict[tuple[str, str], int]:
    """Per Service (namespace, name): its health-check node port, for those that have one."""
    return {(p.namespace, p.name): p.health_check_node_port for p in ports if p.health_check_node_port}
