"""The API server's ``/metrics``: its collectors, attached to the server's parts, and the endpoint.

Contract: :func:`attach` (unless ``KYB_APISERVER_METRICS=off``) makes the request, storage,
admission and API Priority and Fairness collectors (:mod:`.metrics`, :mod:`.storagemetrics`,
:mod:`.admission.metrics`, :mod:`.flowcontrol.metrics`), hooks them into the store, the admission
chain (webhooks included) and the watch handlers (the server hands the APF one to its gate when
it builds it), and registers them in the
process's default registry, replacing those of an earlier server in the same process (tests run
several); the server's stop takes them out again. :func:`serve` answers ``GET /metrics`` with the default registry, process and Python
metrics included (:func:`kybernetes.metrics.exposition`); the caller has authorized the request
as kube-apiserver does (nonResourceURL ``/metrics``, verb ``get``: ``system:monitoring`` and
``cluster-admin`` may).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY

from kybernetes import errors
from kybernetes.apiserver.admission.metrics import AdmissionMetrics
from kybernetes.apiserver.flowcontrol.metrics import FlowControlMetrics
from kybernetes.apiserver.metrics import APIServerMetrics, enabled
from kybernetes.apiserver.storagemetrics import StorageMetrics
from kybernetes.httpserver.messages import Request, Response
from kybernetes.metrics import exposition

if TYPE_CHECKING:
    from prometheus_client.registry import Collector

    from kybernetes.api.resources import Catalogue
    from kybernetes.apiserver.admission.chain import Chain
    from kybernetes.apiserver.transport.handlers import ResourceHandlers
    from kybernetes.storage.interface import Store

METRICS_PATH = "/metrics"

_registered: list[Collector] = []


@dataclass
class Monitoring:
    requests: APIServerMetrics
    storage: StorageMetrics
    admission: AdmissionMetrics
    flowcontrol: FlowControlMetrics
    """Handed to the server's API Priority and Fairness gate when it is built."""

    def start(self, store: Store) -> None:
        """Once the server is about to serve: the in-flight watermark and the object counts."""
        self.requests.start()
        self.storage.start(store)

    async def stop(self) -> None:
        """Stops the collectors and takes them out of the default registry (unless a later
        server's have replaced them): a stopped server's store is not scraped, nor kept alive."""
        self.requests.stop()
        await self.storage.stop()
        mine = [self.requests, self.storage, self.admission, self.flowcontrol]
        if _registered == mine:
            for c in mine:
                REGISTRY.unregister(c)
            _registered.clear()


def attach(catalogue: Catalogue, store: Store, admission: Chain, handlers: ResourceHandlers) -> Monitoring | None:
    """The server's collectors, hooked in and registered; None when metrics are off."""
    if not enabled():
        return None
    m = Monitoring(APIServerMetrics(frozenset(catalogue.groups())), StorageMetrics(catalogue), AdmissionMetrics(),
                   FlowControlMetrics())
    m.storage.instrument(store)
    admission.instrument(m.admission)
    handlers.watch_metrics = m.requests
    for old in _registered:
        REGISTRY.unregister(old)
    _registered[:] = [m.requests, m.storage, m.admission, m.flowcontrol]
    for c in _registered:
        REGISTRY.register(c)
    return m


def serve(request: Request) -> Response:
    """One scrape of the default registry, in the format the scraper asked for."""
    if request.method not in ("GET", "HEAD"):
        raise errors.MethodNotAllowed(f"the server does not allow this method on {METRICS_PATH}")
    body, content_type = exposition(request.headers.get("Accept", ""))
    return Response(body=body, headers={"Content-Type": content_type})
