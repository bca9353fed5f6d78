"""Cloud providers by name (``cloudprovider.RegisterCloudProvider`` / ``InitCloudProvider``).

A provider plugs in with :func:`register_provider` (name -> factory taking the provider's
:class:`ProviderConfig`); ``--cloud-provider NAME`` picks it. Built-in providers are found by
module: ``local`` is ``kybernetes.cloud.local``. A provider outside this package is either
registered by code that runs first or named by its module, ``--cloud-provider module.path:NAME``
(the module registers NAME when imported).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

from kybernetes.cloud.provider import Interface


@dataclass
class ProviderConfig:
    """What the command line hands a provider (``--cloud-config`` would go here too)."""

    options: dict[str, str] = field(default_factory=dict)
    """Provider-specific settings by flag name (the local provider: ``lb-pool``, ``zone``, ...)."""


Factory = Callable[[ProviderConfig], Interface]

_PROVIDERS: dict[str, Factory] = {}
BUILTIN = {"local": "kybernetes.cloud.local"}


def register_provider(name: str, factory: Factory) -> None:
    """Make ``factory`` the provider called ``name``; a second registration of a name is an error."""
    if name in _PROVIDERS and _PROVIDERS[name] is not factory:
        raise ValueError(f"cloud provider {name!r} was registered twice")
    _PROVIDERS[name] = factory


def providers() -> list[str]:
    return sorted(set(_PROVIDERS) | set(BUILTIN))


def get_provider(name: str, config: ProviderConfig) -> Interface:
    """The provider ``name`` built with ``config``; ValueError (naming the known ones) if none."""
    module, _, short = name.rpartition(":")
    if module:
        importlib.import_module(module)
        name = short
    elif name not in _PROVIDERS and name in BUILTIN:
        importlib.import_module(BUILTIN[name])
    if name not in _PROVIDERS:
        raise ValueError(f"unknown cloud provider {name!r}; known: {', '.join(providers())}")
    return _PROVIDERS[name](config)
