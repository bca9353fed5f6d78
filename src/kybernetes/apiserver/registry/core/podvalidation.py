"""PodSpec validation: the rules every kind that holds a PodSpec shares.

A PodSpec appears in many kinds (Pod, PodTemplate, ReplicationController, and the apps/batch
workloads), so its validation is plain functions over dicts that the strategies of all those kinds
call with the path where the spec lives. :func:`validate_pod_spec` (containers, volumes and
mounts, env, probes and handlers, security contexts, tolerations, node and pod affinity) and
:func:`validate_pod_template` return every :class:`FieldError` they find, with the same paths and
messages as ``pkg/apis/core/validation``, so kubectl prints what it prints against a real API
server.
"""

from __future__ import annotations

from typing import Any

from kybernetes.api import validation as v
from kybernetes.api.defaults import (
    HANDLER_TYPES,
    PROBE_FIELDS,
    VOLUME_SOURCES,
)
from kybernetes.api.label_selectors import validate_label_selector_object
from kybernetes.api.validation import FieldError, Path
from kybernetes.api.validation.fields import (
    INT32_MAX,
    as_dict,
    as_list,
    is_ip,
    port_name_msgs,
    port_num_msgs,
    quantity_or_none,
    validate_enum,
    validate_nonneg,
    validate_port_num_or_name,
    validate_protocol,
    validate_resource_list,
)

RESTART_POLICIES = ("Always", "OnFailure", "Never")
DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
TERMINATION_MESSAGE_POLICIES = ("File", "FallbackToLogsOnError")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
TOLERATION_OPERATORS = ("Equal", "Exists")
NODE_SELECTOR_OPERATORS = ("DoesNotExist", "Exists", "Gt", "In", "Lt", "NotIn")
_ENV_SOURCES = ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef")

_SOURCE_RANK = {src: i for i, src in enumerate(VOLUME_SOURCES)}


def validate_pod_spec(spec: dict[str, Any], path: Path) -> list[FieldError]:
    """Everything ``ValidatePodSpec`` checks that matters to kybernetes."""
    if not isinstance(spec, dict):
        return [v.required(path)]
    errs: list[FieldError] = []
    volumes, vol_errs = _validate_volumes(spec.get("volumes"), path.child("volumes"))
    errs.extend(vol_errs)
    errs.extend(_validate_all_containers(spec, volumes, path))
    errs.extend(validate_enum(spec.get("restartPolicy"), path.child("restartPolicy"), RESTART_POLICIES))
    errs.extend(validate_enum(spec.get("dnsPolicy"), path.child("dnsPolicy"), DNS_POLICIES))
    errs.extend(_validate_dns_config(spec, path))
    errs.extend(v.validate_labels(spec.get("nodeSelector"), path.child("nodeSelector")))
    errs.extend(validate_tolerations(spec.get("tolerations"), path.child("tolerations")))
    errs.extend(_validate_pod_security_context(spec.get("securityContext"), path.child("securityContext")))
    errs.extend(_validate_affinity(spec.get("affinity"), path.child("affinity")))
    errs.extend(_validate_names(spec, path))
    errs.extend(validate_nonneg(spec.get("terminationGracePeriodSeconds"), path.child("terminationGracePeriodSeconds")))
    ads = spec.get("activeDeadlineSeconds")
    if ads is not None and (isinstance(ads, bool) or not isinstance(ads, int) or not 1 <= ads <= INT32_MAX):
        errs.append(v.invalid(path.child("activeDeadlineSeconds"), ads,
                              f"must be between 1 and {INT32_MAX}, inclusive"))
    for i, secret in enumerate(as_list(spec.get("imagePullSecrets"))):
        if not as_dict(secret).get("name"):
            errs.append(v.required(path.child("imagePullSecrets").index(i).child("name")))
    if spec.get("runtimeClassName") is not None:
        name = spec["runtimeClassName"]
        errs.extend(v.invalid(path.child("runtimeClassName"), name, m) for m in v.is_dns1123_subdomain(str(name)))
    if spec.get("overhead") is not None:
        # As Kubernetes: the overhead is checked as the limits of a ResourceRequirements.
        errs.extend(validate_resource_requirements({"limits": spec["overhead"]}, path.child("overhead")))
    return errs


