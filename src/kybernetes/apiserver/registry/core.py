"""The strategies of the core/v1 kinds, and the PodSpec helpers other groups reuse.

Pods and Services are large enough to live in their own modules (``pods.py``, ``services.py``);
this module holds the smaller kinds and the :data:`STRATEGIES` table the registry looks kinds up
in, keyed by ``(group, kind)`` with ``""`` for the core group.

Two facts about Kubernetes shape these classes:

* ``metadata.generation`` is kept only by kinds whose strategy sets it (ReplicationController and
  PodTemplate here). Pods, Services, Nodes, Namespaces, volumes, quotas and every kind without a
  spec never get one, so their strategies say ``tracks_generation = False``.
* Some kinds create their status with the object (a kubelet registers a Node with its status),
  others start from an empty or fixed status (a Namespace is ``Active``, a claim ``Pending``).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

from kybernetes.api import gobytes
from kybernetes.api import validation as v
from kybernetes.api.label_selectors import validate_label_selector_object
from kybernetes.api.validation import FieldError, Path
from kybernetes.apiserver.registry.pods import (
    POD_FIELD_SELECTORS,
    TAINT_EFFECTS,
    PodStrategy,
    PodTemplateStrategy,
    as_dict,
    as_list,
    default_pod_spec,
    default_pod_template,
    is_cidr,
    quantity_or_none,
    validate_enum,
    validate_node_selector,
    validate_nonneg,
    validate_pod_spec,
    validate_pod_template,
    validate_quantity,
    validate_resource_list,
)
from kybernetes.apiserver.registry.services import EndpointsStrategy, ServiceStrategy
from kybernetes.apiserver.registry.strategy import ClusterScoped, Obj, Strategy

__all__ = [
    "POD_FIELD_SELECTORS",
    "STRATEGIES",
    "default_pod_spec",
    "default_pod_template",
    "validate_pod_spec",
    "validate_pod_template",
]

MAX_DATA_SIZE = 1024 * 1024  # ConfigMaps and Secrets: 1 MiB of data in total


def _field(*path: str) -> Callable[[Obj], str]:
    """A field selector reading a nested string field ('' when absent)."""

    def get(obj: Obj) -> str:
        cur: Any = obj
        for name in path:
            cur = as_dict(cur).get(name)
        if isinstance(cur, bool):
            return "true" if cur else "false"
        return "" if cur is None else str(cur)

    return get


# --- Namespace -------------------------------------------------------------------------------

STANDARD_FINALIZERS = ("kubernetes", "orphan", "foregroundDeletion")
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


class NamespaceStrategy(ClusterScoped):
    kind = "Namespace"
    has_status = True
    tracks_generation = False
    name_validator = staticmethod(v.is_dns1123_label)  # type: ignore[assignment]  # mypy misreads staticmethod in a ClassVar
    field_selectors = {"status.phase": _field("status", "phase")}

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"phase": "Active"}
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            spec = obj["spec"] = {}
        finalizers = spec.get("finalizers")
        if not isinstance(finalizers, list):
            finalizers = spec["finalizers"] = []
        if "kubernetes" not in finalizers:
            finalizers.append("kubernetes")

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        # spec.finalizers change only through /finalize (the generic store routes it).
        super().prepare_for_update(new, old)
        old_fins = as_dict(old.get("spec")).get("finalizers")
        spec = new.get("spec")
        if not isinstance(spec, dict):
            spec = new["spec"] = {}
        if old_fins is None:
            spec.pop("finalizers", None)
        else:
            spec["finalizers"] = old_fins

    def holds_deletion(self, obj: Obj) -> bool:
        # A namespace goes only when its contents are gone: spec.finalizers ("kubernetes") too.
        return super().holds_deletion(obj) or bool(as_dict(obj.get("spec")).get("finalizers"))

    def default(self, obj: Obj) -> None:
        # Every namespace is labelled with its own name, so selectors can pick namespaces by name.
        meta = obj.setdefault("metadata", {})
        name = meta.get("name")
        if name:
            labels = meta.get("labels")
            if not isinstance(labels, dict):
                labels = meta["labels"] = {}
            labels[NAMESPACE_NAME_LABEL] = name
        status = obj.get("status")
        if isinstance(status, dict) and not status.get("phase"):
            status["phase"] = "Active"

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        path = Path("spec", "finalizers")
        for i, fin in enumerate(as_list(as_dict(obj.get("spec")).get("finalizers"))):
            errs.extend(_validate_finalizer_name(fin, path.index(i)))
        return errs

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        status = as_dict(new.get("status"))
        return validate_enum(status.get("phase"), Path("status", "phase"), ("Active", "Terminating"),
                             required=False)


def _validate_finalizer_name(name: Any, path: Path) -> list[FieldError]:
    if not isinstance(name, str) or not name:
        return [v.required(path)]
    errs = [v.invalid(path, name, m) for m in v.is_qualified_name(name)]
    if "/" not in name and name not in STANDARD_FINALIZERS:
        errs.append(v.invalid(path, name, "name is neither a standard finalizer name nor is it fully qualified"))
    return errs


# --- Node -----------------------------------------------------------------------------------


def validate_taints(taints: Any, path: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    seen: set[tuple[str, str]] = set()
    for i, taint in enumerate(as_list(taints)):
        p = path.index(i)
        if not isinstance(taint, dict):
            errs.append(v.type_invalid(p, taint, "must be an object"))
            continue
        key, effect = str(taint.get("key") or ""), str(taint.get("effect") or "")
        if not key:
            errs.append(v.required(p.child("key")))
        else:
            errs.extend(v.invalid(p.child("key"), key, m) for m in v.is_qualified_name(key))
        errs.extend(v.invalid(p.child("value"), taint.get("value"), m)
                    for m in v.is_label_value(str(taint.get("value") or "")))
        errs.extend(validate_enum(taint.get("effect"), p.child("effect"), TAINT_EFFECTS))
        if (key, effect) in seen:
            errs.append(FieldError("FieldValueDuplicate", str(p), taint, "taints must be unique by key and effect pair"))
        seen.add((key, effect))
    return errs


class NodeStrategy(ClusterScoped):
    kind = "Node"
    has_status = True
    tracks_generation = False
    field_selectors = {"spec.unschedulable": _field("spec", "unschedulable")}

    def prepare_for_create(self, obj: Obj) -> None:
        """A kubelet registers its Node with the status it observed: keep it."""

    def default(self, obj: Obj) -> None:
        if not isinstance(obj.get("spec"), dict):
            obj["spec"] = {}
        status = obj.get("status")
        if isinstance(status, dict) and "allocatable" not in status and isinstance(status.get("capacity"), dict):
            status["allocatable"] = copy.deepcopy(status["capacity"])

    def validate(self, obj: Obj) -> list[FieldError]:
        spec = as_dict(obj.get("spec"))
        path = Path("spec")
        errs = validate_taints(spec.get("taints"), path.child("taints"))
        cidrs = as_list(spec.get("podCIDRs"))
        for i, cidr in enumerate(cidrs):
            if not is_cidr(cidr):
                errs.append(v.invalid(path.child("podCIDRs").index(i), cidr,
                                      "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"))
        pod_cidr = spec.get("podCIDR")
        if pod_cidr and not is_cidr(pod_cidr):
            errs.append(v.invalid(path.child("podCIDR"), pod_cidr,
                                  "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"))
        if pod_cidr and cidrs and cidrs[0] != pod_cidr:
            errs.append(v.invalid(path.child("podCIDRs"), cidrs, "first value must match `podCIDR`"))
        if len(cidrs) > 2:
            errs.append(v.invalid(path.child("podCIDRs"), cidrs, "may specify no more than one CIDR for each IP family"))
        errs.extend(self._validate_status(as_dict(obj.get("status"))))
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs = self.validate(new)
        new_spec, old_spec = as_dict(new.get("spec")), as_dict(old.get("spec"))
        for field in ("podCIDR", "podCIDRs", "providerID"):
            if old_spec.get(field) and new_spec.get(field) != old_spec[field]:
                shown = "podCIDR" if field == "podCIDRs" else field
                errs.append(v.forbidden(Path("spec", field),
                                        f'node updates may not change {shown} except from "" to valid'))
        return errs

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return self._validate_status(as_dict(new.get("status")))

    @staticmethod
    def _validate_status(status: dict[str, Any]) -> list[FieldError]:
        path = Path("status")
        errs: list[FieldError] = []
        for field in ("capacity", "allocatable"):
            errs.extend(validate_resource_list(status.get(field), path.child(field), name_msgs=lambda _n: []))
        return errs


# --- ConfigMap and Secret -------------------------------------------------------------------


def _validate_keys(data: Any, path: Path) -> list[FieldError]:
    if data is None:
        return []
    if not isinstance(data, dict):
        return [v.type_invalid(path, data, "must be a map of string keys to values")]
    errs: list[FieldError] = []
    for key in data:
        errs.extend(v.invalid(path.key(key), key, m) for m in v.is_config_map_key(key))
    return errs


def _decode_b64(value: Any) -> bytes | None:
    """The bytes of a ``[]byte`` map value (the typed decoder has made it canonical base64)."""
    if not isinstance(value, str):
        return None
    try:
        return gobytes.decode(value)
    except gobytes.CorruptInputError:
        return None


def _validate_immutable_data(new: Obj, old: Obj, fields: tuple[str, ...]) -> list[FieldError]:
    """Objects marked ``immutable: true`` never change their data, nor become mutable again."""
    if not old.get("immutable"):
        return []
    errs: list[FieldError] = []
    if not new.get("immutable"):
        errs.append(v.forbidden(Path("immutable"), "field is immutable when `immutable` is set"))
    for field in fields:
        if new.get(field) != old.get(field):
            errs.append(v.forbidden(Path(field), "field is immutable when `immutable` is set"))
    return errs


class ConfigMapStrategy(Strategy):
    kind = "ConfigMap"
    tracks_generation = False

    def validate(self, obj: Obj) -> list[FieldError]:
        data, binary = obj.get("data"), obj.get("binaryData")
        errs = _validate_keys(data, Path("data")) + _validate_keys(binary, Path("binaryData"))
        total = 0
        for key, value in as_dict(data).items():
            if not isinstance(value, str):
                errs.append(v.type_invalid(Path("data").key(key), value, "must be a string"))
                continue
            total += len(value.encode())
            if key in as_dict(binary):
                errs.append(v.invalid(Path("data").key(key), key, "duplicate of key present in binaryData"))
        for key, value in as_dict(binary).items():
            raw = _decode_b64(value)
            if raw is None:
                errs.append(v.invalid(Path("binaryData").key(key), "<value omitted>", "must be base64-encoded bytes"))
                continue
            total += len(raw)
        if total > MAX_DATA_SIZE:
            errs.append(v.too_long(Path(""), MAX_DATA_SIZE))
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return self.validate(new) + _validate_immutable_data(new, old, ("data", "binaryData"))


SECRET_TYPES_REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
}
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"


def fold_string_data(obj: Obj) -> None:
    """``stringData`` is write-only: merge it into ``data`` (base64) and drop it, as v1 conversion does."""
    string_data = obj.pop("stringData", None)
    if not isinstance(string_data, dict) or not string_data:
        return
    data = obj.get("data")
    if not isinstance(data, dict):
        data = obj["data"] = {}
    for key, value in string_data.items():
        data[key] = gobytes.encode(str(value).encode())


class SecretStrategy(Strategy):
    kind = "Secret"
    tracks_generation = False
    field_selectors = {"type": _field("type")}

    def prepare_for_create(self, obj: Obj) -> None:
        fold_string_data(obj)

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        fold_string_data(new)

    def default(self, obj: Obj) -> None:
        fold_string_data(obj)
        if not obj.get("type"):
            obj["type"] = "Opaque"

    def validate(self, obj: Obj) -> list[FieldError]:
        data = obj.get("data")
        errs = _validate_keys(data, Path("data"))
        total = 0
        decoded: dict[str, bytes] = {}
        for key, value in as_dict(data).items():
            raw = _decode_b64(value)
            if raw is None:
                errs.append(v.invalid(Path("data").key(key), "<secret contents redacted>",
                                      "must be base64-encoded bytes"))
                continue
            decoded[key] = raw
            total += len(raw)
        if total > MAX_DATA_SIZE:
            errs.append(v.too_long(Path("data"), MAX_DATA_SIZE))
        errs.extend(self._validate_type(obj, decoded))
        return errs

    @staticmethod
    def _validate_type(obj: Obj, decoded: dict[str, bytes]) -> list[FieldError]:
        secret_type = str(obj.get("type") or "Opaque")
        data_path = Path("data")
        errs: list[FieldError] = []
        if secret_type == "kubernetes.io/service-account-token":
            if not as_dict(as_dict(obj.get("metadata")).get("annotations")).get(SA_NAME_ANNOTATION):
                errs.append(v.required(Path("metadata", "annotations").key(SA_NAME_ANNOTATION)))
        elif secret_type == "kubernetes.io/basic-auth" and "username" not in decoded and "password" not in decoded:
            errs.append(v.required(data_path.key("username")))
            errs.append(v.required(data_path.key("password")))
        for key in SECRET_TYPES_REQUIRED_KEYS.get(secret_type, ()):
            if key not in decoded:
                errs.append(v.required(data_path.key(key)))
            elif key in (".dockercfg", ".dockerconfigjson"):
                try:
                    json.loads(decoded[key])
                except ValueError as exc:
                    errs.append(v.invalid(data_path.key(key), "<secret contents redacted>", str(exc)))
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs = self.validate(new)
        errs.extend(v.immutable(new.get("type") or "Opaque", old.get("type") or "Opaque", Path("type")))
        errs.extend(_validate_immutable_data(new, old, ("data",)))
        return errs


# --- ServiceAccount and Event ----------------------------------------------------------------


class ServiceAccountStrategy(Strategy):
    kind = "ServiceAccount"
    tracks_generation = False

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        for field in ("secrets", "imagePullSecrets"):
            for i, ref in enumerate(as_list(obj.get(field))):
                if not isinstance(ref, dict):
                    errs.append(v.type_invalid(Path(field).index(i), ref, "must be an object"))
        return errs


EVENT_FIELD_SELECTORS: dict[str, Callable[[Obj], str]] = {
    **{f"involvedObject.{f}": _field("involvedObject", f)
       for f in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")},
    "reason": _field("reason"),
    "reportingComponent": _field("reportingComponent"),
    "source": _field("source", "component"),
    "type": _field("type"),
}


REPORTING_INSTANCE_MAX = 128
ACTION_MAX = 128
REASON_MAX = 128
NOTE_MAX = 1024


def _at_most(path: str, value: Any, limit: int) -> list[FieldError]:
    # Kubernetes reports these with an empty value, printed as "".
    return [v.invalid(path, "", f"can have at most {limit} characters")] if len(str(value or "")) > limit else []


class EventStrategy(Strategy):
    """core/v1 Events: ``legacyValidateEvent``, the only rules for writes through ``v1`` (those
    through ``events.k8s.io/v1`` add more: ``registry/events.py``). Paths are the internal names."""

    kind = "Event"
    tracks_generation = False
    allow_create_on_update = True
    field_selectors = EVENT_FIELD_SELECTORS

    def validate(self, obj: Obj) -> list[FieldError]:
        involved_ns = as_dict(obj.get("involvedObject")).get("namespace") or ""
        event_ns = as_dict(obj.get("metadata")).get("namespace") or ""
        ns_mismatch = [v.invalid(Path("involvedObject", "namespace"), involved_ns, "does not match event.namespace")]
        if not obj.get("eventTime"):
            # An old-style event: its namespace is its object's (or "default" for cluster objects).
            if (involved_ns and involved_ns != event_ns) or (not involved_ns and event_ns not in ("", "default")):
                return ns_mismatch
            return []
        errs: list[FieldError] = []
        if not involved_ns and event_ns not in ("default", "kube-system"):
            errs += ns_mismatch
        controller = str(obj.get("reportingComponent") or "")
        if not controller:
            errs.append(v.required("reportingController"))
        errs += [v.invalid("reportingController", controller, m) for m in v.is_qualified_name(controller)]
        for field, limit in (("reportingInstance", REPORTING_INSTANCE_MAX), ("action", ACTION_MAX),
                             ("reason", REASON_MAX)):
            if not obj.get(field):
                errs.append(v.required(field))
            errs += _at_most(field, obj.get(field), limit)
        return errs + _at_most("message", obj.get("message"), NOTE_MAX)


# --- ResourceQuota and LimitRange ------------------------------------------------------------

QUOTA_SCOPES = ("Terminating", "NotTerminating", "BestEffort", "NotBestEffort", "PriorityClass",
                "CrossNamespacePodAffinity")
SCOPE_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
LIMIT_TYPES = ("Pod", "Container", "PersistentVolumeClaim")


def _quota_name_msgs(name: str) -> list[str]:
    # Quota names are compute names (cpu), prefixed ones (requests.cpu) and counts (count/pods).
    return v.is_qualified_name(name)


class ResourceQuotaStrategy(Strategy):
    kind = "ResourceQuota"
    has_status = True
    tracks_generation = False

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {}

    def validate(self, obj: Obj) -> list[FieldError]:
        spec = as_dict(obj.get("spec"))
        path = Path("spec")
        errs = validate_resource_list(spec.get("hard"), path.child("hard"), name_msgs=_quota_name_msgs)
        for i, scope in enumerate(as_list(spec.get("scopes"))):
            errs.extend(validate_enum(scope, path.child("scopes").index(i), QUOTA_SCOPES))
        exprs_path = path.child("scopeSelector", "matchExpressions")
        for i, expr in enumerate(as_list(as_dict(spec.get("scopeSelector")).get("matchExpressions"))):
            expr = as_dict(expr)
            errs.extend(validate_enum(expr.get("scopeName"), exprs_path.index(i).child("scopeName"), QUOTA_SCOPES))
            errs.extend(validate_enum(expr.get("operator"), exprs_path.index(i).child("operator"), SCOPE_OPERATORS))
        return errs

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        status = as_dict(new.get("status"))
        errs: list[FieldError] = []
        for field in ("hard", "used"):
            errs.extend(validate_resource_list(status.get(field), Path("status", field), name_msgs=_quota_name_msgs))
        return errs


def default_limit_range_item(item: dict[str, Any]) -> None:
    """Container limits: default limit from max, default request from the default limit or min."""
    if item.get("type") != "Container":
        return
    default = dict(as_dict(item.get("default")))
    request = dict(as_dict(item.get("defaultRequest")))
    for name, qty in as_dict(item.get("max")).items():
        default.setdefault(name, qty)
    for name, qty in default.items():
        request.setdefault(name, qty)
    for name, qty in as_dict(item.get("min")).items():
        request.setdefault(name, qty)
    # Empty maps are omitted on the wire, so only non-empty ones are written.
    if default:
        item["default"] = default
    if request:
        item["defaultRequest"] = request


class LimitRangeStrategy(Strategy):
    kind = "LimitRange"
    tracks_generation = False

    def default(self, obj: Obj) -> None:
        for item in as_list(as_dict(obj.get("spec")).get("limits")):
            if isinstance(item, dict):
                default_limit_range_item(item)

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        path = Path("spec", "limits")
        for i, item in enumerate(as_list(as_dict(obj.get("spec")).get("limits"))):
            errs.extend(self._validate_item(as_dict(item), path.index(i)))
        return errs

    @staticmethod
    def _validate_item(item: dict[str, Any], path: Path) -> list[FieldError]:
        errs = validate_enum(item.get("type"), path.child("type"), LIMIT_TYPES)
        fields = ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio")
        for field in fields:
            errs.extend(validate_resource_list(item.get(field), path.child(field)))
        if errs:
            return errs
        if item.get("type") == "Pod":
            for field in ("default", "defaultRequest"):
                if item.get(field):
                    errs.append(v.forbidden(path.child(field), "may not be specified when `type` is 'Pod'"))
        maxes, mins = as_dict(item.get("max")), as_dict(item.get("min"))
        for name, low in mins.items():
            high = maxes.get(name)
            low_q, high_q = quantity_or_none(low), quantity_or_none(high)
            if high is not None and low_q is not None and high_q is not None and low_q > high_q:
                errs.append(v.invalid(path.child("min").key(name), low,
                                      f"min value {low} is greater than max value {high}"))
        return errs


# --- PersistentVolume and PersistentVolumeClaim ------------------------------------------------

ACCESS_MODES = ("ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod")
VOLUME_MODES = ("Block", "Filesystem")
RECLAIM_POLICIES = ("Delete", "Recycle", "Retain")
PV_SOURCES = (
    "gcePersistentDisk", "awsElasticBlockStore", "hostPath", "glusterfs", "nfs", "rbd", "iscsi", "cinder",
    "cephfs", "fc", "flocker", "flexVolume", "azureFile", "vsphereVolume", "quobyte", "azureDisk",
    "photonPersistentDisk", "portworxVolume", "scaleIO", "local", "storageos", "csi",
)


def _validate_access_modes(modes: Any, path: Path) -> list[FieldError]:
    modes = as_list(modes)
    if not modes:
        return [v.required(path, "at least 1 access mode is required")]
    errs: list[FieldError] = []
    for mode in modes:
        if mode not in ACCESS_MODES:
            errs.append(v.not_supported(path, mode, ACCESS_MODES))
    if "ReadWriteOncePod" in modes and len(modes) > 1:
        errs.append(v.forbidden(path, "may not use ReadWriteOncePod with other access modes"))
    return errs


class PersistentVolumeStrategy(ClusterScoped):
    kind = "PersistentVolume"
    has_status = True
    tracks_generation = False

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"phase": "Pending"}

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if isinstance(spec, dict):
            spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
            spec.setdefault("volumeMode", "Filesystem")
            host_path = spec.get("hostPath")
            if isinstance(host_path, dict):
                host_path.setdefault("type", "")
        status = obj.get("status")
        if isinstance(status, dict) and not status.get("phase"):
            status["phase"] = "Pending"

    def validate(self, obj: Obj) -> list[FieldError]:
        spec = obj.get("spec")
        path = Path("spec")
        if not isinstance(spec, dict):
            return [v.required(path)]
        errs = _validate_access_modes(spec.get("accessModes"), path.child("accessModes"))
        capacity = spec.get("capacity")
        if not capacity:
            errs.append(v.required(path.child("capacity")))
        elif not isinstance(capacity, dict) or set(capacity) != {"storage"}:
            errs.append(v.not_supported(path.child("capacity"), capacity, ("storage",)))
        else:
            errs.extend(validate_quantity(capacity["storage"], path.child("capacity").key("storage"), positive=True))
        sources = [s for s in PV_SOURCES if spec.get(s) is not None]
        if not sources:
            errs.append(v.required(path, "must specify a volume type"))
        for extra in sources[1:]:
            errs.append(v.forbidden(path.child(extra), "may not specify more than 1 volume type"))
        errs.extend(validate_enum(spec.get("persistentVolumeReclaimPolicy"),
                                  path.child("persistentVolumeReclaimPolicy"), RECLAIM_POLICIES, required=False))
        errs.extend(validate_enum(spec.get("volumeMode"), path.child("volumeMode"), VOLUME_MODES, required=False))
        if spec.get("storageClassName"):
            errs.extend(v.invalid(path.child("storageClassName"), spec["storageClassName"], m)
                        for m in v.is_dns1123_subdomain(str(spec["storageClassName"])))
        required = as_dict(spec.get("nodeAffinity")).get("required")
        if required is not None:
            errs.extend(validate_node_selector(required, path.child("nodeAffinity", "required")))
        if spec.get("local") is not None and spec.get("nodeAffinity") is None:
            errs.append(v.required(path.child("nodeAffinity"), "Local volume requires node affinity"))
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs = self.validate(new)
        new_spec, old_spec = as_dict(new.get("spec")), as_dict(old.get("spec"))
        if {s: new_spec.get(s) for s in PV_SOURCES} != {s: old_spec.get(s) for s in PV_SOURCES}:
            errs.append(v.forbidden(Path("spec", "persistentvolumesource"),
                                    "spec.persistentvolumesource is immutable after creation"))
        errs.extend(v.immutable(new_spec.get("volumeMode"), old_spec.get("volumeMode"), Path("spec", "volumeMode")))
        if old_spec.get("nodeAffinity") is not None:
            errs.extend(v.immutable(new_spec.get("nodeAffinity"), old_spec["nodeAffinity"],
                                    Path("spec", "nodeAffinity")))
        return errs

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return validate_enum(as_dict(new.get("status")).get("phase"), Path("status", "phase"),
                             ("Pending", "Available", "Bound", "Released", "Failed"), required=False)


_PVC_IMMUTABLE_MESSAGE = ("spec is immutable after creation except resources.requests and "
                          "volumeAttributesClassName for bound claims")


class PersistentVolumeClaimStrategy(Strategy):
    kind = "PersistentVolumeClaim"
    has_status = True
    tracks_generation = False

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"phase": "Pending"}

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if isinstance(spec, dict):
            spec.setdefault("volumeMode", "Filesystem")
        status = obj.get("status")
        if isinstance(status, dict) and not status.get("phase"):
            status["phase"] = "Pending"

    def validate(self, obj: Obj) -> list[FieldError]:
        spec = obj.get("spec")
        path = Path("spec")
        if not isinstance(spec, dict):
            return [v.required(path)]
        errs = _validate_access_modes(spec.get("accessModes"), path.child("accessModes"))
        requests = as_dict(as_dict(spec.get("resources")).get("requests"))
        if "storage" not in requests:
            errs.append(v.required(path.child("resources").key("storage")))
        else:
            errs.extend(validate_quantity(requests["storage"], path.child("resources").key("storage"), positive=True))
        resources = as_dict(spec.get("resources"))
        for field in ("requests", "limits"):
            errs.extend(validate_resource_list(resources.get(field), path.child("resources", field)))
        errs.extend(validate_enum(spec.get("volumeMode"), path.child("volumeMode"), VOLUME_MODES, required=False))
        if spec.get("selector") is not None:
            errs.extend(validate_label_selector_object(spec["selector"], path.child("selector")))
        if spec.get("storageClassName"):
            errs.extend(v.invalid(path.child("storageClassName"), spec["storageClassName"], m)
                        for m in v.is_dns1123_subdomain(str(spec["storageClassName"])))
        for field in ("dataSource", "dataSourceRef"):
            source = spec.get(field)
            if isinstance(source, dict):
                for key in ("kind", "name"):
                    if not source.get(key):
                        errs.append(v.required(path.child(field, key)))
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs = self.validate(new)
        new_spec = copy.deepcopy(as_dict(new.get("spec")))
        old_spec = copy.deepcopy(as_dict(old.get("spec")))
        if not old_spec.get("volumeName"):
            # The volume binder sets volumeName once.
            old_spec["volumeName"] = new_spec.get("volumeName")
            if old_spec["volumeName"] is None:
                old_spec.pop("volumeName")
        bound = as_dict(old.get("status")).get("phase") == "Bound"
        new_size = as_dict(as_dict(new_spec.get("resources")).get("requests")).get("storage")
        old_size = as_dict(as_dict(old_spec.get("resources")).get("requests")).get("storage")
        if bound:
            # Bound claims may be resized (grown) and change their volume attributes class.
            _set_storage_request(new_spec, old_size)
            new_spec.pop("volumeAttributesClassName", None)
            old_spec.pop("volumeAttributesClassName", None)
        if new_spec != old_spec:
            errs.append(v.forbidden(Path("spec"), _PVC_IMMUTABLE_MESSAGE))
        elif bound:
            new_q, old_q = quantity_or_none(new_size), quantity_or_none(old_size)
            if new_q is not None and old_q is not None and new_q < old_q:
                errs.append(v.forbidden(Path("spec", "resources", "requests", "storage"),
                                        "field can not be less than previous value"))
        return errs

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        status = as_dict(new.get("status"))
        errs = validate_enum(status.get("phase"), Path("status", "phase"), ("Pending", "Bound", "Lost"),
                             required=False)
        errs.extend(validate_resource_list(status.get("capacity"), Path("status", "capacity")))
        return errs


def _set_storage_request(spec: dict[str, Any], size: Any) -> None:
    resources = spec.get("resources")
    if not isinstance(resources, dict):
        resources = spec["resources"] = {}
    requests = resources.get("requests")
    if not isinstance(requests, dict):
        requests = resources["requests"] = {}
    if size is None:
        requests.pop("storage", None)
    else:
        requests["storage"] = size


# --- ReplicationController -----------------------------------------------------------------


class ReplicationControllerStrategy(Strategy):
    kind = "ReplicationController"
    has_status = True
    field_selectors = {"status.replicas": _field("status", "replicas")}

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"replicas": 0}

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        template = spec.get("template")
        labels = as_dict(template).get("metadata", {}).get("labels") if isinstance(template, dict) else None
        if isinstance(labels, dict) and labels:
            if not spec.get("selector"):
                spec["selector"] = dict(labels)
            meta = obj.setdefault("metadata", {})
            if not meta.get("labels"):
                meta["labels"] = dict(labels)
        spec.setdefault("replicas", 1)
        if isinstance(template, dict):
            default_pod_template(template)

    def validate(self, obj: Obj) -> list[FieldError]:
        spec = obj.get("spec")
        path = Path("spec")
        if not isinstance(spec, dict):
            return [v.required(path)]
        errs = validate_nonneg(spec.get("replicas"), path.child("replicas"))
        errs.extend(validate_nonneg(spec.get("minReadySeconds"), path.child("minReadySeconds")))
        selector = spec.get("selector")
        if not selector:
            errs.append(v.required(path.child("selector")))
        else:
            errs.extend(v.validate_labels(selector, path.child("selector")))
        template = spec.get("template")
        tpath = path.child("template")
        if not isinstance(template, dict):
            errs.append(v.required(tpath))
            return errs
        labels = as_dict(as_dict(template.get("metadata")).get("labels"))
        if isinstance(selector, dict) and selector and any(labels.get(k) != val for k, val in selector.items()):
            errs.append(v.invalid(tpath.child("metadata", "labels"), labels,
                                  "`selector` does not match template `labels`"))
        errs.extend(validate_pod_template(template, tpath, restart_policies=("Always",)))
        if as_dict(template.get("spec")).get("activeDeadlineSeconds") is not None:
            errs.append(v.forbidden(tpath.child("spec", "activeDeadlineSeconds"),
                                    "activeDeadlineSeconds in ReplicationController is not Supported"))
        return errs

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        status = as_dict(new.get("status"))
        errs: list[FieldError] = []
        for field in ("replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas",
                      "observedGeneration"):
            errs.extend(validate_nonneg(status.get(field), Path("status", field)))
        return errs


# --- the table ----------------------------------------------------------------------------

STRATEGIES: dict[tuple[str, str], Strategy] = {
    ("", s.kind): s
    for s in (
        NamespaceStrategy(),
        PodStrategy(),
        NodeStrategy(),
        ServiceStrategy(),
        EndpointsStrategy(),
        ConfigMapStrategy(),
        SecretStrategy(),
        ServiceAccountStrategy(),
        EventStrategy(),
        ResourceQuotaStrategy(),
        LimitRangeStrategy(),
        PersistentVolumeStrategy(),
        PersistentVolumeClaimStrategy(),
        ReplicationControllerStrategy(),
        PodTemplateStrategy(),
    )
}
