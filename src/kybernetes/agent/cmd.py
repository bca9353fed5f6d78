"""``kyb agent``: the command line, and the agent's run (the API server load balancer, the join
through it, the node's components, certificate rotation)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import ipaddress
import logging
import re
import signal
import socket
import sys
import threading
from pathlib import Path

import click
from click.core import ParameterSource

from kybernetes import aiorun, join
from kybernetes.agent import inprocess
from kybernetes.agent.children import flags_of, kubelet_args, network_args, proxy_args, supervise
from kybernetes.agent.config import AgentConfig, JoinError
from kybernetes.agent.credentials import Credentials, default_node_ip, join_with_retry, renew_certificates
from kybernetes.agent.loadbalancer import DEFAULT_PORT, LoadBalancer, follow_endpoints
from kybernetes.api.clusterdns import cluster_dns_ip
from kybernetes.datadir import default_agent_data_dir

log = logging.getLogger(__name__)

CHILD_STOP_TIMEOUT = 20.0
"""Seconds kube-proxy and the node network get to stop (remove their tables) before they are killed."""


def main(given: AgentConfig) -> None:
    async def go() -> None:
        stop = asyncio.Event()
        cancel = threading.Event()  # tells the join thread to give up its retries

        def on_signal() -> None:
            stop.set()
            cancel.set()

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        # Everything after this talks to the cluster through the balancer, which knows every server.
        lb = LoadBalancer(given.server, given.agent_dir, port=given.lb_server_port)
        try:
            await lb.start()
        except OSError as e:
            raise JoinError(f"the API server load balancer cannot listen on 127.0.0.1:{given.lb_server_port}: {e} "
                            "(another agent on this machine? give each its own --lb-server-port)") from None
        try:
            await run_node(dataclasses.replace(given, server=lb.url), lb, stop, cancel)
        finally:
            await lb.stop()

    aiorun.run(go())


async def run_node(given: AgentConfig, lb: LoadBalancer, stop: asyncio.Event, cancel: threading.Event) -> None:
    """Join (through ``lb``), then run the node's components and the certificate rotation until
    ``stop``, while ``lb`` follows the kubernetes endpoints."""
    loop = asyncio.get_running_loop()
    # The join is blocking HTTP with retries: in a thread, so that signals are still handled.
    joined = await loop.run_in_executor(None, join_with_retry, given, cancel)
    if joined is None:
        return
    creds, cfg = joined
    # kube-proxy's credentials: system:node-proxier may watch endpoints (a node may not).
    following = asyncio.create_task(follow_endpoints(lb, creds.proxy_kubeconfig))
    try:
        await _run_components(cfg, creds, stop)
    finally:
        following.cancel()


async def _run_components(cfg: AgentConfig, creds: Credentials, stop: asyncio.Event) -> None:
    """The kubelet, kube-proxy and the node network (in this process, or as supervised children
    with --split-node-components), and the rotation of the node's certificates, until ``stop``.
    Raises :class:`ComponentFailed` when an in-process component ended on its own."""
    log.info("node settings: cloud provider %r, cluster DNS %s (%s), services %s, pods %s",
             cfg.cloud_provider, cfg.cluster_dns or cluster_dns_ip(cfg.service_cidr), cfg.cluster_domain,
             cfg.service_cidr, cfg.cluster_cidr)
    log.info("node %s joined %s; starting the kubelet%s", cfg.node_name, cfg.server,
             " (components as child processes)" if cfg.split_node_components else "")
    # Renewed certificates reach the kubelet and kube-proxy by restarting them: neither reloads
    # its TLS credentials (our API client builds its TLS context once); pods keep running, as
    # containers outlive the kubelet's containerd.
    commands = {"kubelet": kubelet_args(cfg, creds)}
    if cfg.kube_proxy:
        commands["kube-proxy"] = proxy_args(cfg, creds)
    if cfg.flannel_backend == "host-gw":
        commands["network"] = network_args(cfg, creds)
    restarts = {name: asyncio.Event() for name in commands}
    from kybernetes.kubelet.certificate import Rotation

    def renewed() -> None:
        for event in restarts.values():
            event.set()

    rotation = Rotation([creds.client_cert, creds.serving_cert], functools.partial(renew_certificates, cfg))
    rotating = asyncio.create_task(rotation.run(stop, renewed), name="agent:certificate-rotation")
    try:
        if cfg.split_node_components:
            await _run_children(cfg, commands, stop, restarts)
        else:
            await _run_in_process(cfg, commands, stop, restarts)
    finally:
        if not rotating.done():
            rotating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await rotating


async def _run_children(cfg: AgentConfig, commands: dict[str, list[str]], stop: asyncio.Event,
                        restarts: dict[str, asyncio.Event]) -> None:
    # The kubelet's restart signal is SIGHUP: its SIGTERM means the node goes down.
    await asyncio.gather(*(
        supervise(args, stop, cfg.stop_timeout if name == "kubelet" else CHILD_STOP_TIMEOUT, name,
                  restarts[name], signal.SIGHUP if name == "kubelet" else signal.SIGTERM)
        for name, args in commands.items()))


async def _run_in_process(cfg: AgentConfig, commands: dict[str, list[str]], stop: asyncio.Event,
                          restarts: dict[str, asyncio.Event]) -> None:
    make = {"kubelet": inprocess.kubelet, "kube-proxy": inprocess.kube_proxy, "network": inprocess.network}
    inprocess.set_log_levels(cfg.verbose)
    inprocess.use_executor_for(len(commands))
    components = [make[name](flags_of(args), cfg.stop_timeout if name == "kubelet" else CHILD_STOP_TIMEOUT)
                  for name, args in commands.items()]
    await inprocess.run_all(components, stop, restarts)


def _setup_logging(verbose: int) -> None:
    level = logging.INFO - 10 * (verbose - 1) if verbose else logging.INFO
    logging.basicConfig(level=max(level, logging.DEBUG), stream=sys.stderr,
                        format="%(asctime)s %(levelname).1s %(name)s: %(message)s")


_SETTING_FLAGS = {"cluster_cidr": "cluster_cidr", "service_cluster_ip_range": "service_cidr",
                  "cluster_dns": "cluster_dns", "cluster_domain": "cluster_domain"}
"""``kyb agent``'s parameters for the server's node settings -> the AgentConfig fields."""


def explicit_settings(context: click.Context) -> frozenset[str]:
    """The AgentConfig fields of :data:`SERVER_SETTINGS` that ``kyb agent``'s command line (or
    environment) set: those the server's node settings leave alone."""
    return frozenset(field for param, field in _SETTING_FLAGS.items()
                     if context.get_parameter_source(param) not in (ParameterSource.DEFAULT, None))


