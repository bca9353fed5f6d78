"""Strategies of the smaller built-in groups: coordination, discovery, scheduling, policy,
networking, rbac and autoscaling (storage.k8s.io is in ``storage.py``, node.k8s.io in ``node.py``,
Events in ``events.py``).

Each class mirrors one kind's ``pkg/registry/<group>/<kind>/strategy.go`` together with its
``pkg/apis/<group>/validation`` rules and ``v1`` defaults. The field paths and messages are
Kubernetes' own, because clients print them verbatim. Two facts decide the class attributes:

* Only some kinds keep ``metadata.generation`` (their strategy sets it): PodDisruptionBudget,
  Ingress, IngressClass, NetworkPolicy and EndpointSlice do; Leases, PriorityClasses,
  RBAC objects and HorizontalPodAutoscalers do not.
* Leases may be created by a PUT (``allow_create_on_update``), which is how leader election
  writes them.

``events.k8s.io/v1`` Events are core Events seen through another API: ``registry/events.py``.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from kybernetes.api import validation as v
from kybernetes.api.label_selectors import validate_label_selector_object
from kybernetes.api.validation import FieldError, Path
from kybernetes.apiserver.registry.apps import is_int, spec_of, validate_int_or_percent, validate_nonneg
from kybernetes.apiserver.registry.autoscaling import drop_round_trip_annotations
from kybernetes.apiserver.registry.pods import (
    as_dict,
    as_list,
    port_name_msgs,
    port_num_msgs,
    quantity_or_none,
)
from kybernetes.apiserver.registry.strategy import ClusterScoped, Obj, Strategy, semantic_equal

PROTOCOLS = ("SCTP", "TCP", "UDP")


def path_segment_name_msgs(name: str) -> list[str]:
    """``path.IsValidPathSegmentName``: the name rule of RBAC objects and object references."""
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in name]


def _names_msgs(value: Any, path: Path, check: Any) -> list[FieldError]:
    return [v.invalid(path, value, m) for m in check(str(value))]


def _omit_value_invalid(path: Path | str, detail: str) -> FieldError:
    """``field.Invalid`` with Kubernetes' empty-string value (it renders as ``""``)."""
    return v.invalid(path, "", detail)


# --- coordination.k8s.io Lease -----------------------------------------------------------------


class LeaseStrategy(Strategy):
    kind = "Lease"
    tracks_generation = False
    allow_create_on_update = True

    def validate(self, obj: Obj) -> list[FieldError]:
        spec, p = spec_of(obj), Path("spec")
        errs: list[FieldError] = []
        duration = spec.get("leaseDurationSeconds")
        if duration is not None and (not is_int(duration) or duration <= 0):
            errs.append(v.invalid(p.child("leaseDurationSeconds"), duration, "must be greater than 0"))
        transitions = spec.get("leaseTransitions")
        if transitions is not None and (not is_int(transitions) or transitions < 0):
            errs.append(v.invalid(p.child("leaseTransitions"), transitions, "must be greater than or equal to 0"))
        return errs


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
        errs = _names_msgs(name, path, v.is_dns1123_subdomain)
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
                errs += _names_msgs(ep["nodeName"], ip.child("nodeName"), v.is_dns1123_subdomain)
            if ep.get("hostname") is not None:
                errs += _names_msgs(ep["hostname"], ip.child("hostname"), v.is_dns1123_label)
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
                errs += _names_msgs(name, pp.child("name"), v.is_dns1123_label)
            if name in seen:
                errs.append(v.duplicate(pp.child("name"), name))
            seen.add(name)
            proto = port.get("protocol")
            if proto is None:
                errs.append(v.required(pp.child("protocol")))
            elif proto not in PROTOCOLS:
                errs.append(v.not_supported(pp.child("protocol"), proto, PROTOCOLS))
            if port.get("appProtocol") is not None:
                errs += _names_msgs(port["appProtocol"], pp.child("appProtocol"), v.is_qualified_name)
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return self.validate(new) + v.immutable(new.get("addressType"), old.get("addressType"), Path("addressType"))


# --- scheduling.k8s.io PriorityClass -----------------------------------------------------------

HIGHEST_USER_PRIORITY = 1_000_000_000
SYSTEM_PRIORITY_CLASSES = {
    "system-cluster-critical": 2 * HIGHEST_USER_PRIORITY,
    "system-node-critical": 2 * HIGHEST_USER_PRIORITY + 1000,
}
PREEMPTION_POLICIES = ("PreemptLowerPriority", "Never")


