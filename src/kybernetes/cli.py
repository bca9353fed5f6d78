"""``kyb``: the command line, a thin shell over each component's ``run``.

Each subcommand turns flags into a component config and runs it until SIGTERM or SIGINT, then
stops it cleanly. ``kyb server`` bundles the control plane and this machine's node agent (unless
``--disable-agent``), like k3s; ``kyb apiserver`` runs the API server alone.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import ipaddress
import logging
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from kybernetes import aiorun, procctl
from kybernetes.datadir import default_data_dir

if TYPE_CHECKING:
    from kybernetes import bundle
    from kybernetes.apiserver.server import APIServer, APIServerConfig


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), stream=sys.stderr,
                        format="%(asctime)s %(levelname).1s %(name)s: %(message)s")


async def _run_until_signal(server: APIServer, announce: bool) -> None:
    stop = aiorun.stop_on_signals()
    await server.start()
    if announce:
        kc = server.config.kubeconfig_path or server.config.data_dir / "kubeconfig.yaml"
        click.echo(f"kybernetes API server listening on {server.url}", err=True)
        click.echo(f"export KUBECONFIG={kc}")
        sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        await server.stop()


def _common_options(f):  # type: ignore[no-untyped-def]
    """The API server's flags, shared by ``kyb server`` and ``kyb apiserver`` (``_config`` reads them)."""
    f = click.option("--audit-log-maxsize", type=int, default=0, metavar="MB",
                     help="The maximum size in megabytes of the audit log file before it gets rotated.")(f)
    f = click.option("--audit-log-maxbackup", type=int, default=0,
                     help="The maximum number of old audit log files to retain. Setting a value of 0 will mean "
                          "there's no restriction on the number of files.")(f)
    f = click.option("--audit-log-maxage", type=int, default=0,
                     help="The maximum number of days to retain old audit log files based on the timestamp "
                          "encoded in their filename.")(f)
    f = click.option("--audit-log-path", default="",
                     help="If set, all requests coming to the apiserver will be logged to this file.  '-' means "
                          "standard out.")(f)
    f = click.option("--audit-policy-file", default="",
                     help="Path to the file that defines the audit policy configuration.")(f)
    f = _front_proxy_options(f)
    f = click.option("--authorization-mode", default="Node,RBAC", show_default=True, metavar="MODES",
                     help="Authorizers, in order (comma-separated): AlwaysAllow, AlwaysDeny, Node, RBAC.")(f)
    f = click.option("--anonymous-auth", type=click.BOOL, default=True, show_default=True,
                     help="Serve requests without credentials as system:anonymous (group system:unauthenticated); "
                          "off whatever this says when AlwaysAllow is among the authorization modes.")(f)
    f = click.option("--disable-admission-plugins", multiple=True, metavar="NAMES",
                     help="Admission plugins to turn off although on by default (comma-separated; "
                          "the names are kube-apiserver's).")(f)
    f = click.option("--enable-admission-plugins", multiple=True, metavar="NAMES",
                     help="Admission plugins to turn on besides the default ones (comma-separated; "
                          "their order does not matter).")(f)
    f = click.option("--identity-lease-renew-interval-seconds", type=click.IntRange(min=1), default=5,
                     show_default=True, help="How often this API server renews its identity lease.")(f)
    f = click.option("--identity-lease-duration-seconds", type=click.IntRange(min=1), default=15, show_default=True,
                     help="An API server leaves the kubernetes Service's endpoints this long after it last "
                          "renewed its identity lease.")(f)
    f = click.option("--compact-interval", type=float, default=60.0, hidden=True,
                     help="Seconds between store compactions.")(f)
    f = click.option("--compact-keep", type=int, default=1000, hidden=True,
                     help="Revisions of history compaction keeps.")(f)
    f = click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")(f)
    f = click.option("--max-mutating-requests-inflight", type=int, default=200, show_default=True,
                     help="With --max-requests-inflight: the concurrency API Priority and Fairness shares out.")(f)
    f = click.option("--max-requests-inflight", type=int, default=400, show_default=True,
                     help="With --max-mutating-requests-inflight: the concurrency API Priority and Fairness "
                          "shares out.")(f)
    f = click.option("--token-auth-file", type=click.Path(path_type=Path), default=None,
                     help="Static bearer tokens: token,user,uid,\"group1,group2\" per line.")(f)
    f = click.option("--service-cluster-ip-range", default="10.43.0.0/16", show_default=True)(f)
    f = click.option("--tls-san", multiple=True, help="Extra names or addresses for the serving certificate.")(f)
    f = click.option("--etcd-compaction-interval", default="5m",
                     help="How often an etcd datastore is compacted (a Go duration; 0 disables), as "
                          "kube-apiserver's flag: each round compacts to the revision seen one interval "
                          "earlier.")(f)
    f = click.option("--datastore-keyfile", default="", help="TLS key for the etcd datastore.")(f)
    f = click.option("--datastore-certfile", default="", help="TLS certificate for the etcd datastore.")(f)
    f = click.option("--datastore-cafile", default="", help="TLS CA that signed the etcd members' certificates.")(f)
    f = click.option("--datastore-endpoint", default="",
                     help="Store: empty or sqlite://PATH (embedded), or etcd v3 at "
                          "https://HOST:2379[,https://HOST2:2379...] (http:// without TLS).")(f)
    f = click.option("--https-port", type=int, default=6443, show_default=True, help="0 picks a free port.")(f)
    f = click.option("--advertise-address", default="",
                     help="The address other nodes and pods reach this API server at (default: the bind "
                          "address; without --bind-address, this machine's primary address).")(f)
    f = click.option("--bind-address", default="",
                     help="The address to serve on. Default: 127.0.0.1 and this machine's primary address "
                          "(its default route's source address), which is advertised, as k3s does: pods "
                          "reach the API server through the kubernetes Service.")(f)
    f = click.option("--data-dir", type=click.Path(path_type=Path), default=None,
                     help="Default: /var/lib/kybernetes as root, ~/.local/share/kybernetes otherwise.")(f)
    return f


