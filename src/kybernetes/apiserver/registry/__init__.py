"""The registry: the generic store (``store.py``) and one strategy module per API group."""

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
        apps,
        batch,
        certificates,
        core,
        crds,
        flowcontrol,
        groups,
        node,
        storage,
    )

    out: dict[tuple[str, str], Strategy] = {}
    for module in (core, apps, batch, certificates, groups, storage, node, flowcontrol, crds):
        out.update(module.STRATEGIES)
    return out


def builtin_conversions() -> list[Stored]:
    """Every built-in resource served through more than one version, with its conversions."""
    from kybernetes.apiserver.registry import autoscaling, events

    return [events.STORED, autoscaling.STORED]


def builtin_rest(registry: Registry, r: Resource, strategy: Strategy) -> ResourceREST:
    """The REST object of the built-in resource ``r``: ``strategy`` (its stored kind's), the
    subresources every resource has by what it declares, and those its group's module adds."""
    from kybernetes.apiserver.registry import apps, core_rest

    key = (r.group, r.plural)
    subs = generic_subresources(r, strategy)
    for module_subs in (core_rest.SUBRESOURCES, apps.SUBRESOURCES):
        make = module_subs.get(key)
        if make is not None:
            subs.update(make())
    make_create = core_rest.CREATE.get(key)
    return ResourceREST(r, registry, strategy, subs, create=make_create() if make_create else None)
