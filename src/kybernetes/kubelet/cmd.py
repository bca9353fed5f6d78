"""``kyb kubelet``: the node agent's command line.

Flags become a `KubeletConfig`; the kubelet runs until SIGTERM, SIGINT or SIGHUP. Stopping leaves
the node's containers running (as a real kubelet does: a restarted kubelet adopts them) unless
``--drain-on-exit`` is given, in which case every pod is stopped and removed first. With
``--shutdown-grace-period`` set, SIGTERM and SIGINT mean the node goes down: pods are killed first
as graceful node shutdown does (`kybernetes.kubelet.shutdown`); SIGHUP (a restart) never kills them. Without
``--container-runtime-endpoint`` the kubelet supervises its own containerd in DATA/containerd.

The node agent runs the kubelet in its own process: :func:`parse` (the same flags, one home) and
:func:`serve` with stop and restart events (``kybernetes.agent.inprocess``).

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
from kybernetes.kubelet.eviction import parse_thresholds
from kybernetes.kubelet.kubelet import Kubelet
from kybernetes.kubelet.kubeletconfig import apply_file_settings, apply_flag_settings, parse_key_values


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


class _KeyValues(click.ParamType):
    """A mapStringString flag (``k=v,k2=v2``; the eviction flags: ``signal<value``)."""

    name = "key=value,..."

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> dict[str, str]:
        if isinstance(value, dict):
            return value
        try:
            return parse_key_values(str(value))
        except ValueError as err:
            self.fail(str(err), param, ctx)


class _Duration(click.ParamType):
    """A Go duration (``90s``, ``1m30s``) in seconds."""

    name = "duration"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> float:
        from kybernetes.api.timeutil import parse_duration

        if isinstance(value, float):
            return value
        try:
            return parse_duration(str(value))
        except ValueError as err:
            self.fail(str(err), param, ctx)


_RESOURCE_OPTIONS = [
    click.option("--kube-reserved", "kube_reserved", type=_KeyValues(), default=None,
                 help="Resources reserved for Kubernetes' node components (cpu=100m,memory=256Mi,...)."),
    click.option("--system-reserved", "system_reserved", type=_KeyValues(), default=None,
                 help="Resources reserved for the operating system (cpu=100m,memory=256Mi,...)."),
    click.option("--enforce-node-allocatable", "enforce_node_allocatable", default=None,
                 type=click.STRING, callback=lambda c, p, v: None if v is None else [x for x in v.split(",") if x],
                 help="Where allocatable is enforced by cgroup limits (pods, or empty: nowhere)."),
    click.option("--eviction-hard", "eviction_hard", type=_KeyValues(), default=None,
                 help="Hard eviction thresholds (memory.available<100Mi,nodefs.available<10%,...)."),
    click.option("--eviction-soft", "eviction_soft", type=_KeyValues(), default=None,
                 help="Soft eviction thresholds, each with a grace period in --eviction-soft-grace-period."),
    click.option("--eviction-soft-grace-period", "eviction_soft_grace_period", type=_KeyValues(), default=None,
                 help="signal=duration: how long a soft threshold must hold before pods are evicted."),
    click.option("--eviction-pressure-transition-period", "eviction_pressure_transition_period", type=_Duration(),
                 default=None, help="How long a pressure condition outlasts its threshold (default 5m0s)."),
    click.option("--eviction-max-pod-grace-period", "eviction_max_pod_grace_period", type=int, default=None,
                 help="The most grace (seconds) a pod gets when a soft threshold evicts it."),
    click.option("--eviction-monitoring-period", "eviction_monitoring_period", type=_Duration(), default=None,
                 hidden=True, help="kybernetes only (the kubelet's is a fixed 10s): how often eviction runs."),
    click.option("--cgroups-per-qos", "cgroups_per_qos", type=click.BOOL, default=None,
                 help="Make the kubepods QoS cgroup hierarchy and one cgroup per pod (default true)."),
    click.option("--cgroup-root", "cgroup_root", default=None, help="Where kubepods goes (default /)."),
    click.option("--pod-max-pids", "pod_pids_limit", type=int, default=None,
                 help="pids.max of each pod's cgroup (-1: unlimited)."),
    click.option("--image-gc-high-threshold", "image_gc_high_threshold_percent", type=int, default=None,
                 help="Disk usage percent at which image garbage collection runs (default 85)."),
    click.option("--image-gc-low-threshold", "image_gc_low_threshold_percent", type=int, default=None,
                 help="Disk usage percent image garbage collection frees down to (default 80)."),
    click.option("--minimum-image-ttl-duration", "image_minimum_gc_age", type=_Duration(), default=None,
                 help="Minimum age of an unused image before it is garbage collected (default 2m0s)."),
    click.option("--container-log-max-size", "container_log_max_size", default=None,
                 help="Size at which a container log is rotated (default 10Mi)."),
    click.option("--container-log-max-files", "container_log_max_files", type=int, default=None,
                 help="Log files kept per container (default 5)."),
]


def resource_options(fn: Any) -> Any:
    for option in reversed(_RESOURCE_OPTIONS):
        fn = option(fn)
    return fn


async def serve(config: KubeletConfig, stop: asyncio.Event, restart: asyncio.Event | None = None) -> None:
    """Run a kubelet on ``config`` until ``stop`` (the node goes down: graceful node shutdown, if
    configured, kills the pods first) or ``restart`` (pods keep running whatever is configured),
    and return once it has stopped. Raises what ends the kubelet on its own (a taken port, a bridge
    in use, containerd failing to start); a kubelet never returns unasked. Cancelled, it still
    stops as for a restart.

    ``kyb kubelet`` runs it with signals (SIGTERM/SIGINT: ``stop``, SIGHUP: ``restart``), ``kyb
    agent`` in its own process beside kube-proxy (kybernetes.agent.inprocess)."""
    kubelet = Kubelet(config)
    restart = restart or asyncio.Event()
    task = asyncio.create_task(kubelet.run(), name="kubelet")
    ready = asyncio.create_task(kubelet.ready.wait())
    asked = {asyncio.create_task(stop.wait()), asyncio.create_task(restart.wait())}
    try:
        done, _ = await asyncio.wait({task, ready, *asked}, return_when=asyncio.FIRST_COMPLETED)
        if ready in done:
            port = kubelet.server.port if kubelet.server else "?"
            click.echo(f"kubelet {kubelet.node_name} running (port {port})", err=True)
            done, _ = await asyncio.wait({task, *asked}, return_when=asyncio.FIRST_COMPLETED)
        if task not in done:
            await kubelet.stop(node_shutdown=stop.is_set())
        await task
    finally:
        for waiter in (ready, *asked):
            waiter.cancel()
        if not task.done():
            await kubelet.stop()
            await task


async def _run(config: KubeletConfig) -> None:
    stop, restart = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # the node goes down: graceful node shutdown, if configured
        loop.add_signal_handler(sig, stop.set)
    # A restart only (the agent's, for renewed certificates): pods keep running whatever is configured.
    loop.add_signal_handler(signal.SIGHUP, restart.set)
    await serve(config, stop, restart)


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    from kybernetes.api.timeutil import parse_duration

    try:
        return None if value is None else parse_duration(value)
    except ValueError as err:
        raise click.BadParameter(str(err)) from None


_HOUSEKEEPING_OPTIONS = (
    # Image GC thresholds, the minimum age and the log size/files are among _RESOURCE_OPTIONS.
    # Default None: a flag not given leaves the file's value (or the field's default).
    click.option("--image-maximum-gc-age", "image_maximum_gc_age", default=None, callback=_duration,
                 help="Maximum age an image can be unused before it is garbage collected "
                 "(0: no maximum; KubeletConfiguration imageMaximumGCAge)."),
    click.option("--image-gc-period", type=float, default=None, hidden=True,
                 help="Seconds between image garbage collections (the kubelet's fixed 5 minutes; for tests)."),
    click.option("--container-log-monitor-interval", default=None, callback=_duration, hidden=True,
                 help="How often container logs are checked for rotation (KubeletConfiguration "
                 "containerLogMonitorInterval)."),
    click.option("--shutdown-grace-period", default=None, callback=_duration,
                 help="Graceful node shutdown: on SIGTERM, how long pods get to terminate in total "
                 "(KubeletConfiguration shutdownGracePeriod; 0, the default: off, SIGTERM leaves pods running)."),
    click.option("--shutdown-grace-period-critical-pods", default=None, callback=_duration,
                 help="The part of --shutdown-grace-period reserved for critical pods, which are killed last "
                 "(KubeletConfiguration shutdownGracePeriodCriticalPods)."),
)


def _housekeeping_options(f: Any) -> Any:
    for option in reversed(_HOUSEKEEPING_OPTIONS):
        f = option(f)
    return f


def _validate_housekeeping(config: KubeletConfig) -> None:
    """The housekeeping settings (file and flags applied) checked as the kubelet validates them."""
    from kybernetes.kubelet.housekeeping import validate

    try:
        validate(config)
    except ValueError as err:
        raise click.ClickException(str(err)) from None


def build_config(kubeconfig: Path, node_name: str, data_dir: Path, container_runtime_endpoint: str | None, port: int,
                 address: str, node_ip: str | None, pod_manifest_path: Path | None, cni_bridge: str,
                 default_pod_cidr: str, cni_conf_dir: Path | None, registry_config_dir: Path | None, node_labels: str,
                 register_with_taints: tuple[str, ...], cloud_provider: str, max_pods: int, tls_cert_file: Path | None,
                 tls_private_key_file: Path | None, client_ca_file: Path | None, cluster_ca_dir: Path | None,
                 file_check_frequency: float, config_file: Path | None, cluster_dns: tuple[str, ...],
                 cluster_domain: str | None, resolv_conf: str | None, import_system_image: bool, drain_on_exit: bool,
                 verbose: int = 0, **flag_settings: Any) -> KubeletConfig:
    """The KubeletConfig of ``kyb kubelet``'s parameters, checked as the command checks them (errors
    raised as its click exceptions); ``verbose`` is the caller's logging."""
    labels = dict(item.split("=", 1) for item in node_labels.split(",") if "=" in item)
    if cloud_provider == "external":
        # Kubernetes' kubelet adds this taint itself under --cloud-provider=external.
        register_with_taints = (*register_with_taints, "node.cloudprovider.kubernetes.io/uninitialized=true:NoSchedule")
    config = KubeletConfig(
        kubeconfig=kubeconfig, node_name=node_name, data_dir=data_dir,
        container_runtime_endpoint=container_runtime_endpoint, node_ip=node_ip,
        cni_bridge=cni_bridge, default_pod_cidr=default_pod_cidr,
        cni_conf_dir=cni_conf_dir, labels=labels,
        client_ca_file=client_ca_file, drain_on_exit=drain_on_exit,
        cluster_ca_dir=cluster_ca_dir, registry_config_dir=registry_config_dir,
        import_system_image=import_system_image)
    try:
        file_settings = load_kubelet_configuration(config_file) if config_file else {}
        apply_file_settings(config, file_settings)
    except ValueError as err:
        raise click.ClickException(f"failed to load kubelet config file, path: {config_file}, error: {err}") from None
    flags = {"port": port, "address": address, "pod_manifest_path": pod_manifest_path, "max_pods": max_pods,
             "tls_cert_file": tls_cert_file, "tls_private_key_file": tls_private_key_file,
             "file_check_frequency": file_check_frequency,
             "taints": [_taint(t) for t in register_with_taints] or None, **flag_settings}
    apply_flag_settings(config, flags)
    _validate_housekeeping(config)
    try:
        parse_thresholds(config.eviction_hard, config.eviction_soft, config.eviction_soft_grace_period)
    except ValueError as err:
        raise click.ClickException(f"failed to run Kubelet: {err}") from None
    try:
        apply_dns_settings(config, file_settings, cluster_dns=cluster_dns, cluster_domain=cluster_domain,
                           resolv_conf=resolv_conf)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="'--cluster-dns'") from None
    return config


