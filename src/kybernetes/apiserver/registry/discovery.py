"""Strategies of discovery.k8s.io: EndpointSlices.

Each class mirrors one kind's ``pkg/registry/<group>/<kind>/strategy.go`` together with its
``pkg/apis/<group>/validation`` rules and ``v1`` defaults; field paths and messages are
Kubernetes' own, because clients print them verbatim.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from kybernetes.api import validation as v
from kybernetes.api.validation import FieldError, Path
from kybernetes.api.validation.fields import PROTOCOLS, as_dict, as_list, names_msgs
from kybernetes.apiserver.registry.strategy import Obj, Strategy, semantic_equal

# --- discovery.k8s.io EndpointSlice ------------------------------------------------------------

ADDRESS_TYPES = ("FQDN", "IPv4", "IPv6")
MAX_ENDPOINTS = 1000
MAX_ADDRESSES = 100
MAX_PORTS = 20000
MAX_TOPOLOGY_LABELS = 16


def _endpoint_ip_msgs(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> list[str]:
    """``ValidateEndpointIP``: addresses no endpoint may have."""
    if ip.is_unspecified:
        return [f"may not be unspecified ({ip})"]
    if ip.is_loopback:
        return ["may not be in the loopback range (127.0.0.0/8, ::1/128)"]
    if ip.is_link_local:
        return ["may not be in the link-local range (169.254.0.0/16, fe80::/10)"]
    if ip in ipaddress.ip_network("224.0.0.0/24") or ip in ipaddress.ip_network("ff02::/16"):
        return ["may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"]
    return []


def _address_errors(address: Any, addr_type: Any, path: Path) -> list[FieldError]:
    if addr_type in ("IPv4", "IPv6"):
        want: type[ipaddress.IPv4Address] | type[ipaddress.IPv6Address] = (
            ipaddress.IPv4Address if addr_type == "IPv4" else ipaddress.IPv6Address)
        try:
            ip = want(address)
        except (ValueError, TypeError):
            return [v.invalid(path, address, f"must be a valid {addr_type} address")]
        return [v.invalid(path, address, m) for m in _endpoint_ip_msgs(ip)]
    if addr_type == "FQDN":
        name = str(address).rstrip(".")
        errs = names_msgs(name, path, v.is_dns1123_subdomain)
        if "." not in name:
            errs.append(v.invalid(path, address, "should be a domain with at least two segments separated by dots"))
        return errs
    return []


class EndpointSliceStrategy(Strategy):
    kind = "EndpointSlice"
    tracks_generation = True

    def generation_changed(self, new: Obj, old: Obj) -> bool:
        # Kubernetes: any change but metadata (there is no status), and a change of labels.
        new_labels = as_dict(new.get("metadata")).get("labels")
        old_labels = as_dict(old.get("metadata")).get("labels")
        return super().generation_changed(new, old) or not semantic_equal(new_labels, old_labels)

    def default(self, obj: Obj) -> None:
        for port in as_list(obj.get("ports")):
            if isinstance(port, dict):
                port.setdefault("name", "")
                port.setdefault("protocol", "TCP")

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        addr_type = obj.get("addressType")
        if not addr_type:
            errs.append(v.required(Path("addressType")))
        elif addr_type not in ADDRESS_TYPES:
            errs.append(v.not_supported(Path("addressType"), addr_type, ADDRESS_TYPES))
        errs += self._validate_endpoints(obj.get("endpoints"), addr_type)
        errs += self._validate_ports(obj.get("ports"))
        return errs

    @staticmethod
    def _validate_endpoints(endpoints: Any, addr_type: Any) -> list[FieldError]:
        path = Path("endpoints")
        eps = as_list(endpoints)
        if len(eps) > MAX_ENDPOINTS:
            return [v.too_many(path, len(eps), MAX_ENDPOINTS)]
        errs: list[FieldError] = []
        for i, ep in enumerate(eps):
            ep, ip = as_dict(ep), path.index(i)
            addresses = as_list(ep.get("addresses"))
            ap = ip.child("addresses")
            if not addresses:
                errs.append(v.required(ap, "must contain at least 1 address"))
            elif len(addresses) > MAX_ADDRESSES:
                errs.append(v.too_many(ap, len(addresses), MAX_ADDRESSES))
            for j, address in enumerate(addresses):
                errs += _address_errors(address, addr_type, ap.index(j))
            if ep.get("nodeName") is not None:
                errs += names_msgs(ep["nodeName"], ip.child("nodeName"), v.is_dns1123_subdomain)
            if ep.get("hostname") is not None:
                errs += names_msgs(ep["hostname"], ip.child("hostname"), v.is_dns1123_label)
            topology = ep.get("deprecatedTopology")
            if isinstance(topology, dict):
                tp = ip.child("deprecatedTopology")
                if len(topology) > MAX_TOPOLOGY_LABELS:
                    errs.append(v.too_many(tp, len(topology), MAX_TOPOLOGY_LABELS))
                errs += v.validate_labels(topology, tp)
        return errs

    @staticmethod
    def _validate_ports(ports: Any) -> list[FieldError]:
        path = Path("ports")
        items = as_list(ports)
        if len(items) > MAX_PORTS:
            return [v.too_many(path, len(items), MAX_PORTS)]
        errs: list[FieldError] = []
        seen: set[str] = set()
        for i, port in enumerate(items):
            port, pp = as_dict(port), path.index(i)
            name = str(port.get("name") or "")
            if name:
                errs += names_msgs(name, pp.child("name"), v.is_dns1123_label)
            if name in seen:
                errs.append(v.duplicate(pp.child("name"), name))
            seen.add(name)
            proto = port.get("protocol")
            if proto is None:
                errs.append(v.required(pp.child("protocol")))
            elif proto not in PROTOCOLS:
                errs.append(v.not_supported(pp.child("protocol"), proto, PROTOCOLS))
            if port.get("appProtocol") is not None:
                errs += names_msgs(port["appProtocol"], pp.child("appProtocol"), v.is_qualified_name)
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return self.validate(new) + v.immutable(new.get("addressType"), old.get("addressType"), Path("addressType"))


STRATEGIES: dict[tuple[str, str], Strategy] = {
    ("discovery.k8s.io", "EndpointSlice"): EndpointSliceStrategy(),
}
