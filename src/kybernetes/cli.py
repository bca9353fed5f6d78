"""``kyb``: the command line, a thin shell over each component's ``run``.

Each subcommand turns flags into a component config and runs it until SIGTERM or SIGINT, then
stops it cleanly. ``kyb server`` bundles the control plane (and, with a later release, the node
agent) in one process, like k3s; ``kyb apiserver`` runs the API server alone.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

import click

from kybernetes.apiserver.server import APIServer, APIServerConfig, default_data_dir


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), stream=sys.stderr,
                        format="%(asctime)s %(levelname).1s %(name)s: %(message)s")


async def _run_until_signal(server: APIServer, announce: bool) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
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
    f = click.option("--compact-interval", type=float, default=60.0, hidden=True,
                     help="Seconds between store compactions.")(f)
    f = click.option("--compact-keep", type=int, default=1000, hidden=True,
                     help="Revisions of history compaction keeps.")(f)
    f = click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")(f)
    f = click.option("--token-auth-file", type=click.Path(path_type=Path), default=None,
                     help="Static bearer tokens: token,user,uid,\"group1,group2\" per line.")(f)
    f = click.option("--service-cluster-ip-range", default="10.43.0.0/16", show_default=True)(f)
    f = click.option("--tls-san", multiple=True, help="Extra names or addresses for the serving certificate.")(f)
    f = click.option("--datastore-endpoint", default="", help="Store: empty or sqlite://PATH (embedded).")(f)
    f = click.option("--https-port", type=int, default=6443, show_default=True, help="0 picks a free port.")(f)
    f = click.option("--bind-address", default="127.0.0.1", show_default=True)(f)
    f = click.option("--data-dir", type=click.Path(path_type=Path), default=None,
                     help="Default: /var/lib/kybernetes as root, ~/.local/share/kybernetes otherwise.")(f)
    return f


def _config(data_dir: Path | None, bind_address: str, https_port: int, datastore_endpoint: str,
            tls_san: tuple[str, ...], service_cluster_ip_range: str, token_auth_file: Path | None,
            compact_interval: float, compact_keep: int) -> APIServerConfig:
    d = (data_dir or default_data_dir()).resolve()
    token_file = token_auth_file
    if token_file is None and (d / "tokens.csv").exists():
        token_file = d / "tokens.csv"
    return APIServerConfig(
        data_dir=d, bind_address=bind_address, port=https_port, datastore_endpoint=datastore_endpoint,
        extra_sans=tls_san, service_cidr=service_cluster_ip_range, token_file=token_file,
        compact_interval=compact_interval, compact_keep=compact_keep,
    )


@click.group()
def main() -> None:
    """kybernetes: Kubernetes, in Python."""


@main.command()
@_common_options
@click.option("--disable-agent", is_flag=True, help="Run the control plane only (no kubelet on this machine).")
def server(data_dir: Path | None, bind_address: str, https_port: int, datastore_endpoint: str,
           tls_san: tuple[str, ...], service_cluster_ip_range: str, token_auth_file: Path | None,
           verbose: int, compact_interval: float, compact_keep: int, disable_agent: bool) -> None:
    """Run a whole cluster in this process: the API server on the embedded store, and the rest."""
    _setup_logging(verbose)
    cfg = _config(data_dir, bind_address, https_port, datastore_endpoint, tls_san, service_cluster_ip_range,
                  token_auth_file, compact_interval, compact_keep)
    asyncio.run(_run_until_signal(APIServer(cfg), announce=True))


@main.command()
@_common_options
def apiserver(data_dir: Path | None, bind_address: str, https_port: int, datastore_endpoint: str,
              tls_san: tuple[str, ...], service_cluster_ip_range: str, token_auth_file: Path | None,
              verbose: int, compact_interval: float, compact_keep: int) -> None:
    """Run the API server alone."""
    _setup_logging(verbose)
    cfg = _config(data_dir, bind_address, https_port, datastore_endpoint, tls_san, service_cluster_ip_range,
                  token_auth_file, compact_interval, compact_keep)
    asyncio.run(_run_until_signal(APIServer(cfg), announce=True))


if __name__ == "__main__":
    main()
