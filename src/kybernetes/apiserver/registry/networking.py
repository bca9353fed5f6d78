"""Strategies of networking.k8s.io: Ingresses, IngressClasses and NetworkPolicies.

Each class mirrors one kind's ``pkg/registry/<group>/<kind>/strategy.go`` together with its
``pkg/apis/<group>/validation`` rules and ``v1`` defaults; field paths and messages are
Kubernetes' own, because clients print them verbatim.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from kybernetes.api import validation as v
from kybernetes.api.label_selectors import validate_label_selector_object
from kybernetes.api.validation import FieldError, Path
from kybernetes.api.validation.fields import (
    as_dict,
    as_list,
    is_int,
    names_msgs,
    omit_value_invalid,
    path_segment_name_msgs,
    port_name_msgs,
    port_num_msgs,
)
from kybernetes.apiserver.registry.apps import spec_of
from kybernetes.apiserver.registry.strategy import ClusterScoped, Obj, Strategy

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
    return names_msgs(host, path, v.is_dns1123_subdomain)


def _validate_typed_ref(ref: dict[str, Any], path: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    if ref.get("apiGroup") is not None:
        errs += names_msgs(ref["apiGroup"], path.child("apiGroup"), v.is_dns1123_subdomain)
    for f in ("kind", "name"):
        if not ref.get(f):
            errs.append(v.required(path.child(f), f"{f} is required"))
        else:
            errs += names_msgs(ref[f], path.child(f), path_segment_name_msgs)
    return errs


def _validate_backend(backend: Any, path: Path) -> list[FieldError]:
    backend = as_dict(backend)
    resource, service = backend.get("resource"), backend.get("service")
    if resource is not None and service is not None:
        return [omit_value_invalid(path, "cannot set both resource and service backends")]
    if resource is not None:
        return _validate_typed_ref(as_dict(resource), path.child("resource"))
    if service is None:
        return [omit_value_invalid(path, "resource or service backend is required")]
    service = as_dict(service)
    errs: list[FieldError] = []
    name = service.get("name")
    if not name:
        errs.append(v.required(path.child("service", "name")))
    else:
        errs += names_msgs(name, path.child("service", "name"), v.is_dns1035_label)
    port = as_dict(service.get("port"))
    port_name, port_number = port.get("name") or "", port.get("number") or 0
    if port_name and port_number:
        errs.append(omit_value_invalid(path, "cannot set both port name & port number"))
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
                errs += names_msgs(tls["secretName"], tp.child("secretName"), v.is_dns1123_subdomain)
        class_name = spec.get("ingressClassName")
        if class_name is not None:
            errs += names_msgs(class_name, p.child("ingressClassName"), v.is_dns1123_subdomain)
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
                errs += names_msgs(ing["hostname"], ip.child("hostname"), v.is_dns1123_subdomain)
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
    errs = names_msgs(host, path, v.is_dns1123_subdomain)
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
                    errs += names_msgs(ns, pp.child("namespace"), v.is_dns1123_label)
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


STRATEGIES: dict[tuple[str, str], Strategy] = {
    ("networking.k8s.io", "Ingress"): IngressStrategy(),
    ("networking.k8s.io", "IngressClass"): IngressClassStrategy(),
    ("networking.k8s.io", "NetworkPolicy"): NetworkPolicyStrategy(),
}
