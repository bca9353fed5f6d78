"""``kyb dns`` running: informers feed the zone, the server answers, health and readiness report.

Data flow::

    informers (v1 services, discovery.k8s.io/v1 endpointslices, v1 namespaces; one factory)
      -> their event handlers update the ClusterZone in place (records diffed, answers rendered)
    DNSServer on UDP and TCP (--listen) reads ClusterZone.answers, forwards the rest
    GET /health on --health-port: 200 "OK" while the process serves (CoreDNS's health plugin)
    GET /ready on --ready-port: 200 "OK" once every informer has synced, 503 before (ready plugin)
    GET /metrics on --metrics-port (0: off): CoreDNS's prometheus plugin metrics
      (:mod:`kybernetes.dns.metrics`) and the process's ``process_*``/``python_*`` metrics

The health, ready and metrics endpoints listen on the host of ``--listen``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import REGISTRY

from kybernetes.client.informer import SharedInformerFactory
from kybernetes.client.rest import Client
from kybernetes.dns.forward import Forwarder, read_resolv_conf
from kybernetes.dns.metrics import DNSMetrics
from kybernetes.dns.server import DNSServer
from kybernetes.dns.zone import ClusterZone
from kybernetes.metrics import exposition

log = logging.getLogger(__name__)

@dataclass
class DNSConfig:
    kubeconfig: Path | None = None
    """None: the pod's in-cluster credentials."""
    cluster_domain: str = "cluster.local"
    host: str = "0.0.0.0"
    port: int = 53
    resolv_conf: Path = Path("/etc/resolv.conf")
    health_port: int = 8080
    ready_port: int = 8181
    metrics_port: int = 9153
    """0: no metrics endpoint, nothing counted."""


def watch_zone(factory: SharedInformerFactory, zone: ClusterZone) -> None:
    """Feed ``zone`` from the factory's informers (created here if need be)."""
    factory.informer("v1", "services").add_handler(
        on_add=zone.on_service, on_update=lambda _old, new: zone.on_service(new), on_delete=zone.on_service_deleted)
    factory.informer("discovery.k8s.io/v1", "endpointslices").add_handler(
        on_add=zone.on_slice, on_update=zone.on_slice_update, on_delete=zone.on_slice_deleted)
    factory.informer("v1", "namespaces").add_handler(
        on_add=zone.on_namespace, on_update=lambda _old, new: zone.on_namespace(new),
        on_delete=zone.on_namespace_deleted)


async def _http(host: str, port: int, path: str, handler: Any) -> web.AppRunner:
    app = web.Application()
    app.router.add_get(path, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


async def run(config: DNSConfig, stop: asyncio.Event) -> None:
    """Serve until ``stop`` is set."""
    client = (Client.from_kubeconfig(config.kubeconfig, user_agent="kybernetes-dns") if config.kubeconfig
              else Client.in_cluster(user_agent="kybernetes-dns"))
    upstreams = [u for u in read_resolv_conf(config.resolv_conf) if u != (config.host, config.port)]
    if not upstreams:
        log.warning("dns: no upstream nameserver in %s", config.resolv_conf)
    zone = ClusterZone(config.cluster_domain)
    metrics = DNSMetrics(config.port, _version()) if config.metrics_port else None
    server = DNSServer(zone, Forwarder(upstreams), metrics)
    factory = SharedInformerFactory(client)
    watch_zone(factory, zone)
    synced = asyncio.Event()

    async def health(_req: web.Request) -> web.Response:
        return web.Response(text="OK")

    async def ready(_req: web.Request) -> web.Response:
        if synced.is_set():
            return web.Response(text="OK")
        return web.Response(status=503, text="informers have not synced")

    async def scrape(req: web.Request) -> web.Response:
        body, content_type = exposition(req.headers.get("Accept", ""))
        return web.Response(body=body, headers={"Content-Type": content_type})

    runners: list[web.AppRunner] = []
    closers: list[Any] = []
    try:
        closers = await server.serve(config.host, config.port)
        runners.append(await _http(config.host, config.health_port, "/health", health))
        runners.append(await _http(config.host, config.ready_port, "/ready", ready))
        if metrics is not None:
            REGISTRY.register(metrics)
            runners.append(await _http(config.host, config.metrics_port, "/metrics", scrape))
        await factory.start()
        log.info("dns: serving %s on %s:%d (upstreams: %s)", zone.origin, config.host, config.port,
                    ", ".join(f"{h}:{p}" for h, p in upstreams) or "none")
        sync = asyncio.ensure_future(factory.wait_for_sync())
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait({sync, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if sync.done():
            synced.set()
            log.info("dns: informers synced")
        else:
            sync.cancel()
        await stopper
    finally:
        if metrics is not None:
            with contextlib.suppress(KeyError):  # not registered if the DNS ports failed to open
                REGISTRY.unregister(metrics)
        for c in closers:
            c.close()
        for r in runners:
            await r.cleanup()
        await factory.stop()
        await client.close()


def _version() -> str:
    """coredns_build_info's ``version``: the installed kybernetes distribution's."""
    try:
        return importlib.metadata.version("kybernetes")
    except importlib.metadata.PackageNotFoundError:
        return ""
