"""Strategies of ``storage.k8s.io/v1``: StorageClass, CSIDriver, CSINode, VolumeAttachment and
CSIStorageCapacity.

Each class mirrors ``pkg/registry/storage/<kind>/strategy.go`` with the rules of
``pkg/apis/storage/validation`` and the defaults of ``pkg/apis/storage/v1/defaults.go`` (Kubernetes
1.32, default feature gates). Field paths and messages are Kubernetes' own, typos included
(``spec.attachedRequired``), because clients print them verbatim.

What each kind's strategy decides:

* CSIDriver sets ``metadata.generation`` and bumps it on spec changes; ``attachRequired`` and
  ``volumeLifecycleModes`` are immutable (``podInfoOnMount`` and ``fsGroupPolicy`` became mutable
  in 1.28).
* VolumeAttachment has a status written only through ``/status``; its whole spec is immutable.
* CSINode drivers may be added and removed, but an existing driver entry may not change.
* CSIStorageCapacity's ``nodeTopology`` and ``storageClassName`` are immutable.
* StorageClass, CSINode, VolumeAttachment and CSIStorageCapacity do not keep a generation.
"""

from __future__ import annotations

from typing import Any

from kybernetes.api import validation as v
from kybernetes.api.label_selectors import validate_label_selector_object
from kybernetes.api.validation import FieldError, Path
from kybernetes.api.validation.fields import as_dict, as_list, is_int, validate_quantity
from kybernetes.apiserver.registry.strategy import ClusterScoped, Obj, Strategy

# --- shared rules ------------------------------------------------------------------------------

CSI_DRIVER_NAME_MAX = 63


def _msgs(value: Any, path: Path | str, check: Any) -> list[FieldError]:
    return [v.invalid(path, value, m) for m in check(str(value))]


def validate_csi_driver_name(name: Any, path: Path | str) -> list[FieldError]:
    """``ValidateCSIDriverName`` of core validation: required, at most 63 characters, a DNS
    subdomain once lower-cased."""
    name = "" if name is None else str(name)
    errs: list[FieldError] = []
    if not name:
        errs.append(v.required(path))
    if len(name) > CSI_DRIVER_NAME_MAX:
        errs.append(v.too_long(path, CSI_DRIVER_NAME_MAX))
    errs += [v.invalid(path, name, m) for m in v.is_dns1123_subdomain(name.lower())]
    return errs


def _validate_qualified_name(value: Any, path: Path | str) -> list[FieldError]:
    return _msgs(value, path, v.is_qualified_name)


# --- StorageClass ------------------------------------------------------------------------------

RECLAIM_POLICIES = ("Delete", "Retain")
BINDING_MODES = ("Immediate", "WaitForFirstConsumer")
MAX_PARAMETERS = 512
MAX_PARAMETERS_SIZE = 256 * 1024


class StorageClassStrategy(ClusterScoped):
    kind = "StorageClass"
    tracks_generation = False

    def default(self, obj: Obj) -> None:
        if not obj.get("reclaimPolicy"):
            obj["reclaimPolicy"] = "Delete"
        if not obj.get("volumeBindingMode"):
            obj["volumeBindingMode"] = "Immediate"

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        provisioner = obj.get("provisioner")
        if not provisioner:
            errs.append(v.required(Path("provisioner")))
        else:
            errs += _validate_qualified_name(str(provisioner).lower(), Path("provisioner"))
        params = obj.get("parameters")
        if isinstance(params, dict):
            if len(params) > MAX_PARAMETERS:
                errs.append(v.too_long(Path("parameters"), MAX_PARAMETERS))
            else:
                size = 0
                for k, val in params.items():
                    if not k:
                        errs.append(v.invalid(Path("parameters"), k, "field can not be empty."))
                    size += len(k) + len(str(val))
                if size > MAX_PARAMETERS_SIZE:
                    errs.append(v.too_long(Path("parameters"), MAX_PARAMETERS_SIZE))
        policy = obj.get("reclaimPolicy")
        if policy and policy not in RECLAIM_POLICIES:
            errs.append(v.not_supported(Path("reclaimPolicy"), policy, RECLAIM_POLICIES))
        mode = obj.get("volumeBindingMode")
        if mode is None:
            errs.append(v.required(Path("volumeBindingMode")))
        elif mode not in BINDING_MODES:
            errs.append(v.not_supported(Path("volumeBindingMode"), mode, BINDING_MODES))
        for i, term in enumerate(as_list(obj.get("allowedTopologies"))):
            tp = Path("allowedTopologies").index(i)
            for j, expr in enumerate(as_list(as_dict(term).get("matchLabelExpressions"))):
                expr, ep = as_dict(expr), tp.child("matchLabelExpressions").index(j)
                errs += _validate_qualified_name(expr.get("key") or "", ep.child("key"))
                if not as_list(expr.get("values")):
                    errs.append(v.required(ep.child("values"), "must specify as least one value"))
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs = self.validate(new)
        if (new.get("parameters") or {}) != (old.get("parameters") or {}):
            errs.append(v.forbidden(Path("parameters"), "updates to parameters are forbidden."))
        if new.get("provisioner") != old.get("provisioner"):
            errs.append(v.forbidden(Path("provisioner"), "updates to provisioner are forbidden."))
        if new.get("reclaimPolicy") != old.get("reclaimPolicy"):
            errs.append(v.forbidden(Path("reclaimPolicy"), "updates to reclaimPolicy are forbidden."))
        errs += v.immutable(new.get("volumeBindingMode"), old.get("volumeBindingMode"), Path("volumeBindingMode"))
        return errs


