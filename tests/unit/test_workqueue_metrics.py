"""client-go's workqueue_* metrics of a named WorkQueue, on a FakeClock, read from the default registry."""

from __future__ import annotations

import itertools

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from kybernetes.client.workqueue import FakeClock, WorkQueue

_names = itertools.count()


def _name() -> str:
    return f"test_queue_{next(_names)}"


def value(metric: str, name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(metric, {"name": name, **labels})


async def test_adds_depth_and_latencies_follow_client_go() -> None:
    clock, name = FakeClock(), _name()
    q = WorkQueue(name, clock=clock)
    q.add("a")
    clock.advance(0.5)
    q.add("a")  # a duplicate of a waiting key: not an add
    q.add("b")
    assert value("workqueue_adds_total", name) == 2
    assert value("workqueue_depth", name) == 2
    clock.advance(1.5)
    key = await q.get()  # "a" waited 2 s since its first add
    assert key == "a"
    assert value("workqueue_depth", name) == 1
    assert value("workqueue_queue_duration_seconds_count", name) == 1
    assert value("workqueue_queue_duration_seconds_sum", name) == pytest.approx(2.0)
    assert value("workqueue_queue_duration_seconds_bucket", name, le="1.0") == 0
    assert value("workqueue_queue_duration_seconds_bucket", name, le="10.0") == 1
    clock.advance(3)
    assert value("workqueue_unfinished_work_seconds", name) == pytest.approx(3.0)
    assert value("workqueue_longest_running_processor_seconds", name) == pytest.approx(3.0)
    q.add("a")  # re-added while processing: an add, and it counts in the depth
    assert value("workqueue_adds_total", name) == 3
    assert value("workqueue_depth", name) == 2
    q.done("a")
    assert value("workqueue_work_duration_seconds_sum", name) == pytest.approx(3.0)
    assert value("workqueue_work_duration_seconds_count", name) == 1
    assert value("workqueue_unfinished_work_seconds", name) == 0
    assert value("workqueue_longest_running_processor_seconds", name) == 0


async def test_delayed_and_rate_limited_adds_are_retries() -> None:
    clock, name = FakeClock(), _name()
    q = WorkQueue(name, clock=clock)
    q.add_rate_limited("a")
    q.add_after("b", 10)
    assert value("workqueue_retries_total", name) == 2
    assert value("workqueue_adds_total", name) == 0  # not added yet
    await clock.advance(11)
    assert value("workqueue_adds_total", name) == 2
    q.shutdown()


async def test_longest_running_of_several_processing_keys() -> None:
    clock, name = FakeClock(), _name()
    q = WorkQueue(name, clock=clock)
    q.add("a")
    q.add("b")
    await q.get()
    clock.advance(4)
    await q.get()
    clock.advance(1)
    assert value("workqueue_unfinished_work_seconds", name) == pytest.approx(6.0)
    assert value("workqueue_longest_running_processor_seconds", name) == pytest.approx(5.0)


async def test_unnamed_queues_have_no_series_and_exposition_parses() -> None:
    before = generate_latest().decode()
    q = WorkQueue("")
    q.add("a")
    await q.get()
    families = {f.name: f for f in text_string_to_metric_families(generate_latest().decode())}
    for family in ("workqueue_adds", "workqueue_depth", "workqueue_queue_duration_seconds",
                   "workqueue_work_duration_seconds", "workqueue_retries", "workqueue_unfinished_work_seconds",
                   "workqueue_longest_running_processor_seconds"):
        assert family in families, family
        assert all(s.labels.get("name") != "" for s in families[family].samples)
    assert 'name=""' not in before
    buckets = [s.labels["le"] for s in families["workqueue_queue_duration_seconds"].samples
               if s.name.endswith("_bucket")]
    # ExponentialBuckets(10e-7, 10, 10) as Go multiplies it out (1e-06 * 10 is 9.999999999999999e-06).
    assert buckets[:3] == ["1e-06", "9.999999999999999e-06", "9.999999999999999e-05"]
    assert len(set(buckets)) == 11
