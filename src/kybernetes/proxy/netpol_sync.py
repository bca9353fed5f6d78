"""The node's NetworkPolicy controller: keep its nftables table in step with the policies.

It runs inside kube-proxy's process (``kyb proxy``, unless ``--disable-network-policy``), so every
node that runs kube-proxy enforces policies with no process of its own, as k3s runs kube-router's
policy controller inside its agent.

Data flow::

    informers (networking.k8s.io/v1 networkpolicies, v1 pods, v1 namespaces; cluster-wide, since
    peers may be any pod of any namespace)
      -> any change sets a "dirty" flag
    sync loop (:class:`~kybernetes.proxy.syncloop.SyncLoop`, shared with the proxier):
      debounce (min_sync_period) -> snapshot the caches -> build_plan() for this node ->
      render_table() -> unchanged and not the periodic resync: nothing to do; else ``nft -f -``
      (one transaction: the old table is replaced atomically); failures retried after a back-off;
      the periodic resync (sync_period) repairs a table someone changed, and a cheap check of the
      table (check_period, ``nft list chain inet TABLE input``) restores a deleted or flushed one
      within seconds
    stop: delete the table, restore the bridge setting below, stop the informers

Where packets meet the rules. The table hooks ``forward`` and ``input`` of the ``inet`` family.
Routed traffic (a pod reaching another node, the node, a Service DNATed to a pod) passes them
anyway; traffic between two pods of the same bridge is *bridged* and passes the IP hooks only
through br_netfilter. So the controller turns on the bridge's own ``nf_call_iptables`` option
(``/sys/class/net/BRIDGE/bridge/nf_call_iptables``: this bridge only, never the global
``net.bridge.bridge-nf-call-iptables``) and restores it on stop. This is what kube-router and
flannel-based setups rely on (kubeadm even requires the global sysctl); it also makes kube-proxy
stop masquerading pod clients (it reads the same flag), so a policy sees the real pod source of a
Service connection. Without the br_netfilter module the option does not exist: same-bridge pod
traffic then escapes the checks, which the controller reports as an error at every sync.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kybernetes.client.informer import SharedInformerFactory
from kybernetes.client.rest import Client
from kybernetes.client.workqueue import Clock, RealClock
from kybernetes.proxy import nftables
from kybernetes.proxy.netpol import build_plan, delete_table_script, render_table
from kybernetes.proxy.syncloop import ChainProbe, SyncLoop

log = logging.getLogger(__name__)

SYS_NET = Path("/sys/class/net")
BRIDGE_NF_CALL = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
RETRY_BACKOFF = 1.0
RESOURCES = (("networking.k8s.io/v1", "networkpolicies"), ("v1", "pods"), ("v1", "namespaces"))


@dataclass
class NetpolConfig:
    node_name: str
    kubeconfig: str | Path | None = None
    table_name: str = "kybernetes-netpol"
    bridge: str = "kyb0"
    min_sync_period: float = 0.1
    sync_period: float = 30.0
    # How often the table is checked between syncs (syncloop.ChainProbe): a table deleted or
    # flushed by hand (or by ``nft flush ruleset``) comes back within this time, not at the resync.
    check_period: float = 2.0
    nft: str = nftables.NFT


class NetpolController:
    """One node's policy enforcement: informers, the sync loop and the host state it owns."""

    def __init__(self, config: NetpolConfig, client: Client | None = None, clock: Clock | None = None) -> None:
        nftables.check_table_name(config.table_name)
        self.config = config
        self.clock: Clock = clock or RealClock()
        self._client = client
        self._own_client = client is None
        self.factory: SharedInformerFactory | None = None
        self.loop = SyncLoop("netpol", self._sync_round, self.clock, min_sync_period=config.min_sync_period,
                             sync_period=config.sync_period, check_period=config.check_period,
                             probe=ChainProbe("inet", config.table_name, "input", config.nft),
                             retry_backoff=RETRY_BACKOFF)
        self.last_applied: str | None = None
        self.syncs = 0  # successful applies
        self._nf_call_saved: str | None = None  # the bridge's nf_call_iptables before us

    @property
    def rounds(self) -> int:
        """Finished sync rounds: applied, unchanged or failed."""
        return self.loop.rounds

    @property
    def last_error(self) -> BaseException | None:
        return self.loop.last_error

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client.from_kubeconfig(self.config.kubeconfig, user_agent="kybernetes-netpol")
        return self._client

    async def start(self) -> None:
        self.factory = SharedInformerFactory(self.client)
        for api_version, plural in RESOURCES:
            self.factory.informer(api_version, plural).add_handler(
                on_add=lambda _o: self.mark_dirty(), on_update=self._on_update,
                on_delete=lambda _o: self.mark_dirty())
        await self.factory.start()

    def mark_dirty(self) -> None:
        """Something the table is rendered from changed: sync (debounced)."""
        self.loop.mark_dirty()

    def _on_update(self, old: Any, new: Any) -> None:
        if old is not new:  # resyncs redeliver the same object; the periodic sync covers those
            self.mark_dirty()

    async def run(self, stop: asyncio.Event) -> None:
        """Sync until ``stop``; the first sync waits for every informer's initial list."""
        assert self.factory is not None, "start() first"
        await self.loop.run(stop, self.factory.wait_for_sync)

    def render(self) -> str:
        assert self.factory is not None
        policies, pods, namespaces = (self.factory.informer(v, p).store.list() for v, p in RESOURCES)
        return render_table(build_plan(policies, pods, namespaces, self.config.node_name), self.config.table_name)

    async def _sync_round(self, force: bool) -> str | None:
        """The loop's sync: the table text applied, None when unchanged and not forced."""
        return self.last_applied if await self.sync(force=force) else None

    async def sync(self, *, force: bool = False) -> bool:
        """Render and apply; returns whether nft was run (False: unchanged and not forced)."""
        text = self.render()  # on the loop: the informer stores are not thread-safe
        await asyncio.to_thread(self._ensure_bridge_netfilter)
        if text == self.last_applied and not force:
            return False
        await asyncio.to_thread(nftables.run_nft, text, nft=self.config.nft)
        self.last_applied = text
        self.syncs += 1
        log.info("netpol: applied table %s (%d bytes)", self.config.table_name, len(text))
        return True

    async def stop(self) -> None:
        """Remove the table, restore the bridge option, stop the informers."""
        try:
            await asyncio.to_thread(nftables.run_nft, delete_table_script(self.config.table_name),
                                    nft=self.config.nft)
        except Exception as e:
            log.error("removing table %s failed: %s", self.config.table_name, e)
        self._restore_bridge_netfilter()
        if self.factory is not None:
            await self.factory.stop()
        if self._own_client and self._client is not None:
            await self._client.close()
            self._client = None

    # -- the bridge's nf_call_iptables ----------------------------------------------------------------

    def _bridge_option(self) -> Path:
        return SYS_NET / self.config.bridge / "bridge" / "nf_call_iptables"

    def _ensure_bridge_netfilter(self) -> None:
        path = self._bridge_option()
        try:
            value = path.read_text().strip()
        except OSError:
            return  # no bridge yet (it comes with the first pod): nothing is bridged either
        if value == "1":
            return
        if not BRIDGE_NF_CALL.exists():
            log.error("netpol: br_netfilter is not loaded: traffic between pods on bridge %s is not checked",
                      self.config.bridge)
            return
        path.write_text("1\n")
        if self._nf_call_saved is None:
            self._nf_call_saved = value
        log.info("netpol: set %s=1 (was %s)", path, value)

    def _restore_bridge_netfilter(self) -> None:
        if self._nf_call_saved is not None:
            with contextlib.suppress(OSError):  # the bridge may be gone already
                self._bridge_option().write_text(self._nf_call_saved + "\n")
            self._nf_call_saved = None


async def run(config: NetpolConfig, stop: asyncio.Event) -> None:
    """Enforce policies until ``stop`` is set; the table is removed when it returns."""
    controller = NetpolController(config)
    try:
        await controller.start()
        await controller.run(stop)
    finally:
        await controller.stop()
