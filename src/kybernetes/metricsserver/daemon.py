"""The metrics-server process: informers, the scrape loop, the HTTPS API (see the package doc)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from kybernetes import errors
from kybernetes.client import Client, SharedInformerFactory
from kybernetes.client.delegatedauth import DELEGATING_TTLS, DelegatedAuth
from kybernetes.metricsserver.scraper import DEFAULT_ADDRESS_TYPES, Scraper
from kybernetes.metricsserver.server import MetricsAPI, RequestHeader, serving_context
from kybernetes.metricsserver.storage import Storage

log = logging.getLogger(__name__)

AUTH_CONFIGMAP = ("kube-system", "extension-apiserver-authentication")


@dataclass
class DaemonConfig:
    secure_port: int = 10250
    bind_address: str = "0.0.0.0"
    cert_dir: Path = Path("apiserver.local.config/certificates")
    tls_cert_file: Path | None = None
    tls_private_key_file: Path | None = None
    metric_resolution: float = 60.0
    kubelet_insecure_tls: bool = False
    address_types: tuple[str, ...] = DEFAULT_ADDRESS_TYPES
    kubelet_port: int = 10250
    use_node_status_port: bool = False
    request_timeout: float = 10.0


def serving_certificate(cert_dir: Path) -> tuple[Path, Path]:
    """A serving certificate for this host, made once in ``cert_dir`` by a CA of its own."""
    from kybernetes.pki import PKI

    pki = PKI.load_or_create(cert_dir, ca_name="metrics-server-ca", common_name="metrics-server-ca")
    host = socket.gethostname()
    names = ("localhost", host, "metrics-server", "metrics-server.kube-system", "metrics-server.kube-system.svc")
    return pki.ensure("apiserver", common_name="metrics-server", dns_names=names, ip_addresses=("127.0.0.1",),
                      server=True)


class Daemon:
    def __init__(self, client: Client, config: DaemonConfig) -> None:
        self.client, self.config = client, config
        self.storage = Storage(config.metric_resolution)
        self.factory = SharedInformerFactory(client)
        self.nodes = self.factory.informer("v1", "nodes")
        self.pods = self.factory.informer("v1", "pods")
        self.scraper = Scraper(client.config, insecure=config.kubelet_insecure_tls, address_types=config.address_types,
                               default_port=config.kubelet_port, timeout=config.request_timeout,
                               use_node_status_port=config.use_node_status_port)
        self.runner: web.AppRunner | None = None
        self.port = config.secure_port

    async def _requestheader(self) -> RequestHeader:
        try:
            cm = await self.client.get("v1", "configmaps", AUTH_CONFIGMAP[1], AUTH_CONFIGMAP[0])
        except errors.NotFound:
            log.warning("no %s/%s: front-proxy requests cannot be authenticated", *AUTH_CONFIGMAP)
            return RequestHeader()
        return RequestHeader.from_configmap(cm)

    async def _core_schemas(self) -> dict[str, Any]:
        """The API server's own v3 schemas of the core group (ObjectMeta and what it references)."""
        try:
            doc = await self.client.request("GET", "/openapi/v3/api/v1")
        except (errors.StatusError, OSError) as err:
            log.warning("no OpenAPI v3 from the API server (%s): metrics.k8s.io's document lacks ObjectMeta", err)
            return {}
        return dict(((doc or {}).get("components") or {}).get("schemas") or {}) if isinstance(doc, dict) else {}

    async def start(self) -> None:
        cfg = self.config
        requestheader = await self._requestheader()
        if cfg.tls_cert_file and cfg.tls_private_key_file:
            cert, key = cfg.tls_cert_file, cfg.tls_private_key_file
        else:
            cert, key = await asyncio.to_thread(serving_certificate, cfg.cert_dir)
        api = MetricsAPI(self.storage, self.nodes, self.pods, DelegatedAuth(self.client, DELEGATING_TTLS), requestheader,
                         core_schemas=await self._core_schemas())
        self.runner = web.AppRunner(api.app(), access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self.runner.setup()
        site = web.TCPSite(self.runner, cfg.bind_address, cfg.secure_port,
                           ssl_context=serving_context(str(cert), str(key), requestheader.ca_pem), reuse_address=True)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("serving metrics.k8s.io on %s:%s", cfg.bind_address, self.port)
        # Serving first: /livez answers while the informers fill (/readyz waits for two scrapes).
        await self.factory.start()
        for informer in (self.nodes, self.pods):
            if not await informer.wait_for_sync(60):
                raise RuntimeError(f"{informer!r} did not sync within 60 s")

    async def scrape_once(self) -> None:
        batches = await self.scraper.scrape_all(self.nodes.store.list())
        self.storage.store(batches)

    async def run(self) -> None:
        await self.start()
        while True:
            try:
                await self.scrape_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scrape round failed")
            await asyncio.sleep(self.config.metric_resolution)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.scraper.close()
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        await self.factory.stop()