@click.command("agent")
@click.option("--server", required=True, envvar="KYB_URL", help="The API server, https://HOST:PORT.")
@click.option("--token", envvar="KYB_TOKEN", default=None,
              help="Join token K10<CA hash>::node:<secret>, or a bootstrap token ID.SECRET with "
                   "--discovery-token-ca-cert-hash (or KYB_TOKEN, or --token-file).")
@click.option("--discovery-token-ca-cert-hash", "discovery_hash", default="",
              help="With a bootstrap token: sha256:<hex> of the cluster CA's public key (kubeadm's).")
@click.option("--token-file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Read the join token from this file (keeps it out of the process list).")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Default: /var/lib/kybernetes-agent as root, ~/.local/share/kybernetes-agent otherwise.")
@click.option("--node-name", default=None, help="Default: the host name, lowercased.")
@click.option("--node-ip", default="", help="Default: the address used to reach the server.")
@click.option("--kubelet-port", type=int, default=10250, show_default=True)
@click.option("--cni-bridge", default="kyb0", show_default=True)
@click.option("--default-pod-cidr", default="10.42.0.0/24", show_default=True,
              help="Pod addresses until the node's spec.podCIDR says otherwise.")
@click.option("--container-runtime-endpoint", default="", help="Use this CRI socket instead of an own containerd.")
@click.option("--kubelet-arg", multiple=True, help="Extra kubelet flag, as NAME=VALUE (k3s style).")
@click.option("--stop-timeout", type=float, default=90.0, show_default=True, hidden=True,
              help="Seconds the kubelet gets to stop before it is killed.")
@click.option("--disable-kube-proxy", is_flag=True, help="Do not run kube-proxy (Services) on this node.")
@click.option("--cluster-cidr", default="10.42.0.0/16", show_default=True, help="All pods' addresses.")
@click.option("--service-cluster-ip-range", default="10.43.0.0/16", show_default=True)
@click.option("--cluster-dns", default="", metavar="IP",
              help="The kubelet's cluster DNS server (default: the 10th address of --service-cluster-ip-range).")
