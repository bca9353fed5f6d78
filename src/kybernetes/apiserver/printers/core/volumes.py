"""Printers of PersistentVolume and PersistentVolumeClaim.

Like every core printer, each row function mirrors Kubernetes' ``printX`` for the kind (see
:mod:`kybernetes.apiserver.printers.core`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kybernetes.api.storageutil import claim_class, volume_class
from kybernetes.apiserver.printers._common import (
    JSON,
    Cells,
    Printer,
    age,
    age_col,
    col,
    dig,
    dlist,
    dmap,
    dstr,
    is_deleting,
    name_col,
    name_of,
)

_ACCESS_MODES = (
    ("ReadWriteOnce", "RWO"),
    ("ReadOnlyMany", "ROX"),
    ("ReadWriteMany", "RWX"),
    ("ReadWriteOncePod", "RWOP"),
)


def access_modes(modes: list[Any]) -> str:
    """``GetAccessModesAsString``: short forms in a fixed order, duplicates dropped."""
    return ",".join(short for full, short in _ACCESS_MODES if full in modes)


def _pv_cells(pv: JSON, now: datetime) -> Cells:
    spec = dmap(pv, "spec")
    claim = ""
    ref = dig(spec, "claimRef")
    if isinstance(ref, dict):
        claim = f"{ref.get('namespace') or ''}/{ref.get('name') or ''}"
    phase = "Terminating" if is_deleting(pv) else dstr(pv, "status", "phase")
    klass = volume_class(pv)
    capacity = dig(spec, "capacity", "storage")
    return [
        name_of(pv),
        str(capacity) if capacity is not None else "0",
        access_modes(dlist(spec, "accessModes")),
        dstr(spec, "persistentVolumeReclaimPolicy"),
        phase,
        claim,
        klass,
        dstr(spec, "volumeAttributesClassName") or "<unset>",
        dstr(pv, "status", "reason"),
        age(pv, now),
        dstr(spec, "volumeMode") or "<unset>",
    ]


PERSISTENT_VOLUME = Printer(
    (
        name_col(),
        col("Capacity", description="The volume's storage capacity."),
        col("Access Modes", description="How the volume can be mounted."),
        col("Reclaim Policy", description="What happens to the volume when its claim is released."),
        col("Status", description="The volume's phase."),
        col("Claim", description="The claim bound to the volume."),
        col("StorageClass", description="StorageClass of the pv"),
        col("VolumeAttributesClass", description="VolumeAttributesClass of the pv"),
        col("Reason", description="Why the volume is in its phase."),
        age_col(),
        col("VolumeMode", description="Filesystem or Block.", priority=1),
    ),
    _pv_cells,
)


def _pvc_cells(pvc: JSON, now: datetime) -> Cells:
    spec = dmap(pvc, "spec")
    phase = "Terminating" if is_deleting(pvc) else dstr(pvc, "status", "phase")
    capacity, modes = "", ""
    if dstr(spec, "volumeName"):
        modes = access_modes(dlist(pvc, "status", "accessModes"))
        cap = dig(pvc, "status", "capacity", "storage")
        capacity = str(cap) if cap is not None else "0"
    klass = claim_class(pvc)
    return [
        name_of(pvc),
        phase,
        dstr(spec, "volumeName"),
        capacity,
        modes,
        klass,
        dstr(spec, "volumeAttributesClassName") or "<unset>",
        age(pvc, now),
        dstr(spec, "volumeMode") or "<unset>",
    ]


PERSISTENT_VOLUME_CLAIM = Printer(
    (
        name_col(),
        col("Status", description="The claim's phase."),
        col("Volume", description="The volume bound to the claim."),
        col("Capacity", description="The bound volume's capacity."),
        col("Access Modes", description="How the bound volume can be mounted."),
        col("StorageClass", description="StorageClass of the pvc"),
        col("VolumeAttributesClass", description="VolumeAttributesClass of the pvc"),
        age_col(),
        col("VolumeMode", description="Filesystem or Block.", priority=1),
    ),
    _pvc_cells,
)