def _front_proxy_options(f):  # type: ignore[no-untyped-def]
    """kube-apiserver's flags for front proxies: the trust this server accepts asserted users by
    (``apiserver/auth/requestheader.py``) and publishes to aggregated API servers, and the client
    certificate the aggregation layer presents to them (``apiserver/aggregator``)."""
    def listed(name: str, default: str, help_: str):  # type: ignore[no-untyped-def]
        return click.option(name, default=default, show_default=True, metavar="LIST", help=help_)

    f = click.option("--apiservice-resync-period", type=float, default=30.0, hidden=True,
                     help="Seconds between availability checks of every remote APIService.")(f)
    f = click.option("--proxy-client-key-file", default="", help="Key of --proxy-client-cert-file.")(f)
    f = click.option("--proxy-client-cert-file", default="",
                     help="Client certificate the aggregation layer presents to aggregated API servers "
                          "(default: DATA_DIR/tls/front-proxy-client.crt).")(f)
    f = listed("--requestheader-extra-headers-prefix", "X-Remote-Extra-", "Request header prefixes to inspect.")(f)
    f = listed("--requestheader-group-headers", "X-Remote-Group", "Request headers to inspect for groups.")(f)
    f = listed("--requestheader-username-headers", "X-Remote-User", "Request headers to inspect for usernames.")(f)
    f = click.option("--requestheader-allowed-names", default="", metavar="LIST",
                     help="Client certificate common names allowed to assert users in request headers "
                          "(default with the built-in front-proxy CA: front-proxy-client).")(f)
    f = click.option("--requestheader-client-ca-file", default="",
                     help="CA of front proxies' client certificates, which may assert users in request "
                          "headers to this server and to aggregated API servers "
                          "(default: DATA_DIR/tls/front-proxy-ca.crt).")(f)
    return f


