"""Where the HorizontalPodAutoscaler controller reads metrics (``pkg/controller/podautoscaler/metrics``).

:class:`MetricsClient` is the contract: each pod's usage of a resource, as metrics-server serves it.
:class:`ResourceMetricsClient` is the real one: ``metrics.k8s.io/v1beta1`` PodMetrics listed
through the API server (which serves or proxies that API), summed over each pod's containers (or
one container), in milli-units; a pod whose sample lacks the resource is left out (it then counts
as *missing*). Failures raise :class:`~kybernetes.controllers.podautoscaler_plan.MetricError` with
Kubernetes' messages.

Custom metrics (``custom.metrics.k8s.io/v1beta2``: a metric of each selected pod, or of one object)
and external metrics (``external.metrics.k8s.io/v1beta1``) are read the same way, from whatever
adapter serves those APIs through the aggregation layer (``custom_metrics_client``, ``external_metrics_client``).
"""

from __future__ import annotations

from typing import Protocol

from kybernetes import errors
from kybernetes.api.obj import Obj
from kybernetes.api.quantity import cpu_millis
from kybernetes.api.timeutil import parse_duration, parse_epoch
from kybernetes.client.rest import Client
from kybernetes.controllers.podautoscaler_plan import MetricError, PodMetric

METRICS_API = "metrics.k8s.io/v1beta1"
CUSTOM_API = "custom.metrics.k8s.io/v1beta2"
EXTERNAL_API = "external.metrics.k8s.io/v1beta1"
_NOT_SERVED = "the server could not find the requested resource"
CUSTOM_WINDOW = 60.0
"""A custom metric sample's window when the adapter names none (``metricServerDefaultMetricWindow``)."""


class MetricsClient(Protocol):
    async def pod_resource_metrics(self, resource: str, namespace: str, selector: str,
                                   container: str = "") -> tuple[dict[str, PodMetric], float]:
        """Each selected pod's usage of ``resource`` (milli-units) and the first sample's time."""
        ...

    async def pod_custom_metrics(self, metric: str, namespace: str, selector: str,
                                 metric_selector: str) -> dict[str, PodMetric]:
        """Each selected pod's value of a custom metric (milli-units)."""
        ...

    async def object_custom_metric(self, metric: str, namespace: str, group: str, plural: str, name: str,
                                   metric_selector: str) -> int:
        """One object's value of a custom metric (milli-units)."""
        ...

    async def external_metrics(self, metric: str, namespace: str, metric_selector: str) -> list[int]:
        """The values of an external metric's series (milli-units)."""
        ...


