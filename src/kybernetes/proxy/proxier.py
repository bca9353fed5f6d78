"""The proxier: keep the proxy's nftables table in step with Services and EndpointSlices.

Data flow::

    informers (v1 services, discovery.k8s.io/v1 endpointslices, this node's v1 Node; one shared
    factory)
      -> any add/update/delete only sets a "dirty" flag (handlers must not block)
    sync loop (one task, :class:`~kybernetes.proxy.syncloop.SyncLoop`):
      wait until dirty, or until sync_period passed (periodic full resync: re-apply even if nothing
      changed), or until the check every check_period (2 s) finds the table deleted or flushed
      by hand (``nft list chain ip TABLE nat-prerouting`` no longer as we applied it)
      -> at least min_sync_period after the previous sync (a burst of changes -- a Deployment
         scaling, a rolling update -- becomes one sync, not one per slice write)
      -> the NodePort addresses (see below) and the per-bridge settings below
      -> build_service_ports() + render_table() from the informer caches
      -> unchanged text and not a periodic resync: nothing to do; else one nft transaction that
         rebuilds the table in place, keeping session-affinity state (nftables.apply)
      -> the health-check node ports follow the Services, and the proxy's /healthz turns healthy
      -> a failed apply is logged and retried after a back-off
    stop: delete the table, restore what we changed on the bridge, stop informers and servers

Every wait of the loop (the debounce, the retry back-off, the periodic resync) is on the
proxier's :class:`~kybernetes.client.workqueue.Clock`, so tests drive it with a ``FakeClock``;
``rounds`` counts finished sync rounds (applied, skipped or failed), which is what a test waits on.

NodePort addresses (``--nodeport-addresses``, kube-proxy's flag): empty means every local address
of the node (``fib daddr type local``); CIDRs mean the node's addresses inside them, looked up on
every sync; ``primary`` means the node's primary IP (its Node's first InternalIP, else ExternalIP;
every local address while that is unknown).

Host settings, per interface only, never global:

- Loopback NodePorts: kube-proxy's iptables mode (what k3s and kind run) answers NodePorts on
  127.0.0.1; its nftables mode does not, because it needs ``route_localnet``. We keep answering
  them (``localhost_nodeports``, on by default; off gives the nftables mode's behaviour). A
  connection from 127.0.0.1 that is DNATed to a pod leaves through the bridge with a loopback
  source until postrouting masquerades it, and the kernel refuses that route without
  ``net.ipv4.conf.<bridge>.route_localnet=1`` (and drops the un-NATed reply as a martian), so the
  flag is set on the pod bridge only (never globally) and restored to its old value on stop.
  Because the flag would also let pods reach the host's 127.0.0.1 through the gateway, the table
  then drops bridge packets to 127/8 that are not replies to our own DNAT (the CVE-2020-8558
  guard, as kube-proxy's iptables mode).
- Masquerading of pod clients: when bridged frames do not pass through netfilter
  (``bridge-nf-call-iptables`` off globally and on the bridge), the reply of a pod endpoint to a
  pod client on the same bridge would skip conntrack and never be un-DNATed, so every Service
  connection is then masqueraded (``masquerade_all``); with br_netfilter active only hairpin and
  off-cluster clients are. We only read these settings; we do not load br_netfilter.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import json
import logging
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kybernetes.client.informer import SharedInformerFactory
from kybernetes.client.rest import Client
from kybernetes.client.workqueue import Clock, RealClock
from kybernetes.proxy import metrics as proxy_metrics
from kybernetes.proxy import nftables
from kybernetes.proxy.healthcheck import ProxyHealth, ServiceHealthServers, node_eligible
from kybernetes.proxy.metrics import ChangeTracker, MetricsServer
from kybernetes.proxy.nftables import RenderOptions, Ruleset, render_table
from kybernetes.proxy.serviceports import build_service_ports, health_check_node_ports, local_ready_endpoints
from kybernetes.proxy.syncloop import ChainProbe, SyncLoop

log = logging.getLogger(__name__)

PROC_CONF = Path("/proc/sys/net/ipv4/conf")
BRIDGE_NF_CALL = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
SYS_NET = Path("/sys/class/net")
RETRY_BACKOFF = 1.0
PRIMARY = "primary"
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


@dataclass
class ProxyConfig:
    kubeconfig: str | Path | None = None
    table_name: str = "kybernetes-proxy"
    service_cidr: str = "10.43.0.0/16"
    cluster_cidr: str = "10.42.0.0/16"
    node_name: str = ""  # this node (--hostname-override): endpoints on it are local
    # kube-proxy's --nodeport-addresses: CIDRs, or ["primary"]; empty: every local address.
    nodeport_addresses: list[str] = field(default_factory=list)
    localhost_nodeports: bool = True
    bridge: str = "kyb0"
    masquerade_all: bool | None = None  # None: decide from the bridge's netfilter settings
    min_sync_period: float = 0.1
    sync_period: float = 30.0
    # How often the table is checked between syncs (syncloop.ChainProbe): a table deleted or
    # flushed by hand comes back within this time rather than at the next resync.
    check_period: float = 2.0
    mark: int = nftables.DEFAULT_MARK
    nft: str = nftables.NFT
    healthz_bind_address: str = "0.0.0.0:10256"  # "": no healthz server
    metrics_bind_address: str = ""  # "": no metrics server (`kyb proxy`'s flag defaults to 127.0.0.1:10249)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _ipv4_addresses(*args: str) -> list[str]:
    res = subprocess.run(["ip", "-j", "-4", "addr", "show", *args], capture_output=True, text=True, timeout=10)
    if res.returncode != 0:
        return []
    try:
        links = json.loads(res.stdout or "[]")
    except ValueError:
        return []
    return [str(a["local"]) for link in links for a in link.get("addr_info") or [] if a.get("local")]


def local_addresses() -> list[str]:
    """Every IPv4 address of this network namespace."""
    return _ipv4_addresses()


def node_primary_ip(node: dict[str, Any] | None) -> str | None:
    """The Node's primary IPv4 address: its first InternalIP, else its first ExternalIP."""
    addrs = ((node or {}).get("status") or {}).get("addresses") or []
    for kind in ("InternalIP", "ExternalIP"):
        for a in addrs:
            if a.get("type") == kind:
                with contextlib.suppress(ValueError):
                    if ipaddress.ip_address(a.get("address") or "").version == 4:
                        return str(a["address"])
    return None