def _front_proxy_config(requestheader_client_ca_file: str = "", requestheader_allowed_names: str = "",
                        requestheader_username_headers: str = "X-Remote-User",
                        requestheader_group_headers: str = "X-Remote-Group",
                        requestheader_extra_headers_prefix: str = "X-Remote-Extra-", proxy_client_cert_file: str = "",
                        proxy_client_key_file: str = "", apiservice_resync_period: float = 30.0) -> Any:
    from kybernetes.apiserver.aggregator import FrontProxyConfig

    def split(value: str) -> tuple[str, ...]:
        return tuple(x.strip() for x in value.split(",") if x.strip())

    return FrontProxyConfig(requestheader_client_ca_file, split(requestheader_allowed_names),
                            split(requestheader_username_headers), split(requestheader_group_headers),
                            split(requestheader_extra_headers_prefix), proxy_client_cert_file, proxy_client_key_file,
                            apiservice_resync_period)


def _config(data_dir: Path | None, bind_address: str, advertise_address: str, https_port: int, datastore_endpoint: str,
            tls_san: tuple[str, ...], service_cluster_ip_range: str, token_auth_file: Path | None,
            compact_interval: float, compact_keep: int, max_requests_inflight: int = 400,
            max_mutating_requests_inflight: int = 200, enable_admission_plugins: tuple[str, ...] = (),
            disable_admission_plugins: tuple[str, ...] = (), authorization_mode: str = "Node,RBAC",
            anonymous_auth: bool = True, audit_policy_file: str = "", audit_log_path: str = "",
            audit_log_maxsize: int = 0, audit_log_maxbackup: int = 0, audit_log_maxage: int = 0,
            datastore_cafile: str = "", datastore_certfile: str = "", datastore_keyfile: str = "",
            etcd_compaction_interval: str = "5m", identity_lease_duration_seconds: int = 15,
            identity_lease_renew_interval_seconds: int = 5, **front_proxy: Any) -> APIServerConfig:
    """The API server's configuration from the flags ``_common_options`` adds (one keyword each)."""
    from kybernetes.apiserver.admission.plugins import flag_error, split_flag, validate_flags
    from kybernetes.apiserver.server import APIServerConfig

    enable, disable = split_flag(enable_admission_plugins), split_flag(disable_admission_plugins)
    problems = validate_flags(enable, disable)
    if problems:
        raise click.ClickException(flag_error(problems))  # kube-apiserver: "Error: ...", exit 1
    if max_requests_inflight + max_mutating_requests_inflight <= 0:
        raise click.UsageError(f"invalid configuration: MaxRequestsInFlight={max_requests_inflight} and "
                               f"MaxMutatingRequestsInFlight={max_mutating_requests_inflight}; they must add up to "
                               "something positive")
    from kybernetes.apiserver.authz.authorizer import validate_modes

    modes = tuple(m.strip() for m in authorization_mode.split(",") if m.strip())
    mode_problems = validate_modes(modes)
    if mode_problems:
        raise click.ClickException("; ".join(mode_problems))
    from kybernetes.apiserver.audit import PolicyError, check_flags

    try:  # kube-apiserver refuses to start on a bad policy file or log flag (Error: ..., exit 1)
        check_flags(audit_policy_file, audit_log_path, audit_log_maxsize, audit_log_maxbackup, audit_log_maxage)
    except PolicyError as e:
        raise click.ClickException(str(e)) from None
    from kybernetes.api.timeutil import parse_duration

    try:
        etcd_compaction = parse_duration(etcd_compaction_interval)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--etcd-compaction-interval") from None
    d = (data_dir or default_data_dir()).resolve()
    extra_bind: tuple[str, ...] = ()
    if not bind_address:
        bind_address, extra_bind, advertise_address = _default_addresses(advertise_address)
    token_file = token_auth_file
    if token_file is None and (d / "tokens.csv").exists():
        token_file = d / "tokens.csv"
    return APIServerConfig(
        data_dir=d, bind_address=bind_address, advertise_address=advertise_address, port=https_port,
        extra_bind_addresses=extra_bind,
        datastore_endpoint=datastore_endpoint,
        datastore_tls=(datastore_cafile, datastore_certfile, datastore_keyfile),
        etcd_compaction_interval=etcd_compaction,
        extra_sans=tls_san, service_cidr=service_cluster_ip_range, token_file=token_file,
        compact_interval=compact_interval, compact_keep=compact_keep,
        max_requests_inflight=max_requests_inflight, max_mutating_requests_inflight=max_mutating_requests_inflight,
        enable_admission_plugins=tuple(enable), disable_admission_plugins=tuple(disable),
        authorization_modes=modes, anonymous_auth=anonymous_auth,
        audit_policy_file=audit_policy_file, audit_log_path=audit_log_path, audit_log_maxsize=audit_log_maxsize,
        audit_log_maxbackup=audit_log_maxbackup, audit_log_maxage=audit_log_maxage,
        front_proxy=_front_proxy_config(**front_proxy), identity_lease_duration=identity_lease_duration_seconds,
        identity_lease_renew_interval=identity_lease_renew_interval_seconds,
    )


