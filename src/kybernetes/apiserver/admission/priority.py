"""Priority (Kubernetes' ``plugin/pkg/admission/priority``, on by default; mutating, pod CREATE)
and the built-in PriorityClasses.

A pod's ``priorityClassName`` is resolved to ``spec.priority`` and ``spec.preemptionPolicy`` when it
is created; a pod without one gets the class marked ``globalDefault``, or priority 0. A name that
does not exist is refused (403), as Kubernetes does. ``system-cluster-critical`` and
``system-node-critical`` exist in every cluster.
"""

from __future__ import annotations

import contextlib

from kybernetes import errors
from kybernetes.api.obj import Obj
from kybernetes.apiserver.admission.chain import CREATE, Attributes, Handler, PluginInit
from kybernetes.apiserver.registry.request import RequestContext
from kybernetes.apiserver.registry.store import Registry

NAME = "Priority"


SYSTEM_CLASSES = (
    ("system-node-critical", 2000001000, "Used for system critical pods that must not be moved from their current node."),
    ("system-cluster-critical", 2000000000, "Used for system critical pods that must run in the cluster, but can be "
                                           "moved to another node if necessary."),
)


class PriorityAdmission(Handler):
    operations = frozenset({CREATE})
    resources = frozenset({("", "pods")})

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def admit(self, attrs: Attributes) -> None:
        if attrs.subresource or attrs.object is None:
            return
        await admit_pod(self.registry, attrs.object)


async def admit_pod(registry: Registry, pod: Obj) -> None:
    """Resolve the pod's PriorityClass into ``spec.priority`` and ``spec.preemptionPolicy``."""
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return
    pcr = registry.catalogue.get("scheduling.k8s.io", "v1", "priorityclasses")
    assert pcr is not None
    cache = await registry.cacher.cache_for(pcr.key_prefix)
    name = spec.get("priorityClassName")
    pc: Obj | None = None
    if name:
        pc = cache.objects.get(pcr.key("", name))
        if pc is None:
            raise errors.Forbidden(
                f'pods "{pod.get("metadata", {}).get("name", "")}" is forbidden: no PriorityClass with name '
                f"{name} was found", details={"kind": "pods", "name": pod.get("metadata", {}).get("name", "")})
    else:
        pc = next((c for c in cache.objects.values() if c.get("globalDefault")), None)
        if pc is not None:
            spec["priorityClassName"] = pc["metadata"]["name"]
    if pc is None:
        spec["priority"] = 0
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        return
    value = int(pc.get("value", 0))
    if spec.get("priority") is not None and spec["priority"] != value and name:
        raise errors.Forbidden("the integer value of priority must not be provided in pod spec; priority "
                               f"admission controller computed {value} from the given PriorityClass name")
    spec["priority"] = value
    spec["preemptionPolicy"] = pc.get("preemptionPolicy") or "PreemptLowerPriority"


def new(init: PluginInit) -> PriorityAdmission:
    return PriorityAdmission(init.registry)


async def bootstrap(registry: Registry, ctx: RequestContext) -> None:
    pcr = registry.catalogue.get("scheduling.k8s.io", "v1", "priorityclasses")
    assert pcr is not None
    for name, value, description in SYSTEM_CLASSES:
        with contextlib.suppress(errors.AlreadyExists):
            await registry.create(pcr, "", {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                                            "metadata": {"name": name}, "value": value,
                                            "description": description}, ctx)
