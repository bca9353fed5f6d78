"""kube-proxy's two HTTP health endpoints (``pkg/proxy/healthcheck``).

- :class:`ProxyHealth`: ``--healthz-bind-address`` (default ``0.0.0.0:10256``), ``/healthz`` and
  ``/livez``. The proxy is healthy unless a change it was told about has waited for the data
  plane longer than ``health_timeout`` (kube-proxy: twice the sync period); ``/healthz`` is also
  503 while this node is being deleted or carries the cluster autoscaler's
  ``ToBeDeletedByClusterAutoscaler`` taint. Bodies are kube-proxy's:
  ``{"lastUpdated": "<Go time>","currentTime": "<Go time>", "nodeEligible": true}``.
- :class:`ServiceHealthServers`: one listener per ``spec.healthCheckNodePort`` (LoadBalancer
  Services with ``externalTrafficPolicy: Local``), on the NodePort addresses (every address when
  NodePorts answer on all of them). Any path answers kube-proxy's JSON body with the Service's
  name, its number of ready endpoints on this node and the proxy's health: 200 when it has local
  endpoints and the proxy is healthy, else 503, so an external load balancer sends traffic only
  to nodes that can serve it.

A port that cannot be bound (taken by someone else) is logged and retried on the next sync, as
kube-proxy does; it never stops the proxy.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime

from kybernetes.httpserver.messages import Request, Response
from kybernetes.httpserver.protocol import HTTPServer

log = logging.getLogger(__name__)

TO_BE_DELETED_TAINT = "ToBeDeletedByClusterAutoscaler"
DEFAULT_HEALTHZ_PORT = 10256
_HEADERS = {"X-Content-Type-Options": "nosniff"}
_START = time.monotonic()


def go_time(wall: float, mono: float) -> str:
    """``time.Time.String()`` of a Go time read from the clock (UTC, with the monotonic reading)."""
    dt = datetime.fromtimestamp(wall, UTC)
    nanos = f"{round(wall * 1e9) % 1_000_000_000:09d}".rstrip("0")
    frac = f".{nanos}" if nanos else ""
    m = mono - _START
    return f"{dt:%Y-%m-%d %H:%M:%S}{frac} +0000 UTC m=+{m:.9f}"


def parse_bind_address(value: str) -> tuple[str, int]:
    """``IP`` or ``IP:port`` (kube-proxy's flag; a bare IP gets port 10256)."""
    host, sep, port = value.rpartition(":")
    if not sep:
        return value, DEFAULT_HEALTHZ_PORT
    return host.strip("[]"), int(port)


def node_eligible(node: Mapping[str, object] | None) -> bool:
    """kube-proxy's ``SyncNode``: not being deleted and not tainted for deletion by the autoscaler."""
    if node is None:
        return True
    meta = node.get("metadata") or {}
    if isinstance(meta, dict) and meta.get("deletionTimestamp"):
        return False
    spec = node.get("spec") or {}
    taints = spec.get("taints") if isinstance(spec, dict) else None
    return not any(isinstance(t, dict) and t.get("key") == TO_BE_DELETED_TAINT for t in taints or [])


class ProxyHealth:
    """The proxy's health, and the ``/healthz`` and ``/livez`` server."""

    def __init__(self, health_timeout: float, now: Callable[[], float] = time.monotonic) -> None:
        self.health_timeout = health_timeout
        self._now = now
        self._last_updated: tuple[float, float] | None = None  # (wall, monotonic)
        self._oldest_queued: float | None = None
        self.node_eligible = True
        self._server: HTTPServer | None = None

    def queued_update(self) -> None:
        """A change arrived that the data plane does not have yet."""
        if self._oldest_queued is None:
            self._oldest_queued = self._now()

    def updated(self) -> None:
        """The data plane is in step with everything queued so far."""
        self._oldest_queued = None
        self._last_updated = (time.time(), time.monotonic())

    def is_healthy(self) -> bool:
        return self._oldest_queued is None or self._now() - self._oldest_queued < self.health_timeout

    async def start(self, bind: str) -> int:
        host, port = parse_bind_address(bind)
        self._server = HTTPServer(self._handle, max_body=0)
        return await self._server.start(host, port)

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop()
            self._server = None

    async def _handle(self, req: Request) -> Response:
        path = req.raw_path.split("?", 1)[0]
        if path not in ("/healthz", "/livez"):
            return Response(status=404, text="404 page not found\n")
        healthy = self.is_healthy()
        now = (time.time(), time.monotonic())
        last = now if healthy or self._last_updated is None else self._last_updated
        if path == "/healthz":
            healthy = healthy and self.node_eligible
            last = now if healthy else last
            body = (f'{{"lastUpdated": {json.dumps(go_time(*last))},"currentTime": {json.dumps(go_time(*now))}, '
                    f'"nodeEligible": {json.dumps(self.node_eligible)}}}')
        else:
            body = f'{{"lastUpdated": {json.dumps(go_time(*last))},"currentTime": {json.dumps(go_time(*now))}}}'
        return Response(status=200 if healthy else 503, body=body.encode(), headers=_HEADERS,
                        content_type="application/json")


def service_health_body(namespace: str, name: str, local_endpoints: int, proxy_healthy: bool) -> str:
    """kube-proxy's health-check body, byte for byte (a tab-indented JSON document)."""
    return (f'{{\n\t"service": {{\n\t\t"namespace": {json.dumps(namespace)},\n\t\t"name": {json.dumps(name)}\n\t}},\n'
            f'\t"localEndpoints": {local_endpoints},\n\t"serviceProxyHealthy": {json.dumps(proxy_healthy)}\n}}')


class ServiceHealthServers:
    """The listeners on Services' health-check node ports, kept in step by :meth:`sync`."""

    def __init__(self, proxy: ProxyHealth) -> None:
        self.proxy = proxy
        self._servers: dict[tuple[str, str], tuple[int, tuple[str, ...], list[HTTPServer]]] = {}
        self._counts: dict[tuple[str, str], int] = {}

    @property
    def ports(self) -> dict[tuple[str, str], int]:
        """The health-check node ports being served now."""
        return {k: v[0] for k, v in self._servers.items()}

    async def sync(self, services: Mapping[tuple[str, str], int], local_endpoints: Mapping[tuple[str, str], int],
                   addresses: Sequence[str]) -> None:
        """Serve exactly ``services`` ((namespace, name) -> port) on ``addresses`` (empty: all)."""
        self._counts = dict(local_endpoints)
        hosts = tuple(addresses) or ("0.0.0.0",)
        for key, (port, bound, servers) in list(self._servers.items()):
            if services.get(key) != port or bound != hosts:
                del self._servers[key]
                for s in servers:
                    await s.stop(0.5)
                log.info("proxy: closed health check of %s/%s on port %d", *key, port)
        for key, port in services.items():
            if key in self._servers:
                continue
            started: list[HTTPServer] = []
            try:
                for host in hosts:
                    server = HTTPServer(self._handler(key), max_body=0)
                    await server.start(host, port)
                    started.append(server)
            except OSError as e:
                log.error("proxy: failed to start health check of %s/%s on port %d: %s", *key, port, e)
                for s in started:
                    await s.stop(0.5)
                continue
            self._servers[key] = (port, hosts, started)
            log.info("proxy: serving health check of %s/%s on port %d", *key, port)

    def _handler(self, key: tuple[str, str]) -> Callable[[Request], Awaitable[Response]]:
        async def handle(_req: Request) -> Response:
            count = self._counts.get(key, 0)
            healthy = self.proxy.is_healthy()
            body = service_health_body(key[0], key[1], count, healthy)
            return Response(status=200 if count and healthy else 503, body=body.encode(), headers=_HEADERS,
                            content_type="application/json")
        return handle

    async def stop(self) -> None:
        for _port, _hosts, servers in self._servers.values():
            for s in servers:
                await s.stop(0.5)
        self._servers.clear()