@click.command("kubelet")
@click.option("--kubeconfig", type=click.Path(path_type=Path, exists=True), required=True,
              help="Credentials and address of the API server.")
@click.option("--node-name", required=True, help="The Node this kubelet registers and runs pods for.")
@click.option("--data-dir", type=click.Path(path_type=Path), required=True,
              help="State: containerd, pod volumes and logs, certificates.")
@click.option("--container-runtime-endpoint", default=None,
              help="Use this CRI runtime (unix:///path) instead of starting containerd.")
@click.option("--port", type=int, default=None, help="The kubelet API's HTTPS port (0: free; default 10250).")
@click.option("--address", default=None, help="The kubelet API's bind address (default 127.0.0.1).")
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
@click.option("--max-pods", type=int, default=None, help="Pods this node runs at most (default 110).")
@click.option("--tls-cert-file", type=click.Path(path_type=Path), default=None)
@click.option("--tls-private-key-file", type=click.Path(path_type=Path), default=None)
@click.option("--client-ca-file", type=click.Path(path_type=Path), default=None,
              help="CA for client certificates (default: the kubeconfig's cluster CA).")
@click.option("--cluster-ca-dir", type=click.Path(path_type=Path), default=None,
              help="Directory with the cluster's ca.crt and ca.key (the server's DATA/tls) to sign the "
                   "kubelet's serving certificate; without it the certificate is self-signed.")
