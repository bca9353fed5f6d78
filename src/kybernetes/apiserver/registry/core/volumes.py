"""PersistentVolumes and PersistentVolumeClaims.

Mirrors ``pkg/registry/core/<resource>`` with the rules of ``pkg/apis/core/validation`` and the
``v1`` defaults; field paths and messages are Kubernetes' own.
"""

from __future__ import annotations

import copy
from typing import Any

from kybernetes.api import validation as v
from kybernetes.api.label_selectors import validate_label_selector_object
from kybernetes.api.storageutil import claim_has_class
from kybernetes.api.timeutil import format_rfc3339
from kybernetes.api.validation import FieldError, Path
from kybernetes.api.validation.fields import (
    as_dict,
    as_list,
    quantity_or_none,
    validate_enum,
    validate_quantity,
    validate_resource_list,
)
from kybernetes.apiserver.registry.core.podvalidation import validate_node_selector
from kybernetes.apiserver.registry.strategy import ClusterScoped, Obj, Strategy

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
        obj["status"] = {"phase": "Pending", "lastPhaseTransitionTime": format_rfc3339()}

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        """``status.lastPhaseTransitionTime`` (PersistentVolumeLastPhaseTransitionTime, GA in 1.31):
        kept while the phase stays; now when it changes, unless the writer set a new time."""
        super().prepare_for_status_update(new, old)
        status, old_status = new.get("status"), as_dict(old.get("status"))
        if not isinstance(status, dict):
            return
        written = status.get("lastPhaseTransitionTime")
        if status.get("phase") == old_status.get("phase"):
            if written is None and old_status.get("lastPhaseTransitionTime") is not None:
                status["lastPhaseTransitionTime"] = old_status["lastPhaseTransitionTime"]
        elif written is None or written == old_status.get("lastPhaseTransitionTime"):
            status["lastPhaseTransitionTime"] = format_rfc3339()

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
        if not claim_has_class(old):
            # A claim without a class may be given one later, not "" (RetroactiveDefaultStorageClass).
            old_spec.pop("storageClassName", None)
            if new_spec.get("storageClassName"):
                old_spec["storageClassName"] = new_spec["storageClassName"]
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
