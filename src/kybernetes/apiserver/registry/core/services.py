"""Services and Endpoints: their defaults and rules.

Allocating cluster IPs and node ports needs the store, so it is not here: the generic store runs
the allocation hook after :meth:`ServiceStrategy.default` and before :meth:`ServiceStrategy.validate`.
That is why validation checks a ``clusterIP`` only when one is present, and why the IP-family
fields are defaulted from what the spec already says (a headless Service without a selector is
dual-stack by request, every other Service single-stack IPv4, as on a single-stack cluster).

On update, Kubernetes carries the allocated values (cluster IPs, node ports, health-check port)
over from the old object when the client left them out, so ``kubectl replace`` of a manifest
without them works; :meth:`ServiceStrategy.prepare_for_update` does the same.
"""

from __future__ import annotations

import copy
from typing import Any

from kybernetes.api import validation as v
from kybernetes.api.validation import FieldError, Path
from kybernetes.api.validation.fields import (
    as_dict,
    as_list,
    is_ip,
    port_num_msgs,
    validate_enum,
    validate_port_num_or_name,
    validate_protocol,
)
from kybernetes.apiserver.registry.strategy import Obj, Strategy

SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
SESSION_AFFINITIES = ("ClientIP", "None")
TRAFFIC_POLICIES = ("Cluster", "Local")
IP_FAMILY_POLICIES = ("SingleStack", "PreferDualStack", "RequireDualStack")
IP_FAMILIES = ("IPv4", "IPv6")
DEFAULT_CLIENT_IP_TIMEOUT = 10800
_NEEDS_NODE_PORT = ("NodePort", "LoadBalancer")


def _type(spec: dict[str, Any]) -> str:
    return str(spec.get("type") or "ClusterIP")


def externally_accessible(spec: dict[str, Any]) -> bool:
    """Kubernetes' ``ExternallyAccessible``: NodePort, LoadBalancer, or ClusterIP with externalIPs."""
    svc_type = _type(spec)
    return svc_type in _NEEDS_NODE_PORT or (svc_type == "ClusterIP" and bool(as_list(spec.get("externalIPs"))))


def needs_health_check(spec: dict[str, Any]) -> bool:
    """Kubernetes' ``NeedsHealthCheck``: a LoadBalancer Service with ``externalTrafficPolicy: Local``."""
    return _type(spec) == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"


def default_service_spec(spec: dict[str, Any]) -> None:
    """``SetDefaults_Service`` plus the IP-family fields the REST layer fills in."""
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec["sessionAffinity"] == "ClientIP":
        client_ip = spec.setdefault("sessionAffinityConfig", {}).setdefault("clientIP", {})
        client_ip.setdefault("timeoutSeconds", DEFAULT_CLIENT_IP_TIMEOUT)
    for port in as_list(spec.get("ports")):
        if not isinstance(port, dict):
            continue
        if not port.get("protocol"):
            port["protocol"] = "TCP"
        if port.get("targetPort") in (None, 0, ""):
            port["targetPort"] = port.get("port")
    svc_type = _type(spec)
    if externally_accessible(spec) and not spec.get("externalTrafficPolicy"):
        spec["externalTrafficPolicy"] = "Cluster"
    if svc_type == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)
    if svc_type != "ExternalName":
        spec.setdefault("internalTrafficPolicy", "Cluster")
        _default_ip_families(spec)


def _default_ip_families(spec: dict[str, Any]) -> None:
    if spec.get("clusterIP") and not spec.get("clusterIPs"):
        spec["clusterIPs"] = [spec["clusterIP"]]
    if spec.get("clusterIP") == "None" and not spec.get("selector"):
        # Headless without a selector: endpoints are managed by hand and may be of any family.
        spec.setdefault("ipFamilyPolicy", "RequireDualStack")
        if not spec.get("ipFamilies"):
            spec["ipFamilies"] = ["IPv4", "IPv6"] if spec["ipFamilyPolicy"] != "SingleStack" else ["IPv4"]
        return
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    if not spec.get("ipFamilies"):
        spec["ipFamilies"] = ["IPv6" if ":" in str(spec.get("clusterIP") or "") else "IPv4"]


