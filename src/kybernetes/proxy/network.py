"""``kyb network``: the node's side of the pod network across nodes (flannel's host-gw backend).

Pods on one node reach pods on another by pod IP, without encapsulation and without NAT: every
node routes each other node's ``spec.podCIDR`` through that node's InternalIP (:mod:`.routes`),
and pod traffic leaving the cluster networks is masqueraded (:mod:`.masquerade`, unless
``--no-ip-masq``). Within a node, the CNI bridge does the rest.

Loop::

    informer on v1 nodes (kube-proxy's credentials: system:node-proxier watches nodes)
      -> a change sets "dirty"; every ``sync_period`` (2 s) a resync happens anyway
    sync: desired routes from the informer's nodes and this namespace's addresses
          -> reconcile (ip -j route show proto 107; replace what is missing or wrong, delete the rest)
          -> the masquerade table: applied at the first sync, and again whenever
             ``nft list table`` no longer prints what it printed after our last apply
    stop: our routes and our table are removed, like kube-proxy's table

The resync is what repairs a node whose routes (``ip route flush proto 107``) or table
(``nft delete table ...``) someone removed by hand: within ``sync_period``, with three cheap
reads (``ip -j route``, ``ip -j addr``, ``nft list table``) and no write when nothing is wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kybernetes.api.obj import Obj
from kybernetes.client.informer import SharedInformerFactory
from kybernetes.client.rest import Client
from kybernetes.datadir import network_table
from kybernetes.proxy import nftables, routes
from kybernetes.proxy.masquerade import render_masquerade_table

log = logging.getLogger(__name__)


@dataclass
class NetworkConfig:
    node_name: str
    kubeconfig: str | Path | None = None
    bridge: str = "kyb0"
    cluster_cidr: str = "10.42.0.0/16"
    service_cidr: str = "10.43.0.0/16"
    ip_masq: bool = True
    sync_period: float = 2.0
    nft: str = nftables.NFT

    @property
    def table(self) -> str:
        return network_table(self.bridge)


def list_table(table: str, nft: str = nftables.NFT) -> str | None:
    """``nft list table ip TABLE`` as printed, or None when the table does not exist."""
    res = subprocess.run([nft, "list", "table", "ip", table], capture_output=True, text=True, timeout=30)
    return res.stdout if res.returncode == 0 else None


class NodeNetwork:
    """One node's network daemon: its informer, the sync loop and the host state it owns."""

    def __init__(self, config: NetworkConfig, client: Client | None = None) -> None:
        nftables.check_table_name(config.table)
        self.config = config
        self._client = client
        self._own_client = client is None
        self.factory: SharedInformerFactory | None = None
        self._dirty = asyncio.Event()
        self._table_listing: str | None = None  # what `nft list table` printed after our apply
        self._failed: dict[str, str] = {}  # routes the kernel refused at the last sync, reported once
        self._table_cleared = False  # with masquerading off: the table of an earlier start removed
        self.syncs = 0

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client.from_kubeconfig(self.config.kubeconfig, user_agent="kybernetes-network")
        return self._client

    async def start(self) -> None:
        self.factory = SharedInformerFactory(self.client)
        self.factory.informer("v1", "nodes").add_handler(
            on_add=lambda _o: self._dirty.set(), on_update=lambda _o, _n: self._dirty.set(),
            on_delete=lambda _o: self._dirty.set())
        await self.factory.start()

    async def run(self, stop: asyncio.Event) -> None:
        """Sync until ``stop``: on every Node change, and every ``sync_period`` regardless."""
        assert self.factory is not None, "start() first"
        stopper = asyncio.ensure_future(stop.wait())
        try:
            synced = asyncio.ensure_future(self.factory.wait_for_sync())
            await asyncio.wait({synced, stopper}, return_when=asyncio.FIRST_COMPLETED)
            synced.cancel()
            while not stop.is_set():
                self._dirty.clear()
                try:
                    await self.sync()
                except Exception as e:  # logged and retried at the next resync
                    log.error("node network sync failed: %s", e)
                dirty = asyncio.ensure_future(self._dirty.wait())
                await asyncio.wait({dirty, stopper}, timeout=self.config.sync_period,
                                   return_when=asyncio.FIRST_COMPLETED)
                dirty.cancel()
        finally:
            stopper.cancel()

    async def sync(self) -> None:
        assert self.factory is not None
        nodes = self.factory.informer("v1", "nodes").store.list()  # snapshot on the loop
        await asyncio.to_thread(self._sync_host, nodes)
        self.syncs += 1

    def _sync_host(self, nodes: list[Obj]) -> None:
        self._sync_routes(nodes)
        self._sync_table()

    def _sync_routes(self, nodes: list[Obj]) -> None:
        want = routes.desired_routes(nodes, self.config.node_name, routes.local_addresses())
        changes = routes.reconcile(want)
        for route in changes.replaced:
            log.info("network: route %s", route)
        for cidr in changes.deleted:
            log.info("network: removed the route to %s", cidr)
        for cidr, why in changes.failed.items():
            if self._failed.get(cidr) != why:  # once per failure, not at every resync
                log.error("network: cannot route %s %s (host-gw needs every node on one L2 network)", cidr, why)
        self._failed = changes.failed

    def _sync_table(self) -> None:
        cfg = self.config
        if not cfg.ip_masq:
            if not self._table_cleared:  # masquerading may have been on at an earlier start
                nftables.run_nft(nftables.delete_table_script(cfg.table), nft=cfg.nft)
                self._table_cleared = True
            return
        listing = list_table(cfg.table, cfg.nft)
        if listing is not None and listing == self._table_listing:
            return
        if self._table_listing is not None:
            log.warning("network: table ip %s was changed or removed by someone else; restoring it", cfg.table)
        nftables.run_nft(render_masquerade_table(cfg.table, cfg.cluster_cidr, cfg.service_cidr), nft=cfg.nft)
        self._table_listing = list_table(cfg.table, cfg.nft)
        log.info("network: applied table ip %s (masquerading %s)", cfg.table, cfg.cluster_cidr)

    async def stop(self) -> None:
        """Remove our routes and our table; stop the informer."""
        try:
            await asyncio.to_thread(routes.reconcile, {})
        except Exception as e:
            log.error("removing the node's routes failed: %s", e)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(nftables.run_nft, nftables.delete_table_script(self.config.table),
                                    nft=self.config.nft)
        if self.factory is not None:
            await self.factory.stop()
        if self._own_client and self._client is not None:
            await self._client.close()
            self._client = None


async def run(config: NetworkConfig, stop: asyncio.Event) -> None:
    """Run the node network until ``stop`` is set; its routes and table are removed when it returns."""
    net = NodeNetwork(config)
    try:
        await net.start()
        await net.run(stop)
    finally:
        await net.stop()
