"""kube-scheduler's metrics from real scheduling cycles (fake API client and clock): attempts by
result and profile, their durations, the SLI histogram by attempts, pending pods by queue (gated
ones included), and the plugin durations of sampled cycles."""

from __future__ import annotations

import gc
import random

from prometheus_client import REGISTRY

from kybernetes.scheduler import metrics
from kybernetes.scheduler.queue import UNSCHEDULABLE

from .test_scheduler import make
from .util import node, pod

PROFILE = "default-scheduler"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class AlwaysSample(random.Random):
    def randrange(self, *args: object, **kw: object) -> int:  # type: ignore[override]
        return 0


async def test_attempts_durations_and_sli() -> None:
    scheduled = sample("scheduler_schedule_attempts_total", result="scheduled", profile=PROFILE)
    unschedulable = sample("scheduler_schedule_attempts_total", result="unschedulable", profile=PROFILE)
    durations = sample("scheduler_scheduling_attempt_duration_seconds_count", result="scheduled", profile=PROFILE)
    first_try = sample("scheduler_pod_scheduling_sli_duration_seconds_count", attempts="1")
    second_try = sample("scheduler_pod_scheduling_sli_duration_seconds_count", attempts="2")
    s, client, _ = make([node("n1", "1")])
    s.on_pod_add(pod("fits", "500m"))
    s.on_pod_add(pod("big", "2"))
    await s.drain()
    assert client.bindings == {"fits": "n1"}
    assert sample("scheduler_schedule_attempts_total", result="scheduled", profile=PROFILE) == scheduled + 1
    assert sample("scheduler_schedule_attempts_total", result="unschedulable", profile=PROFILE) == unschedulable + 1
    assert sample("scheduler_scheduling_attempt_duration_seconds_count", result="scheduled",
                  profile=PROFILE) == durations + 1
    assert sample("scheduler_pod_scheduling_sli_duration_seconds_count", attempts="1") == first_try + 1
    # The big pod is bound on its second attempt, 7 s (of the fake clock) after its first.
    sli_sum = sample("scheduler_pod_scheduling_sli_duration_seconds_sum", attempts="2")
    s.on_node_add(node("n2", "4"))
    s.queue.clock.advance(7)  # type: ignore[attr-defined]
    s.queue.flush_backoff()
    await s.drain()
    assert client.bindings["big"] == "n2"
    assert sample("scheduler_pod_scheduling_sli_duration_seconds_count", attempts="2") == second_try + 1
    assert sample("scheduler_pod_scheduling_sli_duration_seconds_sum", attempts="2") == sli_sum + 7
    assert metrics.attempts_label(15) == "15+" and metrics.attempts_label(14) == "14"


async def test_pending_pods_by_queue_including_gated() -> None:
    def pending(queue: str) -> float:
        return sample("scheduler_pending_pods", queue=queue)

    # The gauge sums every live scheduler of the process: schedulers of earlier tests that are
    # garbage already would be collected mid-test and take their pods with them.
    gc.collect()
    before = {q: pending(q) for q in ("active", "backoff", "unschedulable", "gated")}
    s, _, _ = make([node("n1", "1")])
    s.on_pod_add(pod("waiting", "500m"))
    gated = pod("gated", "100m", schedulingGates=[{"name": "example.com/wait"}])
    s.on_pod_add(gated)
    assert pending("active") == before["active"] + 1
    assert pending("gated") == before["gated"] + 1
    s.on_pod_add(pod("big", "2"))
    await s.drain()
    assert s.queue.pods["default/big"].where == UNSCHEDULABLE
    assert pending("unschedulable") == before["unschedulable"] + 1
    assert pending("active") == before["active"]
    ungated = {**gated, "spec": {**gated["spec"], "schedulingGates": []}}
    s.on_pod_update(gated, ungated)
    assert pending("gated") == before["gated"]
    assert pending("active") == before["active"] + 1


async def test_plugin_durations_only_in_sampled_cycles() -> None:
    def filter_calls() -> float:
        return sample("scheduler_plugin_execution_duration_seconds_count", plugin="NodeResourcesFit",
                      extension_point="Filter", status="Success")

    def bind_calls() -> float:
        return sample("scheduler_plugin_execution_duration_seconds_count", plugin="DefaultBinder",
                      extension_point="Bind", status="Success")

    s, client, _ = make([node("n1", "4"), node("n2", "4")])
    s.rng = AlwaysSample()
    filters, binds = filter_calls(), bind_calls()
    s.on_pod_add(pod("sampled", "100m"))
    await s.drain()
    assert client.bindings["sampled"]
    assert filter_calls() == filters + 2  # one Filter call per node, on the slow path
    assert bind_calls() == binds + 1
    assert sample("scheduler_plugin_execution_duration_seconds_count", plugin="NodeResourcesFit",
                  extension_point="PreFilter", status="Success") >= 1
    s.rng = random.Random(0)
    s.rng.randrange = lambda *_a, **_k: 99  # type: ignore[method-assign]
    filters, binds = filter_calls(), bind_calls()
    s.on_pod_add(pod("unsampled", "100m"))
    await s.drain()
    assert client.bindings["unsampled"]
    assert (filter_calls(), bind_calls()) == (filters, binds)
