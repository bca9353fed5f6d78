"""``kyb proxy``: flags -> :class:`ProxyConfig` -> :func:`proxier.run` until SIGTERM/SIGINT.

The node agent runs it in its own process: :func:`parse` (the same flags) and :func:`serve` with
a stop event (``kybernetes.agent.inprocess``).

On a clean stop the proxy's nftables table is deleted and the bridge's ``route_localnet`` restored.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from kybernetes import aiorun
from kybernetes.proxy import netpol_sync
from kybernetes.proxy.nftables import check_table_name
from kybernetes.proxy.proxier import PRIMARY, ProxyConfig, run


def _table(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    try:
        return check_table_name(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def _ipv4_cidr(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    try:
        net = ipaddress.ip_network(value, strict=False)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    if net.version != 4:
        raise click.BadParameter("only IPv4 is supported")
    return str(net)


def _nodeport_addresses(_ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]) -> list[str]:
    """kube-proxy's rules (validateKubeProxyNodePortAddress): CIDRs, or 'primary' alone."""
    items = [v.strip() for arg in value for v in arg.split(",") if v.strip()]
    for i, item in enumerate(items):
        if item == PRIMARY:
            if i != 0 or len(items) != 1:
                raise click.BadParameter(f"{item!r}: can't use both 'primary' and CIDRs")
            break
        try:
            net = ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise click.BadParameter(f"{item!r}: must be a valid CIDR") from None
        if net.version != 4:
            raise click.BadParameter(f"{item!r}: only IPv4 is supported")
    return items


@dataclass(frozen=True)
class Proxy:
    """What ``kyb proxy`` runs: the Service proxier and (unless disabled) the NetworkPolicy controller."""

    proxy: ProxyConfig
    netpol: netpol_sync.NetpolConfig | None


async def serve(config: Proxy, stop: asyncio.Event) -> None:
    """Run kube-proxy until ``stop``; each part removes its own table on the way out. One part
    failing stops the other and raises. ``kyb proxy`` sets ``stop`` on SIGTERM/SIGINT; ``kyb
    agent`` runs it in its own process beside the kubelet (kybernetes.agent.inprocess)."""
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(run(config.proxy, stop))
        if config.netpol is not None:
            tasks.create_task(netpol_sync.run(config.netpol, stop))


def build_config(kubeconfig: Path, table: str, service_cluster_ip_range: str, cluster_cidr: str, hostname_override: str,
                 nodeport_addresses: list[str], localhost_nodeports: bool, healthz_bind_address: str,
                 metrics_bind_address: str, cni_bridge: str,
                 masquerade_all: bool | None, min_sync_period: float, sync_period: float, disable_network_policy: bool,
                 network_policy_table: str, verbose: int = 0) -> Proxy:
    """The configuration of ``kyb proxy``'s parameters (``verbose`` is the caller's logging)."""
    cfg = ProxyConfig(kubeconfig=kubeconfig, table_name=table, service_cidr=service_cluster_ip_range,
                      cluster_cidr=cluster_cidr, node_name=(hostname_override or socket.gethostname()).lower(),
                      nodeport_addresses=nodeport_addresses, localhost_nodeports=localhost_nodeports,
                      healthz_bind_address=healthz_bind_address, metrics_bind_address=metrics_bind_address,
                      bridge=cni_bridge, masquerade_all=masquerade_all,
                      min_sync_period=min_sync_period, sync_period=sync_period)
    netpol = None if disable_network_policy else netpol_sync.NetpolConfig(
        node_name=cfg.node_name, kubeconfig=kubeconfig, table_name=network_policy_table, bridge=cni_bridge,
        min_sync_period=min_sync_period, sync_period=sync_period)
    return Proxy(cfg, netpol)


@click.command("proxy")
@click.option("--kubeconfig", type=click.Path(path_type=Path, exists=True), required=True)
@click.option("--table", default="kybernetes-proxy", show_default=True, callback=_table,
              help="The nftables table (family ip) the proxy owns and rewrites.")
@click.option("--service-cluster-ip-range", default="10.43.0.0/16", show_default=True, callback=_ipv4_cidr,
              help="Only ClusterIPs inside this range get rules.")
@click.option("--cluster-cidr", default="10.42.0.0/16", show_default=True, callback=_ipv4_cidr,
              help="Pod addresses: Service clients outside it are masqueraded.")
@click.option("--hostname-override", default="", help="This node's name (default: the host name): "
              "endpoints on it are local for the Local traffic policies; its pods' NetworkPolicies are enforced.")
@click.option("--nodeport-addresses", "nodeport_addresses", multiple=True, callback=_nodeport_addresses,
              help="CIDRs whose node addresses answer NodePorts (comma-separated, repeatable), or 'primary' "
              "(the node's primary IP); default: every local address.")
@click.option("--localhost-nodeports/--no-localhost-nodeports", default=True, show_default=True,
              help="Also answer NodePorts on 127.0.0.0/8 (kube-proxy's iptables mode does; its nftables "
              "mode does not). Sets route_localnet on the pod bridge.")
@click.option("--healthz-bind-address", default="0.0.0.0:10256", show_default=True,
              help="IP[:port] of the /healthz and /livez server; empty: none.")
@click.option("--metrics-bind-address", default="127.0.0.1:10249", show_default=True,
              help="IP[:port] of the plain-HTTP /metrics server; empty: none.")
@click.option("--cni-bridge", default="kyb0", show_default=True, help="The pod network's bridge.")
@click.option("--masquerade-all/--no-masquerade-all", default=None,
              help="Masquerade every Service connection (default: only when bridged traffic skips netfilter).")
@click.option("--min-sync-period", type=float, default=0.1, show_default=True, help="Seconds.")
@click.option("--sync-period", type=float, default=30.0, show_default=True,
              help="Seconds between full resyncs.")
@click.option("--disable-network-policy", is_flag=True, help="Do not enforce NetworkPolicies on this node.")
@click.option("--network-policy-table", default="kybernetes-netpol", show_default=True, callback=_table,
              help="The nftables table (family inet) of the NetworkPolicy controller.")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def command(verbose: int, **params: Any) -> None:
    """Program Services (ClusterIPs, externalIPs, NodePorts) into nftables, like kube-proxy, and enforce
    the NetworkPolicies of this node's pods."""
    logging.basicConfig(level=max(logging.WARNING - 10 * verbose, logging.DEBUG), stream=sys.stderr,
                        format="%(asctime)s %(levelname).1s %(name)s: %(message)s")
    config = build_config(**params)

    async def main() -> None:
        await serve(config, aiorun.stop_on_signals())

    aiorun.run(main())


def parse(argv: list[str]) -> Proxy:
    """The configuration ``kyb proxy ARGV`` runs with (its flags checked as the command checks them)."""
    with command.make_context("proxy", list(argv)) as ctx:
        return build_config(**ctx.params)


if __name__ == "__main__":
    command()
