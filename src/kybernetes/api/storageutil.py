"""Facts about PersistentVolumes, claims and StorageClasses that several components read
(Kubernetes' ``component-helpers/storage/volume`` helpers): the class a claim or volume is of, the
default StorageClass, the binding annotations, and whether a volume can serve a claim's access modes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from kybernetes.api.obj import Obj

IS_DEFAULT = "storageclass.kubernetes.io/is-default-class"
BETA_IS_DEFAULT = "storageclass.beta.kubernetes.io/is-default-class"
BETA_CLASS = "volume.beta.kubernetes.io/storage-class"
"""The class as the beta annotation on a claim or a volume; it wins over ``spec.storageClassName``."""

ANN_BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
ANN_BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
ANN_PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
ANN_SELECTED_NODE = "volume.kubernetes.io/selected-node"
ANN_STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
ANN_BETA_STORAGE_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"

WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"


def annotations_of(obj: Obj) -> dict[str, str]:
    """An object's annotations, or {} when it has none (or they are malformed)."""
    meta = obj.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    return annotations if isinstance(annotations, dict) else {}


def _spec(obj: Obj) -> dict[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def is_default_storage_class(sc: Obj) -> bool:
    """``storageutil.IsDefaultAnnotation``: the GA or the beta annotation is exactly ``"true"``."""
    annotations = annotations_of(sc)
    return annotations.get(IS_DEFAULT) == "true" or annotations.get(BETA_IS_DEFAULT) == "true"


def newest_default(classes: Iterable[Obj], is_default: Callable[[Obj], bool] = is_default_storage_class) -> Obj | None:
    """The default class among ``classes``: of those ``is_default`` accepts, the newest by
    creationTimestamp, ties broken by the smaller name; ``None`` if there is no default."""
    defaults = sorted((c for c in classes if is_default(c)), key=lambda c: str(c["metadata"].get("name", "")))
    defaults.sort(key=lambda c: str(c["metadata"].get("creationTimestamp") or ""), reverse=True)
    return defaults[0] if defaults else None


def claim_has_class(pvc: Obj) -> bool:
    """``PersistentVolumeClaimHasClass``: the field is set (even to ``""``) or the beta annotation
    is present."""
    return _spec(pvc).get("storageClassName") is not None or BETA_CLASS in annotations_of(pvc)


def claim_class(pvc: Obj) -> str:
    """``GetPersistentVolumeClaimClass``: the beta annotation, else ``spec.storageClassName``, else ""."""
    annotations = annotations_of(pvc)
    if BETA_CLASS in annotations:
        return str(annotations[BETA_CLASS])
    return str(_spec(pvc).get("storageClassName") or "")


def volume_class(pv: Obj) -> str:
    """``GetPersistentVolumeClass``: the beta annotation, else ``spec.storageClassName``, else ""."""
    annotations = annotations_of(pv)
    if BETA_CLASS in annotations:
        return str(annotations[BETA_CLASS])
    return str(_spec(pv).get("storageClassName") or "")


def volume_mode(obj: Obj) -> str:
    """A claim's or volume's ``spec.volumeMode``; unset means ``Filesystem``."""
    return str(_spec(obj).get("volumeMode") or "Filesystem")


def access_modes(obj: Obj) -> list[str]:
    modes = _spec(obj).get("accessModes")
    return [str(m) for m in modes] if isinstance(modes, list) else []


def volume_serves_access_modes(pv: Obj, pvc: Obj) -> bool:
    """``CheckAccessModes``: the volume offers every access mode the claim asks for."""
    offered = set(access_modes(pv))
    return all(m in offered for m in access_modes(pvc))


def is_volume_bound_to_claim(pv: Obj, pvc: Obj) -> bool:
    """``IsVolumeBoundToClaim``: the volume's claimRef names the claim (and its uid, once set)."""
    ref = _spec(pv).get("claimRef")
    if not isinstance(ref, dict):
        return False
    meta = pvc.get("metadata") or {}
    if ref.get("name") != meta.get("name") or ref.get("namespace") != meta.get("namespace"):
        return False
    return not ref.get("uid") or ref.get("uid") == meta.get("uid")