@click.option("--file-check-frequency", type=float, default=None,
              help="Seconds between reads of --pod-manifest-path (default 5).")
@click.option("--config", "config_file", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="A KubeletConfiguration (kubelet.config.k8s.io/v1beta1) file; flags given override it.")
@click.option("--cluster-dns", multiple=True, metavar="IP",
              help="Nameserver of pods with dnsPolicy ClusterFirst (repeatable or comma-separated).")
@click.option("--cluster-domain", default=None,
              help="The cluster's DNS domain: pods search <ns>.svc.DOMAIN svc.DOMAIN DOMAIN.")
@click.option("--resolv-conf", default=None,
              help="The resolver file pods with dnsPolicy Default get (default /etc/resolv.conf; empty: none).")
@click.option("--import-system-image", type=click.BOOL, default=True, show_default=True,
              help="Import the kybernetes system image (built in the machine's cache) that add-on pods run.")
@click.option("--drain-on-exit", is_flag=True, help="Stop and remove every pod when the kubelet stops.")
@resource_options
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@_housekeeping_options
def command(verbose: int, **params: Any) -> None:
    """Run the node agent: register the node and run the pods bound to it."""
    logging.basicConfig(level=max(logging.WARNING - 10 * verbose, logging.DEBUG), stream=sys.stderr,
                        format="%(asctime)s %(levelname).1s %(name)s: %(message)s")
    config = build_config(**params)
    from kybernetes.kubelet.leftovers import BridgeInUse
    from kybernetes.kubelet.server import ListenError

    try:
        aiorun.run(_run(config))
    except (BridgeInUse, ListenError) as err:  # one line on stderr and exit 1, as the kubelet's fatal errors
        raise click.ClickException(str(err)) from None


def parse(argv: list[str]) -> KubeletConfig:
    """The configuration ``kyb kubelet ARGV`` runs with (see :func:`build_config`)."""
    with command.make_context("kubelet", list(argv)) as ctx:
        return build_config(**ctx.params)


if __name__ == "__main__":
    command()
