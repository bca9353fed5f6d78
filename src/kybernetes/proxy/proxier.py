"""The proxier: keep the proxy's nftables table in step with Services and EndpointSlices.

Data flow::

    informers (v1 services, discovery.k8s.io/v1 endpointslices; one shared factory)
      -> any add/update/delete only sets a "dirty" flag (handlers must not block)
    sync loop (one task):
      wait until dirty, or until sync_period passed (periodic full resync: re-apply even if nothing
      changed, which repairs a table someone else flushed or deleted)
      -> at least min_sync_period after the previous sync (a burst of changes -- a Deployment
         scaling, a rolling update -- becomes one sync, not one per slice write)
      -> node addresses (configured + the bridge's current IPv4 addresses, since the bridge only
         appears with the first pod) and the per-bridge settings below
      -> build_service_ports() + render_table() from the informer caches
      -> unchanged text and not a periodic resync: nothing to do; else ``nft -f -`` (atomic swap)
      -> a failed apply is logged and retried after a back-off
    stop: delete the table, restore what we changed on the bridge, stop informers

Every wait of the loop (the debounce, the retry back-off, the periodic resync) is on the
proxier's :class:`~kybernetes.client.workqueue.Clock`, so tests drive it with a ``FakeClock``;
``rounds`` counts finished sync rounds (applied, skipped or failed), which is what a test waits on.

Host settings, per interface only, never global:

- ``net.ipv4.conf.<bridge>.route_localnet`` is set to 1 while NodePorts are served on 127.0.0.1:
  a connection from 127.0.0.1 that is DNATed to a pod leaves through the bridge with a loopback
  source until postrouting masquerades it, and the kernel refuses that route without the flag
  (and drops the un-NATed reply as a martian). It is restored to its old value on stop. Because
  the flag would also let pods reach the host's 127.0.0.1 through the gateway, the table then
  drops bridge packets to 127/8 that are not replies to our own DNAT (the CVE-2020-8558 guard).
- Masquerading of pod clients: when bridged frames do not pass through netfilter
  (``bridge-nf-call-iptables`` off globally and on the bridge), the reply of a pod endpoint to a
  pod client on the same bridge would skip conntrack and never be un-DNATed, so every Service
  connection is then masqueraded (``masquerade_all``); with br_netfilter active only hairpin and
  off-cluster clients are. We only read these settings; we do not load br_netfilter.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kybernetes.client.informer import SharedInformerFactory
from kybernetes.client.rest import Client
from kybernetes.client.workqueue import Clock, RealClock
from kybernetes.proxy import nftables
from kybernetes.proxy.nftables import RenderOptions, build_service_ports, render_table

log = logging.getLogger(__name__)

PROC_CONF = Path("/proc/sys/net/ipv4/conf")
BRIDGE_NF_CALL = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
SYS_NET = Path("/sys/class/net")
RETRY_BACKOFF = 1.0


@dataclass
class ProxyConfig:
    kubeconfig: str | Path | None = None
    table_name: str = "kybernetes-proxy"
    service_cidr: str = "10.43.0.0/16"
    cluster_cidr: str = "10.42.0.0/16"
    # NodePorts are served on these addresses, plus the bridge's own IPv4 addresses.
    node_addresses: list[str] = field(default_factory=lambda: ["127.0.0.1"])
    bridge: str = "kyb0"
    masquerade_all: bool | None = None  # None: decide from the bridge's netfilter settings
    min_sync_period: float = 0.1
    sync_period: float = 30.0
    mark: int = nftables.DEFAULT_MARK
    nft: str = nftables.NFT


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def bridge_addresses(bridge: str) -> list[str]:
    """The IPv4 addresses on ``bridge`` (none when it does not exist yet)."""
    if not bridge or not (SYS_NET / bridge).exists():
        return []
    res = subprocess.run(["ip", "-j", "-4", "addr", "show", "dev", bridge], capture_output=True, text=True,
                         timeout=10)
    if res.returncode != 0:
        return []
    try:
        links = json.loads(res.stdout or "[]")
    except ValueError:
        return []
    return [str(a["local"]) for link in links for a in link.get("addr_info") or [] if a.get("local")]


def bridged_traffic_hits_netfilter(bridge: str) -> bool:
    """Whether frames bridged between pods pass the IPv4 netfilter hooks (br_netfilter)."""
    return _read(BRIDGE_NF_CALL) == "1" or _read(SYS_NET / bridge / "bridge" / "nf_call_iptables") == "1"


class Proxier:
    """One proxy instance: informers, the sync loop and the host state it owns. See the module doc."""

    def __init__(self, config: ProxyConfig, client: Client | None = None, clock: Clock | None = None) -> None:
        nftables.check_table_name(config.table_name)  # fail now, not on every sync
        self.config = config
        self.clock: Clock = clock or RealClock()
        self._client = client
        self._own_client = client is None
        self.factory: SharedInformerFactory | None = None
        self._dirty = asyncio.Event()
        self._last_sync = float("-inf")  # the first sync does not wait for the debounce
        self.last_applied: str | None = None
        self.syncs = 0  # successful applies, for tests and logs
        self.rounds = 0  # finished sync rounds: applied, unchanged or failed
        self.last_error: BaseException | None = None
        # route_localnet values we changed: interface -> value before us
        self._localnet_saved: dict[str, str] = {}

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client.from_kubeconfig(self.config.kubeconfig, user_agent="kybernetes-proxy")
        return self._client

    # -- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        self.factory = SharedInformerFactory(self.client)
        for api_version, plural in (("v1", "services"), ("discovery.k8s.io/v1", "endpointslices")):
            self.factory.informer(api_version, plural).add_handler(
                on_add=lambda _o: self.mark_dirty(),
                on_update=self._on_update,
                on_delete=lambda _o: self.mark_dirty(),
            )
        await self.factory.start()

    def mark_dirty(self) -> None:
        """Something the table is rendered from changed: sync (debounced)."""
        self._dirty.set()

    def _on_update(self, old: nftables.Obj, new: nftables.Obj) -> None:
        # Informer resyncs redeliver unchanged objects; the periodic sync covers those anyway.
        if old is not new:
            self.mark_dirty()

    async def run(self, stop: asyncio.Event) -> None:
        """Sync until ``stop`` is set; the table is applied as soon as both informers synced."""
        assert self.factory is not None, "start() first"
        stopper = asyncio.ensure_future(stop.wait())
        try:
            synced = asyncio.ensure_future(self.factory.wait_for_sync())
            await asyncio.wait({synced, stopper}, return_when=asyncio.FIRST_COMPLETED)
            synced.cancel()
            force = True
            while not stop.is_set():
                wait = max(0.0, self._last_sync + self.config.min_sync_period - self.clock.now())
                if wait:
                    await self.clock.sleep(wait)  # the debounce: changes meanwhile fold into this sync
                self._dirty.clear()
                self._last_sync = self.clock.now()
                try:
                    await self.sync(force=force)
                except Exception as e:
                    self.last_error = e
                    self.rounds += 1
                    log.error("proxy sync failed: %s; retrying in %.1fs", e, RETRY_BACKOFF)
                    await self.clock.sleep(RETRY_BACKOFF)
                    self._dirty.set()
                    force = True
                    continue
                self.rounds += 1
                force = await self._wait_for_change(stopper)
        finally:
            stopper.cancel()

    async def _wait_for_change(self, stopper: asyncio.Future[Any]) -> bool:
        """Wait for a change, the periodic resync or the stop; True when it was the resync."""
        dirty: asyncio.Future[Any] = asyncio.ensure_future(self._dirty.wait())
        resync: asyncio.Future[Any] = asyncio.ensure_future(self.clock.sleep(self.config.sync_period))
        done, _ = await asyncio.wait({dirty, resync, stopper}, return_when=asyncio.FIRST_COMPLETED)
        dirty.cancel()
        resync.cancel()
        return resync in done and dirty not in done

    async def stop(self) -> None:
        """Remove the table, restore the bridge settings we changed, stop the informers."""
        try:
            await asyncio.to_thread(nftables.run_nft, nftables.delete_table_script(self.config.table_name),
                                    nft=self.config.nft)
        except Exception as e:
            log.error("removing table %s failed: %s", self.config.table_name, e)
        self._restore_localnet()
        if self.factory is not None:
            await self.factory.stop()
        if self._own_client and self._client is not None:
            await self._client.close()
            self._client = None

    # -- one sync -------------------------------------------------------------------------------------

    def render(self) -> str:
        """The table for the current informer contents and host state."""
        assert self.factory is not None
        services = self.factory.informer("v1", "services").store.list()
        slices = self.factory.informer("discovery.k8s.io/v1", "endpointslices").store.list()
        return self._render(services, slices)

    def _render(self, services: list[nftables.Obj], slices: list[nftables.Obj]) -> str:
        # Runs in a worker thread: it only reads the snapshots it is given (the informer stores
        # are not thread-safe) and probes the host (ip, /proc), which may block.
        cfg = self.config
        addrs = list(dict.fromkeys([*cfg.node_addresses, *bridge_addresses(cfg.bridge)]))
        guard = ""
        if "127.0.0.1" in addrs and (SYS_NET / cfg.bridge).exists():
            self._ensure_localnet(cfg.bridge)
            guard = cfg.bridge
        masq = cfg.masquerade_all
        if masq is None:
            masq = not bridged_traffic_hits_netfilter(cfg.bridge)
        opts = RenderOptions(table=cfg.table_name, service_cidr=cfg.service_cidr, cluster_cidr=cfg.cluster_cidr,
                             node_addresses=addrs, masquerade_all=masq, mark=cfg.mark, localnet_guard_iface=guard)
        return render_table(build_service_ports(services, slices, cfg.service_cidr), opts)

    async def sync(self, *, force: bool = False) -> bool:
        """Render and apply; returns whether nft was run (False: unchanged and not forced)."""
        assert self.factory is not None
        # Snapshot the caches here, on the event loop; render and apply off it.
        services = self.factory.informer("v1", "services").store.list()
        slices = self.factory.informer("discovery.k8s.io/v1", "endpointslices").store.list()
        text = await asyncio.to_thread(self._render, services, slices)
        if text == self.last_applied and not force:
            return False
        await asyncio.to_thread(nftables.run_nft, text, nft=self.config.nft)
        self.last_applied = text
        self.syncs += 1
        self.last_error = None
        log.info("proxy: applied table %s (%d bytes)", self.config.table_name, len(text))
        return True

    # -- route_localnet on the bridge -----------------------------------------------------------------

    def _ensure_localnet(self, iface: str) -> None:
        path = PROC_CONF / iface / "route_localnet"
        value = _read(path)
        if value is None or value == "1":
            return
        path.write_text("1\n")
        # Keep the first value we saw: a bridge recreated meanwhile starts at the default again.
        self._localnet_saved.setdefault(iface, value)
        log.info("proxy: set net.ipv4.conf.%s.route_localnet=1 (was %s)", iface, value)

    def _restore_localnet(self) -> None:
        for iface, value in self._localnet_saved.items():
            path = PROC_CONF / iface / "route_localnet"
            with contextlib.suppress(OSError):  # the bridge may be gone already
                path.write_text(value + "\n")
                log.info("proxy: restored net.ipv4.conf.%s.route_localnet=%s", iface, value)
        self._localnet_saved.clear()


async def run(config: ProxyConfig, stop: asyncio.Event | None = None) -> None:
    """Run the proxy until ``stop`` is set (or forever); the table is removed when it returns."""
    stop = stop or asyncio.Event()
    proxier = Proxier(config)
    try:
        await proxier.start()
        await proxier.run(stop)
    finally:
        await proxier.stop()
