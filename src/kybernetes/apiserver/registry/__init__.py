"""The registry: the generic store (``store.py``), one REST object per resource (``rest.py``) and
one module per API group with its kinds' strategies (``STRATEGIES``) and kind-specific
subresources (``SUBRESOURCES``): core (the ``core/`` package, one module per
resource with code of its own), apps, batch, autoscaling, certificates, coordination, discovery, events,
flowcontrol, networking, node, policy, rbac, scheduling, storage and apiextensions (``crds.py``).

Adding a built-in resource: one line in the catalogue (``api/resources.py``) and its strategy in
its group's module (and the module in :func:`builtin_strategies` if the group is new)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kybernetes.api.resources import Resource
from kybernetes.apiserver.registry.conversion import Stored
from kybernetes.apiserver.registry.rest import ResourceREST, generic_subresources
from kybernetes.apiserver.registry.strategy import Strategy

if TYPE_CHECKING:
    from kybernetes.apiserver.registry.store import Registry


def builtin_strategies() -> dict[tuple[str, str], Strategy]:
    """Every built-in kind's strategy, keyed by (group, kind)."""
    from kybernetes.apiserver.registry import (
        admissionpolicies,
        admissionregistration,
        apiregistration,
        apps,
        autoscaling,
        batch,
        certificates,
        coordination,
        core,
        crds,
        discovery,
        flowcontrol,
        networking,
        node,
        policy,
        rbac,
        scheduling,
        storage,
    )

    out: dict[tuple[str, str], Strategy] = {}
    for module in (core, apps, batch, autoscaling, certificates, coordination, discovery, networking, policy,
                   rbac, scheduling, storage, node, flowcontrol, crds, admissionregistration,
                   admissionpolicies, apiregistration):
        out.update(module.STRATEGIES)
    return out


def builtin_conversions() -> list[Stored]:
    """Every built-in resource served through more than one version, with its conversions."""
    from kybernetes.apiserver.registry import autoscaling, events

    return [events.STORED, autoscaling.STORED]


def builtin_rest(registry: Registry, r: Resource, strategy: Strategy) -> ResourceREST:
    """The REST object of the built-in resource ``r``: ``strategy`` (its stored kind's), the
    subresources every resource has by what it declares, and those its group's module adds."""
    from kybernetes.apiserver.registry import apps, core

    key = (r.group, r.plural)
    subs = generic_subresources(r, strategy)
    for module_subs in (core.SUBRESOURCES, apps.SUBRESOURCES):
        make = module_subs.get(key)
        if make is not None:
            subs.update(make())
    make_create = core.CREATE.get(key)
    return ResourceREST(r, registry, strategy, subs, create=make_create() if make_create else None)