def bridged_traffic_hits_netfilter(bridge: str) -> bool:
    """Whether frames bridged between pods pass the IPv4 netfilter hooks (br_netfilter)."""
    return _read(BRIDGE_NF_CALL) == "1" or _read(SYS_NET / bridge / "bridge" / "nf_call_iptables") == "1"


def nodeport_ips(cidrs: list[str], addresses: list[str], localhost: bool) -> list[str]:
    """The addresses inside ``cidrs`` (kube-proxy's GetNodeIPs), loopback only with ``localhost``."""
    nets = [ipaddress.ip_network(c, strict=False) for c in cidrs]
    out = []
    for a in addresses:
        ip = ipaddress.ip_address(a)
        if any(ip in n for n in nets) and (localhost or ip not in LOOPBACK):
            out.append(a)
    return out


def _node_facts(node: nftables.Obj) -> tuple[Any, ...]:
    """What the proxy reads from its Node: the primary address and the health server's eligibility."""
    return (node_primary_ip(node), node_eligible(node))


@dataclass
class _Rendered:
    ruleset: Ruleset
    nodeport_ips: list[str] | None  # None: every local address
    health_check_ports: dict[tuple[str, str], int]
    local_endpoints: dict[tuple[str, str], int]


class Proxier:
    """One proxy instance: informers, the sync loop and the host state it owns. See the module doc."""

    def __init__(self, config: ProxyConfig, client: Client | None = None, clock: Clock | None = None) -> None:
        nftables.check_table_name(config.table_name)  # fail now, not on every sync
        self.config = config
        self.clock: Clock = clock or RealClock()
        self._client = client
        self._own_client = client is None
        self.factory: SharedInformerFactory | None = None
        self.loop = SyncLoop("proxy", self._sync_round, self.clock, min_sync_period=config.min_sync_period,
                             sync_period=config.sync_period, check_period=config.check_period,
                             probe=ChainProbe("ip", config.table_name, "nat-prerouting", config.nft),
                             retry_backoff=RETRY_BACKOFF)
        self.last_applied: str | None = None
        self.syncs = 0  # successful applies, for tests and logs
        # route_localnet values we changed: interface -> value before us
        self._localnet_saved: dict[str, str] = {}
        self.health = ProxyHealth(2 * config.sync_period)
        self.service_health = ServiceHealthServers(self.health)
        self.healthz_port: int | None = None
        self._healthz_task: asyncio.Task[None] | None = None
        self.changes = ChangeTracker()
        self.metrics_server = MetricsServer(config.metrics_bind_address) if config.metrics_bind_address else None
        self._metrics_task: asyncio.Task[None] | None = None

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
            self._client = Client.from_kubeconfig(self.config.kubeconfig, user_agent="kybernetes-proxy")
        return self._client

    # -- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        self.factory = SharedInformerFactory(self.client)
        for api_version, plural in (("v1", "services"), ("discovery.k8s.io/v1", "endpointslices")):
            self.factory.informer(api_version, plural).add_handler(
                on_add=functools.partial(self._on_change, plural),
                on_update=functools.partial(self._on_update, plural),
                on_delete=functools.partial(self._on_change, plural),
            )
        if self.config.node_name:
            self._node_informer().add_handler(on_add=lambda _o: self.mark_dirty(), on_update=self._on_node_update,
                                              on_delete=lambda _o: self.mark_dirty())
        await self.factory.start()
        if self.config.healthz_bind_address:
            self._healthz_task = asyncio.create_task(self._serve_healthz())
        if self.metrics_server is not None:
            self._metrics_task = asyncio.create_task(self.metrics_server.serve())

    def _node_informer(self) -> Any:
        assert self.factory is not None
        return self.factory.informer("v1", "nodes", field_selector=f"metadata.name={self.config.node_name}")

    async def _serve_healthz(self) -> None:
        """kube-proxy's healthz server; a taken address is retried every 5 s (never fatal)."""
        while True:
            try:
                self.healthz_port = await self.health.start(self.config.healthz_bind_address)
                log.info("proxy: healthz on %s (port %d)", self.config.healthz_bind_address, self.healthz_port)
                return
            except OSError as e:
                log.error("proxy: healthz server on %s failed: %s", self.config.healthz_bind_address, e)
            await self.clock.sleep(5.0)

    def mark_dirty(self) -> None:
        """Something the table is rendered from changed: sync (debounced)."""
        self.health.queued_update()
        self.loop.mark_dirty()

    def _on_change(self, plural: str, obj: nftables.Obj) -> None:
        meta = obj.get("metadata") or {}
        self.changes.changed(plural, f"{meta.get('namespace', '')}/{meta.get('name', '')}")
        self.mark_dirty()

    def _on_update(self, plural: str, old: nftables.Obj, new: nftables.Obj) -> None:
        # Informer resyncs redeliver unchanged objects; the periodic sync covers those anyway.
        if old is not new:
            self._on_change(plural, new)

    def _on_node_update(self, old: nftables.Obj, new: nftables.Obj) -> None:
        # The kubelet rewrites its Node's status every few seconds; only what we use matters.
        if _node_facts(old) != _node_facts(new):
            self.mark_dirty()

    async def run(self, stop: asyncio.Event) -> None:
        """Sync until ``stop`` is set; the table is applied as soon as every informer synced."""
        assert self.factory is not None, "start() first"
        await self.loop.run(stop, self.factory.wait_for_sync)

    async def stop(self) -> None:
        """Remove the table, restore the bridge settings we changed, stop informers and servers."""
        try:
            await asyncio.to_thread(nftables.run_nft, nftables.delete_table_script(self.config.table_name),
                                    nft=self.config.nft)
        except Exception as e:
            log.error("removing table %s failed: %s", self.config.table_name, e)
        self._restore_localnet()
        if self._healthz_task is not None:
            self._healthz_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._healthz_task
        await self.health.stop()
        await self.service_health.stop()
        if self._metrics_task is not None:
            self._metrics_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._metrics_task
        if self.metrics_server is not None:
            await self.metrics_server.stop()
        if self.factory is not None:
            await self.factory.stop()
        if self._own_client and self._client is not None:
            await self._client.close()
            self._client = None

    # -- one sync -------------------------------------------------------------------------------------

    def _snapshot(self) -> tuple[list[nftables.Obj], list[nftables.Obj], nftables.Obj | None]:
        assert self.factory is not None
        services = self.factory.informer("v1", "services").store.list()
        slices = self.factory.informer("discovery.k8s.io/v1", "endpointslices").store.list()
        node = None
        if self.config.node_name:
            node = self._node_informer().store.get(self.config.node_name)
        return services, slices, node

    def render(self) -> str:
        """The table for the current informer contents and host state."""
        return self._render(*self._snapshot()).ruleset.text

    def _nodeport_ips(self, node: nftables.Obj | None) -> list[str] | None:
        """The addresses NodePorts answer on; None: every local address."""
        cfg = self.config
        cidrs = list(cfg.nodeport_addresses)
        if cidrs == [PRIMARY]:
            primary = node_primary_ip(node)
            if primary is None or ipaddress.ip_address(primary) in LOOPBACK:
                return None  # as kube-proxy: without a (non-loopback) node IP, every address
            cidrs = [f"{primary}/32"]
        if not cidrs:
            return None
        return nodeport_ips(cidrs, local_addresses(), cfg.localhost_nodeports)

    def _render(self, services: list[nftables.Obj], slices: list[nftables.Obj],
                node: nftables.Obj | None) -> _Rendered:
        # Runs in a worker thread: it only reads the snapshots it is given (the informer stores
        # are not thread-safe) and probes the host (ip, /proc), which may block.
        cfg = self.config
        ips = self._nodeport_ips(node)
        serves_loopback = cfg.localhost_nodeports and (
            ips is None or any(ipaddress.ip_address(a) in LOOPBACK for a in ips))
        guard = ""
        if serves_loopback and (SYS_NET / cfg.bridge).exists():
            self._ensure_localnet(cfg.bridge)
            guard = cfg.bridge
        masq = cfg.masquerade_all
        if masq is None:
            masq = not bridged_traffic_hits_netfilter(cfg.bridge)
        opts = RenderOptions(table=cfg.table_name, service_cidr=cfg.service_cidr, cluster_cidr=cfg.cluster_cidr,
                             nodeport_ips=ips, localhost_nodeports=cfg.localhost_nodeports, masquerade_all=masq,
                             mark=cfg.mark, localnet_guard_iface=guard, node_ip=node_primary_ip(node))
        ports = build_service_ports(services, slices, cfg.service_cidr, cfg.node_name)
        return _Rendered(render_table(ports, opts), ips, health_check_node_ports(ports), local_ready_endpoints(ports))

    async def _sync_round(self, force: bool) -> str | None:
        """The loop's sync: the table text applied, None when unchanged and not forced."""
        return self.last_applied if await self.sync(force=force) else None

    async def sync(self, *, force: bool = False) -> bool:
        """Render and apply; returns whether nft was run (False: unchanged and not forced). Timed
        into ``kubeproxy_sync_proxy_rules_duration_seconds``, successful or not."""
        start = time.monotonic()
        try:
            applied = await self._sync(force)
        finally:
            proxy_metrics.SYNC_DURATION.observe(time.monotonic() - start)
        proxy_metrics.LAST_SYNC.set(time.time())
        self.changes.synced()
        return applied

    async def _sync(self, force: bool) -> bool:
        # Snapshot the caches here, on the event loop; render and apply off it.
        services, slices, node = self._snapshot()
        self.health.node_eligible = node_eligible(node)
        r = await asyncio.to_thread(self._render, services, slices, node)
        applied = False
        if r.ruleset.text != self.last_applied or force:
            await asyncio.to_thread(nftables.apply, r.ruleset, nft=self.config.nft)
            self.last_applied = r.ruleset.text
            self.syncs += 1
            applied = True
            log.info("proxy: applied table %s (%d bytes)", self.config.table_name, len(r.ruleset.text))
        self.health.updated()
        await self.service_health.sync(r.health_check_ports, r.local_endpoints, r.nodeport_ips or [])
        return applied

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
