"""``kyb network``: flags -> :class:`NetworkConfig` -> :func:`network.run` until SIGTERM/SIGINT.

The node agent runs it beside the kubelet and kube-proxy (``--flannel-backend host-gw``, the
default), in its own process through :func:`parse` (or as this command with
``--split-node-components``); on a clean stop its routes and its nftables table are removed.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click

from kybernetes import aiorun
from kybernetes.proxy.cmd import _ipv4_cidr
from kybernetes.proxy.network import NetworkConfig, run


def build_config(kubeconfig: Path, node_name: str, cni_bridge: str, cluster_cidr: str, service_cluster_ip_range: str,
                 ip_masq: bool, sync_period: float, verbose: int = 0) -> NetworkConfig:
    """The NetworkConfig of ``kyb network``'s parameters (``verbose`` is the caller's logging)."""
    cfg = NetworkConfig(node_name=node_name, kubeconfig=kubeconfig, bridge=cni_bridge, cluster_cidr=cluster_cidr,
                        service_cidr=service_cluster_ip_range, ip_masq=ip_masq, sync_period=sync_period)
    return cfg


@click.command("network")
@click.option("--kubeconfig", type=click.Path(path_type=Path, exists=True), required=True)
@click.option("--node-name", required=True, help="This node (it gets no route to itself).")
@click.option("--cni-bridge", default="kyb0", show_default=True,
              help="The node's pod bridge (names the nftables table: kyb-net-BRIDGE).")
@click.option("--cluster-cidr", default="10.42.0.0/16", show_default=True, callback=_ipv4_cidr,
              help="All pods' addresses: traffic between them is never masqueraded.")
@click.option("--service-cluster-ip-range", default="10.43.0.0/16", show_default=True, callback=_ipv4_cidr)
@click.option("--ip-masq/--no-ip-masq", default=True, show_default=True,
              help="Masquerade pod traffic to addresses outside the cluster and service CIDRs (flanneld's --ip-masq).")
@click.option("--sync-period", type=float, default=2.0, show_default=True,
              help="Seconds between resyncs (which repair routes or a table removed by hand).")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def command(verbose: int, **params: Any) -> None:
    """Route pods across nodes (host-gw: each node's pod CIDR via its InternalIP) and masquerade what leaves."""
    logging.basicConfig(level=max(logging.WARNING - 10 * verbose, logging.DEBUG), stream=sys.stderr,
                        format="%(asctime)s %(levelname).1s %(name)s: %(message)s")
    cfg = build_config(**params)

    async def main() -> None:
        await run(cfg, aiorun.stop_on_signals())

    aiorun.run(main())


def parse(argv: list[str]) -> NetworkConfig:
    """The configuration ``kyb network ARGV`` runs with (run it with :func:`kybernetes.proxy.network.run`)."""
    with command.make_context("network", list(argv)) as ctx:
        return build_config(**ctx.params)


if __name__ == "__main__":
    command()
