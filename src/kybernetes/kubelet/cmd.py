"""``kyb kubelet``: the node agent's command line.

Flags become a `KubeletConfig`; the kubelet runs until SIGTERM, SIGINT or SIGHUP. Stopping leaves
the node's containers running (as a real kubelet does: a restarted kubelet adopts them) unless
``--drain-on-exit`` is given, in which case every pod is stopped and removed first. With
``--shutdown-grace-period`` set, SIGTERM and SIGINT mean the node goes down: pods are killed first
as graceful node shutdown does (`kybernetes.kubelet.shutdown`); SIGHUP (a restart) never kills them. Without
``--container-runtime-endpoint`` the kubelet supervises its own containerd in DATA/containerd.

Also runnable as ``python -m kybernetes.kubelet.cmd`` (the CLI registers it as ``kyb kubelet``).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import click

from kybernetes import aiorun
from kybernetes.kubelet.config import KubeletConfig, apply_dns_settings, load_kubelet_configuration
from kybernetes.kubelet.kubelet import Kubelet


def _taint(text: str) -> dict[str, str]:
    """``key=value:Effect`` or ``key:Effect``."""
    body, _, effect = text.rpartition(":")
    key, _, value = body.partition("=")
    if not key or effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
        raise click.BadParameter(f"taint {text!r}: want key[=value]:NoSchedule|PreferNoSchedule|NoExecute")
    out = {"key": key, "effect": effect}
    if value:
        out["value"] = value
    return out


async def _run(kubelet: Kubelet) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # the node goes down: graceful node shutdown, if configured
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(kubelet.stop(node_shutdown=True)))
    # A restart only (the agent's, for renewed certificates): pods keep running whatever is configured.
    loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(kubelet.stop()))
    task = asyncio.create_task(kubelet.run())
    ready = asyncio.create_task(kubelet.ready.wait())
    done, _ = await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if ready in done:
        click.echo(f"kubelet {kubelet.node_name} running (port {kubelet.server.port if kubelet.server else '?'})",
                   err=True)
    else:
        ready.cancel()
    await task


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    from kybernetes.api.timeutil import parse_duration

    try:
        return None if value is None else parse_duration(value)
    except ValueError as err:
        raise click.BadParameter(str(err)) from None


_HOUSEKEEPING_OPTIONS = (
    click.option("--image-gc-high-threshold", "image_gc_high_threshold_percent", type=int, default=85,
                 show_default=True, help="The percent of disk usage after which image garbage collection is "
                 "always run. Values must be within the range [0, 100], To disable image garbage collection, set "
                 "to 100."),
    click.option("--image-gc-low-threshold", "image_gc_low_threshold_percent", type=int, default=80,
                 show_default=True, help="The percent of disk usage before which image garbage collection is "
                 "never run. Lowest disk usage to garbage collect to."),
    click.option("--minimum-image-gc-age", "image_minimum_gc_age", default="2m", show_default=True,
                 callback=_duration, help="Minimum age for an unused image before it is garbage collected."),
    click.option("--image-maximum-gc-age", "image_maximum_gc_age", default="0s", show_default=True,
                 callback=_duration, help="Maximum age an image can be unused before it is garbage collected "
                 "(0: no maximum; KubeletConfiguration imageMaximumGCAge)."),
    click.option("--image-gc-period", type=float, default=300.0, hidden=True,
                 help="Seconds between image garbage collections (the kubelet's fixed 5 minutes; for tests)."),
    click.option("--container-log-max-size", default="10Mi", show_default=True,
                 help="Set the maximum size (e.g. 10Mi) of container log file before it is rotated."),
    click.option("--container-log-max-files", type=int, default=5, show_default=True,
                 help="Set the maximum number of container log files that can be present for a container. "
                 "The number must be >= 2."),
    click.option("--container-log-monitor-interval", default="10s", callback=_duration, hidden=True,
                 help="How often container logs are checked for rotation (KubeletConfiguration "
                 "containerLogMonitorInterval)."),
    click.option("--shutdown-grace-period", default="0s", callback=_duration, show_default=True,
                 help="Graceful node shutdown: on SIGTERM, how long pods get to terminate in total "
                 "(KubeletConfiguration shutdownGracePeriod; 0: off, SIGTERM leaves pods running)."),
    click.option("--shutdown-grace-period-critical-pods", default="0s", callback=_duration, show_default=True,
                 help="The part of --shutdown-grace-period reserved for critical pods, which are killed last "
                 "(KubeletConfiguration shutdownGracePeriodCriticalPods)."),
)


def _housekeeping_options(f: Any) -> Any:
    for option in reversed(_HOUSEKEEPING_OPTIONS):
        f = option(f)
    return f


def _apply_housekeeping(config: KubeletConfig, settings: dict[str, Any]) -> None:
    """Sets the housekeeping fields (named as the KubeletConfig fields) and validates them as the kubelet does."""
    from kybernetes.kubelet.housekeeping import validate

    for name, value in settings.items():
        setattr(config, name, value)
    try:
        validate(config)
    except ValueError as err:
        raise click.ClickException(str(err)) from None


@click.command("kubelet")
@click.option("--kubeconfig", type=click.Path(path_type=Path, exists=True), required=True,
              help="Credentials and address of the API server.")
@click.option("--node-name", required=True, help="The Node this kubelet registers and runs pods for.")
@click.option("--data-dir", type=click.Path(path_type=Path), required=True,
              help="State: containerd, pod volumes and logs, certificates.")
@click.option("--container-runtime-endpoint", default=None,
              help="Use this CRI runtime (unix:///path) instead of starting containerd.")
@click.option("--port", type=int, default=10250, show_default=True, help="The kubelet API's HTTPS port (0: free).")
@click.option("--address", default="127.0.0.1", show_default=True, help="The kubelet API's bind address.")
@click.option("--node-ip", default=None, help="The node's InternalIP (default: the default route's address).")
@click.option("--pod-manifest-path", type=click.Path(path_type=Path), default=None,
              help="Directory of static pod manifests.")
@click.option("--cni-bridge", default="kyb0", show_default=True, help="The pod network's bridge (one per node).")
@click.option("--default-pod-cidr", default="10.42.0.0/24", show_default=True,
              help="Pod addresses until node IPAM assigns spec.podCIDR.")
@click.option("--cni-conf-dir", type=click.Path(path_type=Path), default=None,
              help="Where the CNI config is written (default DATA/cni/net.d with the own containerd).")
@click.option("--registry-config-dir", type=click.Path(path_type=Path), default=None,
              help="containerd's registry hosts directory (HOST/hosts.toml per registry, e.g. plain-HTTP mirrors).")
@click.option("--node-labels", default="", help="k=v,k2=v2 labels to register with.")
@click.option("--register-with-taints", multiple=True, help="key=value:Effect taints to register with.")
@click.option("--cloud-provider", type=click.Choice(["", "external"]), default="",
              help="external: register the node with the node.cloudprovider.kubernetes.io/uninitialized taint "
                   "for the cloud-controller-manager to initialise it.")
@click.option("--max-pods", type=int, default=110, show_default=True)
@click.option("--tls-cert-file", type=click.Path(path_type=Path), default=None)
@click.option("--tls-private-key-file", type=click.Path(path_type=Path), default=None)
@click.option("--client-ca-file", type=click.Path(path_type=Path), default=None,
              help="CA for client certificates (default: the kubeconfig's cluster CA).")
@click.option("--cluster-ca-dir", type=click.Path(path_type=Path), default=None,
              help="Directory with the cluster's ca.crt and ca.key (the server's DATA/tls) to sign the "
                   "kubelet's serving certificate; without it the certificate is self-signed.")
@click.option("--file-check-frequency", type=float, default=5.0, show_default=True,
              help="Seconds between reads of --pod-manifest-path.")
@click.option("--config", "config_file", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="A KubeletConfiguration (kubelet.config.k8s.io/v1beta1) file; flags given override it "
                   "(read: clusterDNS, clusterDomain, resolvConf).")
@click.option("--cluster-dns", multiple=True, metavar="IP",
              help="Nameserver of pods with dnsPolicy ClusterFirst (repeatable or comma-separated).")
@click.option("--cluster-domain", default=None,
              help="The cluster's DNS domain: pods search <ns>.svc.DOMAIN svc.DOMAIN DOMAIN.")
@click.option("--resolv-conf", default=None,
              help="The resolver file pods with dnsPolicy Default get (default /etc/resolv.conf; empty: none).")
@click.option("--import-system-image", type=click.BOOL, default=True, show_default=True,
              help="Import the kybernetes system image (built in the machine's cache) that add-on pods run.")
@click.option("--drain-on-exit", is_flag=True, help="Stop and remove every pod when the kubelet stops.")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@_housekeeping_options
def command(kubeconfig: Path, node_name: str, data_dir: Path, container_runtime_endpoint: str | None, port: int,
            address: str, node_ip: str | None, pod_manifest_path: Path | None, cni_bridge: str,
            default_pod_cidr: str, cni_conf_dir: Path | None, registry_config_dir: Path | None, node_labels: str,
            register_with_taints: tuple[str, ...], cloud_provider: str, max_pods: int, tls_cert_file: Path | None,
            tls_private_key_file: Path | None, client_ca_file: Path | None, cluster_ca_dir: Path | None,
            file_check_frequency: float, config_file: Path | None, cluster_dns: tuple[str, ...],
            cluster_domain: str | None, resolv_conf: str | None, import_system_image: bool, drain_on_exit: bool,
            verbose: int, **housekeeping: Any) -> None:
    """Run the node agent: register the node and run the pods bound to it."""
    logging.basicConfig(level=max(logging.WARNING - 10 * verbose, logging.DEBUG), stream=sys.stderr,
                        format="%(asctime)s %(levelname).1s %(name)s: %(message)s")
    labels = dict(item.split("=", 1) for item in node_labels.split(",") if "=" in item)
    if cloud_provider == "external":
        # Kubernetes' kubelet adds this taint itself under --cloud-provider=external.
        register_with_taints = (*register_with_taints, "node.cloudprovider.kubernetes.io/uninitialized=true:NoSchedule")
    config = KubeletConfig(
        kubeconfig=kubeconfig, node_name=node_name, data_dir=data_dir,
        container_runtime_endpoint=container_runtime_endpoint, port=port, address=address, node_ip=node_ip,
        pod_manifest_path=pod_manifest_path, cni_bridge=cni_bridge, default_pod_cidr=default_pod_cidr,
        cni_conf_dir=cni_conf_dir, labels=labels, taints=[_taint(t) for t in register_with_taints],
        max_pods=max_pods, tls_cert_file=tls_cert_file, tls_private_key_file=tls_private_key_file,
        client_ca_file=client_ca_file, drain_on_exit=drain_on_exit, file_check_frequency=file_check_frequency,
        cluster_ca_dir=cluster_ca_dir, registry_config_dir=registry_config_dir,
        import_system_image=import_system_image)
    _apply_housekeeping(config, housekeeping)
    try:
        file_settings = load_kubelet_configuration(config_file) if config_file else {}
    except ValueError as err:
        raise click.ClickException(f"failed to load kubelet config file, path: {config_file}, error: {err}") from None
    try:
        apply_dns_settings(config, file_settings, cluster_dns=cluster_dns, cluster_domain=cluster_domain,
                           resolv_conf=resolv_conf)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="'--cluster-dns'") from None
    from kybernetes.kubelet.leftovers import BridgeInUse
    from kybernetes.kubelet.server import ListenError

    try:
        aiorun.run(_run(Kubelet(config)))
    except (BridgeInUse, ListenError) as err:  # one line on stderr and exit 1, as the kubelet's fatal errors
        raise click.ClickException(str(err)) from None


if __name__ == "__main__":
    command()