@click.option("--cluster-domain", default="cluster.local", show_default=True, help="The kubelet's cluster domain.")
@click.option("--flannel-backend", type=click.Choice(["host-gw", "none"]), default="host-gw", show_default=True,
              help="Pods across nodes: host-gw routes each other node's pod CIDR via its InternalIP "
                   "(`kyb network`); none leaves the routes to something else.")
@click.option("--lb-server-port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True,
              help="The port on 127.0.0.1 of the API server load balancer the node's components use "
                   "(0: any free one).")
@click.option("--flannel-ipmasq/--no-flannel-ipmasq", default=True, show_default=True,
              help="Masquerade pod traffic to addresses outside the cluster and service CIDRs.")
@click.option("--split-node-components", is_flag=True,
              help="Run the kubelet, kube-proxy and the node network as child processes (kyb kubelet, "
                   "kyb proxy, kyb network) instead of in the agent's own process.")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug); passed to the kubelet.")
def command(server: str, token: str | None, discovery_hash: str, token_file: Path | None, data_dir: Path | None,
            node_name: str | None,
            node_ip: str, kubelet_port: int, cni_bridge: str, default_pod_cidr: str,
            container_runtime_endpoint: str, kubelet_arg: tuple[str, ...], stop_timeout: float,
            disable_kube_proxy: bool, cluster_cidr: str, service_cluster_ip_range: str, cluster_dns: str,
            cluster_domain: str, flannel_backend: str, flannel_ipmasq: bool, lb_server_port: int,
            split_node_components: bool, verbose: int) -> None:
    """Join this machine to a cluster as a node and run its kubelet."""
    _setup_logging(verbose)
    if token_file is not None:
        token = token_file.read_text().strip()
    if not token:
        raise click.UsageError("a join token is required: --token, KYB_TOKEN or --token-file")
    bootstrap = bool(join.BOOTSTRAP_TOKEN.match(token))
    try:
        if bootstrap and not re.fullmatch(r"sha256:[0-9a-f]{64}", discovery_hash):
            raise ValueError("a bootstrap token needs --discovery-token-ca-cert-hash sha256:<64 hex digits>")
        if not bootstrap:
            join.parse_token(token)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    if not server.startswith("https://"):
        raise click.UsageError("--server must be an https:// URL")
    name = (node_name or socket.gethostname()).lower()
    if not join.valid_node_name(name):
        raise click.UsageError(f"node name {name!r} is not a DNS subdomain; pass --node-name")
    if node_ip:
        try:
            node_ip = str(ipaddress.ip_address(node_ip))
        except ValueError:
            raise click.UsageError(f"--node-ip {node_ip!r} is not an IP address") from None
    try:
        # Unless given, the DNS address is derived later, from the server's service range or ours.
        cluster_dns = str(ipaddress.ip_address(cluster_dns)) if cluster_dns else ""
        cluster_dns_ip(service_cluster_ip_range)
    except ValueError as err:
        raise click.UsageError(f"--cluster-dns: {err}") from None
    explicit = explicit_settings(click.get_current_context())
    cfg = AgentConfig(
        server=server.rstrip("/"), token="" if bootstrap else token,
        bootstrap_token=token if bootstrap else "", discovery_hash=discovery_hash, data_dir=(data_dir or default_agent_data_dir()).resolve(),
        node_name=name, node_ip=node_ip or default_node_ip(server), kubelet_port=kubelet_port,
        cni_bridge=cni_bridge, default_pod_cidr=default_pod_cidr,
        container_runtime_endpoint=container_runtime_endpoint,
        kubelet_args=[a if a.startswith("--") else f"--{a}" for a in kubelet_arg],
        kube_proxy=not disable_kube_proxy, cluster_cidr=cluster_cidr, service_cidr=service_cluster_ip_range,
        cluster_dns=cluster_dns, cluster_domain=cluster_domain.removesuffix("."),
        flannel_backend=flannel_backend, ip_masq=flannel_ipmasq,
        verbose=verbose, stop_timeout=stop_timeout, explicit=explicit, lb_server_port=lb_server_port,
        split_node_components=split_node_components,
    )
    from kybernetes.datadir import remove_pid_file, write_pid_file
    from kybernetes.kubelet.leftovers import BridgeInUse, check_bridge

    try:
        if not cfg.container_runtime_endpoint:
            check_bridge(cfg.cni_bridge, cfg.data_dir)
        write_pid_file(cfg.data_dir)
        main(cfg)
    except (JoinError, BridgeInUse, inprocess.ComponentFailed) as e:
        raise click.ClickException(str(e)) from None
    finally:
        remove_pid_file(cfg.data_dir)
