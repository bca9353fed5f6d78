"""PersistentVolumeClaimResize (Kubernetes' ``plugin/pkg/admission/storage/persistentvolume/resize``,
on by default; validating, PVC UPDATE).

A claim may ask for more storage (``spec.resources.requests.storage`` grows) only when it is Bound
("Only bound persistent volume claims can be expanded") and its class, the same before and after
and not empty, exists with ``allowVolumeExpansion: true`` ("only dynamically provisioned pvc can
be resized and the storageclass that provisions the pvc must support resize"); both refusals are
403 Forbidden. Shrinking is the registry's to refuse; subresources (status) are not checked.
"""

from __future__ import annotations

from kybernetes.api.storageutil import claim_class, storage_request
from kybernetes.apiserver.admission.chain import UPDATE, Attributes, Handler, PluginInit, forbidden
from kybernetes.apiserver.admission.defaultstorageclass import cached_objects
from kybernetes.apiserver.registry.store import Registry

NAME = "PersistentVolumeClaimResize"


class PersistentVolumeClaimResize(Handler):
    operations = frozenset({UPDATE})
    resources = frozenset({("", "persistentvolumeclaims")})

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def validate(self, attrs: Attributes) -> None:
        new, old = attrs.object, attrs.old_object
        if attrs.subresource or new is None or old is None or storage_request(new) <= storage_request(old):
            return
        status = old.get("status")
        if not isinstance(status, dict) or status.get("phase") != "Bound":
            raise forbidden(attrs, "Only bound persistent volume claims can be expanded")
        if not await self._allows_resize(claim_class(new), claim_class(old)):
            raise forbidden(attrs, "only dynamically provisioned pvc can be resized and the storageclass "
                                   "that provisions the pvc must support resize")

    async def _allows_resize(self, new_class: str, old_class: str) -> bool:
        if not new_class or new_class != old_class:
            return False
        for sc in await cached_objects(self.registry, "storage.k8s.io", "storageclasses"):
            if (sc.get("metadata") or {}).get("name") == new_class:
                return sc.get("allowVolumeExpansion") is True
        return False


def new(init: PluginInit) -> PersistentVolumeClaimResize:
    return PersistentVolumeClaimResize(init.registry)