class ResourceMetricsClient:
    """:class:`MetricsClient` on ``metrics.k8s.io/v1beta1`` through ``client`` (``resourceMetricsClient``)."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def pod_resource_metrics(self, resource: str, namespace: str, selector: str,
                                   container: str = "") -> tuple[dict[str, PodMetric], float]:
        try:
            listed = await self.client.list(METRICS_API, "pods", namespace, label_selector=selector)
        except errors.StatusError as e:
            message = e.message
            if isinstance(e, errors.NotFound) and message == _NOT_SERVED:
                message += " (get pods.metrics.k8s.io)"  # client-go names the request on a bare 404
            raise MetricError(f"unable to fetch metrics from resource metrics API: {message}") from None
        items = [m for m in listed.get("items") or [] if isinstance(m, dict)]
        if not items:
            raise MetricError("no metrics returned from resource metrics API")
        samples = container_samples(items, resource, container) if container else pod_samples(items, resource)
        return samples, parse_epoch(items[0].get("timestamp")) or 0.0

    async def _items(self, api: str, what: str, path: str, params: dict[str, str]) -> list[Obj]:
        try:
            listed = await self.client.request("GET", f"/apis/{api}{path}", params=params)
        except errors.StatusError as e:
            message = e.message
            if api == CUSTOM_API and isinstance(e, errors.NotFound) and message == _NOT_SERVED:
                message = "no custom metrics API (custom.metrics.k8s.io) registered"  # client-go's words
            raise MetricError(f"unable to fetch metrics from {what} metrics API: {message}") from None
        items = [m for m in (listed or {}).get("items") or [] if isinstance(m, dict)]
        if not items:
            raise MetricError(f"no metrics returned from {what} metrics API")
        return items

    async def pod_custom_metrics(self, metric: str, namespace: str, selector: str,
                                 metric_selector: str) -> dict[str, PodMetric]:
        items = await self._items(CUSTOM_API, "custom", f"/namespaces/{namespace}/pods/*/{metric}",
                                  {"labelSelector": selector, "metricLabelSelector": metric_selector})
        return {str((m.get("describedObject") or {}).get("name", "")): _custom_sample(m) for m in items}

    async def object_custom_metric(self, metric: str, namespace: str, group: str, plural: str, name: str,
                                   metric_selector: str) -> int:
        resource = f"{plural}.{group}" if group else plural
        path = (f"/namespaces/{name}/metrics/{metric}" if (group, plural) == ("", "namespaces")
                else f"/namespaces/{namespace}/{resource}/{name}/{metric}")
        items = await self._items(CUSTOM_API, "custom", path, {"metricLabelSelector": metric_selector})
        if len(items) != 1:
            raise MetricError(f"unable to fetch metrics from custom metrics API: the custom metrics API server "
                              f"returned {len(items)} results when we asked for exactly one")
        return cpu_millis(items[0].get("value", "0"))

    async def external_metrics(self, metric: str, namespace: str, metric_selector: str) -> list[int]:
        items = await self._items(EXTERNAL_API, "external", f"/namespaces/{namespace}/{metric}",
                                  {"labelSelector": metric_selector})
        return [cpu_millis(m.get("value", "0")) for m in items]


def _custom_sample(item: Obj) -> PodMetric:
    window = item.get("windowSeconds")
    return PodMetric(cpu_millis(item.get("value", "0")), parse_epoch(item.get("timestamp")) or 0.0,
                     float(window) if isinstance(window, int) else CUSTOM_WINDOW)


def _sample(pod_metrics: Obj, value: int) -> PodMetric:
    window = pod_metrics.get("window")
    return PodMetric(value, parse_epoch(pod_metrics.get("timestamp")) or 0.0,
                     parse_duration(window) if isinstance(window, str) and window else 0.0)


def _name(pod_metrics: Obj) -> str:
    meta = pod_metrics.get("metadata")
    return str(meta.get("name", "")) if isinstance(meta, dict) else ""


def pod_samples(items: list[Obj], resource: str) -> dict[str, PodMetric]:
    """Each pod's usage summed over its containers; a pod with a container lacking it is left out."""
    out: dict[str, PodMetric] = {}
    for m in items:
        containers = [c for c in m.get("containers") or [] if isinstance(c, dict)]
        usages = [(c.get("usage") or {}).get(resource) for c in containers]
        if containers and all(u is not None for u in usages):
            out[_name(m)] = _sample(m, sum(cpu_millis(u) for u in usages if u is not None))
    return out


def container_samples(items: list[Obj], resource: str, container: str) -> dict[str, PodMetric]:
    """One container's usage in each pod (``getContainerMetrics``)."""
    out: dict[str, PodMetric] = {}
    for m in items:
        containers = [c for c in m.get("containers") or [] if isinstance(c, dict)]
        found = next((c for c in containers if c.get("name") == container), None)
        if found is None:
            ns = (m.get("metadata") or {}).get("namespace", "")
            raise MetricError(f"failed to get container metrics: container {container} not present in metrics "
                              f"for pod {ns}/{_name(m)}")
        usage = (found.get("usage") or {}).get(resource)
        if usage is not None:
            out[_name(m)] = _sample(m, cpu_millis(usage))
    return out
