"""kube-proxy's metrics (``pkg/proxy/metrics``) and its plain-HTTP metrics server.

The metrics, with Kubernetes' names, help texts and buckets, as far as our proxier has the concept:

- ``kubeproxy_sync_proxy_rules_duration_seconds``: each sync round that rendered and (if changed
  or forced) applied the table, successful or not;
- ``kubeproxy_sync_proxy_rules_last_timestamp_seconds``: the wall-clock time of the last
  successful sync;
- ``kubeproxy_sync_proxy_rules_service_changes_total`` / ``..._endpoint_changes_total``: Service and
  EndpointSlice events the proxier saw; ``..._service_changes_pending`` /
  ``..._endpoint_changes_pending``: distinct Services / EndpointSlices changed since the last
  successful sync.

:class:`MetricsServer` is ``--metrics-bind-address`` (default ``127.0.0.1:10249``; empty: none):
plain HTTP, no authentication (kube-proxy's is the same), ``/metrics`` (the process's registry),
``/healthz`` (``ok``) and ``/proxyMode`` (``nftables``). An address that cannot be bound is logged
and retried every 5 s, as kube-proxy does; it never stops the proxy.
"""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import Counter, Gauge, Histogram

from kybernetes.httpserver.messages import Request, Response
from kybernetes.httpserver.protocol import HTTPServer
from kybernetes.metrics import exponential_buckets, exposition

log = logging.getLogger(__name__)

DEFAULT_METRICS_PORT = 10249
RETRY_SECONDS = 5.0

SYNC_DURATION = Histogram("kubeproxy_sync_proxy_rules_duration_seconds", "SyncProxyRules latency in seconds",
                          buckets=exponential_buckets(0.001, 2, 15))
LAST_SYNC = Gauge("kubeproxy_sync_proxy_rules_last_timestamp_seconds",
                  "The last time proxy rules were successfully synced")
SERVICE_CHANGES = Counter("kubeproxy_sync_proxy_rules_service_changes_total", "Cumulative proxy rules Service changes")
ENDPOINT_CHANGES = Counter("kubeproxy_sync_proxy_rules_endpoint_changes_total",
                           "Cumulative proxy rules Endpoint changes")
SERVICE_PENDING = Gauge("kubeproxy_sync_proxy_rules_service_changes_pending", "Pending proxy rules Service changes")
ENDPOINT_PENDING = Gauge("kubeproxy_sync_proxy_rules_endpoint_changes_pending", "Pending proxy rules Endpoint changes")


class ChangeTracker:
    """Service and EndpointSlice changes seen, and those still pending until the next successful sync."""

    def __init__(self) -> None:
        self._services: set[str] = set()
        self._endpoints: set[str] = set()

    def changed(self, plural: str, key: str) -> None:
        if plural == "services":
            SERVICE_CHANGES.inc()
            self._services.add(key)
            SERVICE_PENDING.set(len(self._services))
        else:
            ENDPOINT_CHANGES.inc()
            self._endpoints.add(key)
            ENDPOINT_PENDING.set(len(self._endpoints))

    def synced(self) -> None:
        self._services.clear()
        self._endpoints.clear()
        SERVICE_PENDING.set(0)
        ENDPOINT_PENDING.set(0)


def parse_metrics_address(value: str) -> tuple[str, int]:
    """``IP[:port]`` (a bare IP gets port 10249)."""
    host, sep, port = value.rpartition(":")
    if not sep or "]" in port:
        return value.strip("[]"), DEFAULT_METRICS_PORT
    return host.strip("[]"), int(port)


class MetricsServer:
    """kube-proxy's metrics server (see the module doc)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.port: int | None = None
        self._server: HTTPServer | None = None

    async def serve(self) -> None:
        """Listen, retrying a failed bind every 5 s; returns once listening."""
        host, port = parse_metrics_address(self.address)
        while True:
            server = HTTPServer(self._handle, max_body=0)
            try:
                self.port = await server.start(host, port)
                self._server = server
                log.info("proxy: metrics on %s (port %d)", self.address, self.port)
                return
            except OSError as e:
                log.error("proxy: metrics server on %s failed: %s", self.address, e)
            await asyncio.sleep(RETRY_SECONDS)

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(0.5)
            self._server = None

    async def _handle(self, req: Request) -> Response:
        path = req.path
        if path == "/metrics":
            body, content_type = exposition(req.headers.get("Accept", ""))
            return Response(body=body, content_type=content_type)
        if path == "/healthz":
            return Response(text="ok", content_type="text/plain")
        if path == "/proxyMode":
            return Response(text="nftables", content_type="text/plain")
        return Response(text="404 page not found\n", status=404, content_type="text/plain")
