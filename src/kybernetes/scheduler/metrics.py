"""kube-scheduler's metrics (``pkg/scheduler/metrics``): Kubernetes' names, help texts, labels and buckets.

- ``scheduler_schedule_attempts_total{result,profile}`` and
  ``scheduler_scheduling_attempt_duration_seconds{result,profile}``: one per scheduling attempt,
  ``result`` ``scheduled`` (after the bind), ``unschedulable`` (no node fits, or a Reserve/Permit
  plugin rejected) or ``error``; the duration runs from the pop to that outcome.
- ``scheduler_pod_scheduling_sli_duration_seconds{attempts}``: for a bound pod, from its first
  attempt to the bind; ``attempts`` capped at ``15+``.
- ``scheduler_pending_pods{queue}``: ``active``, ``backoff``, ``unschedulable``, ``gated`` (pods held
  by ``schedulingGates``), read from the schedulers when scraped (the loop pays nothing for it).
- ``scheduler_plugin_execution_duration_seconds{plugin,extension_point,status}``: each plugin call
  of a *sampled* scheduling cycle, :data:`PLUGIN_METRICS_SAMPLE_PERCENT` percent of them, as
  Kubernetes samples (timing every Filter call on every node would cost more than the filter).
"""

from __future__ import annotations

import random
import time
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from kybernetes.metrics import exponential_buckets, own_families
from kybernetes.metrics.accumulate import HistogramState, histogram_family

if TYPE_CHECKING:
    from kybernetes.scheduler.scheduler import Scheduler

own_families("scheduler_", "scheduler")  # in a process with other components too (kyb control-plane)

PLUGIN_METRICS_SAMPLE_PERCENT = 10
SCHEDULED, UNSCHEDULABLE, ERROR = "scheduled", "unschedulable", "error"

SCHEDULE_ATTEMPTS = Counter(
    "scheduler_schedule_attempts_total",
    "Number of attempts to schedule pods, by the result. 'unschedulable' means a pod could not be scheduled, "
    "while 'error' means an internal scheduler problem.", ["result", "profile"])
ATTEMPT_DURATION = Histogram(
    "scheduler_scheduling_attempt_duration_seconds",
    "Scheduling attempt latency in seconds (scheduling algorithm + binding)", ["result", "profile"],
    buckets=exponential_buckets(0.001, 2, 15))
SLI_DURATION = Histogram(
    "scheduler_pod_scheduling_sli_duration_seconds",
    "E2e latency for a pod being scheduled, from the time the pod enters the scheduling queue an d might "
    "involve multiple scheduling attempts.", ["attempts"], buckets=exponential_buckets(0.01, 2, 20))
PLUGIN_BUCKETS = tuple(exponential_buckets(0.00001, 1.5, 20))


class _PluginDurations(Collector):
    """``scheduler_plugin_execution_duration_seconds``, kept as plain counts
    (:mod:`kybernetes.metrics.accumulate`): a sampled cycle times every Filter call on every node,
    thousands of observations at 5,000 nodes, where ``prometheus_client``'s label lookup and locks
    cost more than the filters. The scheduler runs on one event loop: no lock is needed."""

    def __init__(self) -> None:
        self.series: dict[tuple[str, str, str], HistogramState] = {}

    def observe(self, plugin: str, point: str, status: str, seconds: float) -> None:
        h = self.series.get((plugin, point, status))
        if h is None:
            h = self.series[plugin, point, status] = HistogramState(PLUGIN_BUCKETS)
        h.observe(seconds)

    def collect(self) -> Iterator[Metric]:
        yield histogram_family("scheduler_plugin_execution_duration_seconds",
                               "Duration for running a plugin at a specific extension point.",
                               ("plugin", "extension_point", "status"), list(self.series.items()))


PLUGIN_DURATION = _PluginDurations()
REGISTRY.register(PLUGIN_DURATION)

STATUS_NAMES = ("Success", "Error", "Unschedulable", "UnschedulableAndUnresolvable", "Wait", "Skip")
"""``framework.Code.String()`` by our :class:`~kybernetes.scheduler.framework.Code` value."""


def attempt(result: str, profile: str, seconds: float) -> None:
    """One scheduling attempt's outcome."""
    SCHEDULE_ATTEMPTS.labels(result, profile).inc()
    ATTEMPT_DURATION.labels(result, profile).observe(seconds)


def attempts_label(attempts: int) -> str:
    return "15+" if attempts >= 15 else str(attempts)


def sample_plugin_metrics(rng: random.Random) -> bool:
    """Whether this scheduling cycle's plugin calls are timed."""
    return rng.randrange(100) < PLUGIN_METRICS_SAMPLE_PERCENT


def timed(point: str, plugin: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` (a plugin's method returning a Status or None) timed into the plugin histogram."""

    def call(*args: Any) -> Any:
        start = time.perf_counter()
        st = fn(*args)
        observe_plugin(point, plugin, st, time.perf_counter() - start)
        return st

    return call


def observe_plugin(point: str, plugin: str, status: Any, seconds: float) -> None:
    code = getattr(status, "code", 0) if status is not None and not isinstance(status, int) else 0
    PLUGIN_DURATION.observe(plugin, point, STATUS_NAMES[int(code)], seconds)


_schedulers: weakref.WeakSet[Scheduler] = weakref.WeakSet()


def track(scheduler: Scheduler) -> None:
    """Report ``scheduler``'s pending pods (its queue's and its gated ones) in ``scheduler_pending_pods``."""
    _schedulers.add(scheduler)


class _PendingPods(Collector):
    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "scheduler_pending_pods",
            "Number of pending pods, by the queue type. 'active' means number of pods in activeQ; 'backoff' means "
            "number of pods in backoffQ; 'unschedulable' means number of pods in unschedulablePods that the "
            "scheduler attempted to schedule and failed; 'gated' is the number of unschedulable pods that the "
            "scheduler never attempted to schedule because they are gated.", labels=["queue"])
        totals = {"active": 0, "backoff": 0, "unschedulable": 0, "gated": 0}
        for sched in list(_schedulers):
            for where, n in sched.pending_counts().items():
                totals[where] = totals.get(where, 0) + n
        for where, n in totals.items():
            family.add_metric([where], n)
        yield family


REGISTRY.register(_PendingPods())
