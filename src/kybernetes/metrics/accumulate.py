"""Hot-path metric accumulators: plain Python counts rendered as Prometheus families at scrape time.

Contract: for code that runs on every request of a busy server, where ``prometheus_client``'s
``labels(...).inc()`` and ``Histogram.observe`` (a lock and a label lookup each, ~1.8 us for a
request's counter, latency and size on the 2-core development VM) would cost more than the goal
allows. A :class:`HistogramState` is a histogram's buckets, count and sum as plain numbers; a
collector that keeps them in dicts (one asyncio loop, no threads: no lock needed) renders them with
:func:`histogram_family` / :func:`counter_family` when scraped. The families carry Kubernetes'
names, help texts, label names and bucket bounds exactly as the ``prometheus_client`` objects of
:mod:`kybernetes.metrics` would; only the bookkeeping differs.

Kubernetes names some counters without the ``_total`` suffix (``authentication_attempts``,
``authenticated_user_requests``). ``prometheus_client`` would append ``_total`` to a counter's
samples; :func:`counter_family` with ``legacy_name=True`` keeps the exact sample name Kubernetes
exposes by declaring the family ``unknown`` (``untyped`` in the text format), which every scraper
reads as the same series.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString


def exponential_buckets(start: float, factor: float, count: int) -> tuple[float, ...]:
    """client_golang's ``ExponentialBuckets``: ``count`` bounds from ``start``, each ``factor`` times the last."""
    return tuple(start * factor**i for i in range(count))


class HistogramState:
    """One histogram series: observations per bucket (the last one is +Inf) and their sum; the
    count is the buckets' total, added up when scraped (one update fewer per observation)."""

    __slots__ = ("bounds", "buckets", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.buckets = [0] * (len(bounds) + 1)
        self.sum = 0.0

    @property
    def count(self) -> int:
        return sum(self.buckets)

    def observe(self, value: float) -> None:
        # Prometheus' "le": a value equal to a bound counts in that bound's bucket.
        self.buckets[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip(self.bounds, self.buckets, strict=False):
            running += n
            out.append((floatToGoString(bound), running))
        out.append(("+Inf", running + self.buckets[-1]))
        return out


def histogram_family(name: str, documentation: str, labels: Sequence[str],
                     series: Iterable[tuple[Sequence[str], HistogramState]]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=labels)
    for values, h in series:
        family.add_metric(list(values), h.cumulative(), h.sum)
    return family


def counter_family(name: str, documentation: str, labels: Sequence[str],
                   series: Iterable[tuple[Sequence[str], float]], *, legacy_name: bool = False) -> Metric:
    """A counter family; ``legacy_name``: exposed under exactly ``name`` (no ``_total`` added), untyped."""
    if legacy_name:
        metric = Metric(name, documentation, "unknown")
        for values, v in series:
            metric.add_sample(name, dict(zip(labels, values, strict=True)), v)
        return metric
    family = CounterMetricFamily(name, documentation, labels=labels)
    for values, v in series:
        family.add_metric(list(values), v)
    return family


def gauge_family(name: str, documentation: str, labels: Sequence[str],
                 series: Iterable[tuple[Sequence[str], float]]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=labels)
    for values, v in series:
        family.add_metric(list(values), v)
    return family
