"""DefaultStorageClass (Kubernetes' ``plugin/pkg/admission/storage/storageclass/setdefault``, on by
default; mutating, PVC CREATE).

A claim created without a class (no ``spec.storageClassName`` and no beta
``volume.beta.kubernetes.io/storage-class`` annotation) gets the default StorageClass: one annotated
``storageclass.kubernetes.io/is-default-class: "true"`` (or the beta annotation). With several
defaults the newest wins, ties by name (Kubernetes 1.26+); with none the claim is left unset.
"""

from __future__ import annotations

from collections.abc import Iterable

from kybernetes.api.obj import Obj
from kybernetes.api.storageutil import claim_has_class, is_default_storage_class, newest_default
from kybernetes.apiserver.admission.chain import CREATE, Attributes, Handler, PluginInit
from kybernetes.apiserver.registry.store import Registry

NAME = "DefaultStorageClass"
__all__ = ["DefaultStorageClass", "cached_objects", "default_claim_class"]


def default_claim_class(pvc: Obj, classes: Iterable[Obj]) -> None:
    """Set the claim's ``spec.storageClassName`` to the default class if it names none."""
    spec = pvc.get("spec")
    if not isinstance(spec, dict) or claim_has_class(pvc):
        return
    default = newest_default(classes, is_default_storage_class)
    if default is not None:
        spec["storageClassName"] = default["metadata"]["name"]


async def cached_objects(registry: Registry, group: str, plural: str) -> list[Obj]:
    """Every stored object of a cluster-scoped resource, from the watch cache (the plugin's lister)."""
    resource = registry.catalogue.get(group, "v1", plural)
    assert resource is not None
    cache = await registry.cacher.cache_for(resource.key_prefix)
    return list(cache.objects.values())


class DefaultStorageClass(Handler):
    operations = frozenset({CREATE})
    resources = frozenset({("", "persistentvolumeclaims")})

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def admit(self, attrs: Attributes) -> None:
        if attrs.subresource or attrs.object is None or claim_has_class(attrs.object):
            return
        default_claim_class(attrs.object, await cached_objects(self.registry, "storage.k8s.io", "storageclasses"))


def new(init: PluginInit) -> DefaultStorageClass:
    return DefaultStorageClass(init.registry)
