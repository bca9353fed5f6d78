"""The cluster's records: what Services and EndpointSlices publish, as the Kubernetes DNS spec says.

Pure functions from objects to records (no state, no wire format): :func:`service_records` is
everything one Service (with its EndpointSlices) puts into the cluster zone and the reverse zones.
The names follow the kubernetes/dns ``specification.md`` and, where it is silent, CoreDNS's
``kubernetes`` plugin:

- a Service with a ClusterIP: ``<svc>.<ns>.svc.<zone>`` A/AAAA per ClusterIP, its PTR, and SRV
  ``_<port>._<proto>.<svc>.<ns>.svc.<zone>`` per named port (target: the Service's name);
- a headless Service: one A/AAAA per ready endpoint address at the Service's name, SRV per named
  port and ready endpoint (target: the endpoint's name);
- for every Service's ready endpoints (CoreDNS answers them for ClusterIP Services too):
  ``<hostname>.<svc>.<ns>.svc.<zone>`` A/AAAA, where the hostname is the endpoint's ``hostname``
  field (a pod with ``hostname`` and ``subdomain``) or else its address with ``.``/``:`` made
  ``-`` (CoreDNS's system-assigned identifier), and the PTR of its address pointing there;
- SRV at the Service's own name for each of its ports (CoreDNS: a query without port and
  protocol matches them all);
- an ExternalName Service: a CNAME to ``spec.externalName``;
- ``kube-system/kube-dns``: its ClusterIPs are also ``ns.dns.<zone>``, the name the zone's NS
  and SOA records give for the server.

An endpoint is *ready* when its ``conditions.ready`` is true or unset, or the Service has
``publishNotReadyAddresses`` (or the older ``tolerate-unready-endpoints`` annotation).
All names are lowercase: DNS comparisons are case-insensitive.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any, NamedTuple

Obj = dict[str, Any]

A, NS, CNAME, SOA, PTR, TXT, AAAA, SRV = 1, 2, 5, 6, 12, 16, 28, 33

TOLERATE_UNREADY = "service.alpha.kubernetes.io/tolerate-unready-endpoints"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
DNS_SERVICE = ("kube-system", "kube-dns")
SCHEMA_VERSION = "1.0.1"
"""The version of the kubernetes/dns specification implemented (its ``dns-version`` TXT record)."""


class Record(NamedTuple):
    """One resource record: owner name (absolute, lowercase, trailing dot), type, rdata text.

    SRV rdata is ``"<port> <target>"``: priority and weight depend on how many records share the
    owner name and are filled in when the answer is rendered."""

    name: str
    rdtype: int
    rdata: str


def address_record(name: str, ip: str) -> Record:
    return Record(name, AAAA if ":" in ip else A, ip)


def reverse_name(ip: str) -> str:
    """``1.0.43.10.in-addr.arpa.`` for ``10.43.0.1`` (and nibbles under ``ip6.arpa.`` for IPv6)."""
    return ipaddress.ip_address(ip).reverse_pointer + "."


def endpoint_hostname(endpoint: Obj, ip: str) -> str:
    """The endpoint's name below its Service: its ``hostname``, else its address with dashes."""
    hostname = endpoint.get("hostname")
    if isinstance(hostname, str) and hostname:
        return hostname.lower()
    return ip.replace(".", "-").replace(":", "-").lower()


def _meta(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _valid_ip(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def publishes_not_ready(svc: Obj) -> bool:
    spec = svc.get("spec") or {}
    annotations = (svc.get("metadata") or {}).get("annotations") or {}
    return bool(spec.get("publishNotReadyAddresses")) or str(annotations.get(TOLERATE_UNREADY, "")).lower() == "true"


def ready_endpoints(svc: Obj, slices: Iterable[Obj]) -> list[tuple[str, str, list[Obj]]]:
    """(ip, hostname, slice ports) for each endpoint address the Service publishes."""
    not_ready_too = publishes_not_ready(svc)
    out: list[tuple[str, str, list[Obj]]] = []
    for sl in slices:
        if sl.get("addressType") not in ("IPv4", "IPv6"):
            continue  # FQDN slices have no address to publish
        ports = [p for p in sl.get("ports") or () if isinstance(p, dict)]
        for ep in sl.get("endpoints") or ():
            if not isinstance(ep, dict):
                continue
            ready = (ep.get("conditions") or {}).get("ready")
            if ready is False and not not_ready_too:
                continue
            for addr in ep.get("addresses") or ():
                ip = _valid_ip(addr)
                if ip is not None:
                    out.append((ip, endpoint_hostname(ep, ip), ports))
    return out


def _srv_owner(port: Obj, svc_name: str) -> str | None:
    name = port.get("name")
    if not isinstance(name, str) or not name:
        return None  # unnamed ports have no SRV record
    proto = str(port.get("protocol") or "TCP").lower()
    return f"_{name.lower()}._{proto}.{svc_name}"


def _port_number(port: Obj) -> int | None:
    number = port.get("port")
    return number if isinstance(number, int) and 0 < number < 65536 else None


def service_records(svc: Obj, slices: Iterable[Obj], zone: str) -> set[Record]:
    """Every record one Service and its EndpointSlices publish (``zone``: ``cluster.local.``)."""
    ns, name = _meta(svc)
    if not ns or not name:
        return set()
    spec = svc.get("spec") or {}
    fqdn = f"{name}.{ns}.svc.{zone}".lower()
    records: set[Record] = set()
    if spec.get("type") == "ExternalName":
        target = str(spec.get("externalName") or "").strip().rstrip(".").lower()
        if target:
            records.add(Record(fqdn, CNAME, target + "."))
        return records
    service_ports = [p for p in spec.get("ports") or () if isinstance(p, dict)]
    cluster_ips = [ip for ip in (_valid_ip(x) for x in spec.get("clusterIPs") or [spec.get("clusterIP")]) if ip]
    headless = spec.get("clusterIP") == "None"
    endpoints = ready_endpoints(svc, slices)
    for ip, host, slice_ports in endpoints:
        host_fqdn = f"{host}.{fqdn}"
        records.add(address_record(host_fqdn, ip))
        records.add(Record(reverse_name(ip), PTR, host_fqdn))
        if headless:
            records.add(address_record(fqdn, ip))
            for port in slice_ports:
                number = _port_number(port)
                if number is None:
                    continue
                records.add(Record(fqdn, SRV, f"{number} {host_fqdn}"))
                owner = _srv_owner(port, fqdn)
                if owner:
                    records.add(Record(owner, SRV, f"{number} {host_fqdn}"))
    if not headless:
        for ip in cluster_ips:
            records.add(address_record(fqdn, ip))
            records.add(Record(reverse_name(ip), PTR, fqdn))
            if (ns, name) == DNS_SERVICE:
                records.add(address_record(f"ns.dns.{zone}", ip))
        if cluster_ips:
            for port in service_ports:
                number = _port_number(port)
                if number is None:
                    continue
                records.add(Record(fqdn, SRV, f"{number} {fqdn}"))
                owner = _srv_owner(port, fqdn)
                if owner:
                    records.add(Record(owner, SRV, f"{number} {fqdn}"))
    return records


def zone_records(zone: str) -> set[Record]:
    """The records of the zone itself, whatever the cluster holds: NS and the schema version."""
    return {Record(zone, NS, f"ns.dns.{zone}"), Record(f"dns-version.{zone}", TXT, f'"{SCHEMA_VERSION}"')}
