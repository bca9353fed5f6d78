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
          -> the masquerade table: applied at the first sync, and again whenever its one chain
             (``nft -j list chain``) no longer prints what it printed after our last apply
    (the loop is kube-proxy's, :class:`~kybernetes.proxy.syncloop.SyncLoop`, without debounce)
    stop: our routes and our table are removed, like kube-proxy's table

The resync is what repairs a node whose routes (``ip route flush proto 107``) or table
(``nft delete table ...``) someone removed by hand: within ``sync_period``, with three cheap
reads (``ip -j route``, ``ip -j addr``, ``nft list chain``) and no write when nothing is wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

from kybernetes.api.obj import Obj
from kybernetes.client.informer import SharedInformerFactory
from kybernetes.client.rest import Client
from kybernetes.client.workqueue import RealClock
from kybernetes.datadir import network_table
from kybernetes.proxy import nftables, routes
from kybernetes.proxy.masquerade import render_masquerade_table
from kybernetes.proxy.syncloop import ChainProbe, SyncLoop

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


class NodeNetwork:
    """One node's network daemon: its informer, the sync loop and the host state it owns."""

    def __init__(self, config: NetworkConfig, client: Client | None = None) -> None:
        nftables.check_table_name(config.table)
        self.config = config
        self._client = client
        self._own_client = client is None
        self.factory: SharedInformerFactory | None = None
        # The shared loop (proxy/syncloop.py) with no debounce, and its check period equal to the
        # resync: every round already reads routes and table. The probe is the table's only chain.
        self.probe = ChainProbe("ip", config.table, "postrouting", config.nft)
        self.loop = SyncLoop("network", self._sync_round, RealClock(), min_sync_period=0.0,
                             sync_period=config.sync_period, check_period=config.sync_period, probe=self.probe)
        self.last_applied: str | None = None  # our table's text, once applied: a failing probe since means damage
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
            on_add=lambda _o: self.loop.mark_dirty(), on_update=lambda _o, _n: self.loop.mark_dirty(),
            on_delete=lambda _o: self.loop.mark_dirty())
        await self.factory.start()

    async def run(self, stop: asyncio.Event) -> None:
        """Sync until ``stop``: on every Node change, and every ``sync_period`` regardless."""
        assert self.factory is not None, "start() first"
        await self.loop.run(stop, self.factory.wait_for_sync)

    async def _sync_round(self, _force: bool) -> str | None:
        # Every round is a full one (routes and table are read, and written only where wrong), so
        # the loop's periodic "force" changes nothing here.
        return self.last_applied if await self.sync() else None

    async def sync(self) -> bool:
        """Reconcile routes and the table; returns whether the table was (re-)applied."""
        assert self.factory is not None
        nodes = self.factory.informer("v1", "nodes").store.list()  # snapshot on the loop
        applied = await asyncio.to_thread(self._sync_host, nodes)
        self.syncs += 1
        return applied

    def _sync_host(self, nodes: list[Obj]) -> bool:
        self._sync_routes(nodes)
        return self._sync_table()

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

    def _sync_table(self) -> bool:
        cfg = self.config
        if not cfg.ip_masq:
            if not self._table_cleared:  # masquerading may have been on at an earlier start
                nftables.run_nft(nftables.delete_table_script(cfg.table), nft=cfg.nft)
                self._table_cleared = True
            return False
        if self.last_applied is not None and self.probe.intact():
            return False
        if self.last_applied is not None:
            log.warning("network: table ip %s was changed or removed by someone else; restoring it", cfg.table)
        text = render_masquerade_table(cfg.table, cfg.cluster_cidr, cfg.service_cidr)
        nftables.run_nft(text, nft=cfg.nft)
        self.last_applied = text
        log.info("network: applied table ip %s (masquerading %s)", cfg.table, cfg.cluster_cidr)
        return True  # the loop has the probe read the chain as applied

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
