"""DefaultIngressClass (Kubernetes' ``plugin/pkg/admission/network/defaultingressclass``, on by
default; mutating, Ingress CREATE).

An Ingress created without ``spec.ingressClassName`` and without the legacy
``kubernetes.io/ingress.class`` annotation gets the default IngressClass, one annotated
``ingressclass.kubernetes.io/is-default-class: "true"``. With several defaults the newest wins,
ties by name (as Kubernetes 1.32 decides); with none the Ingress is left unset.
"""

from __future__ import annotations

from collections.abc import Iterable

from kybernetes.api.obj import Obj
from kybernetes.api.storageutil import annotations_of, newest_default
from kybernetes.apiserver.admission.chain import CREATE, Attributes, Handler, PluginInit
from kybernetes.apiserver.admission.defaultstorageclass import cached_objects
from kybernetes.apiserver.registry.store import Registry

NAME = "DefaultIngressClass"

IS_DEFAULT = "ingressclass.kubernetes.io/is-default-class"
LEGACY_CLASS = "kubernetes.io/ingress.class"


def is_default_ingress_class(ic: Obj) -> bool:
    return annotations_of(ic).get(IS_DEFAULT) == "true"


def default_ingress_class(ingress: Obj, classes: Iterable[Obj]) -> None:
    """Set ``spec.ingressClassName`` to the default class if the Ingress names no class."""
    spec = ingress.get("spec")
    if not isinstance(spec, dict) or spec.get("ingressClassName") is not None:
        return
    if LEGACY_CLASS in annotations_of(ingress):
        return
    default = newest_default(classes, is_default_ingress_class)
    if default is not None:
        spec["ingressClassName"] = default["metadata"]["name"]


class DefaultIngressClass(Handler):
    operations = frozenset({CREATE})
    resources = frozenset({("networking.k8s.io", "ingresses")})

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def admit(self, attrs: Attributes) -> None:
        if attrs.subresource or attrs.object is None:
            return
        spec = attrs.object.get("spec")
        if not isinstance(spec, dict) or spec.get("ingressClassName") is not None:
            return
        default_ingress_class(attrs.object,
                              await cached_objects(self.registry, "networking.k8s.io", "ingressclasses"))


def new(init: PluginInit) -> DefaultIngressClass:
    return DefaultIngressClass(init.registry)