class PriorityClassStrategy(ClusterScoped):
    kind = "PriorityClass"
    tracks_generation = False

    def default(self, obj: Obj) -> None:
        obj.setdefault("value", 0)  # a plain int32 without omitempty
        if obj.get("preemptionPolicy") is None:
            obj["preemptionPolicy"] = "PreemptLowerPriority"

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        name = str(as_dict(obj.get("metadata")).get("name") or "")
        value, global_default = obj.get("value", 0), bool(obj.get("globalDefault"))
        if name.startswith("system-"):
            problem = ""
            if name not in SYSTEM_PRIORITY_CLASSES:
                problem = f"{name} is not a known system priority class"
            elif value != SYSTEM_PRIORITY_CLASSES[name]:
                problem = f"value of {name} PriorityClass must be {SYSTEM_PRIORITY_CLASSES[name]}"
            elif global_default:
                problem = f"globalDefault of {name} PriorityClass must be false"
            if problem:
                errs.append(v.forbidden(Path("metadata", "name"),
                                        "priority class names with 'system-' prefix are reserved for system use only. "
                                        "error: " + problem))
        elif is_int(value) and value > HIGHEST_USER_PRIORITY:
            errs.append(v.forbidden(Path("value"),
                                    f"maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}"))
        policy = obj.get("preemptionPolicy")
        if policy is not None:
            if policy == "":
                errs.append(v.required(Path("preemptionPolicy")))
            elif policy not in PREEMPTION_POLICIES:
                errs.append(v.not_supported(Path("preemptionPolicy"), policy, PREEMPTION_POLICIES))
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        if new.get("value", 0) != old.get("value", 0):
            errs.append(v.forbidden(Path("value"), "may not be changed in an update."))
        errs += v.immutable(new.get("preemptionPolicy"), old.get("preemptionPolicy"), Path("preemptionPolicy"))
        return errs


# --- policy PodDisruptionBudget ----------------------------------------------------------------

UNHEALTHY_POD_EVICTION_POLICIES = ("AlwaysAllow", "IfHealthyBudget")


class PodDisruptionBudgetStrategy(Strategy):
    kind = "PodDisruptionBudget"
    has_status = True

    def prepare_for_create(self, obj: Obj) -> None:
        # These four counters are not omitempty: a new PDB shows them as zero.
        obj["status"] = {"currentHealthy": 0, "desiredHealthy": 0, "disruptionsAllowed": 0, "expectedPods": 0}

    def validate(self, obj: Obj) -> list[FieldError]:
        spec, p = spec_of(obj), Path("spec")
        errs: list[FieldError] = []
        if spec.get("minAvailable") is not None and spec.get("maxUnavailable") is not None:
            errs.append(v.invalid(p, spec, "minAvailable and maxUnavailable cannot be both set"))
        for f in ("minAvailable", "maxUnavailable"):
            errs += validate_int_or_percent(spec.get(f), p.child(f))
        errs += validate_label_selector_object(spec.get("selector"), p.child("selector"))
        policy = spec.get("unhealthyPodEvictionPolicy")
        if policy is not None and policy not in UNHEALTHY_POD_EVICTION_POLICIES:
            errs.append(v.not_supported(p.child("unhealthyPodEvictionPolicy"), policy, UNHEALTHY_POD_EVICTION_POLICIES))
        return errs

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        status, p = as_dict(new.get("status")), Path("status")
        errs: list[FieldError] = []
        for f in ("disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods", "observedGeneration"):
            errs += validate_nonneg(status.get(f), p.child(f))
        for i, cond in enumerate(as_list(status.get("conditions"))):
            cond, cp = as_dict(cond), p.child("conditions").index(i)
            if not cond.get("type"):
                errs.append(v.required(cp.child("type")))
            if cond.get("status") not in ("True", "False", "Unknown"):
                errs.append(v.not_supported(cp.child("status"), cond.get("status"), ("False", "True", "Unknown")))
        return errs


# --- networking.k8s.io Ingress, IngressClass, NetworkPolicy ------------------------------------