# --- CSIDriver ---------------------------------------------------------------------------------

FS_GROUP_POLICIES = ("File", "None", "ReadWriteOnceWithFSType")
LIFECYCLE_MODES = ("Persistent", "Ephemeral")
MIN_TOKEN_SECONDS = 600
MAX_TOKEN_SECONDS = 1 << 32
_DRIVER_SPEC_BOOLS = (
    # (field, the path Kubernetes reports when it is missing)
    ("attachRequired", "attachedRequired"),
    ("podInfoOnMount", "podInfoOnMount"),
    ("storageCapacity", "storageCapacity"),
    ("seLinuxMount", "seLinuxMount"),  # required while SELinuxMountReadWriteOncePod is on (1.32: beta, on)
)


def _validate_token_requests(requests: Any, path: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    seen: set[str] = set()
    for i, req in enumerate(as_list(requests)):
        req, rp = as_dict(req), path.index(i)
        audience = str(req.get("audience") or "")
        if audience in seen:
            errs.append(v.duplicate(rp.child("audience"), audience))
            continue
        seen.add(audience)
        seconds = req.get("expirationSeconds")
        if not is_int(seconds):
            continue
        if seconds < MIN_TOKEN_SECONDS:
            errs.append(v.invalid(rp.child("expirationSeconds"), seconds, "may not specify a duration less than 10 minutes"))
        if seconds > MAX_TOKEN_SECONDS:
            errs.append(v.invalid(rp.child("expirationSeconds"), seconds,
                                  "may not specify a duration larger than 2^32 seconds"))
    return errs


class CSIDriverStrategy(ClusterScoped):
    kind = "CSIDriver"
    tracks_generation = True  # set to 1 on create, bumped on every spec change

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        for field, value in (("attachRequired", True), ("podInfoOnMount", False), ("storageCapacity", False),
                             ("requiresRepublish", False), ("seLinuxMount", False)):
            if spec.get(field) is None:
                spec[field] = value
        if spec.get("fsGroupPolicy") is None:
            spec["fsGroupPolicy"] = "ReadWriteOnceWithFSType"
        if not spec.get("volumeLifecycleModes"):
            spec["volumeLifecycleModes"] = ["Persistent"]

    def validate(self, obj: Obj) -> list[FieldError]:
        spec, p = as_dict(obj.get("spec")), Path("spec")
        errs: list[FieldError] = []
        for field, reported in _DRIVER_SPEC_BOOLS:
            if spec.get(field) is None:
                errs.append(v.required(p.child(reported)))
        policy = spec.get("fsGroupPolicy")
        if policy is not None and policy not in FS_GROUP_POLICIES:
            errs.append(v.not_supported(p.child("fsGroupPolicy"), policy, FS_GROUP_POLICIES))
        errs += _validate_token_requests(spec.get("tokenRequests"), p.child("tokenRequests"))
        for mode in as_list(spec.get("volumeLifecycleModes")):
            if mode not in LIFECYCLE_MODES:
                errs.append(v.not_supported(p.child("volumeLifecycleModes"), mode, LIFECYCLE_MODES))
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        new_spec, old_spec = as_dict(new.get("spec")), as_dict(old.get("spec"))
        errs = self.validate(new)
        errs += v.immutable(new_spec.get("attachRequired"), old_spec.get("attachRequired"),
                            Path("spec", "attachedRequired"))
        errs += v.immutable(new_spec.get("volumeLifecycleModes"), old_spec.get("volumeLifecycleModes"),
                            Path("spec", "volumeLifecycleModes"))
        return errs


# --- CSINode -----------------------------------------------------------------------------------

CSI_NODE_ID_MAX = 192
CSI_NODE_ID_LONGER_MAX = 256


def _validate_csi_node_driver(driver: dict[str, Any], seen: set[str], path: Path, id_max: int) -> list[FieldError]:
    name = driver.get("name")
    errs = validate_csi_driver_name(name, path.child("name"))
    node_id = str(driver.get("nodeID") or "")
    if not node_id:
        errs.append(v.required(path.child("nodeID")))
    if len(node_id) > id_max:
        errs.append(v.invalid(path.child("nodeID"), node_id, f"must be {id_max} characters or less"))
    count = as_dict(driver.get("allocatable")).get("count")
    if is_int(count) and count < 0:
        errs.append(v.invalid(path.child("allocatable", "count"), count, "must be greater than or equal to 0"))
    if name in seen:
        errs.append(v.duplicate(path.child("name"), name))
    seen.add(str(name))
    keys: set[str] = set()
    for key in as_list(driver.get("topologyKeys")):
        if not key:
            errs.append(v.required(path))
        if key in keys:
            errs.append(v.duplicate(path, key))
        keys.add(key)
        errs += _validate_qualified_name(key, path)
    return errs


def _driver_errors(obj: Obj, id_max: int) -> list[FieldError]:
    path = Path("spec", "drivers")
    errs: list[FieldError] = []
    seen: set[str] = set()
    for i, driver in enumerate(as_list(as_dict(obj.get("spec")).get("drivers"))):
        errs += _validate_csi_node_driver(as_dict(driver), seen, path.index(i), id_max)
    return errs


class CSINodeStrategy(ClusterScoped):
    kind = "CSINode"
    tracks_generation = False

    def validate(self, obj: Obj) -> list[FieldError]:
        return _driver_errors(obj, CSI_NODE_ID_MAX)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        old_drivers = [as_dict(d) for d in as_list(as_dict(old.get("spec")).get("drivers"))]
        # A node ID longer than 192 characters is kept only where one was already stored.
        long_ids = any(len(str(d.get("nodeID") or "")) > CSI_NODE_ID_MAX for d in old_drivers)
        errs = _driver_errors(new, CSI_NODE_ID_LONGER_MAX if long_ids else CSI_NODE_ID_MAX)
        path = Path("spec", "drivers")
        for old_driver in old_drivers:
            for new_driver in as_list(as_dict(new.get("spec")).get("drivers")):
                if as_dict(new_driver).get("name") == old_driver.get("name"):
                    errs += v.immutable(new_driver, old_driver, path)
        return errs


# --- VolumeAttachment --------------------------------------------------------------------------

MAX_ATTACHMENT_METADATA_SIZE = 256 * 1024
MAX_VOLUME_ERROR_MESSAGE = 1024
_EXACTLY_ONE_SOURCE = "must specify exactly one of inlineVolumeSpec and persistentVolumeName"


def _validate_inline_volume_spec(spec: dict[str, Any], path: Path) -> list[FieldError]:
    """The inline-volume part of ``ValidatePersistentVolumeSpec``: only a CSI source, no capacity,
    no claimRef."""
    errs: list[FieldError] = []
    if spec.get("claimRef") is not None:
        errs.append(v.forbidden(path.child("claimRef"), "may not be specified in the context of inline volumes"))
    if spec.get("capacity"):
        errs.append(v.forbidden(path.child("capacity"), "may not be specified in the context of inline volumes"))
    csi = spec.get("csi")
    if csi is None:
        errs.append(v.required(path.child("csi"), "has to be specified in the context of inline volumes"))
    else:
        csi = as_dict(csi)
        errs += validate_csi_driver_name(csi.get("driver"), path.child("csi", "driver"))
        if not csi.get("volumeHandle"):
            errs.append(v.required(path.child("csi", "volumeHandle")))
    return errs


def _validate_volume_error(error: Any, path: Path) -> list[FieldError]:
    if not isinstance(error, dict):
        return []
    if len(str(error.get("message") or "")) > MAX_VOLUME_ERROR_MESSAGE:
        # Kubernetes reports the metadata size limit here, not the message limit.
        return [v.too_long(path.child("message"), MAX_ATTACHMENT_METADATA_SIZE)]
    return []


class VolumeAttachmentStrategy(ClusterScoped):
    kind = "VolumeAttachment"
    has_status = True
    tracks_generation = False

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"attached": False}

    def validate(self, obj: Obj) -> list[FieldError]:
        return self._validate_common(obj) + self._validate_v1(obj)

    @staticmethod
    def _validate_v1(obj: Obj) -> list[FieldError]:
        """``ValidateVolumeAttachmentV1``: checks that only creates of v1 objects get."""
        spec = as_dict(obj.get("spec"))
        errs = validate_csi_driver_name(spec.get("attacher"), "spec.attacher")
        pv_name = as_dict(spec.get("source")).get("persistentVolumeName")
        if pv_name is not None:
            errs += _msgs(pv_name, "spec.source.persistentVolumeName", v.is_dns1123_subdomain)
        return errs

    def _validate_common(self, obj: Obj) -> list[FieldError]:
        """``ValidateVolumeAttachment``: the checks of every create and update."""
        spec, p = as_dict(obj.get("spec")), Path("spec")
        errs: list[FieldError] = []
        if not spec.get("attacher"):
            errs.append(v.required(p.child("attacher")))
        source, sp = as_dict(spec.get("source")), p.child("source")
        inline, pv_name = source.get("inlineVolumeSpec"), source.get("persistentVolumeName")
        if inline is None and pv_name is None:
            errs.append(v.required(sp, _EXACTLY_ONE_SOURCE))
        elif inline is not None and pv_name is not None:
            errs.append(v.forbidden(sp, _EXACTLY_ONE_SOURCE))
        elif pv_name is not None and not pv_name:
            errs.append(v.required(sp.child("persistentVolumeName"), "must specify non empty persistentVolumeName"))
        elif inline is not None:
            errs += _validate_inline_volume_spec(as_dict(inline), sp.child("inlineVolumeSpec"))
        errs += _msgs(spec.get("nodeName") or "", p.child("nodeName"), v.is_dns1123_subdomain)
        return errs + self._validate_status(as_dict(obj.get("status")))

    @staticmethod
    def _validate_status(status: dict[str, Any]) -> list[FieldError]:
        p = Path("status")
        errs: list[FieldError] = []
        metadata = as_dict(status.get("attachmentMetadata"))
        if sum(len(k) + len(str(val)) for k, val in metadata.items()) > MAX_ATTACHMENT_METADATA_SIZE:
            errs.append(v.too_long(p.child("attachmentMetadata"), MAX_ATTACHMENT_METADATA_SIZE))
        errs += _validate_volume_error(status.get("attachError"), p.child("attachError"))
        errs += _validate_volume_error(status.get("detachError"), p.child("detachError"))
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs = self._validate_common(new)
        if new.get("spec") != old.get("spec"):
            errs.append(v.invalid(Path("spec"), new.get("spec"), "field is immutable"))
        return errs

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return self.validate_update(new, old)


# --- CSIStorageCapacity ------------------------------------------------------------------------


class CSIStorageCapacityStrategy(Strategy):
    kind = "CSIStorageCapacity"
    tracks_generation = False

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        topology = obj.get("nodeTopology")
        if topology is not None:
            errs += validate_label_selector_object(topology, Path("nodeTopology"))
        errs += _msgs(obj.get("storageClassName") or "", Path("storageClassName"), v.is_dns1123_subdomain)
        if obj.get("capacity") is not None:
            errs += validate_quantity(obj["capacity"], Path("capacity"))
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs = self.validate(new)
        for field in ("nodeTopology", "storageClassName"):
            errs += v.immutable(new.get(field), old.get(field), Path(field))
        return errs


STRATEGIES: dict[tuple[str, str], Strategy] = {
    ("storage.k8s.io", "StorageClass"): StorageClassStrategy(),
    ("storage.k8s.io", "CSIDriver"): CSIDriverStrategy(),
    ("storage.k8s.io", "CSINode"): CSINodeStrategy(),
    ("storage.k8s.io", "VolumeAttachment"): VolumeAttachmentStrategy(),
    ("storage.k8s.io", "CSIStorageCapacity"): CSIStorageCapacityStrategy(),
}
