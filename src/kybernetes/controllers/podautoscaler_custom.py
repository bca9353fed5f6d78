"""The HPA's ``Pods``, ``Object`` and ``External`` metric sources (``computeStatusForPodsMetric``,
``computeStatusForObjectMetric``, ``computeStatusForExternalMetric`` of ``horizontal.go``).

:func:`compute` turns one such metric spec into (replicas, the metric's description, its
``MetricStatus``) from the values a :class:`~.podautoscaler_metrics.MetricsClient` reads, or raises
:class:`Failure` with the condition reason, the condition's detail and the error Kubernetes reports
for it (they differ: Kubernetes wraps some errors once more for the event than for the condition).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from kybernetes.api.label_selectors import from_label_selector_object
from kybernetes.api.obj import Obj
from kybernetes.api.quantity import cpu_millis, format_quantity
from kybernetes.controllers import podautoscaler_plan as plan
from kybernetes.controllers.discovery import APIResource
from kybernetes.controllers.podautoscaler_metrics import MetricsClient
from kybernetes.controllers.podautoscaler_plan import MetricError

Resolve = Callable[[str, str], Awaitable[APIResource | None]]


class Failure(Exception):
    def __init__(self, reason: str, detail: str, error: str) -> None:
        super().__init__(error)
        self.reason, self.detail, self.error = reason, detail, error


@dataclass(frozen=True)
class Target:
    """What the metric's replica count is computed against: the scale and the pods it selects."""

    namespace: str
    spec_replicas: int
    status_replicas: int
    selector: str
    pods: list[Obj]


def milli(value: int) -> str:
    """``resource.NewMilliQuantity(value, DecimalSI)`` as text."""
    return format_quantity(Fraction(value, 1000))


def _selector_text(selector: Any) -> str:
    return str(from_label_selector_object(selector)) if isinstance(selector, dict) else ""


def _identifier(metric: Obj) -> Obj:
    out: Obj = {"name": metric.get("name", "")}
    if metric.get("selector") is not None:
        out["selector"] = metric["selector"]
    return out


async def compute(kind: str, spec: Obj, target: Target, client: MetricsClient, resolve: Resolve,
                  tuning: plan.Tuning) -> tuple[int, str, Obj]:
    """One ``Pods``, ``Object`` or ``External`` metric's proposal; :class:`Failure` if it has none."""
    if kind == "Pods":
        return await _pods(spec.get("pods") or {}, target, client, tuning)
    if kind == "Object":
        return await _object(spec.get("object") or {}, target, client, resolve, tuning)
    return await _external(spec.get("external") or {}, target, client, tuning)


async def _pods(source: Obj, t: Target, client: MetricsClient, tuning: plan.Tuning) -> tuple[int, str, Obj]:
    metric = source.get("metric") or {}
    name = str(metric.get("name", ""))
    try:
        try:
            samples = await client.pod_custom_metrics(name, t.namespace, t.selector,
                                                      _selector_text(metric.get("selector")))
        except MetricError as e:
            raise MetricError(f"unable to get metric {name}: {e}") from None
        target = cpu_millis((source.get("target") or {}).get("averageValue") or "0")
        replicas, usage = plan.plain_replicas(t.spec_replicas, target, "", t.pods, samples, time.time(), tuning)
    except MetricError as e:
        raise Failure("FailedGetPodsMetric", str(e), f"failed to get pods metric value: {e}") from None
    status = {"type": "Pods", "pods": {"metric": _identifier(metric), "current": {"averageValue": milli(usage)}}}
    return replicas, f"pods metric {name}", status


async def _object(source: Obj, t: Target, client: MetricsClient, resolve: Resolve,
                  tuning: plan.Tuning) -> tuple[int, str, Obj]:
    metric, goal = source.get("metric") or {}, source.get("target") or {}
    name, described = str(metric.get("name", "")), source.get("describedObject") or {}

    def failed(e: Exception, error: str = "") -> Failure:
        return Failure("FailedGetObjectMetric", str(e), f"failed to get object metric value: {error or e}")

    try:
        mapping = await resolve(str(described.get("apiVersion", "")), str(described.get("kind", "")))
        if mapping is None:
            group = str(described.get("apiVersion", "")).rpartition("/")[0]
            raise MetricError(f"unable to fetch metrics from custom metrics API: no matches for kind "
                              f'"{described.get("kind", "")}" in group "{group}"')
        usage = await client.object_custom_metric(name, t.namespace, mapping.group, mapping.plural,
                                                  str(described.get("name", "")), _selector_text(metric.get("selector")))
    except MetricError as e:
        err = MetricError(f"unable to get metric {name}: {e} on {described.get('kind', '')} "
                          f"{t.namespace}/{described.get('name', '')}")
        raise failed(err, f"failed to get {name} object metric: {err}" if goal.get("type") == "AverageValue"
                     and goal.get("averageValue") is not None else "") from None
    if goal.get("type") == "Value" and goal.get("value") is not None:
        try:
            replicas = plan.usage_ratio_replicas(t.spec_replicas, usage / cpu_millis(goal["value"]), t.pods, tuning)
        except MetricError as e:
            raise failed(e) from None
        status = {"describedObject": described, "metric": _identifier(metric), "current": {"value": milli(usage)}}
        return replicas, f"{described.get('kind', '')} metric {name}", {"type": "Object", "object": status}
    if goal.get("type") == "AverageValue" and goal.get("averageValue") is not None:
        replicas, average = plan.per_pod_replicas(t.status_replicas, usage, cpu_millis(goal["averageValue"]), tuning)
        status = {"describedObject": {"kind": "", "name": ""}, "metric": _identifier(metric),
                  "current": {"averageValue": milli(average)}}
        return (replicas, f"external metric {name}({plan.go_label_selector(metric.get('selector'))})",
                {"type": "Object", "object": status})
    raise failed(MetricError("invalid object metric source: neither a value target nor an average value target was set"))


async def _external(source: Obj, t: Target, client: MetricsClient, tuning: plan.Tuning) -> tuple[int, str, Obj]:
    metric, goal = source.get("metric") or {}, source.get("target") or {}
    name, selector = str(metric.get("name", "")), metric.get("selector")
    described = f"external metric {name}({plan.go_label_selector(selector)})"
    per_pod = goal.get("averageValue") is not None
    if not per_pod and goal.get("value") is None:
        message = "invalid external metric source: neither a value target nor an average value target was set"
        raise Failure("FailedGetExternalMetric", message, f"failed to get {name} external metric value: {message}")
    try:
        try:
            total = sum(await client.external_metrics(name, t.namespace, _selector_text(selector)))
        except MetricError as e:
            raise MetricError(f"unable to get external metric {t.namespace}/{name}/"
                              f"{plan.go_label_selector(selector)}: {e}") from None
        if per_pod:
            replicas, value = plan.per_pod_replicas(t.status_replicas, total, cpu_millis(goal["averageValue"]), tuning)
            current = {"averageValue": milli(value)}
        else:
            replicas = plan.usage_ratio_replicas(t.spec_replicas, total / cpu_millis(goal["value"]), t.pods, tuning)
            current = {"value": milli(total)}
    except MetricError as e:
        inner = f"failed to get {name} external metric: {e}" if per_pod else f"failed to get external metric {name}: {e}"
        raise Failure("FailedGetExternalMetric", str(e), f"failed to get {name} external metric value: {inner}") from None
    return replicas, described, {"type": "External", "external": {"metric": _identifier(metric), "current": current}}
