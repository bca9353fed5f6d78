"""StorageObjectInUseProtection (Kubernetes' ``plugin/pkg/admission/storage/storageobjectinuseprotection``,
on by default; mutating, PV and PVC CREATE).

Every new PersistentVolume gets the ``kubernetes.io/pv-protection`` finalizer and every new
PersistentVolumeClaim ``kubernetes.io/pvc-protection`` (once: not twice if the client sent it), so
that deleting one that is still in use only marks it. The controller manager's pv-protection and
pvc-protection controllers (:mod:`kybernetes.controllers.volumeprotection`) remove the finalizer
once the object is unused, and the delete completes.
"""

from __future__ import annotations

from kybernetes.api.obj import Obj
from kybernetes.apiserver.admission.chain import CREATE, Attributes, Handler, PluginInit

NAME = "StorageObjectInUseProtection"

PV_PROTECTION = "kubernetes.io/pv-protection"
PVC_PROTECTION = "kubernetes.io/pvc-protection"
FINALIZER_FOR = {"persistentvolumes": PV_PROTECTION, "persistentvolumeclaims": PVC_PROTECTION}


def add_finalizer(obj: Obj, finalizer: str) -> None:
    """Append ``finalizer`` to the object's finalizers unless it is already there."""
    meta = obj.setdefault("metadata", {})
    finalizers = meta.get("finalizers")
    if not isinstance(finalizers, list):
        finalizers = []
    if finalizer not in finalizers:
        finalizers.append(finalizer)
    meta["finalizers"] = finalizers


class StorageObjectInUseProtection(Handler):
    operations = frozenset({CREATE})
    resources = frozenset({("", "persistentvolumes"), ("", "persistentvolumeclaims")})

    async def admit(self, attrs: Attributes) -> None:
        if attrs.subresource or not isinstance(attrs.object, dict):
            return
        add_finalizer(attrs.object, FINALIZER_FOR[attrs.resource])


def new(init: PluginInit) -> StorageObjectInUseProtection:
    return StorageObjectInUseProtection()