def validate_service_spec(spec: Any, path: Path) -> list[FieldError]:
    if not isinstance(spec, dict):
        return [v.required(path)]
    errs: list[FieldError] = []
    svc_type = spec.get("type")
    errs.extend(validate_enum(svc_type, path.child("type"), SERVICE_TYPES))
    svc_type = _type(spec)
    cluster_ip = spec.get("clusterIP")
    if svc_type == "ExternalName":
        errs.extend(_validate_external_name(spec, path))
    elif not as_list(spec.get("ports")) and cluster_ip != "None":
        errs.append(v.required(path.child("ports")))
    errs.extend(_validate_ports(spec, path.child("ports"), svc_type))
    errs.extend(_validate_cluster_ips(spec, path, svc_type))
    errs.extend(validate_enum(spec.get("sessionAffinity"), path.child("sessionAffinity"), SESSION_AFFINITIES,
                              required=False))
    timeout = as_dict(as_dict(spec.get("sessionAffinityConfig")).get("clientIP")).get("timeoutSeconds")
    if timeout is not None and (not isinstance(timeout, int) or not 0 < timeout <= 86400):
        errs.append(v.invalid(path.child("sessionAffinityConfig", "clientIP", "timeoutSeconds"), timeout,
                              "must be greater than 0 and less than 86400"))
    errs.extend(_validate_traffic_policies(spec, path, svc_type))
    errs.extend(v.validate_labels(spec.get("selector"), path.child("selector")))
    for i, ip in enumerate(as_list(spec.get("externalIPs"))):
        if not is_ip(ip):
            errs.append(v.invalid(path.child("externalIPs").index(i), ip, "must be a valid IP address"))
    return errs


def _validate_external_name(spec: dict[str, Any], path: Path) -> list[FieldError]:
    name = spec.get("externalName")
    if not name:
        return [v.required(path.child("externalName"))]
    if not isinstance(name, str):
        return [v.type_invalid(path.child("externalName"), name, "must be a string")]
    return [v.invalid(path.child("externalName"), name, m) for m in v.is_dns1123_subdomain(name.removesuffix("."))]


def _validate_port_basics(port: dict[str, Any], path: Path, names: set[str], count: int) -> list[FieldError]:
    """A Service or Endpoints port's name (required when there are several, unique: ``names`` is
    what the earlier ports used and gains this one), number and protocol."""
    errs: list[FieldError] = []
    name = port.get("name")
    if not name and count > 1:
        errs.append(v.required(path.child("name")))
    elif name:
        errs.extend(v.invalid(path.child("name"), name, m) for m in v.is_dns1123_label(str(name)))
        if name in names:
            errs.append(v.duplicate(path.child("name"), name))
        names.add(name)
    errs.extend(v.invalid(path.child("port"), port.get("port"), m) for m in port_num_msgs(port.get("port")))
    errs.extend(validate_protocol(port.get("protocol"), path.child("protocol")))
    return errs


def _validate_ports(spec: dict[str, Any], path: Path, svc_type: str) -> list[FieldError]:
    ports = as_list(spec.get("ports"))
    errs: list[FieldError] = []
    names: set[str] = set()
    seen: set[tuple[Any, Any]] = set()
    for i, port in enumerate(ports):
        p = path.index(i)
        if not isinstance(port, dict):
            errs.append(v.type_invalid(p, port, "must be an object"))
            continue
        errs.extend(_validate_port_basics(port, p, names, len(ports)))
        key = (port.get("port"), port.get("protocol"))
        if key in seen:
            errs.append(v.duplicate(p, {"port": key[0], "protocol": key[1]}))
        seen.add(key)
        if port.get("targetPort") is not None:
            errs.extend(validate_port_num_or_name(port["targetPort"], p.child("targetPort")))
        node_port = port.get("nodePort")
        if node_port:
            if svc_type not in _NEEDS_NODE_PORT:
                errs.append(v.forbidden(p.child("nodePort"), f"may not be used when `type` is '{svc_type}'"))
            else:
                errs.extend(v.invalid(p.child("nodePort"), node_port, m) for m in port_num_msgs(node_port))
    return errs


