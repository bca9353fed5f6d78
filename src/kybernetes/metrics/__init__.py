"""Prometheus metrics: the conventions every kybernetes component follows.

Contract (Kubernetes' ``component-base/metrics/legacyregistry`` in spirit):

- Metrics are module-level ``prometheus_client`` objects in the process's default registry
  (``prometheus_client.REGISTRY``), defined once next to the code they measure, with Kubernetes'
  names, help texts, label names and buckets. A component is usually a process of its own, so
  the default registry is "this component's metrics" (several in one process: see below); tests
  that build several controllers in one process share the metrics, as client-go's global
  workqueue metrics provider does.
- The default registry also carries prometheus_client's process, platform and GC collectors: every
  process exposes ``process_*`` and ``python_*`` metrics without further work.
- Hot paths (every API request, every DNS query, every work-queue item) keep plain counts instead
  and render them as families at scrape time (:mod:`kybernetes.metrics.accumulate`): same names,
  labels and buckets, a fraction of ``prometheus_client``'s per-observation cost.
- ``exposition(accept)`` renders the registry for one scrape, negotiating the OpenMetrics format
  when the scraper asks for it and the Prometheus text format 0.0.4 otherwise, and returns the body
  and its Content-Type. Callers serve it at ``/metrics`` behind their own authentication and
  authorization (nonResourceURL ``/metrics``, verb ``get``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextvars import ContextVar

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

__all__ = ["COMPONENT", "exponential_buckets", "exposition", "own_families", "own_series"]

COMPONENT: ContextVar[str] = ContextVar("kybernetes_component", default="")
"""The component whose code the current task runs ("": the process is one component)."""

_family_owner: dict[str, str] = {}
"""Family-name prefix -> the one component whose families they are."""
_series_owners: dict[str, dict[str, set[str]]] = {}
"""Family-name prefix of per-name series -> value of the ``name`` label -> the components that made it."""


def own_families(prefix: str, component: str) -> None:
    """Families whose names start with ``prefix`` are ``component``'s alone."""
    _family_owner[prefix] = component


def own_series(prefix: str, name: str) -> None:
    """The series named ``name`` of the families starting with ``prefix`` are (also) the current
    task's component's; nothing in a process that is one component."""
    component = COMPONENT.get()
    if component:
        _series_owners.setdefault(prefix, {}).setdefault(name, set()).add(component)


class _ComponentView(Collector):
    """``registry`` as ``component`` sees it (see the module docstring)."""

    def __init__(self, registry: CollectorRegistry, component: str) -> None:
        self.registry = registry
        self.component = component

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            owner = next((c for p, c in _family_owner.items() if family.name.startswith(p)), None)
            if owner is not None and owner != self.component:
                continue
            per_name = next((o for p, o in _series_owners.items() if family.name.startswith(p)), None)
            if per_name is not None:
                family.samples = [s for s in family.samples
                                  if self.component in per_name.get(s.labels.get("name", ""), ())]
            yield family


def exposition(accept: str = "", registry: CollectorRegistry = REGISTRY, component: str = "") -> tuple[bytes, str]:
    """The metrics of ``registry`` (as ``component`` sees them, if named) as one scrape's body and its
    Content-Type, negotiated on ``accept``."""
    encoder, content_type = choose_encoder(accept)
    if component:
        view = CollectorRegistry(auto_describe=False)
        view.register(_ComponentView(registry, component))
        return encoder(view), content_type
    return encoder(registry), content_type


def exponential_buckets(start: float, factor: float, count: int) -> list[float]:
    """Kubernetes' (client_golang's) ``ExponentialBuckets``: each bound the previous times ``factor``,
    computed as Go computes it, so the bounds (and their ``le`` labels) are Kubernetes' to the last bit."""
    out = [start]
    for _ in range(count - 1):
        out.append(out[-1] * factor)
    return out