def _default_addresses(advertise_address: str) -> tuple[str, tuple[str, ...], str]:
    """(bind, extra bind, advertise) without --bind-address: loopback plus the advertised address
    (--advertise-address, else the primary one) when it is this machine's; loopback alone, as
    before, on a machine without a default route. Traffic to the machine's own address stays on it."""
    from kybernetes.pki import primary_address

    advertise = advertise_address or primary_address()
    if not advertise or ipaddress.ip_address(advertise).is_loopback:
        return "127.0.0.1", (), advertise_address
    if advertise_address and advertise_address != primary_address():
        return "127.0.0.1", (), advertise_address  # another machine's (a proxy): served as told, on loopback
    return "127.0.0.1", (advertise,), advertise


class LazyGroup(click.Group):
    """Subcommands that live in their component's package, imported only when used.

    Each component owns its command line (``kybernetes.scheduler.cmd`` ...); the CLI only names
    them, so ``kyb apiserver`` does not import the scheduler (nor ``kyb agent`` the API server),
    and a component's import cost is paid only by the command that runs it.
    """

    lazy: dict[str, str] = {
        "controller-manager": "kybernetes.controllers.cmd:command",
        "control-plane": "kybernetes.controlplane:command",
        "cloud-controller-manager": "kybernetes.cloud.cmd:command",
        "scheduler": "kybernetes.scheduler.cmd:scheduler_command",
        "explain-scheduling": "kybernetes.scheduler.cmd:explain_command",
        "hollow-nodes": "kybernetes.hollow.cmd:command",
        "image": "kybernetes.kubelet.imagecmd:image_group",
        "killall": "kybernetes.kubelet.killall:killall_command",
        "uninstall": "kybernetes.kubelet.killall:uninstall_command",
        "kubelet": "kybernetes.kubelet.cmd:command",
        "proxy": "kybernetes.proxy.cmd:command",
        "dns": "kybernetes.dns.cmd:command",
        "local-path-provisioner": "kybernetes.localpath.cmd:command",
        "metrics-server": "kybernetes.metricsserver.cmd:command",
        "network": "kybernetes.proxy.netcmd:command",
        "agent": "kybernetes.agent:command",
        "token": "kybernetes.joincmd:token_group",
        "snapshot": "kybernetes.snapshotcmd:snapshot_group",
        "etcd": "kybernetes.etcdcmd:etcd_group",
        "console": "kybernetes.console.cmd:command",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = self.lazy.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module, _, attr = target.partition(":")
        cmd = getattr(importlib.import_module(module), attr)
        assert isinstance(cmd, click.Command)
        return cmd


@click.group(cls=LazyGroup)
def main() -> None:
    """kybernetes: Kubernetes, in Python."""
    # A child of a kyb process (the server's control plane and agent, the agent's components) dies
    # with it, however it dies: the next start finds nothing of the old instance but its pods.
    procctl.die_with_parent()


@main.command()
@_common_options
@click.option("--disable-agent", is_flag=True, help="Run the control plane only (no kubelet on this machine).")
@click.option("--disable-scheduler", is_flag=True, help="Do not run kube-scheduler.")
@click.option("--split-control-plane", is_flag=True,
              help="Run the scheduler, controller manager and cloud-controller-manager as a process each "
                   "(default: all in one process, `kyb control-plane`).")
@click.option("--disable-controller-manager", is_flag=True, help="Do not run kube-controller-manager.")
@click.option("--cluster-cidr", default="10.42.0.0/16", show_default=True, help="Pod addresses, split per node.")
@click.option("--kube-scheduler-arg", multiple=True, help="Extra flag for the scheduler, as NAME=VALUE.")
@click.option("--kube-controller-manager-arg", multiple=True,
              help="Extra flag for the controller manager, as NAME=VALUE (e.g. node-monitor-grace-period=20s).")
@click.option("--disable-cloud-controller", is_flag=True,
              help="Do not run the cloud-controller-manager (`kyb cloud-controller-manager`, local provider), "
                   "nor this machine's kubelet with --cloud-provider=external.")
@click.option("--enable-cloud-controller", is_flag=True, hidden=True,
              help="The default (kept for scripts written when the cloud-controller-manager was off by default).")
@click.option("--kube-cloud-controller-manager-arg", multiple=True,
              help="Extra flag for the cloud-controller-manager, as NAME=VALUE (e.g. lb-pool=127.0.100.0/24).")
@click.option("--kubelet-arg", multiple=True, help="Extra flag for this node's kubelet, as NAME=VALUE.")
@click.option("--node-name", default=None, help="This node's name (default: the host name).")
@click.option("--disable-kube-proxy", is_flag=True, help="Do not run kube-proxy on this machine's node.")
@click.option("--split-node-components", is_flag=True,
              help="The node's agent runs its kubelet, kube-proxy and network as child processes "
                   "(kyb agent --split-node-components) instead of in its own process.")
@click.option("--lb-server-port", type=click.IntRange(0, 65535), default=6444, show_default=True,
              help="The port on 127.0.0.1 of this node's API server load balancer (0: any free one).")
@click.option("--disable", multiple=True, metavar="ADDON",
              help="Do not deploy this packaged component (repeatable or comma-separated): coredns, "
                   "local-storage, metrics-server.")
@click.option("--cluster-dns", default="", metavar="IP",
              help="The cluster DNS Service's address, given to every kubelet (default: the 10th address "
                   "of --service-cluster-ip-range).")
@click.option("--cluster-domain", default="cluster.local", show_default=True, help="The cluster's DNS domain.")
@click.option("--flannel-backend", type=click.Choice(["host-gw", "none"]), default="host-gw", show_default=True,
              help="Pods across nodes (this machine's node): host-gw routes, or none.")
@click.option("--flannel-ipmasq/--no-flannel-ipmasq", default=True, show_default=True,
              help="Masquerade pod traffic leaving the cluster and service CIDRs (this machine's node).")
@click.option("--disable-snapshots", is_flag=True, help="Take no scheduled snapshots of the store.")
@click.option("--snapshot-schedule-cron", default="0 */12 * * *", show_default=True, metavar="SPEC",
              help="When to take scheduled snapshots, in cron format (as a CronJob's schedule).")
@click.option("--snapshot-retention", type=click.IntRange(min=1), default=5, show_default=True,
              help="Scheduled snapshots to keep; the oldest beyond this are removed.")
@click.option("--snapshot-dir", type=click.Path(path_type=Path), default=None,
              help="Where scheduled snapshots go. Default: DATA_DIR/db/snapshots.")
@click.option("--cluster-init", is_flag=True,
              help="Keep the store in etcd run by this server (a supervised child, data in DATA_DIR/db/etcd, "
                   "TLS from the etcd CA in DATA_DIR/tls) instead of SQLite; other servers may join it "
                   "(--server, with the server token of `kyb token server`).")
@click.option("--server", "join_server", default="", metavar="URL",
              help="Join the cluster of the server at URL (https://HOST:6443) as another server: its etcd "
                   "member and API server, with --token. Only the first start needs it: a data dir that "
                   "holds a member rejoins by itself.")
@click.option("--token", "join_token", default="", metavar="TOKEN",
              help="With --server: the cluster's server token (K10...::server:..., `kyb token server` on a "
                   "server of it).")
@click.option("--cluster-reset", is_flag=True,
              help="Forget all peers and become the sole member of a new etcd cluster (the embedded etcd of "
                   "DATA_DIR, keeping its data), then exit; restart without this flag.")
@click.option("--cluster-reset-restore-path", type=click.Path(path_type=Path), default=None, metavar="FILE",
              help="With --cluster-reset: first make this snapshot (kyb snapshot save's) the member's data.")
@click.option("--etcd-client-port", type=click.IntRange(1, 65535), default=2379, show_default=True,
              help="The embedded etcd's client port (on 127.0.0.1 and the advertise address).")
@click.option("--etcd-peer-port", type=click.IntRange(1, 65535), default=2380, show_default=True,
              help="The embedded etcd's peer port (on the advertise address).")
@click.option("--component-health-grace", type=float, default=60.0, hidden=True,
              help="Seconds a component may take to answer its first /healthz before it is reported.")
def server(verbose: int, cluster_reset: bool, cluster_reset_restore_path: Path | None, **flags: Any) -> None:
    """Run a whole cluster: the API server on the embedded store, the scheduler and the controllers."""
    from kybernetes import bundle

    _setup_logging(verbose)
    if cluster_reset_restore_path is not None and not cluster_reset:
        raise click.UsageError("--cluster-reset-restore-path needs --cluster-reset")
    if cluster_reset:
        for flag in ("datastore_endpoint", "datastore_cafile", "datastore_certfile", "datastore_keyfile"):
            if flags.get(flag):
                raise click.UsageError(f"--cluster-reset and --{flag.replace('_', '-')} are mutually exclusive")
        if flags["cluster_init"] or flags["join_server"]:
            raise click.UsageError("--cluster-reset works on the member of DATA_DIR alone: "
                                   "without --cluster-init or --server")
        api_flags = inspect.signature(_config).parameters  # the API server's own flags among them
        cfg = _config(**{k: v for k, v in flags.items() if k in api_flags})
        _cluster_reset(cfg.data_dir, flags["node_name"], flags["etcd_client_port"], flags["etcd_peer_port"],
                       _etcd_address(cfg.advertise_address, cfg.bind_address), cluster_reset_restore_path)
        return
    bundle.main(_server_config(**flags))


def server_config(args: list[str]) -> bundle.ServerConfig:
    """What ``kyb server ARGS`` would run, without running it: the one reading of ``kyb server``'s
    flags, for whoever runs the bundle in its own process (the test kit's in-process cluster).
    Bad flags raise click's exceptions (``click.UsageError`` and friends); ``--cluster-reset``,
    which does its work instead of running a server, is refused; nothing here touches logging."""
    with server.make_context("server", list(args)) as ctx:
        params = dict(ctx.params)
    params.pop("verbose")
    if params.pop("cluster_reset") or params.pop("cluster_reset_restore_path") is not None:
        raise click.UsageError("--cluster-reset runs no server")
    return _server_config(**params)


def _server_config(cluster_init: bool, join_server: str, join_token: str, etcd_client_port: int,
                   etcd_peer_port: int, disable_snapshots: bool, snapshot_schedule_cron: str, snapshot_retention: int,
                   snapshot_dir: Path | None, disable_agent: bool, disable_scheduler: bool,
                   split_control_plane: bool, disable_controller_manager: bool, cluster_cidr: str, kube_scheduler_arg: tuple[str, ...],
                   kube_controller_manager_arg: tuple[str, ...], disable_cloud_controller: bool,
                   enable_cloud_controller: bool, kube_cloud_controller_manager_arg: tuple[str, ...],
                   kubelet_arg: tuple[str, ...], node_name: str | None, disable_kube_proxy: bool, split_node_components: bool,
                   disable: tuple[str, ...], cluster_dns: str, cluster_domain: str, flannel_backend: str,
                   flannel_ipmasq: bool, lb_server_port: int, component_health_grace: float,
                   **api_flags: Any) -> bundle.ServerConfig:
    """``kyb server``'s flags (all but logging and --cluster-reset's) as the bundle's configuration."""
    from kybernetes import bundle
    from kybernetes.addons import AddonSettings, addon_objects
    from kybernetes.api.clusterdns import cluster_dns_ip
    from kybernetes.join import NodeSettings

    etcd = _embedded_etcd(cluster_init, join_server, join_token, node_name, etcd_client_port, etcd_peer_port,
                          api_flags)
    cfg = _config(**api_flags)
    if etcd is not None:
        etcd = dataclasses.replace(etcd, server_data_dir=cfg.data_dir,
                                   advertise_address=_etcd_address(cfg.advertise_address, cfg.bind_address))
        cfg.datastore_endpoint = etcd.client_url
        tls = etcd.client_tls()
        cfg.datastore_tls = (tls.cafile, tls.certfile, tls.keyfile)
    disabled = tuple(a.strip() for value in disable for a in value.split(",") if a.strip())
    try:
        addon_objects(AddonSettings(), disabled)
        dns_ip = str(ipaddress.ip_address(cluster_dns)) if cluster_dns else cluster_dns_ip(cfg.service_cidr)
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    # The bridge is the agent's to know too (kube-proxy's table is named after it), not only the kubelet's.
    bridges = [a.partition("=")[2] for a in kubelet_arg if a.removeprefix("--").startswith("cni-bridge=")]
    kubelet_arg = tuple(a for a in kubelet_arg if not a.removeprefix("--").startswith("cni-bridge="))
    bridge = bridges[-1] if bridges else "kyb0"
    try:
        snapshots = None if disable_snapshots else bundle.SnapshotSchedule(
            snapshot_schedule_cron, snapshot_retention, snapshot_dir, node_name or "")
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="'--snapshot-schedule-cron'") from None
    if disable_cloud_controller and enable_cloud_controller:
        raise click.UsageError("--enable-cloud-controller and --disable-cloud-controller are mutually exclusive")
    # What joining nodes learn from the join service (GET /kybernetes.io/v1/node-config): with the
    # cloud-controller-manager on, their kubelets register their nodes uninitialised
    # (--cloud-provider=external) for the cloud node controller to initialise. This machine's own
    # agent learns it the same way.
    cfg.node_settings = NodeSettings(
        cloud_provider="" if disable_cloud_controller else "external", cluster_dns=dns_ip,
        cluster_domain=cluster_domain.removesuffix("."), service_cidr=cfg.service_cidr, cluster_cidr=cluster_cidr)
    return bundle.ServerConfig(
        api=cfg, disable_agent=disable_agent, disable_scheduler=disable_scheduler,
        disable_controller_manager=disable_controller_manager, cluster_cidr=cluster_cidr,
        scheduler_args=[_flag(a) for a in kube_scheduler_arg],
        controller_manager_args=[_flag(a) for a in kube_controller_manager_arg],
        enable_cloud_controller=not disable_cloud_controller, split_control_plane=split_control_plane,
        cloud_controller_manager_args=[_flag(a) for a in kube_cloud_controller_manager_arg],
        agent_args=["--cni-bridge", bridge, *(f"--kubelet-arg={a}" for a in kubelet_arg),
                    *(["--node-name", node_name] if node_name else []),
                    *(["--disable-kube-proxy"] if disable_kube_proxy else []),
                    *(["--split-node-components"] if split_node_components else []),
                    "--flannel-backend", flannel_backend,
                    "--flannel-ipmasq" if flannel_ipmasq else "--no-flannel-ipmasq",
                    "--lb-server-port", str(lb_server_port)],
        cni_bridge=bridge, disable=disabled, cluster_dns=dns_ip, cluster_domain=cluster_domain.removesuffix("."),
        snapshots=snapshots, etcd=etcd, join_server=join_server, join_token=join_token,
        component_health_grace=component_health_grace,
    )


