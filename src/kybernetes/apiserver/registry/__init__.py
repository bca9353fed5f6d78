"""The registry: the generic store (``store.py``) and one strategy module per API group."""

from __future__ import annotations

from kybernetes.apiserver.registry.strategy import Strategy


def builtin_strategies() -> dict[tuple[str, str], Strategy]:
    """Every built-in kind's strategy, keyed by (group, kind)."""
    from kybernetes.apiserver.registry import apps, batch, core, crds, flowcontrol, groups

    out: dict[tuple[str, str], Strategy] = {}
    for module in (core, apps, batch, groups, crds, flowcontrol):
        out.update(module.STRATEGIES)
    return out
