"""The kubelet API's stats and metrics endpoints (routes of :mod:`kybernetes.kubelet.server`).

- ``GET /stats/summary``: stats/v1alpha1 Summary of one snapshot (:mod:`kybernetes.kubelet.stats`),
  pods' start times from their status;
- ``GET /metrics``: the kubelet process's own registry (:mod:`kybernetes.kubelet.metrics` and the
  process collectors);
- ``GET /metrics/resource``: the Resource Metrics families; stats that cannot be read answer
  ``scrape_error 1`` rather than an error status, as the kubelet's collector does;
- ``GET /metrics/cadvisor``: cAdvisor's families.

Each body is negotiated on the request's Accept header (:func:`kybernetes.metrics.exposition`).
Authentication and authorization are the server's middleware's; a runtime error of the summary
or cAdvisor endpoints becomes its 500.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from kybernetes.api.timeutil import parse_epoch
from kybernetes.kubelet.cri import CRIError
from kybernetes.kubelet.resourcemetrics import cadvisor_registry, resource_registry
from kybernetes.kubelet.stats import StatsProvider, summary_json
from kybernetes.metrics import exposition

log = logging.getLogger(__name__)


def _exposed(body: bytes, content_type: str) -> web.Response:
    # aiohttp's content_type argument takes no parameters: the whole header goes through headers.
    return web.Response(body=body, headers={"Content-Type": content_type})


class StatsHandlers:
    """The four endpoints over a stats provider and the pods the kubelet runs."""

    def __init__(self, stats: StatsProvider, running_pods: Callable[[], list[dict[str, Any]]]) -> None:
        self.stats = stats
        self.running_pods = running_pods

    def register(self, router: web.UrlDispatcher) -> None:
        router.add_get("/stats/summary", self.summary)
        router.add_get("/metrics", self.metrics)
        router.add_get("/metrics/resource", self.metrics_resource)
        router.add_get("/metrics/cadvisor", self.metrics_cadvisor)

    def pod_starts(self) -> dict[str, float]:
        """status.startTime of the pods the kubelet runs, by UID."""
        out = {}
        for pod in self.running_pods():
            start = parse_epoch((pod.get("status") or {}).get("startTime"))
            if start is not None:
                out[(pod.get("metadata") or {}).get("uid", "")] = start
        return out

    async def summary(self, request: web.Request) -> web.Response:
        return web.json_response(summary_json(await self.stats.snapshot(), self.pod_starts()))

    async def metrics(self, request: web.Request) -> web.Response:
        return _exposed(*exposition(request.headers.get("Accept", "")))

    async def metrics_resource(self, request: web.Request) -> web.Response:
        snap = None
        try:
            snap = await self.stats.snapshot()
        except (CRIError, OSError, ValueError) as err:
            log.warning("resource metrics: %s", err)
        return _exposed(*exposition(request.headers.get("Accept", ""), resource_registry(snap)))

    async def metrics_cadvisor(self, request: web.Request) -> web.Response:
        snap = await self.stats.snapshot()
        return _exposed(*exposition(request.headers.get("Accept", ""), cadvisor_registry(snap)))
