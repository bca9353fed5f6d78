"""``kyb controller-manager``: flags -> :class:`ControllerManagerConfig` -> :func:`manager.run`, in a
process of its own or in ``kyb control-plane``'s (:func:`kybernetes.controlplane.start`)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import click

from kybernetes.api.timeutil import parse_duration
from kybernetes.controllers.manager import ControllerManagerConfig, LostLeadership, run
from kybernetes.controlplane import Component, start
from kybernetes.serving import CONTROLLER_MANAGER_PORT, SecureServingOptions, secure_serving_flags


@click.command("controller-manager")
@click.option("--kubeconfig", type=click.Path(path_type=Path), default=None)
@click.option("--controllers", default="*", show_default=True,
              help="Comma-separated: * for all, NAME to enable, -NAME to disable.")
@click.option("--leader-elect/--no-leader-elect", default=True, show_default=True)
@click.option("--use-service-account-credentials", is_flag=True,
              help="Each controller writes under its own ServiceAccount in kube-system (TokenRequest tokens).")
@click.option("--leader-elect-lease-duration", default="15s", show_default=True)
@click.option("--leader-elect-renew-deadline", default="10s", show_default=True)
@click.option("--leader-elect-retry-period", default="2s", show_default=True)
@click.option("--node-monitor-grace-period", default="40s", show_default=True)
@click.option("--node-monitor-period", default="5s", show_default=True)
@click.option("--cluster-cidr", default="10.42.0.0/16", show_default=True)
@click.option("--node-cidr-mask-size", type=int, default=24, show_default=True)
@click.option("--allocate-node-cidrs/--no-allocate-node-cidrs", default=True, show_default=True)
@click.option("--terminated-pod-gc-threshold", type=int, default=12500, show_default=True)
@click.option("--root-ca-file", type=click.Path(path_type=Path), default=None)
@click.option("--cluster-signing-cert-file", type=click.Path(path_type=Path), default=None,
              help="PEM CA certificate the csrsigning controller issues certificates with.")
@click.option("--cluster-signing-key-file", type=click.Path(path_type=Path), default=None,
              help="PEM private key of --cluster-signing-cert-file.")
@click.option("--cluster-signing-duration", default="8760h", show_default=True,
              help="The longest validity of a signed certificate (spec.expirationSeconds may ask less).")
@click.option("--service-account-private-key-file", type=click.Path(path_type=Path), default=None,
              help="PEM private key the serviceaccount-token controller signs legacy tokens with.")
@click.option("--horizontal-pod-autoscaler-sync-period", default="15s", show_default=True,
              help="How often each HorizontalPodAutoscaler is reconciled.")
@click.option("--horizontal-pod-autoscaler-downscale-stabilization", default="5m0s", show_default=True,
              help="How far back the autoscaler looks for a higher recommendation before scaling down.")
@click.option("--horizontal-pod-autoscaler-tolerance", type=float, default=0.1, show_default=True,
              help="The smallest ratio of metric to target (off 1.0) the autoscaler acts on.")
@click.option("--horizontal-pod-autoscaler-cpu-initialization-period", default="5m0s", show_default=True,
              help="How long after a pod starts its CPU samples may be skipped.")
@click.option("--horizontal-pod-autoscaler-initial-readiness-delay", default="30s", show_default=True,
              help="How long after a pod starts its readiness changes count as its first readiness.")
@click.option("-v", "--verbose", count=True)
@secure_serving_flags(CONTROLLER_MANAGER_PORT)
def command(kubeconfig: Path | None, controllers: str, leader_elect: bool, use_service_account_credentials: bool,
            leader_elect_lease_duration: str,
            leader_elect_renew_deadline: str, leader_elect_retry_period: str, node_monitor_grace_period: str,
            node_monitor_period: str, cluster_cidr: str, node_cidr_mask_size: int, allocate_node_cidrs: bool,
            terminated_pod_gc_threshold: int, root_ca_file: Path | None, cluster_signing_cert_file: Path | None,
            cluster_signing_key_file: Path | None, cluster_signing_duration: str,
            service_account_private_key_file: Path | None, horizontal_pod_autoscaler_sync_period: str,
            horizontal_pod_autoscaler_downscale_stabilization: str, horizontal_pod_autoscaler_tolerance: float,
            horizontal_pod_autoscaler_cpu_initialization_period: str,
            horizontal_pod_autoscaler_initial_readiness_delay: str, verbose: int,
            serving: SecureServingOptions) -> Component:
    """Run the controllers that drive the cluster to its desired state."""
    selected = [c.strip() for c in controllers.split(",") if c.strip()]
    if not allocate_node_cidrs:
        selected.append("-node-ipam-controller")
    cfg = ControllerManagerConfig(
        kubeconfig=kubeconfig, controllers=selected, leader_elect=leader_elect,
        use_service_account_credentials=use_service_account_credentials,
        lease_duration=parse_duration(leader_elect_lease_duration, bare_seconds=True),
        renew_deadline=parse_duration(leader_elect_renew_deadline, bare_seconds=True),
        retry_period=parse_duration(leader_elect_retry_period, bare_seconds=True),
        options={
            "node-monitor-grace-period": parse_duration(node_monitor_grace_period, bare_seconds=True),
            "node-monitor-period": parse_duration(node_monitor_period, bare_seconds=True),
            "cluster-cidr": cluster_cidr,
            "node-cidr-mask-size": node_cidr_mask_size,
            "terminated-pod-gc-threshold": terminated_pod_gc_threshold,
            "root-ca-file": str(root_ca_file) if root_ca_file else None,
            "cluster-signing-cert-file": str(cluster_signing_cert_file) if cluster_signing_cert_file else None,
            "cluster-signing-key-file": str(cluster_signing_key_file) if cluster_signing_key_file else None,
            "cluster-signing-duration": parse_duration(cluster_signing_duration, bare_seconds=True),
            "service-account-private-key-file": (str(service_account_private_key_file)
                                                 if service_account_private_key_file else None),
            "horizontal-pod-autoscaler-sync-period": parse_duration(horizontal_pod_autoscaler_sync_period,
                                                                    bare_seconds=True),
            "horizontal-pod-autoscaler-downscale-stabilization": parse_duration(
                horizontal_pod_autoscaler_downscale_stabilization, bare_seconds=True),
            "horizontal-pod-autoscaler-tolerance": horizontal_pod_autoscaler_tolerance,
            "horizontal-pod-autoscaler-cpu-initialization-period": parse_duration(
                horizontal_pod_autoscaler_cpu_initialization_period, bare_seconds=True),
            "horizontal-pod-autoscaler-initial-readiness-delay": parse_duration(
                horizontal_pod_autoscaler_initial_readiness_delay, bare_seconds=True),
        },
    )

    async def controller_manager(stop: asyncio.Event) -> None:
        await run(cfg, stop, serving)

    return start(Component("controller-manager", controller_manager,
                           log_level=max(logging.WARNING - 10 * verbose, logging.DEBUG), exits=(LostLeadership,)))
