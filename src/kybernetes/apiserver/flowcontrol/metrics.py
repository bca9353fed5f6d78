"""API Priority and Fairness metrics (``k8s.io/apiserver/pkg/util/flowcontrol/metrics``, Kubernetes 1.32).

Contract: with the API server's metrics on, every request that API Priority and Fairness
classified (long-running requests other than watches are not) shows up per
{priority_level, flow_schema} in

- ``apiserver_flowcontrol_dispatched_requests_total``: it got a seat;
- ``apiserver_flowcontrol_rejected_requests_total`` {reason}: it got the 429 instead:
  ``queue-full`` (its queue had no room), ``concurrency-limit`` (its level rejects rather than
  queues), ``time-out`` (it waited its limit), or ``cancelled`` (the client left while it waited);
- ``apiserver_flowcontrol_current_inqueue_requests``: waiting in a queue now;
- ``apiserver_flowcontrol_current_executing_requests``: holding a seat now (a watch only until its
  stream starts, as Kubernetes counts the initial stage of a WATCH);
- ``apiserver_flowcontrol_request_wait_duration_seconds`` {execute: whether it then ran}: how long
  it waited for its seat; a request that took a free seat at once waited 0 s.

A request that finds a free seat (nearly all) costs two increments and a decrement: its series'
count of undelayed dispatches (the histogram's 0 s bucket and the dispatched count are derived from
it when scraped) and the executing gauge. Kubernetes' other APF series (seat utilization
ratios, virtual-time gauges, queue length after enqueue, execution seconds, work estimates,
epoch advances) are left out: this implementation has no width estimates, one seat per request
and no virtual-time bookkeeping to report.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.registry import Collector

from kybernetes.metrics.accumulate import HistogramState, counter_family, gauge_family, histogram_family

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

WAIT_BUCKETS = (0, 0.005, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30)
REJECT_REASONS = ("queue-full", "concurrency-limit", "time-out", "cancelled")
_LABELS = ("priority_level", "flow_schema")


class FlowStats:
    """The series of one {priority_level, flow_schema}: plain numbers the gate updates."""

    __slots__ = ("executing", "immediate", "inqueue", "rejected", "waited", "waited_rejected")

    def __init__(self) -> None:
        self.immediate = 0
        """Dispatched without waiting (wait 0 s)."""
        self.executing = 0
        self.inqueue = 0
        self.waited = HistogramState(WAIT_BUCKETS)
        """Waits of requests that were queued and then ran."""
        self.waited_rejected = HistogramState(WAIT_BUCKETS)
        self.rejected: dict[str, int] = {}

    def observe_wait(self, seconds: float, execute: bool) -> None:
        h = self.waited if execute else self.waited_rejected
        h.buckets[bisect_left(WAIT_BUCKETS, seconds)] += 1
        h.sum += seconds

    def reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1


def _with_immediate(h: HistogramState, immediate: int) -> HistogramState:
    """``h`` plus ``immediate`` waits of 0 s (they fall in the first bucket, le="0")."""
    out = HistogramState(h.bounds)
    out.buckets = list(h.buckets)
    out.buckets[0] += immediate
    out.sum = h.sum
    return out


class FlowControlMetrics(Collector):
    """The APF series of one API server, by {priority_level, flow_schema}."""

    def __init__(self) -> None:
        self._stats: dict[tuple[str, str], FlowStats] = {}

    def stats(self, priority_level: str, flow_schema: str) -> FlowStats:
        """The (lasting) series of one pair: the gate keeps it with its classification."""
        key = (priority_level, flow_schema)
        s = self._stats.get(key)
        if s is None:
            s = self._stats[key] = FlowStats()
        return s

    def collect(self) -> Iterator[Metric]:
        items = list(self._stats.items())
        yield counter_family(
            "apiserver_flowcontrol_dispatched_requests_total", "Number of requests executed by API Priority and "
            "Fairness subsystem", _LABELS, ((k, s.immediate + s.waited.count) for k, s in items))
        yield counter_family(
            "apiserver_flowcontrol_rejected_requests_total", "Number of requests rejected by API Priority and "
            "Fairness subsystem", (*_LABELS, "reason"),
            (((*k, reason), n) for k, s in items for reason, n in list(s.rejected.items())))
        yield gauge_family(
            "apiserver_flowcontrol_current_inqueue_requests", "Number of requests currently pending in queues of "
            "the API Priority and Fairness subsystem", _LABELS, ((k, s.inqueue) for k, s in items))
        yield gauge_family(
            "apiserver_flowcontrol_current_executing_requests", "Number of requests in initial (for a WATCH) or "
            "any (for a non-WATCH) execution stage in the API Priority and Fairness subsystem", _LABELS,
            ((k, s.executing) for k, s in items))
        waits: list[tuple[tuple[str, ...], HistogramState]] = []
        for k, s in items:
            if s.immediate or s.waited.count:
                waits.append(((*k, "true"), _with_immediate(s.waited, s.immediate)))
            if s.waited_rejected.count:
                waits.append(((*k, "false"), s.waited_rejected))
        yield histogram_family(
            "apiserver_flowcontrol_request_wait_duration_seconds", "Length of time a request spent waiting in its "
            "queue", (*_LABELS, "execute"), waits)
