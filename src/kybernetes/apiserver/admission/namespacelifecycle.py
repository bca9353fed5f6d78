"""NamespaceLifecycle (Kubernetes' ``k8s.io/apiserver/pkg/admission/plugin/namespace/lifecycle``, on
by default; mutating, CREATE, UPDATE and DELETE).

* The immortal namespaces ``default``, ``kube-system`` and ``kube-public`` cannot be deleted (403
  ``namespaces "kube-system" is forbidden: this namespace may not be deleted``).
* Namespaces themselves, cluster-scoped objects, deletes of namespaced objects and
  LocalSubjectAccessReviews (whose answer must not reveal whether a namespace exists) always pass.
* A create or an update of a namespaced object in a namespace that does not exist is refused
  (404 ``namespaces "x" not found``); a create in a namespace being terminated is refused (403
  ``<resource> "<name>" is forbidden: unable to create new content in namespace x because it is
  being terminated``, with a ``NamespaceTerminating`` cause). Updates there still pass, so that
  controllers can finish their work (e.g. remove finalizers).

The namespace is read from the watch cache, which is fed by the same store the write goes to.
"""

from __future__ import annotations

from kybernetes import errors
from kybernetes.api.obj import Obj
from kybernetes.apiserver.admission.chain import (
    CREATE,
    DELETE,
    UPDATE,
    Attributes,
    Handler,
    PluginInit,
    forbidden,
)
from kybernetes.apiserver.registry.store import Registry

NAME = "NamespaceLifecycle"

IMMORTAL_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})
"""The namespaces kube-apiserver registers the plugin with (``metav1.NamespaceDefault`` ...)."""

_ACCESS_REVIEWS = frozenset({("authorization.k8s.io", "localsubjectaccessreviews")})


def _terminating(ns: Obj) -> bool:
    """Whether the namespace is being deleted (phase Terminating; a deletionTimestamp implies it)."""
    status = ns.get("status") or {}
    return status.get("phase") == "Terminating" or bool((ns.get("metadata") or {}).get("deletionTimestamp"))


class NamespaceLifecycle(Handler):
    operations = frozenset({CREATE, UPDATE, DELETE})

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        namespaces = registry.catalogue.get("", "v1", "namespaces")
        assert namespaces is not None
        self.namespaces = namespaces

    async def admit(self, attrs: Attributes) -> None:
        is_namespace = (attrs.group, attrs.kind) == ("", "Namespace")
        if attrs.operation == DELETE and is_namespace and attrs.name in IMMORTAL_NAMESPACES:
            raise forbidden(attrs, "this namespace may not be deleted")
        if is_namespace or not attrs.namespace or attrs.operation == DELETE:
            return
        if (attrs.group, attrs.resource) in _ACCESS_REVIEWS:
            return
        cache = await self.registry.cacher.cache_for(self.namespaces.key_prefix)
        ns = cache.objects.get(self.namespaces.key("", attrs.namespace))
        if ns is None:
            raise errors.NotFound.of("namespaces", attrs.namespace)
        if attrs.operation == CREATE and _terminating(ns):
            err = forbidden(attrs, f"unable to create new content in namespace {attrs.namespace} because it is "
                                   "being terminated")
            err.details = {**(err.details or {}), "causes": [{
                "reason": "NamespaceTerminating", "message": f"namespace {attrs.namespace} is being terminated",
                "field": "metadata.namespace"}]}
            raise err


def new(init: PluginInit) -> NamespaceLifecycle:
    return NamespaceLifecycle(init.registry)
