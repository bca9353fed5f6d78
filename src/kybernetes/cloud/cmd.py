"""``kyb cloud-controller-manager``: flags -> :class:`CloudControllerManagerConfig` -> :func:`manager.run`,
in a process of its own or in ``kyb control-plane``'s (:func:`kybernetes.controlplane.start`)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from pathlib import Path

import click

from kybernetes.api.timeutil import parse_duration
from kybernetes.cloud.manager import CloudControllerManagerConfig, LostLeadership, run, select
from kybernetes.cloud.registry import ProviderConfig, get_provider
from kybernetes.controlplane import Component, start
from kybernetes.serving import CLOUD_CONTROLLER_MANAGER_PORT, SecureServingOptions, secure_serving_flags


def _check_pool(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if value:
        try:
            ipaddress.ip_network(value)
        except ValueError:
            raise click.BadParameter(f"{value!r} is not a CIDR") from None
    return value


@click.command("cloud-controller-manager")
@click.option("--kubeconfig", type=click.Path(path_type=Path), default=None)
@click.option("--cloud-provider", default="local", show_default=True,
              help="The provider, by registered name (or module.path:NAME for one outside kybernetes).")
@click.option("--controllers", default="*", show_default=True,
              help="Comma-separated: * for all (cloud-node, cloud-node-lifecycle, service, route), -NAME to leave out.")
@click.option("--configure-cloud-routes/--no-configure-cloud-routes", default=True, show_default=True,
              help="Run the route controller.")
@click.option("--cluster-name", default="kubernetes", show_default=True)
@click.option("--lb-pool", default="", callback=_check_pool, metavar="CIDR",
              help="local: give each LoadBalancer Service an address of this range (default: the nodes' addresses).")
@click.option("--zone", default="", help="local: topology.kubernetes.io/zone of nodes without one.")
@click.option("--region", default="", help="local: topology.kubernetes.io/region of nodes without one.")
@click.option("--instance-type", default="kyb", show_default=True,
              help="local: node.kubernetes.io/instance-type of nodes without one.")
@click.option("--leader-elect/--no-leader-elect", default=True, show_default=True)
@click.option("--leader-elect-lease-duration", default="15s", show_default=True)
@click.option("--leader-elect-renew-deadline", default="10s", show_default=True)
@click.option("--leader-elect-retry-period", default="2s", show_default=True)
@click.option("--node-monitor-period", default="5s", show_default=True)
@click.option("--route-reconciliation-period", default="10s", show_default=True)
@click.option("-v", "--verbose", count=True)
@secure_serving_flags(CLOUD_CONTROLLER_MANAGER_PORT)
def command(kubeconfig: Path | None, cloud_provider: str, controllers: str, configure_cloud_routes: bool,
            cluster_name: str, lb_pool: str, zone: str, region: str, instance_type: str, leader_elect: bool,
            leader_elect_lease_duration: str, leader_elect_renew_deadline: str, leader_elect_retry_period: str,
            node_monitor_period: str, route_reconciliation_period: str, verbose: int,
            serving: SecureServingOptions) -> Component:
    """Run the cloud controllers (node, node lifecycle, service, route) against a cloud provider."""
    selected = [c.strip() for c in controllers.split(",") if c.strip()]
    if not configure_cloud_routes:
        selected.append("-route")

    def seconds(text: str) -> float:
        return parse_duration(text, bare_seconds=True)

    cfg = CloudControllerManagerConfig(
        kubeconfig=kubeconfig, cloud_provider=cloud_provider, controllers=selected, leader_elect=leader_elect,
        provider_options={"lb-pool": lb_pool, "zone": zone, "region": region, "instance-type": instance_type},
        lease_duration=seconds(leader_elect_lease_duration), renew_deadline=seconds(leader_elect_renew_deadline),
        retry_period=seconds(leader_elect_retry_period),
        options={"cluster-name": cluster_name, "node-monitor-period": seconds(node_monitor_period),
                 "route-reconciliation-period": seconds(route_reconciliation_period)})

    try:
        select(cfg.controllers)
        cloud = get_provider(cfg.cloud_provider, ProviderConfig(dict(cfg.provider_options)))
    except ValueError as e:
        raise click.ClickException(str(e)) from None

    async def cloud_controller_manager(stop: asyncio.Event) -> None:
        await run(cfg, stop, cloud, serving)

    return start(Component("cloud-controller-manager", cloud_controller_manager,
                           log_level=max(logging.WARNING - 10 * verbose, logging.DEBUG), exits=(LostLeadership,)))