def _validate_names(spec: dict[str, Any], path: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    for field, check in (("hostname", v.is_dns1123_label), ("subdomain", v.is_dns1123_label),
                         ("serviceAccountName", v.is_dns1123_subdomain), ("nodeName", v.is_dns1123_subdomain),
                         ("priorityClassName", v.is_dns1123_subdomain)):
        value = spec.get(field)
        if value:
            if not isinstance(value, str):
                errs.append(v.type_invalid(path.child(field), value, "must be a string"))
                continue
            errs.extend(v.invalid(path.child(field), value, m) for m in check(value))
    return errs


def _validate_dns_config(spec: dict[str, Any], path: Path) -> list[FieldError]:
    config = spec.get("dnsConfig")
    if spec.get("dnsPolicy") == "None" and not as_dict(config).get("nameservers"):
        return [v.required(path.child("dnsConfig", "nameservers"),
                           "must provide at least one DNS nameserver when `dnsPolicy` is None")]
    errs: list[FieldError] = []
    for i, ns in enumerate(as_list(as_dict(config).get("nameservers"))):
        if not is_ip(ns):
            errs.append(v.invalid(path.child("dnsConfig", "nameservers").index(i), ns, "must be a valid IP address"))
    return errs


def _validate_volumes(volumes: Any, path: Path) -> tuple[set[str], list[FieldError]]:
    """Volumes' names (for volumeMounts to refer to) and their errors."""
    names: set[str] = set()
    errs: list[FieldError] = []
    for i, vol in enumerate(as_list(volumes)):
        p = path.index(i)
        if not isinstance(vol, dict):
            errs.append(v.type_invalid(p, vol, "must be an object"))
            continue
        name = vol.get("name")
        if not name:
            errs.append(v.required(p.child("name")))
        elif name in names:
            errs.append(v.duplicate(p.child("name"), name))
        else:
            errs.extend(v.invalid(p.child("name"), name, m) for m in v.is_dns1123_label(str(name)))
        if name:
            names.add(name)
        # The volume's own few keys, in VOLUME_SOURCES' order (the order of the errors).
        sources = sorted((k for k, val in vol.items() if val is not None and k in _SOURCE_RANK), key=_SOURCE_RANK.__getitem__)
        if not sources:
            errs.append(v.required(p, "must specify a volume type"))
        for extra in sources[1:]:
            errs.append(v.forbidden(p.child(extra), "may not specify more than 1 volume type"))
        errs.extend(_validate_volume_source(vol, p))
    return names, errs


def _validate_volume_source(vol: dict[str, Any], path: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    for src, ref in (("configMap", "name"), ("persistentVolumeClaim", "claimName"), ("secret", "secretName")):
        source = vol.get(src)
        if isinstance(source, dict) and src != "configMap" and not source.get(ref):
            errs.append(v.required(path.child(src, ref)))
    for src in ("configMap", "secret", "downwardAPI", "projected"):
        mode = as_dict(vol.get(src)).get("defaultMode")
        if mode is not None and (not isinstance(mode, int) or not 0 <= mode <= 0o777):
            errs.append(v.invalid(path.child(src, "defaultMode"), mode,
                                  "must be a number between 0 and 0777 (octal), both inclusive"))
    host_path = vol.get("hostPath")
    if isinstance(host_path, dict) and not host_path.get("path"):
        errs.append(v.required(path.child("hostPath", "path")))
    return errs


def _validate_all_containers(spec: dict[str, Any], volumes: set[str], path: Path) -> list[FieldError]:
    containers = spec.get("containers")
    errs: list[FieldError] = []
    if not isinstance(containers, list) or not containers:
        errs.append(v.required(path.child("containers")))
    seen: set[str] = set()
    for field in ("initContainers", "containers"):
        for i, ctr in enumerate(as_list(spec.get(field))):
            p = path.child(field).index(i)
            if not isinstance(ctr, dict):
                errs.append(v.type_invalid(p, ctr, "must be an object"))
                continue
            name = ctr.get("name")
            if name and name in seen:
                errs.append(v.duplicate(p.child("name"), name))
            elif name:
                seen.add(name)
            errs.extend(_validate_container(ctr, volumes, p, init=field == "initContainers"))
    return errs


def validate_container_common(ctr: dict[str, Any], volumes: set[str], path: Path) -> list[FieldError]:
    """What every kind of container must satisfy, regular, init or ephemeral
    (``validateContainerCommon``): name, image, policies, ports, env, resources, mounts and the
    security context."""
    errs: list[FieldError] = []
    name = ctr.get("name")
    if not name:
        errs.append(v.required(path.child("name")))
    elif not isinstance(name, str):
        errs.append(v.type_invalid(path.child("name"), name, "must be a string"))
    else:
        errs.extend(v.invalid(path.child("name"), name, m) for m in v.is_dns1123_label(name))
    image = ctr.get("image")
    if not image or (isinstance(image, str) and not image.strip()):
        errs.append(v.required(path.child("image")))
    errs.extend(validate_enum(ctr.get("imagePullPolicy"), path.child("imagePullPolicy"), PULL_POLICIES,
                              required=False))
    errs.extend(validate_enum(ctr.get("terminationMessagePolicy"), path.child("terminationMessagePolicy"),
                              TERMINATION_MESSAGE_POLICIES, required=False))
    errs.extend(_validate_container_ports(ctr.get("ports"), path.child("ports")))
    errs.extend(_validate_env(ctr.get("env"), path.child("env")))
    errs.extend(_validate_env_from(ctr.get("envFrom"), path.child("envFrom")))
    errs.extend(validate_resource_requirements(ctr.get("resources"), path.child("resources")))
    errs.extend(_validate_volume_mounts(ctr.get("volumeMounts"), volumes, path.child("volumeMounts")))
    errs.extend(_validate_container_security_context(ctr.get("securityContext"), path.child("securityContext")))
    return errs


def _validate_container(ctr: dict[str, Any], volumes: set[str], path: Path, *, init: bool) -> list[FieldError]:
    errs = validate_container_common(ctr, volumes, path)
    for probe in PROBE_FIELDS:
        if ctr.get(probe) is None:
            continue
        if init and ctr.get("restartPolicy") != "Always":
            # Only sidecars (restartable init containers) may have probes.
            errs.append(v.forbidden(path.child(probe), "may not be set for init containers without restartPolicy=Always"))
            continue
        errs.extend(_validate_probe(ctr[probe], path.child(probe), liveness=probe != "readinessProbe"))
    lifecycle = as_dict(ctr.get("lifecycle"))
    for hook in ("postStart", "preStop"):
        if lifecycle.get(hook) is not None:
            errs.extend(_validate_handler(as_dict(lifecycle[hook]), path.child("lifecycle", hook),
                                          handlers=("exec", "httpGet", "tcpSocket", "sleep")))
    if init and ctr.get("restartPolicy") not in (None, "Always"):
        errs.append(v.not_supported(path.child("restartPolicy"), ctr["restartPolicy"], ("Always",)))
    if not init and ctr.get("restartPolicy") is not None:
        errs.append(v.forbidden(path.child("restartPolicy"), "may not be set for non-init containers"))
    return errs


def _validate_container_ports(ports: Any, path: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    names: set[str] = set()
    for i, port in enumerate(as_list(ports)):
        p = path.index(i)
        if not isinstance(port, dict):
            errs.append(v.type_invalid(p, port, "must be an object"))
            continue
        name = port.get("name")
        if name:
            errs.extend(v.invalid(p.child("name"), name, m) for m in port_name_msgs(str(name)))
            if name in names:
                errs.append(v.duplicate(p.child("name"), name))
            names.add(name)
        cport = port.get("containerPort")
        if not cport:
            errs.append(v.required(p.child("containerPort")))
        else:
            errs.extend(v.invalid(p.child("containerPort"), cport, m) for m in port_num_msgs(cport))
        if port.get("hostPort"):
            errs.extend(v.invalid(p.child("hostPort"), port["hostPort"], m) for m in port_num_msgs(port["hostPort"]))
        errs.extend(validate_protocol(port.get("protocol"), p.child("protocol")))
        if port.get("hostIP") and not is_ip(port["hostIP"]):
            errs.append(v.invalid(p.child("hostIP"), port["hostIP"], "must be a valid IP address"))
    return errs


def _validate_env(env: Any, path: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, var in enumerate(as_list(env)):
        p = path.index(i)
        if not isinstance(var, dict):
            errs.append(v.type_invalid(p, var, "must be an object"))
            continue
        name = var.get("name")
        if not name:
            errs.append(v.required(p.child("name")))
        else:
            errs.extend(v.invalid(p.child("name"), name, m) for m in v.is_env_var_name(str(name)))
        if var.get("valueFrom") is not None:
            errs.extend(_validate_env_source(var, p.child("valueFrom")))
    return errs


def _validate_env_source(var: dict[str, Any], path: Path) -> list[FieldError]:
    source = as_dict(var.get("valueFrom"))
    present = [s for s in _ENV_SOURCES if source.get(s) is not None]
    errs: list[FieldError] = []
    if not present:
        errs.append(v.invalid(path, "", "must specify one of: `fieldRef`, `resourceFieldRef`, "
                                        "`configMapKeyRef` or `secretKeyRef`"))
    elif len(present) > 1:
        errs.append(v.invalid(path, "", "may not have more than one field specified at a time"))
    if var.get("value") and present:
        errs.append(v.invalid(path, "", "may not be specified when `value` is not empty"))
    field_ref = source.get("fieldRef")
    if isinstance(field_ref, dict) and not field_ref.get("fieldPath"):
        errs.append(v.required(path.child("fieldRef", "fieldPath")))
    resource_ref = source.get("resourceFieldRef")
    if isinstance(resource_ref, dict) and not resource_ref.get("resource"):
        errs.append(v.required(path.child("resourceFieldRef", "resource")))
    for ref in ("configMapKeyRef", "secretKeyRef"):
        sel = source.get(ref)
        if isinstance(sel, dict):
            if not sel.get("key"):
                errs.append(v.required(path.child(ref, "key")))
            else:
                errs.extend(v.invalid(path.child(ref, "key"), sel["key"], m)
                            for m in v.is_config_map_key(str(sel["key"])))
    return errs


def _validate_env_from(env_from: Any, path: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, source in enumerate(as_list(env_from)):
        p = path.index(i)
        source = as_dict(source)
        present = [s for s in ("configMapRef", "secretRef") if source.get(s) is not None]
        if not present:
            errs.append(v.invalid(p, "", "must specify one of: `configMapRef` or `secretRef`"))
        elif len(present) > 1:
            errs.append(v.invalid(p, "", "may not have more than one field specified at a time"))
        prefix = source.get("prefix")
        if prefix:
            errs.extend(v.invalid(p.child("prefix"), prefix, m) for m in v.is_env_var_name(str(prefix)))
    return errs


def validate_resource_requirements(resources: Any, path: Path) -> list[FieldError]:
    """Names and quantities valid, and every request at most its limit."""
    if resources is None:
        return []
    if not isinstance(resources, dict):
        return [v.type_invalid(path, resources, "must be an object")]
    limits, requests = resources.get("limits"), resources.get("requests")
    errs = validate_resource_list(limits, path.child("limits"))
    errs.extend(validate_resource_list(requests, path.child("requests")))
    if errs or not isinstance(limits, dict) or not isinstance(requests, dict):
        return errs
    for name, req in requests.items():
        if name not in limits:
            continue
        req_value, limit_value = quantity_or_none(req), quantity_or_none(limits[name])
        if req_value is None or limit_value is None:
            continue
        if name.startswith("hugepages-") or ("/" in name and not name.startswith("kubernetes.io/")):
            # Extended resources and huge pages cannot be overcommitted: request == limit.
            if req_value != limit_value:
                errs.append(v.invalid(path.child("requests"), str(req),
                                      f"must be equal to {name} limit of {limits[name]}"))
        elif req_value > limit_value:
            errs.append(v.invalid(path.child("requests"), str(req),
                                  f"must be less than or equal to {name} limit of {limits[name]}"))
    return errs


def _validate_volume_mounts(mounts: Any, volumes: set[str], path: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    paths: set[str] = set()
    for i, mount in enumerate(as_list(mounts)):
        p = path.index(i)
        mount = as_dict(mount)
        name = mount.get("name")
        if not name:
            errs.append(v.required(p.child("name")))
        elif name not in volumes:
            errs.append(v.not_found(p.child("name"), name))
        mount_path = mount.get("mountPath")
        if not mount_path:
            errs.append(v.required(p.child("mountPath")))
        elif mount_path in paths:
            errs.append(v.invalid(p.child("mountPath"), mount_path, "must be unique"))
        else:
            paths.add(mount_path)
        sub = mount.get("subPath")
        if isinstance(sub, str) and (sub.startswith("/") or ".." in sub.split("/")):
            errs.append(v.invalid(p.child("subPath"), sub, "must be a relative path without '..'"))
    return errs


def _validate_probe(probe: Any, path: Path, *, liveness: bool) -> list[FieldError]:
    if not isinstance(probe, dict):
        return [v.type_invalid(path, probe, "must be an object")]
    errs = _validate_handler(probe, path, handlers=HANDLER_TYPES)
    for field in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold",
                  "failureThreshold", "terminationGracePeriodSeconds"):
        errs.extend(validate_nonneg(probe.get(field), path.child(field)))
    if liveness and probe.get("successThreshold") not in (None, 1):
        errs.append(v.invalid(path.child("successThreshold"), probe["successThreshold"], "must be 1"))
    return errs


def _validate_handler(handler: dict[str, Any], path: Path, *, handlers: tuple[str, ...]) -> list[FieldError]:
    present = [h for h in handlers if handler.get(h) is not None]
    if not present:
        return [v.required(path, "must specify a handler type")]
    errs = [v.forbidden(path.child(h), "may not specify more than 1 handler type") for h in present[1:]]
    http = handler.get("httpGet")
    if isinstance(http, dict):
        errs.extend(validate_port_num_or_name(http.get("port"), path.child("httpGet", "port")))
        errs.extend(validate_enum(http.get("scheme"), path.child("httpGet", "scheme"), ("HTTP", "HTTPS"),
                                  required=False))
    tcp = handler.get("tcpSocket")
    if isinstance(tcp, dict):
        errs.extend(validate_port_num_or_name(tcp.get("port"), path.child("tcpSocket", "port")))
    grpc = handler.get("grpc")
    if isinstance(grpc, dict):
        errs.extend(v.invalid(path.child("grpc", "port"), grpc.get("port"), m) for m in port_num_msgs(grpc.get("port")))
    exec_ = handler.get("exec")
    if isinstance(exec_, dict) and not exec_.get("command"):
        errs.append(v.required(path.child("exec", "command")))
    return errs


def validate_tolerations(tolerations: Any, path: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, tol in enumerate(as_list(tolerations)):
        p = path.index(i)
        if not isinstance(tol, dict):
            errs.append(v.type_invalid(p, tol, "must be an object"))
            continue
        key, op = tol.get("key", ""), tol.get("operator") or "Equal"
        if key:
            errs.extend(v.invalid(p.child("key"), key, m) for m in v.is_qualified_name(str(key)))
        elif op != "Exists":
            errs.append(v.invalid(p.child("operator"), op, "operator must be Exists when `key` is empty, which "
                                                            "means \"match all values and all keys\""))
        if op == "Exists":
            if tol.get("value"):
                errs.append(v.invalid(p.child("operator"), tol, "value must be empty when `operator` is 'Exists'"))
        elif op == "Equal":
            errs.extend(v.invalid(p.child("operator"), tol, m) for m in v.is_label_value(str(tol.get("value", ""))))
        else:
            errs.append(v.not_supported(p.child("operator"), op, TOLERATION_OPERATORS))
        if tol.get("tolerationSeconds") is not None and tol.get("effect") != "NoExecute":
            errs.append(v.invalid(p.child("effect"), tol.get("effect", ""),
                                  "effect must be 'NoExecute' when `tolerationSeconds` is set"))
        errs.extend(validate_enum(tol.get("effect"), p.child("effect"), TAINT_EFFECTS, required=False))
    return errs


def _validate_id(value: Any, path: Path) -> list[FieldError]:
    if value is None:
        return []
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= INT32_MAX:
        return [v.invalid(path, value, f"must be between 0 and {INT32_MAX}, inclusive")]
    return []


def _validate_pod_security_context(ctx: Any, path: Path) -> list[FieldError]:
    if ctx is None:
        return []
    if not isinstance(ctx, dict):
        return [v.type_invalid(path, ctx, "must be an object")]
    errs: list[FieldError] = []
    for field in ("runAsUser", "runAsGroup", "fsGroup"):
        errs.extend(_validate_id(ctx.get(field), path.child(field)))
    for i, gid in enumerate(as_list(ctx.get("supplementalGroups"))):
        errs.extend(_validate_id(gid, path.child("supplementalGroups").index(i)))
    errs.extend(validate_enum(ctx.get("fsGroupChangePolicy"), path.child("fsGroupChangePolicy"),
                              ("OnRootMismatch", "Always"), required=False))
    for i, sysctl in enumerate(as_list(ctx.get("sysctls"))):
        if not as_dict(sysctl).get("name"):
            errs.append(v.required(path.child("sysctls").index(i).child("name")))
    return errs


def _validate_container_security_context(ctx: Any, path: Path) -> list[FieldError]:
    if ctx is None:
        return []
    if not isinstance(ctx, dict):
        return [v.type_invalid(path, ctx, "must be an object")]
    errs: list[FieldError] = []
    for field in ("runAsUser", "runAsGroup"):
        errs.extend(_validate_id(ctx.get(field), path.child(field)))
    if ctx.get("privileged") and ctx.get("allowPrivilegeEscalation") is False:
        errs.append(v.invalid(path, ctx, "cannot set `allowPrivilegeEscalation` to false and `privileged` to true"))
    errs.extend(validate_enum(ctx.get("procMount"), path.child("procMount"), ("Default", "Unmasked"),
                              required=False))
    return errs


def _validate_affinity(affinity: Any, path: Path) -> list[FieldError]:
    if affinity is None:
        return []
    if not isinstance(affinity, dict):
        return [v.type_invalid(path, affinity, "must be an object")]
    errs: list[FieldError] = []
    node = as_dict(affinity.get("nodeAffinity"))
    required = node.get("requiredDuringSchedulingIgnoredDuringExecution")
    if required is not None:
        errs.extend(validate_node_selector(required, path.child("nodeAffinity",
                                                                "requiredDuringSchedulingIgnoredDuringExecution")))
    preferred_path = path.child("nodeAffinity", "preferredDuringSchedulingIgnoredDuringExecution")
    for i, term in enumerate(as_list(node.get("preferredDuringSchedulingIgnoredDuringExecution"))):
        term = as_dict(term)
        errs.extend(_validate_weight(term.get("weight"), preferred_path.index(i).child("weight")))
        errs.extend(_validate_node_selector_term(term.get("preference"), preferred_path.index(i).child("preference")))
    for kind in ("podAffinity", "podAntiAffinity"):
        errs.extend(_validate_pod_affinity(as_dict(affinity.get(kind)), path.child(kind)))
    return errs


def _validate_weight(weight: Any, path: Path) -> list[FieldError]:
    if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= 100:
        return [v.invalid(path, weight, "must be in the range 1-100")]
    return []


def validate_node_selector(selector: Any, path: Path) -> list[FieldError]:
    terms = as_dict(selector).get("nodeSelectorTerms")
    if not isinstance(terms, list) or not terms:
        return [v.required(path.child("nodeSelectorTerms"), "must have at least one node selector term")]
    errs: list[FieldError] = []
    for i, term in enumerate(terms):
        errs.extend(_validate_node_selector_term(term, path.child("nodeSelectorTerms").index(i)))
    return errs


def _validate_node_selector_term(term: Any, path: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    for field in ("matchExpressions", "matchFields"):
        for i, req in enumerate(as_list(as_dict(term).get(field))):
            p = path.child(field).index(i)
            req = as_dict(req)
            op, values = req.get("operator"), as_list(req.get("values"))
            if not req.get("key"):
                errs.append(v.required(p.child("key")))
            elif field == "matchExpressions":
                errs.extend(v.invalid(p.child("key"), req["key"], m) for m in v.is_qualified_name(str(req["key"])))
            if op in ("In", "NotIn") and not values:
                errs.append(v.required(p.child("values"), "must be specified when `operator` is 'In' or 'NotIn'"))
            elif op in ("Exists", "DoesNotExist") and values:
                errs.append(v.forbidden(p.child("values"), "may not be specified when `operator` is 'Exists' "
                                                           "or 'DoesNotExist'"))
            elif op in ("Gt", "Lt") and (len(values) != 1 or not str(values[0]).lstrip("-").isdigit()):
                errs.append(v.required(p.child("values"), "must be specified single value when `operator` "
                                                          "is 'Lt' or 'Gt'"))
            elif op not in NODE_SELECTOR_OPERATORS:
                errs.append(v.not_supported(p.child("operator"), op, NODE_SELECTOR_OPERATORS))
    return errs


def _validate_pod_affinity(affinity: dict[str, Any], path: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    req_path = path.child("requiredDuringSchedulingIgnoredDuringExecution")
    for i, term in enumerate(as_list(affinity.get("requiredDuringSchedulingIgnoredDuringExecution"))):
        errs.extend(_validate_pod_affinity_term(as_dict(term), req_path.index(i)))
    pref_path = path.child("preferredDuringSchedulingIgnoredDuringExecution")
    for i, term in enumerate(as_list(affinity.get("preferredDuringSchedulingIgnoredDuringExecution"))):
        term = as_dict(term)
        errs.extend(_validate_weight(term.get("weight"), pref_path.index(i).child("weight")))
        errs.extend(_validate_pod_affinity_term(as_dict(term.get("podAffinityTerm")),
                                                pref_path.index(i).child("podAffinityTerm")))
    return errs


def _validate_pod_affinity_term(term: dict[str, Any], path: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    topology_key = term.get("topologyKey")
    if not topology_key:
        errs.append(v.required(path.child("topologyKey"), "can not be empty"))
    else:
        errs.extend(v.invalid(path.child("topologyKey"), topology_key, m)
                    for m in v.is_qualified_name(str(topology_key)))
    for field in ("labelSelector", "namespaceSelector"):
        if term.get(field) is not None:
            errs.extend(validate_label_selector_object(term[field], path.child(field)))
    for i, ns in enumerate(as_list(term.get("namespaces"))):
        errs.extend(v.invalid(path.child("namespaces").index(i), ns, m) for m in v.is_dns1123_label(str(ns)))
    return errs


def validate_pod_template(
    template: dict[str, Any],
    path: Path,
    *,
    restart_policies: tuple[str, ...] = ("Always",),
) -> list[FieldError]:
    """A PodTemplateSpec in a workload: metadata labels and annotations, the spec, the restart policy."""
    if not isinstance(template, dict):
        return [v.required(path)]
    errs: list[FieldError] = []
    meta = as_dict(template.get("metadata"))
    errs.extend(v.validate_labels(meta.get("labels"), path.child("metadata", "labels")))
    errs.extend(v.validate_annotations(meta.get("annotations"), path.child("metadata", "annotations")))
    spec = template.get("spec")
    spec_path = path.child("spec")
    if not isinstance(spec, dict):
        return [*errs, v.required(spec_path)]
    errs.extend(validate_pod_spec(spec, spec_path))
    policy = spec.get("restartPolicy")
    if policy in RESTART_POLICIES and policy not in restart_policies:
        errs.append(v.not_supported(spec_path.child("restartPolicy"), policy, restart_policies))
    if spec.get("ephemeralContainers"):
        errs.append(v.forbidden(spec_path.child("ephemeralContainers"), "ephemeral containers not allowed in pod template"))
    return errs