def _validate_cluster_ips(spec: dict[str, Any], path: Path, svc_type: str) -> list[FieldError]:
    cluster_ip = spec.get("clusterIP")
    cluster_ips = as_list(spec.get("clusterIPs"))
    errs: list[FieldError] = []
    if svc_type == "ExternalName":
        if cluster_ip or cluster_ips:
            errs.append(v.forbidden(path.child("clusterIPs"), "may not be set for ExternalName services"))
        return errs
    if cluster_ip and cluster_ips and cluster_ips[0] != cluster_ip:
        errs.append(v.invalid(path.child("clusterIPs"), cluster_ips,
                              "first value must match `clusterIP`"))
    for i, ip in enumerate(cluster_ips or ([cluster_ip] if cluster_ip else [])):
        p = path.child("clusterIPs").index(i)
        if ip == "None":
            if i > 0 or len(cluster_ips) > 1:
                errs.append(v.invalid(p, ip, "must not be 'None' when more than one value is specified"))
            elif svc_type in _NEEDS_NODE_PORT:
                errs.append(v.invalid(p, ip, f"may not be set to 'None' for {svc_type} services"))
        elif not is_ip(ip):
            errs.append(v.invalid(p, ip, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"))
    errs.extend(validate_enum(spec.get("ipFamilyPolicy"), path.child("ipFamilyPolicy"), IP_FAMILY_POLICIES,
                              required=False))
    families = as_list(spec.get("ipFamilies"))
    for i, family in enumerate(families):
        errs.extend(validate_enum(family, path.child("ipFamilies").index(i), IP_FAMILIES))
    if len(set(map(str, families))) != len(families):
        errs.append(v.invalid(path.child("ipFamilies"), families, "must not contain duplicate values"))
    return errs


def _validate_traffic_policies(spec: dict[str, Any], path: Path, svc_type: str) -> list[FieldError]:
    """``validateServiceExternalTrafficPolicy`` and the internal policy's enum."""
    errs: list[FieldError] = []
    ext = spec.get("externalTrafficPolicy")
    if not externally_accessible(spec):
        if ext:
            errs.append(v.invalid(path.child("externalTrafficPolicy"), ext,
                                  "may only be set for externally-accessible services"))
    else:
        errs.extend(validate_enum(ext, path.child("externalTrafficPolicy"), TRAFFIC_POLICIES))
    errs.extend(validate_enum(spec.get("internalTrafficPolicy"), path.child("internalTrafficPolicy"),
                              TRAFFIC_POLICIES, required=False))
    health = spec.get("healthCheckNodePort")
    hc_path = path.child("healthCheckNodePort")
    if not needs_health_check(spec):
        if health:
            errs.append(v.invalid(hc_path, health,
                                  "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"))
    elif not health:
        errs.append(v.required(hc_path))
    else:
        errs.extend(v.invalid(hc_path, health, m) for m in port_num_msgs(health))
    return errs


def validate_service_update(new: dict[str, Any], old: dict[str, Any], path: Path) -> list[FieldError]:
    """Allocated cluster IPs never change, except when switching to or from ExternalName."""
    if "ExternalName" in (_type(new), _type(old)):
        return []
    old_ips = as_list(old.get("clusterIPs")) or ([old["clusterIP"]] if old.get("clusterIP") else [])
    new_ips = as_list(new.get("clusterIPs")) or ([new["clusterIP"]] if new.get("clusterIP") else [])
    errs: list[FieldError] = []
    for i, old_ip in enumerate(old_ips):
        if i < len(new_ips) and new_ips[i] != old_ip:
            errs.append(v.invalid(path.child("clusterIPs").index(i), new_ips, "may not change once set"))
        elif i == 0 and not new_ips:
            errs.append(v.invalid(path.child("clusterIPs").index(0), new_ips, "primary clusterIP can not be unset"))
    if needs_health_check(old) and needs_health_check(new) \
            and new.get("healthCheckNodePort") != old.get("healthCheckNodePort"):
        errs.append(v.forbidden(path.child("healthCheckNodePort"), "field is immutable"))
    old_families, new_families = as_list(old.get("ipFamilies")), as_list(new.get("ipFamilies"))
    if old_families and new_families and old_families[0] != new_families[0]:
        errs.append(v.invalid(path.child("ipFamilies").index(0), new_families[0], "may not change once set"))
    return errs


def _carry_allocations(new: dict[str, Any], old: dict[str, Any]) -> None:
    """Copy allocated values the client left out (``patchAllocatedValues`` in Kubernetes), and drop
    an unchanged ``externalTrafficPolicy`` a Service no longer accessible from outside cannot keep
    (part of ``dropTypeDependentFields``; the health-check port is the allocator's)."""
    if externally_accessible(old) and not externally_accessible(new) \
            and new.get("externalTrafficPolicy") == old.get("externalTrafficPolicy"):
        new.pop("externalTrafficPolicy", None)
    new_type, old_type = _type(new), _type(old)
    if "ExternalName" in (new_type, old_type):
        return
    if not new.get("clusterIP") and old.get("clusterIP"):
        new["clusterIP"] = old["clusterIP"]
    if not new.get("clusterIPs") and old.get("clusterIPs") and new.get("clusterIP") == old.get("clusterIP"):
        new["clusterIPs"] = copy.deepcopy(old["clusterIPs"])
    for field in ("ipFamilies", "ipFamilyPolicy"):
        if field not in new and field in old:
            new[field] = copy.deepcopy(old[field])
    if new_type in _NEEDS_NODE_PORT and old_type in _NEEDS_NODE_PORT:
        old_ports = {(p.get("port"), p.get("protocol") or "TCP"): p.get("nodePort")
                     for p in as_list(old.get("ports")) if isinstance(p, dict) and p.get("nodePort")}
        for port in as_list(new.get("ports")):
            if isinstance(port, dict) and not port.get("nodePort"):
                node_port = old_ports.get((port.get("port"), port.get("protocol") or "TCP"))
                if node_port:
                    port["nodePort"] = node_port
        if not new.get("healthCheckNodePort") and old.get("healthCheckNodePort") \
                and new.get("externalTrafficPolicy", old.get("externalTrafficPolicy")) == "Local":
            new["healthCheckNodePort"] = old["healthCheckNodePort"]


class ServiceStrategy(Strategy):
    kind = "Service"
    has_status = True
    tracks_generation = False
    name_validator = staticmethod(v.is_dns1035_label)  # type: ignore[assignment]  # mypy misreads staticmethod in a ClassVar

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"loadBalancer": {}}

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_update(new, old)
        new_spec, old_spec = new.get("spec"), old.get("spec")
        if isinstance(new_spec, dict) and isinstance(old_spec, dict):
            _carry_allocations(new_spec, old_spec)

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if isinstance(spec, dict):
            default_service_spec(spec)
        if "status" not in obj:
            obj["status"] = {"loadBalancer": {}}

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate_service_spec(obj.get("spec"), Path("spec"))

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs = self.validate(new)
        errs.extend(validate_service_update(as_dict(new.get("spec")), as_dict(old.get("spec")), Path("spec")))
        return errs

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        path = Path("status", "loadBalancer", "ingress")
        for i, ingress in enumerate(as_list(as_dict(as_dict(new.get("status")).get("loadBalancer")).get("ingress"))):
            ip = as_dict(ingress).get("ip")
            if ip and not is_ip(ip):
                errs.append(v.invalid(path.index(i).child("ip"), ip, "must be a valid IP address"))
        return errs


# --- Endpoints -------------------------------------------------------------------------------


def _validate_endpoint_address(addr: Any, path: Path) -> list[FieldError]:
    addr = as_dict(addr)
    errs: list[FieldError] = []
    ip = addr.get("ip")
    if not ip:
        errs.append(v.required(path.child("ip")))
    elif not is_ip(ip):
        errs.append(v.invalid(path.child("ip"), ip, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"))
    if addr.get("hostname"):
        errs.extend(v.invalid(path.child("hostname"), addr["hostname"], m)
                    for m in v.is_dns1123_label(str(addr["hostname"])))
    if addr.get("nodeName"):
        errs.extend(v.invalid(path.child("nodeName"), addr["nodeName"], m)
                    for m in v.is_dns1123_subdomain(str(addr["nodeName"])))
    return errs


def _validate_endpoint_ports(ports: list[Any], path: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    names: set[str] = set()
    for i, port in enumerate(ports):
        errs.extend(_validate_port_basics(as_dict(port), path.index(i), names, len(ports)))
    return errs


class EndpointsStrategy(Strategy):
    kind = "Endpoints"
    tracks_generation = False
    allow_create_on_update = True

    def default(self, obj: Obj) -> None:
        for subset in as_list(obj.get("subsets")):
            for port in as_list(as_dict(subset).get("ports")):
                if isinstance(port, dict) and not port.get("protocol"):
                    port["protocol"] = "TCP"

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        for i, subset in enumerate(as_list(obj.get("subsets"))):
            p = Path("subsets").index(i)
            subset = as_dict(subset)
            for field in ("addresses", "notReadyAddresses"):
                for j, addr in enumerate(as_list(subset.get(field))):
                    errs.extend(_validate_endpoint_address(addr, p.child(field).index(j)))
            errs.extend(_validate_endpoint_ports(as_list(subset.get("ports")), p.child("ports")))
        return errs
