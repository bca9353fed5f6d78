"""The registry: the generic store (``store.py``) and one strategy module per API group."""

from __future__ import annotations

from kybernetes.apiserver.registry.conversion import Stored
from kybernetes.apiserver.registry.strategy import Strategy


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