PATH_TYPES = ("Exact", "ImplementationSpecific", "Prefix")
_INVALID_PATH_SEQUENCES = ("//", "/./", "/../", "%2f", "%2F")
_INVALID_PATH_SUFFIXES = ("/..", "/.")
INGRESS_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
_WILDCARD_DNS = re.compile(r"^\*\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _host_errors(host: str, path: Path) -> list[FieldError]:
    if "*" in host:
        if len(host) > 253 or not _WILDCARD_DNS.match(host):
            return [v.invalid(path, host,
                              "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, "
                              "which must consist of lower case alphanumeric characters, '-' or '.' and end with an "
                              "alphanumeric character (e.g. '*.example.com', regex used for validation is "
                              "'\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")]
        return []
    return _names_msgs(host, path, v.is_dns1123_subdomain)


def _validate_typed_ref(ref: dict[str, Any], path: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    if ref.get("apiGroup") is not None:
        errs += _names_msgs(ref["apiGroup"], path.child("apiGroup"), v.is_dns1123_subdomain)
    for f in ("kind", "name"):
        if not ref.get(f):
            errs.append(v.required(path.child(f), f"{f} is required"))
        else:
            errs += _names_msgs(ref[f], path.child(f), path_segment_name_msgs)
    return errs


def _validate_backend(backend: Any, path: Path) -> list[FieldError]:
    backend = as_dict(backend)
    resource, service = backend.get("resource"), backend.get("service")
    if resource is not None and service is not None:
        return [_omit_value_invalid(path, "cannot set both resource and service backends")]
    if resource is not None:
        return _validate_typed_ref(as_dict(resource), path.child("resource"))
    if service is None:
        return [_omit_value_invalid(path, "resource or service backend is required")]
    service = as_dict(service)
    errs: list[FieldError] = []
    name = service.get("name")
    if not name:
        errs.append(v.required(path.child("service", "name")))
    else:
        errs += _names_msgs(name, path.child("service", "name"), v.is_dns1035_label)
    port = as_dict(service.get("port"))
    port_name, port_number = port.get("name") or "", port.get("number") or 0
    if port_name and port_number:
        errs.append(_omit_value_invalid(path, "cannot set both port name & port number"))
    elif port_name:
        errs += [v.invalid(path.child("service", "port", "name"), port_name, m) for m in port_name_msgs(str(port_name))]
    elif port_number:
        errs += [v.invalid(path.child("service", "port", "number"), port_number, m) for m in port_num_msgs(port_number)]
    else:
        errs.append(v.required(path, "port name or number is required"))
    return errs


def _validate_http_path(item: Any, path: Path) -> list[FieldError]:
    item = as_dict(item)
    path_type = item.get("pathType")
    if path_type is None:
        return [v.required(path.child("pathType"), "pathType must be specified")]
    errs: list[FieldError] = []
    value = str(item.get("path") or "")
    pp = path.child("path")
    if path_type in ("Exact", "Prefix"):
        if not value.startswith("/"):
            errs.append(v.invalid(pp, value, "must be an absolute path"))
        if value:
            errs += [v.invalid(pp, value, f"must not contain '{s}'") for s in _INVALID_PATH_SEQUENCES if s in value]
            errs += [v.invalid(pp, value, f"cannot end with '{s}'") for s in _INVALID_PATH_SUFFIXES if value.endswith(s)]
    elif path_type == "ImplementationSpecific":
        if value and not value.startswith("/"):
            errs.append(v.invalid(pp, value, "must be an absolute path"))
    else:
        errs.append(v.not_supported(path.child("pathType"), path_type, PATH_TYPES))
    return errs + _validate_backend(item.get("backend"), path.child("backend"))


class IngressStrategy(Strategy):
    kind = "Ingress"
    has_status = True

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"loadBalancer": {}}

    def validate(self, obj: Obj) -> list[FieldError]:
        spec, p = spec_of(obj), Path("spec")
        errs: list[FieldError] = []
        rules = as_list(spec.get("rules"))
        if not rules and spec.get("defaultBackend") is None:
            errs.append(v.invalid(p, rules, "either `defaultBackend` or `rules` must be specified"))
        if spec.get("defaultBackend") is not None:
            errs += _validate_backend(spec["defaultBackend"], p.child("defaultBackend"))
        for i, rule in enumerate(rules):
            rule, rp = as_dict(rule), p.child("rules").index(i)
            host = str(rule.get("host") or "")
            if host:
                if _is_ip(host):
                    errs.append(v.invalid(rp.child("host"), host, "must be a DNS name, not an IP address"))
                errs += _host_errors(host, rp.child("host"))
            http = rule.get("http")
            if http is not None:
                paths = as_list(as_dict(http).get("paths"))
                hp = rp.child("http", "paths")
                if not paths:
                    errs.append(v.required(hp))
                for j, item in enumerate(paths):
                    errs += _validate_http_path(item, hp.index(j))
        for i, tls in enumerate(as_list(spec.get("tls"))):
            tls, tp = as_dict(tls), p.child("tls").index(i)
            for j, host in enumerate(as_list(tls.get("hosts"))):
                errs += _host_errors(str(host), tp.child("hosts").index(j))
            if tls.get("secretName"):
                errs += _names_msgs(tls["secretName"], tp.child("secretName"), v.is_dns1123_subdomain)
        class_name = spec.get("ingressClassName")
        if class_name is not None:
            errs += _names_msgs(class_name, p.child("ingressClassName"), v.is_dns1123_subdomain)
        annotation = as_dict(as_dict(obj.get("metadata")).get("annotations")).get(INGRESS_CLASS_ANNOTATION)
        if annotation is not None and class_name is not None and annotation != class_name:
            errs.append(v.invalid(Path("annotations").child(INGRESS_CLASS_ANNOTATION), annotation,
                                  "must match `ingressClassName` when both are specified"))
        return errs

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        lb_path = Path("status", "loadBalancer", "ingress")
        errs: list[FieldError] = []
        for i, ing in enumerate(as_list(as_dict(as_dict(new.get("status")).get("loadBalancer")).get("ingress"))):
            ing, ip = as_dict(ing), lb_path.index(i)
            if ing.get("ip") and not _is_ip(str(ing["ip"])):
                errs.append(v.invalid(ip.child("ip"), ing["ip"], "must be a valid IP address"))
            if ing.get("hostname"):
                errs += _names_msgs(ing["hostname"], ip.child("hostname"), v.is_dns1123_subdomain)
                if _is_ip(str(ing["hostname"])):
                    errs.append(v.invalid(ip.child("hostname"), ing["hostname"], "must be a DNS name, not an IP address"))
        return errs


_HTTP_PATH = re.compile(r"^[A-Za-z0-9/\-._~%!$&'()*+,;=:]+$")
INGRESS_CLASS_CONTROLLER_MAX = 250
PARAMETER_SCOPES = ("Cluster", "Namespace")


def domain_prefixed_path_errors(value: Any, path: Path) -> list[FieldError]:
    """``IsDomainPrefixedPath``: ``example.com/some/path``."""
    if not value:
        return [v.required(path)]
    host, _, rest = str(value).partition("/")
    if not host or not rest:
        return [v.invalid(path, value, 'must be a domain-prefixed path (such as "acme.io/foo")')]
    errs = _names_msgs(host, path, v.is_dns1123_subdomain)
    if not _HTTP_PATH.match(rest):
        errs.append(v.invalid(path, rest,
                              "Invalid path (regex used for validation is '[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+')"))
    return errs


class IngressClassStrategy(ClusterScoped):
    kind = "IngressClass"

    def default(self, obj: Obj) -> None:
        params = spec_of(obj).get("parameters")
        if isinstance(params, dict) and params.get("scope") is None:
            params["scope"] = "Cluster"

    def validate(self, obj: Obj) -> list[FieldError]:
        spec, p = spec_of(obj), Path("spec")
        controller = spec.get("controller")
        errs: list[FieldError] = []
        if isinstance(controller, str) and len(controller) > INGRESS_CLASS_CONTROLLER_MAX:
            errs.append(v.too_long(p.child("controller"), INGRESS_CLASS_CONTROLLER_MAX))
        errs += domain_prefixed_path_errors(controller, p.child("controller"))
        params = spec.get("parameters")
        if isinstance(params, dict):
            pp = p.child("parameters")
            errs += _validate_typed_ref(params, pp)
            scope = params.get("scope") or ""
            if scope not in PARAMETER_SCOPES:
                errs.append(v.not_supported(pp.child("scope"), scope, PARAMETER_SCOPES))
            ns = params.get("namespace")
            if scope == "Namespace":
                if ns is None:
                    errs.append(v.required(pp.child("namespace"), "`parameters.scope` is set to 'Namespace'"))
                else:
                    errs += _names_msgs(ns, pp.child("namespace"), v.is_dns1123_label)
            if scope == "Cluster" and ns is not None:
                errs.append(v.forbidden(pp.child("namespace"), "`parameters.scope` is set to 'Cluster'"))
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return v.immutable(spec_of(new).get("controller"), spec_of(old).get("controller"),
                           Path("spec", "controller")) + self.validate(new)


def _validate_np_port(port: dict[str, Any], path: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    proto = port.get("protocol")
    if proto is not None and proto not in ("TCP", "UDP", "SCTP"):
        errs.append(v.not_supported(path.child("protocol"), proto, ("TCP", "UDP", "SCTP")))
    number, end = port.get("port"), port.get("endPort")
    if number is None:
        if end is not None:
            errs.append(v.invalid(path.child("endPort"), end, "may not be specified when `port` is not specified"))
    elif is_int(number):
        errs += [v.invalid(path.child("port"), number, m) for m in port_num_msgs(number)]
        if end is not None:
            if is_int(end) and end < number:
                errs.append(v.invalid(path.child("endPort"), number, "must be greater than or equal to `port`"))
            errs += [v.invalid(path.child("endPort"), end, m) for m in port_num_msgs(end)]
    else:
        if end is not None:
            errs.append(v.invalid(path.child("endPort"), end, "may not be specified when `port` is non-numeric"))
        errs += [v.invalid(path.child("port"), number, m) for m in port_name_msgs(str(number))]
    return errs


_CIDR_MSG = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"


def _parse_cidr(value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    if not isinstance(value, str) or "/" not in value:
        return None
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None


def _validate_peer(peer: dict[str, Any], path: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    count = 0
    for f in ("podSelector", "namespaceSelector"):
        if peer.get(f) is not None:
            count += 1
            errs += validate_label_selector_object(peer[f], path.child(f))
    block = peer.get("ipBlock")
    if block is not None:
        count += 1
        block, bp = as_dict(block), path.child("ipBlock")
        cidr = block.get("cidr")
        if not cidr:
            errs.append(v.required(bp.child("cidr")))
        else:
            net = _parse_cidr(cidr)
            if net is None:
                errs.append(v.invalid(bp.child("cidr"), cidr, _CIDR_MSG))
            else:
                for i, exc in enumerate(as_list(block.get("except"))):
                    ep = bp.child("except").index(i)
                    exc_net = _parse_cidr(exc)
                    if exc_net is None:
                        errs.append(v.invalid(ep, exc, _CIDR_MSG))
                    elif exc_net.version != net.version or not exc_net.subnet_of(net) or exc_net == net:  # type: ignore[arg-type]
                        errs.append(v.invalid(ep, exc, "must be a strict subset of `cidr`"))
    if count == 0:
        errs.append(v.required(path, "must specify a peer"))
    elif count > 1 and block is not None:
        errs.append(v.forbidden(path, "may not specify both ipBlock and another peer"))
    return errs


class NetworkPolicyStrategy(Strategy):
    kind = "NetworkPolicy"

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            spec = obj["spec"] = {}
        if spec.get("podSelector") is None:
            spec["podSelector"] = {}  # a plain struct in Go: always present
        for direction in ("ingress", "egress"):
            for rule in as_list(spec.get(direction)):
                for port in as_list(as_dict(rule).get("ports")):
                    if isinstance(port, dict) and port.get("protocol") is None:
                        port["protocol"] = "TCP"
        if not spec.get("policyTypes"):
            spec["policyTypes"] = ["Ingress"] + (["Egress"] if spec.get("egress") else [])

    def validate(self, obj: Obj) -> list[FieldError]:
        spec, p = spec_of(obj), Path("spec")
        errs = validate_label_selector_object(spec.get("podSelector"), p.child("podSelector"))
        for direction, peers in (("ingress", "from"), ("egress", "to")):
            for i, rule in enumerate(as_list(spec.get(direction))):
                rule, rp = as_dict(rule), p.child(direction).index(i)
                for j, port in enumerate(as_list(rule.get("ports"))):
                    errs += _validate_np_port(as_dict(port), rp.child("ports").index(j))
                for j, peer in enumerate(as_list(rule.get(peers))):
                    errs += _validate_peer(as_dict(peer), rp.child(peers).index(j))
        types = as_list(spec.get("policyTypes"))
        if len(types) > 2:
            errs.append(v.invalid(p.child("policyTypes"), types, "may not specify more than two policyTypes"))
        else:
            for i, t in enumerate(types):
                if t not in ("Ingress", "Egress"):
                    errs.append(v.not_supported(p.child("policyTypes").index(i), t, ("Ingress", "Egress")))
        return errs


# --- rbac.authorization.k8s.io -----------------------------------------------------------------

RBAC_GROUP = "rbac.authorization.k8s.io"
SUBJECT_KINDS = ("ServiceAccount", "User", "Group")


def validate_policy_rule(rule: Any, path: Path, *, namespaced: bool) -> list[FieldError]:
    """``ValidatePolicyRule``: verbs, and either resources with API groups or non-resource URLs."""
    rule = as_dict(rule)
    errs: list[FieldError] = []
    if not as_list(rule.get("verbs")):
        errs.append(v.required(path.child("verbs"), "verbs must contain at least one value"))
    urls = as_list(rule.get("nonResourceURLs"))
    if urls:
        if namespaced:
            errs.append(v.invalid(path.child("nonResourceURLs"), urls, "namespaced rules cannot apply to non-resource URLs"))
        if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
            errs.append(v.invalid(path.child("nonResourceURLs"), urls,
                                  "rules cannot apply to both regular resources and non-resource URLs"))
        return errs
    if not as_list(rule.get("apiGroups")):
        errs.append(v.required(path.child("apiGroups"), "resource rules must supply at least one api group"))
    if not as_list(rule.get("resources")):
        errs.append(v.required(path.child("resources"), "resource rules must supply at least one resource"))
    return errs


class RoleStrategy(Strategy):
    kind = "Role"
    tracks_generation = False
    name_validator = staticmethod(path_segment_name_msgs)
    namespaced_rules = True

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        for i, rule in enumerate(as_list(obj.get("rules"))):
            errs += validate_policy_rule(rule, Path("rules").index(i), namespaced=self.namespaced_rules)
        return errs


class ClusterRoleStrategy(RoleStrategy):
    kind = "ClusterRole"
    namespaced_rules = False

    def validate(self, obj: Obj) -> list[FieldError]:
        errs = super().validate(obj)
        rule = obj.get("aggregationRule")
        if isinstance(rule, dict):
            sp = Path("aggregationRule", "clusterRoleSelectors")
            selectors = as_list(rule.get("clusterRoleSelectors"))
            if not selectors:
                errs.append(v.required(sp, "at least one clusterRoleSelector required if aggregationRule is non-nil"))
            for i, sel in enumerate(selectors):
                errs += validate_label_selector_object(sel, sp.index(i))
        return errs


def _default_subjects(obj: Obj) -> None:
    for subject in as_list(obj.get("subjects")):
        if isinstance(subject, dict) and not subject.get("apiGroup") and subject.get("kind") in ("User", "Group"):
            subject["apiGroup"] = RBAC_GROUP


class RoleBindingStrategy(Strategy):
    kind = "RoleBinding"
    tracks_generation = False
    name_validator = staticmethod(path_segment_name_msgs)
    role_kinds: tuple[str, ...] = ("Role", "ClusterRole")
    namespaced_subjects = True

    def default(self, obj: Obj) -> None:
        ref = obj.get("roleRef")
        if isinstance(ref, dict) and not ref.get("apiGroup"):
            ref["apiGroup"] = RBAC_GROUP
        _default_subjects(obj)

    def validate(self, obj: Obj) -> list[FieldError]:
        ref = as_dict(obj.get("roleRef"))
        rp = Path("roleRef")
        errs: list[FieldError] = []
        if ref.get("apiGroup") != RBAC_GROUP:
            errs.append(v.not_supported(rp.child("apiGroup"), ref.get("apiGroup", ""), (RBAC_GROUP,)))
        if ref.get("kind") not in self.role_kinds:
            errs.append(v.not_supported(rp.child("kind"), ref.get("kind", ""), self.role_kinds))
        name = ref.get("name")
        if not name:
            errs.append(v.required(rp.child("name")))
        else:
            errs += _names_msgs(name, rp.child("name"), path_segment_name_msgs)
        for i, subject in enumerate(as_list(obj.get("subjects"))):
            errs += self._validate_subject(as_dict(subject), Path("subjects").index(i))
        return errs

    def _validate_subject(self, subject: dict[str, Any], path: Path) -> list[FieldError]:
        errs: list[FieldError] = []
        name = subject.get("name")
        if not name:
            errs.append(v.required(path.child("name")))
        kind, group = subject.get("kind"), subject.get("apiGroup") or ""
        if kind == "ServiceAccount":
            if name:
                errs += _names_msgs(name, path.child("name"), v.is_dns1123_subdomain)
            if group:
                errs.append(v.not_supported(path.child("apiGroup"), group, ("",)))
            if not self.namespaced_subjects and not subject.get("namespace"):
                errs.append(v.required(path.child("namespace")))
        elif kind in ("User", "Group"):
            if group != RBAC_GROUP:
                errs.append(v.not_supported(path.child("apiGroup"), group, (RBAC_GROUP,)))
        else:
            errs.append(v.not_supported(path.child("kind"), kind or "", SUBJECT_KINDS))
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs = self.validate(new)
        if new.get("roleRef") != old.get("roleRef"):
            errs.append(v.invalid(Path("roleRef"), new.get("roleRef"), "cannot change roleRef"))
        return errs


class ClusterRoleBindingStrategy(RoleBindingStrategy):
    kind = "ClusterRoleBinding"
    role_kinds = ("ClusterRole",)
    namespaced_subjects = False


# --- autoscaling/v2 HorizontalPodAutoscaler ----------------------------------------------------

METRIC_SOURCE_TYPES = ("ContainerResource", "External", "Object", "Pods", "Resource")
_SOURCE_FIELD = {"ContainerResource": "containerResource", "External": "external", "Object": "object",
                 "Pods": "pods", "Resource": "resource"}
SELECT_POLICIES = ("Disabled", "Max", "Min")
SCALING_POLICY_TYPES = ("Percent", "Pods")
MAX_STABILIZATION_WINDOW = 3600
MAX_PERIOD_SECONDS = 1800
DEFAULT_CPU_UTILIZATION = 80


def _scale_up_rules() -> dict[str, Any]:
    return {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
        {"type": "Pods", "value": 4, "periodSeconds": 15},
        {"type": "Percent", "value": 100, "periodSeconds": 15},
    ]}


def _scale_down_rules() -> dict[str, Any]:
    # No stabilization window: the controller's --horizontal-pod-autoscaler-downscale-stabilization applies.
    return {"selectPolicy": "Max", "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}


def _merge_rules(given: Any, defaults: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(given, dict):
        return defaults
    for f in ("selectPolicy", "stabilizationWindowSeconds", "policies"):
        if given.get(f) is not None:
            defaults[f] = given[f]
    return defaults


def _validate_cross_version_ref(ref: Any, path: Path) -> list[FieldError]:
    ref = as_dict(ref)
    errs: list[FieldError] = []
    for f in ("kind", "name"):
        if not ref.get(f):
            errs.append(v.required(path.child(f)))
        else:
            errs += _names_msgs(ref[f], path.child(f), path_segment_name_msgs)
    return errs


def _validate_metric_target(target: dict[str, Any], path: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    kind = target.get("type")
    if not kind:
        errs.append(v.required(path.child("type"), "must specify a metric target type"))
    if kind not in ("Utilization", "Value", "AverageValue"):
        errs.append(v.invalid(path.child("type"), kind or "", "must be either Utilization, Value, or AverageValue"))
    for f in ("value", "averageValue"):
        if target.get(f) is not None:
            qty = quantity_or_none(target[f])
            if qty is None or qty <= 0:
                errs.append(v.invalid(path.child(f), target[f], "must be positive"))
    util = target.get("averageUtilization")
    if util is not None and (not is_int(util) or util < 1):
        errs.append(v.invalid(path.child("averageUtilization"), util, "must be greater than 0"))
    return errs


def _validate_metric_source(kind: str, src: dict[str, Any], path: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    target = as_dict(src.get("target"))
    tp = path.child("target")
    if kind in ("Resource", "ContainerResource"):
        if not src.get("name"):
            errs.append(v.required(path.child("name"), "must specify a resource name"))
        if kind == "ContainerResource" and not src.get("container"):
            errs.append(v.required(path.child("container"), "must specify a container"))
        errs += _validate_metric_target(target, tp)
        if target.get("averageUtilization") is None and target.get("averageValue") is None:
            errs.append(v.required(tp.child("averageUtilization"), "must set either a target raw value or a target utilization"))
        if target.get("averageUtilization") is not None and target.get("averageValue") is not None:
            errs.append(v.forbidden(tp.child("averageValue"), "may not set both a target raw value and a target utilization"))
        return errs
    metric = as_dict(src.get("metric"))
    if not metric.get("name"):
        errs.append(v.required(path.child("metric", "name"), "must specify a metric name"))
    if metric.get("selector") is not None:
        errs += validate_label_selector_object(metric["selector"], path.child("metric", "selector"))
    errs += _validate_metric_target(target, tp)
    if kind == "Object":
        errs += _validate_cross_version_ref(src.get("describedObject"), path.child("describedObject"))
        if target.get("value") is None and target.get("averageValue") is None:
            errs.append(v.required(tp.child("averageValue"), "must set either a target value or averageValue"))
    elif kind == "Pods":
        if target.get("averageValue") is None:
            errs.append(v.required(tp.child("averageValue"), "must specify a positive target averageValue"))
    elif kind == "External":
        if target.get("value") is None and target.get("averageValue") is None:
            errs.append(v.required(tp.child("averageValue"), "must set either a target value for metric or a per-pod target"))
        if target.get("value") is not None and target.get("averageValue") is not None:
            errs.append(v.forbidden(tp.child("value"), "may not set both a target value for metric and a per-pod target"))
    return errs


def _validate_metric(metric: dict[str, Any], path: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    kind = metric.get("type")
    if not kind:
        errs.append(v.required(path.child("type"), "must specify a metric source type"))
    if kind not in METRIC_SOURCE_TYPES:
        errs.append(v.not_supported(path.child("type"), kind or "", METRIC_SOURCE_TYPES))
        return errs
    expected = _SOURCE_FIELD[kind]
    present = [f for f in _SOURCE_FIELD.values() if metric.get(f) is not None]
    if metric.get(expected) is None:
        errs.append(v.required(path.child(expected), "must populate information for the given metric source"))
    else:
        errs += _validate_metric_source(kind, as_dict(metric[expected]), path.child(expected))
    errs += [v.forbidden(path.child(f), "must populate the given metric source only") for f in present if f != expected]
    return errs


def _validate_scaling_rules(rules: Any, path: Path) -> list[FieldError]:
    if not isinstance(rules, dict):
        return []
    errs: list[FieldError] = []
    window = rules.get("stabilizationWindowSeconds")
    if is_int(window):
        if window < 0:
            errs.append(v.invalid(path.child("stabilizationWindowSeconds"), window, "must be greater than or equal to zero"))
        elif window > MAX_STABILIZATION_WINDOW:
            errs.append(v.invalid(path.child("stabilizationWindowSeconds"), window,
                                  f"must be less than or equal to {MAX_STABILIZATION_WINDOW}"))
    policy = rules.get("selectPolicy")
    if policy is not None and policy not in SELECT_POLICIES:
        errs.append(v.not_supported(path.child("selectPolicy"), policy, SELECT_POLICIES))
    policies = as_list(rules.get("policies"))
    if not policies:
        errs.append(v.required(path.child("policies"), "must specify at least one Policy"))
    for i, item in enumerate(policies):
        item, ip = as_dict(item), path.child("policies").index(i)
        if item.get("type") not in SCALING_POLICY_TYPES:
            errs.append(v.not_supported(ip.child("type"), item.get("type") or "", SCALING_POLICY_TYPES))
        value, period = item.get("value", 0), item.get("periodSeconds", 0)
        if not is_int(value) or value <= 0:
            errs.append(v.invalid(ip.child("value"), value, "must be greater than zero"))
        if not is_int(period) or period <= 0:
            errs.append(v.invalid(ip.child("periodSeconds"), period, "must be greater than zero"))
        elif period > MAX_PERIOD_SECONDS:
            errs.append(v.invalid(ip.child("periodSeconds"), period, f"must be less than or equal to {MAX_PERIOD_SECONDS}"))
    return errs


class HorizontalPodAutoscalerStrategy(Strategy):
    kind = "HorizontalPodAutoscaler"
    has_status = True
    tracks_generation = False  # the HPA strategy never sets metadata.generation

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"desiredReplicas": 0}
        drop_round_trip_annotations(obj)

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_update(new, old)
        drop_round_trip_annotations(new)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_status_update(new, old)
        drop_round_trip_annotations(new)

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        if spec.get("minReplicas") is None:
            spec["minReplicas"] = 1
        if not spec.get("metrics"):
            spec["metrics"] = [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": DEFAULT_CPU_UTILIZATION}}}]
        behavior = spec.get("behavior")
        if isinstance(behavior, dict):
            behavior["scaleUp"] = _merge_rules(behavior.get("scaleUp"), _scale_up_rules())
            behavior["scaleDown"] = _merge_rules(behavior.get("scaleDown"), _scale_down_rules())

    def validate(self, obj: Obj) -> list[FieldError]:
        spec, p = spec_of(obj), Path("spec")
        errs: list[FieldError] = []
        min_r, max_r = spec.get("minReplicas"), spec.get("maxReplicas", 0)
        if min_r is not None and (not is_int(min_r) or min_r < 1):
            errs.append(v.invalid(p.child("minReplicas"), min_r, "must be greater than or equal to 1"))
        if not is_int(max_r) or max_r < 1:
            errs.append(v.invalid(p.child("maxReplicas"), max_r, "must be greater than 0"))
        if is_int(min_r) and is_int(max_r) and max_r < min_r:
            errs.append(v.invalid(p.child("maxReplicas"), max_r, "must be greater than or equal to `minReplicas`"))
        errs += _validate_cross_version_ref(spec.get("scaleTargetRef"), p.child("scaleTargetRef"))
        for i, metric in enumerate(as_list(spec.get("metrics"))):
            errs += _validate_metric(as_dict(metric), p.child("metrics").index(i))
        behavior = spec.get("behavior")
        if isinstance(behavior, dict):
            errs += _validate_scaling_rules(behavior.get("scaleUp"), p.child("behavior", "scaleUp"))
            errs += _validate_scaling_rules(behavior.get("scaleDown"), p.child("behavior", "scaleDown"))
        return errs

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        status, p = as_dict(new.get("status")), Path("status")
        errs: list[FieldError] = []
        for f in ("currentReplicas", "desiredReplicas", "observedGeneration"):
            errs += validate_nonneg(status.get(f), p.child(f))
        return errs


STRATEGIES: dict[tuple[str, str], Strategy] = {
    ("coordination.k8s.io", "Lease"): LeaseStrategy(),
    ("discovery.k8s.io", "EndpointSlice"): EndpointSliceStrategy(),
    ("scheduling.k8s.io", "PriorityClass"): PriorityClassStrategy(),
    ("policy", "PodDisruptionBudget"): PodDisruptionBudgetStrategy(),
    ("networking.k8s.io", "Ingress"): IngressStrategy(),
    ("networking.k8s.io", "IngressClass"): IngressClassStrategy(),
    ("networking.k8s.io", "NetworkPolicy"): NetworkPolicyStrategy(),
    ("rbac.authorization.k8s.io", "Role"): RoleStrategy(),
    ("rbac.authorization.k8s.io", "ClusterRole"): ClusterRoleStrategy(),
    ("rbac.authorization.k8s.io", "RoleBinding"): RoleBindingStrategy(),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): ClusterRoleBindingStrategy(),
    ("autoscaling", "HorizontalPodAutoscaler"): HorizontalPodAutoscalerStrategy(),
}

__all__ = ["STRATEGIES", "path_segment_name_msgs", "validate_policy_rule"]
