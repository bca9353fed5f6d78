"""Prometheus metrics: the conventions every kybernetes component follows.

Contract (Kubernetes' ``component-base/metrics/legacyregistry`` in spirit):

- Metrics are module-level ``prometheus_client`` objects in the process's default registry
  (``prometheus_client.REGISTRY``), defined once next to the code they measure, with Kubernetes'
  names, help texts, label names and buckets. A component is a process, so the default registry
  is exactly "this component's metrics"; tests that build several controllers in one process share
  the metrics, as client-go's global workqueue metrics provider does.
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

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder

__all__ = ["exponential_buckets", "exposition"]


def exposition(accept: str = "", registry: CollectorRegistry = REGISTRY) -> tuple[bytes, str]:
    """The metrics of ``registry`` as one scrape's body and its Content-Type, negotiated on ``accept``."""
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type


def exponential_buckets(start: float, factor: float, count: int) -> list[float]:
    """Kubernetes' (client_golang's) ``ExponentialBuckets``: each bound the previous times ``factor``,
    computed as Go computes it, so the bounds (and their ``le`` labels) are Kubernetes' to the last bit."""
    out = [start]
    for _ in range(count - 1):
        out.append(out[-1] * factor)
    return out