def _embedded_etcd(cluster_init: bool, join_server: str, join_token: str, node_name: str | None, client_port: int,
                   peer_port: int, api_flags: dict[str, Any]) -> Any:
    """The etcd member ``kyb server`` runs (its data dir and address filled in later), or None:
    with ``--cluster-init``, ``--server``, or (without ``--datastore-endpoint``) on a data dir that
    holds a member already (a restarted server rejoins, as k3s's)."""
    from kybernetes.etcdmember import EmbeddedEtcd

    if join_server and not join_token:
        raise click.UsageError("--server needs --token (the cluster's server token: `kyb token server`)")
    if join_token and not join_server:
        raise click.UsageError("--token is the server token of the cluster joined with --server")
    if cluster_init and join_server:
        raise click.UsageError("--cluster-init and --server are mutually exclusive")
    data_dir = (api_flags.get("data_dir") or default_data_dir()).resolve()
    member = EmbeddedEtcd(data_dir, node_name or socket.gethostname(), client_port, peer_port)
    if cluster_init or join_server:  # the member's own endpoint and certificates are what the API server uses
        flag = "--cluster-init" if cluster_init else "--server"
        for name in ("datastore_endpoint", "datastore_cafile", "datastore_certfile", "datastore_keyfile"):
            if api_flags.get(name):
                raise click.UsageError(f"{flag} and --{name.replace('_', '-')} are mutually exclusive")
        return member
    return member if member.exists() and not api_flags.get("datastore_endpoint") else None


