"""How the HPA reads metrics-server's PodMetrics (``metrics.k8s.io/v1beta1``) into samples."""

from __future__ import annotations

from typing import Any

import pytest

from kybernetes.api.timeutil import parse_epoch
from kybernetes.controllers.podautoscaler_metrics import container_samples, pod_samples
from kybernetes.controllers.podautoscaler_plan import MetricError, PodMetric

STAMP = "2026-12-07T14:00:00Z"


def pod_metrics(name: str, *containers: tuple[str, dict[str, str]]) -> dict[str, Any]:
    """One PodMetrics as metrics-server serves it."""
    return {"kind": "PodMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
            "metadata": {"name": name, "namespace": "ns"}, "timestamp": STAMP, "window": "15.028s",
            "containers": [{"name": c, "usage": usage} for c, usage in containers]}


def test_pod_samples_sum_containers_in_milli_units_rounded_up() -> None:
    items = [pod_metrics("a", ("c", {"cpu": "123456789n", "memory": "1Mi"}), ("d", {"cpu": "1", "memory": "1Ki"})),
             pod_metrics("b", ("c", {"memory": "1Mi"})),  # no CPU sample in a container: left out
             pod_metrics("e")]  # no containers: left out
    at = parse_epoch(STAMP) or 0.0
    assert pod_samples(items, "cpu") == {"a": PodMetric(1124, at, 15.028)}
    assert pod_samples(items, "memory") == {"a": PodMetric(1049600 * 1000, at, 15.028),
                                            "b": PodMetric(1048576 * 1000, at, 15.028)}


def test_container_samples_pick_one_container() -> None:
    items = [pod_metrics("a", ("c", {"cpu": "250m"}), ("sidecar", {"cpu": "1"}))]
    assert container_samples(items, "cpu", "c")["a"].value == 250
    assert container_samples(items, "memory", "c") == {}
    with pytest.raises(MetricError) as e:
        container_samples(items, "cpu", "web")
    assert str(e.value) == "failed to get container metrics: container web not present in metrics for pod ns/a"


def test_custom_metric_samples_take_the_adapters_window_or_a_minute() -> None:
    from kybernetes.controllers.podautoscaler_metrics import _custom_sample

    item = {"describedObject": {"kind": "Pod", "name": "a"}, "metric": {"name": "rps"}, "timestamp": STAMP,
            "value": "1500m"}
    assert _custom_sample(item) == PodMetric(1500, parse_epoch(STAMP) or 0.0, 60.0)
    assert _custom_sample({**item, "windowSeconds": 30}).window == 30.0
