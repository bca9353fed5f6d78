"""``kyb proxy``: flags -> :class:`ProxyConfig` -> :func:`proxier.run` until SIGTERM/SIGINT.

On a clean stop the proxy's nftables table is deleted and the bridge's ``route_localnet`` restored.
The same process enforces NetworkPolicies for this node's pods (:mod:`kybernetes.proxy.netpol_sync`,
its own ``inet`` table) unless ``--disable-network-policy``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import sys
from pathlib import Path

import click

from kybernetes import aiorun
from kybernetes.proxy import netpol_sync
from kybernetes.proxy.nftables import check_table_name
from kybernetes.proxy.proxier import ProxyConfig, run


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


@click.command("proxy")
@click.option("--kubeconfig", type=click.Path(path_type=Path, exists=True), required=True)
@click.option("--table", default="kybernetes-proxy", show_default=True, callback=_table,
              help="The nftables table (family ip) the proxy owns and rewrites.")
@click.option("--service-cluster-ip-range", default="10.43.0.0/16", show_default=True, callback=_ipv4_cidr,
              help="Only ClusterIPs inside this range get rules.")
@click.option("--cluster-cidr", default="10.42.0.0/16", show_default=True, callback=_ipv4_cidr,
              help="Pod addresses: Service clients outside it are masqueraded.")
@click.option("--nodeport-address", "nodeport_addresses", multiple=True, default=["127.0.0.1"],
              show_default=True, help="Address to serve NodePorts on (repeatable); the bridge's own "
              "addresses are always added.")
@click.option("--cni-bridge", default="kyb0", show_default=True, help="The pod network's bridge.")
@click.option("--masquerade-all/--no-masquerade-all", default=None,
              help="Masquerade every Service connection (default: only when bridged traffic skips netfilter).")
@click.option("--min-sync-period", type=float, default=0.1, show_default=True, help="Seconds.")
@click.option("--sync-period", type=float, default=30.0, show_default=True,
              help="Seconds between full resyncs.")
@click.option("--hostname-override", default="", help="This node's name (default: the host name): "
              "NetworkPolicies are enforced for the pods of this node.")
@click.option("--disable-network-policy", is_flag=True, help="Do not enforce NetworkPolicies on this node.")
@click.option("--network-policy-table", default="kybernetes-netpol", show_default=True, callback=_table,
              help="The nftables table (family inet) of the NetworkPolicy controller.")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def command(kubeconfig: Path, table: str, service_cluster_ip_range: str, cluster_cidr: str,
            nodeport_addresses: tuple[str, ...], cni_bridge: str, masquerade_all: bool | None,
            min_sync_period: float, sync_period: float, hostname_override: str, disable_network_policy: bool,
            network_policy_table: str, verbose: int) -> None:
    """Program Services (ClusterIPs, NodePorts) into nftables, like kube-proxy."""
    logging.basicConfig(level=max(logging.WARNING - 10 * verbose, logging.DEBUG), stream=sys.stderr,
                        format="%(asctime)s %(levelname).1s %(name)s: %(message)s")
    for a in nodeport_addresses:
        try:
            ipaddress.IPv4Address(a)
        except ValueError:
            raise click.BadParameter(f"{a!r} is not an IPv4 address", param_hint="--nodeport-address") from None
    cfg = ProxyConfig(kubeconfig=kubeconfig, table_name=table, service_cidr=service_cluster_ip_range,
                      cluster_cidr=cluster_cidr, node_addresses=list(nodeport_addresses), bridge=cni_bridge,
                      masquerade_all=masquerade_all, min_sync_period=min_sync_period, sync_period=sync_period)

    netpol = None if disable_network_policy else netpol_sync.NetpolConfig(
        node_name=hostname_override or socket.gethostname().lower(), kubeconfig=kubeconfig,
        table_name=network_policy_table, bridge=cni_bridge, min_sync_period=min_sync_period, sync_period=sync_period)

    async def main() -> None:
        stop = aiorun.stop_on_signals()
        # One failing part stops the other: each removes its own table on the way out.
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(run(cfg, stop))
            if netpol is not None:
                tasks.create_task(netpol_sync.run(netpol, stop))

    aiorun.run(main())


if __name__ == "__main__":
    command()