def _etcd_address(advertise_address: str, bind_address: str) -> str:
    """Where the embedded member listens for peers: the API server's advertise address, else its
    bind address, else loopback."""
    for address in (advertise_address, bind_address):
        if address and address not in ("0.0.0.0", "::"):
            return address
    return "127.0.0.1"


def _cluster_reset(data_dir: Path | None, node_name: str | None, client_port: int, peer_port: int,
                   advertise_address: str, restore: Path | None) -> None:
    """``kyb server --cluster-reset``: ``kybernetes.clusterreset``; a refusal is a usage error (exit 2)."""
    from kybernetes.clusterreset import ResetError, cluster_reset, done_message
    from kybernetes.etcdmember import EmbeddedEtcd

    d = (data_dir or default_data_dir()).resolve()
    # The member as the server last ran it (its name, ports and peer address), else from the flags.
    member = EmbeddedEtcd.load(d) or EmbeddedEtcd(d, node_name or socket.gethostname(), client_port, peer_port,
                                                  advertise_address)
    try:
        aiorun.run(cluster_reset(member, restore.resolve() if restore else None))
    except ResetError as e:
        raise click.UsageError(str(e)) from None
    click.echo(done_message(d), err=True)


def _flag(arg: str) -> str:
    """k3s-style component args: ``name=value`` -> ``--name=value``."""
    return arg if arg.startswith("--") else f"--{arg}"


@main.command()
@_common_options
def apiserver(verbose: int, **api_flags: Any) -> None:
    """Run the API server alone."""
    from kybernetes.apiserver.server import APIServer

    _setup_logging(verbose)
    cfg = _config(**api_flags)
    aiorun.run(_run_until_signal(APIServer(cfg), announce=True))


if __name__ == "__main__":
    if os.environ.get("KYB_PROFILE_OUT"):  # bench.datastores: cProfile of a whole command, stats per PID
        import cProfile
        import time

        # The main thread's CPU time, not the wall clock: on a shared machine, time spent waiting
        # for a core would otherwise count against whatever function was running.
        profile = cProfile.Profile(time.thread_time)
        try:
            profile.runcall(main)
        except SystemExit:
            pass
        finally:
            profile.dump_stats(f"{os.environ['KYB_PROFILE_OUT']}.{os.getpid()}")
    else:
        main()
