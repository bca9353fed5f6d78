"""NamespaceLifecycle (Kubernetes' ``k8s.io/apiserver/pkg/admission/plugin/namespace/lifecycle``, on
by default; mutating, CREATE of namespaced objects).

Nothing is created in a namespace that does not exist (404 ``namespaces "x" not found``) or is
being deleted (403 ``<resource> "<name>" is forbidden: unable to create new content in namespace
x because it is being terminated``, with a ``NamespaceTerminating`` cause). The namespace is read
from the watch cache.

Not yet as in Kubernetes: updates are not checked (here no object outlives its namespace), and
the ``default``, ``kube-system`` and ``kube-public`` namespaces can still be deleted.
"""

from __future__ import annotations

from kybernetes import errors
from kybernetes.apiserver.admission.chain import CREATE, Attributes, Handler, PluginInit, forbidden
from kybernetes.apiserver.registry.store import Registry

NAME = "NamespaceLifecycle"


class NamespaceLifecycle(Handler):
    operations = frozenset({CREATE})

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        namespaces = registry.catalogue.get("", "v1", "namespaces")
        assert namespaces is not None
        self.namespaces = namespaces

    async def admit(self, attrs: Attributes) -> None:
        if not attrs.namespace or (attrs.group, attrs.resource) == ("", "namespaces"):
            return
        cache = await self.registry.cacher.cache_for(self.namespaces.key_prefix)
        ns = cache.objects.get(self.namespaces.key("", attrs.namespace))
        if ns is None:
            raise errors.NotFound.of("namespaces", attrs.namespace)
        if (ns.get("metadata") or {}).get("deletionTimestamp"):
            err = forbidden(attrs, f"unable to create new content in namespace {attrs.namespace} because it is "
                                   "being terminated")
            err.details = {**(err.details or {}), "causes": [{
                "reason": "NamespaceTerminating", "message": f"namespace {attrs.namespace} is being terminated",
                "field": "metadata.namespace"}]}
            raise err


def new(init: PluginInit) -> NamespaceLifecycle:
    return NamespaceLifecycle(init.registry)
