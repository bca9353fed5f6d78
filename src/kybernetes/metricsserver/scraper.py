"""Scraping every node's kubelet ``/metrics/resource``, as metrics-server's scraper does.

Contract:

- A node's address is the first of its ``status.addresses`` whose type comes first in
  ``address_types`` (metrics-server's ``--kubelet-preferred-address-types``); its port the
  ``status.daemonEndpoints.kubeletEndpoint.Port`` it reports with ``use_node_status_port``
  (``--kubelet-use-node-status-port``), else ``default_port``.
- The request carries metrics-server's own credentials (the kubeconfig's or the service account's
  bearer token and client certificate) and verifies the kubelet's serving certificate against the
  cluster CA unless ``insecure`` (``--kubelet-insecure-tls``).
- All nodes are scraped at once, each bounded by ``timeout``; a node that fails (unreachable, an
  error status, a malformed body) is logged and left out of the round.
- Hollow nodes (``kyb hollow-nodes``, providerID ``hollow://``, as kwok's are ``kwok://``) are never
  dialled: nothing listens on their made-up addresses, and traffic to them would leave the machine.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from typing import Any

import aiohttp

from kybernetes.client.kubeconfig import ClusterConfig
from kybernetes.metricsserver.decode import Batch, decode

log = logging.getLogger(__name__)

HOLLOW_SCHEME = "hollow://"
DEFAULT_ADDRESS_TYPES = ("Hostname", "InternalDNS", "InternalIP", "ExternalDNS", "ExternalIP")


def scrape_targets(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The nodes to scrape: all but hollow ones."""
    return [n for n in nodes if not str((n.get("spec") or {}).get("providerID", "")).startswith(HOLLOW_SCHEME)]


def node_address(node: dict[str, Any], address_types: tuple[str, ...]) -> str | None:
    addresses = (node.get("status") or {}).get("addresses") or []
    for kind in address_types:
        for a in addresses:
            if a.get("type") == kind and a.get("address"):
                return str(a["address"])
    return None


def kubelet_url(node: dict[str, Any], address_types: tuple[str, ...], default_port: int,
                use_node_status_port: bool = True) -> str | None:
    address = node_address(node, address_types)
    if address is None:
        return None
    port = ((node.get("status") or {}).get("daemonEndpoints") or {}).get("kubeletEndpoint", {}).get("Port") \
        if use_node_status_port else None
    host = f"[{address}]" if ":" in address else address
    return f"https://{host}:{port or default_port}/metrics/resource"


class Scraper:
    def __init__(self, config: ClusterConfig, *, insecure: bool = False,
                 address_types: tuple[str, ...] = DEFAULT_ADDRESS_TYPES, default_port: int = 10250,
                 timeout: float = 10.0, use_node_status_port: bool = True) -> None:
        self.config = config
        self.use_node_status_port = use_node_status_port
        self.address_types, self.default_port, self.timeout = address_types, default_port, timeout
        ctx = config.ssl_context() or ssl.create_default_context()
        if insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        self.ssl = ctx
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def scrape_all(self, nodes: list[dict[str, Any]]) -> dict[str, Batch]:
        """Node name -> its batch, for the nodes that answered."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        nodes = scrape_targets(nodes)
        results = await asyncio.gather(*(self._scrape(n) for n in nodes))
        return {n["metadata"]["name"]: b for n, b in zip(nodes, results, strict=True) if b is not None}

    async def _scrape(self, node: dict[str, Any]) -> Batch | None:
        name = node["metadata"]["name"]
        url = kubelet_url(node, self.address_types, self.default_port, self.use_node_status_port)
        if url is None:
            log.warning("node %s has no address of types %s", name, ",".join(self.address_types))
            return None
        headers = {"Accept": "text/plain;version=0.0.4"}
        token = self.config.bearer_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        assert self._session is not None
        started = time.time()
        try:
            async with self._session.get(url, headers=headers, ssl=self.ssl,
                                         timeout=aiohttp.ClientTimeout(total=self.timeout)) as resp:
                body = await resp.text()
                if resp.status != 200:
                    log.warning("scraping node %s (%s): %s %s", name, url, resp.status, body[:200])
                    return None
            return decode(body, started)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as err:
            log.warning("scraping node %s (%s): %s", name, url, err or type(err).__name__)
            return None
