"""Printers of ``storage.k8s.io/v1`` StorageClass, CSIDriver, CSINode, VolumeAttachment and CSIStorageCapacity,
as Kubernetes' ``printCSIDriver``, ``printCSINode``, ``printVolumeAttachment`` and
``printCSIStorageCapacity`` and StorageClass, as ``printStorageClass``.

Boolean cells are JSON booleans (the columns are of type ``boolean``); unset optional values print
as Kubernetes prints them (``<unset>``, ``<none>``). CSIStorageCapacity has no Age column in
Kubernetes, so none here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kybernetes.api.quantity import canonical
from kybernetes.api.storageutil import is_default_storage_class
from kybernetes.apiserver.printers._common import (
    JSON,
    Cells,
    Printer,
    age,
    age_col,
    col,
    dig,
    dlist,
    dstr,
    name_col,
    name_of,
)


def _flag(obj: JSON, field: str, default: bool) -> bool:
    value = dig(obj, "spec", field)
    return value if isinstance(value, bool) else default


def _csi_driver_cells(d: JSON, now: datetime) -> Cells:
    audiences = [str(t.get("audience") or "") for t in dlist(d, "spec", "tokenRequests") if isinstance(t, dict)]
    modes = ",".join(str(m) for m in dlist(d, "spec", "volumeLifecycleModes"))
    return [
        name_of(d),
        _flag(d, "attachRequired", True),
        _flag(d, "podInfoOnMount", False),
        _flag(d, "storageCapacity", False),
        ",".join(audiences) if audiences else "<unset>",
        _flag(d, "requiresRepublish", False),
        modes or "<none>",
        age(d, now),
    ]


CSI_DRIVER = Printer(
    (
        name_col(),
        col("AttachRequired", "boolean", "Whether the driver needs an attach operation (a VolumeAttachment)."),
        col("PodInfoOnMount", "boolean", "Whether the driver gets the pod's name, namespace and UID on mount."),
        col("StorageCapacity", "boolean", "Whether the scheduler considers the driver's storage capacity."),
        col("TokenRequests", description="Audiences of the service account tokens the driver gets on mount."),
        col("RequiresRepublish", "boolean", "Whether NodePublishVolume is called periodically."),
        col("Modes", description="The volume lifecycle modes the driver supports."),
        age_col(),
    ),
    _csi_driver_cells,
)

CSI_NODE = Printer(
    (
        name_col(),
        col("Drivers", "integer", "The number of CSI drivers registered on the node."),
        age_col(),
    ),
    lambda n, now: [name_of(n), len(dlist(n, "spec", "drivers")), age(n, now)],
)


def _volume_attachment_cells(va: JSON, now: datetime) -> Cells:
    attached = dig(va, "status", "attached")
    return [
        name_of(va),
        dstr(va, "spec", "attacher"),
        dstr(va, "spec", "source", "persistentVolumeName"),
        dstr(va, "spec", "nodeName"),
        attached if isinstance(attached, bool) else False,
        age(va, now),
    ]


VOLUME_ATTACHMENT = Printer(
    (
        name_col(),
        col("Attacher", description="The volume driver that attaches the volume."),
        col("PV", description="The PersistentVolume being attached."),
        col("Node", description="The node the volume is attached to."),
        col("Attached", "boolean", "Whether the volume is attached."),
        age_col(),
    ),
    _volume_attachment_cells,
)


def _capacity(value: Any) -> str:
    if value is None:
        return "<unset>"
    try:
        return canonical(value)
    except (TypeError, ValueError):
        return str(value)


CSI_STORAGE_CAPACITY = Printer(
    (
        name_col(),
        col("StorageClassName", description="The StorageClass the capacity applies to."),
        col("Capacity", description="The capacity available for new volumes of that class."),
    ),
    lambda c, now: [name_of(c), str(c.get("storageClassName") or ""), _capacity(c.get("capacity"))],
)

def _storage_class_cells(sc: JSON, now: datetime) -> Cells:
    name = name_of(sc)
    if is_default_storage_class(sc):
        name += " (default)"
    expand = sc.get("allowVolumeExpansion")
    return [
        name,
        dstr(sc, "provisioner"),
        dstr(sc, "reclaimPolicy") or "Delete",
        dstr(sc, "volumeBindingMode") or "Immediate",
        expand if isinstance(expand, bool) else False,
        age(sc, now),
    ]


STORAGE_CLASS = Printer(
    (
        name_col(),
        col("Provisioner", description="The volume plugin that provisions volumes of this class."),
        col("ReclaimPolicy", description="What happens to provisioned volumes when released."),
        col("VolumeBindingMode", description="When volumes are bound and provisioned."),
        col("AllowVolumeExpansion", description="Whether volumes of this class may be expanded."),
        age_col(),
    ),
    _storage_class_cells,
)


BY_GROUP_KIND: dict[tuple[str, str], Printer] = {
    ("storage.k8s.io", "StorageClass"): STORAGE_CLASS,
    ("storage.k8s.io", "CSIDriver"): CSI_DRIVER,
    ("storage.k8s.io", "CSINode"): CSI_NODE,
    ("storage.k8s.io", "VolumeAttachment"): VOLUME_ATTACHMENT,
    ("storage.k8s.io", "CSIStorageCapacity"): CSI_STORAGE_CAPACITY,
}
