"""``kyb metrics-server``: flags -> the scraper, the storage and the HTTPS API until SIGTERM/SIGINT.

The flags are metrics-server's (``--secure-port``, ``--cert-dir``, ``--tls-cert-file``,
``--tls-private-key-file``, ``--metric-resolution``, ``--kubelet-insecure-tls``,
``--kubelet-preferred-address-types``, ``--kubelet-use-node-status-port``, ``--kubelet-port``,
``--kubelet-request-timeout``). Without a certificate one is made in ``--cert-dir`` (signed by a CA
of its own, which the APIService does not verify: ``insecureSkipTLSVerify``, as metrics-server's
own manifest). The front-proxy trust is read once at start from
``kube-system/extension-apiserver-authentication``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from pathlib import Path

import click

from kybernetes import aiorun, errors
from kybernetes.api.timeutil import parse_duration


def _duration(ctx: click.Context, param: click.Parameter, value: str) -> float:
    try:
        seconds = parse_duration(value, bare_seconds=True)
    except ValueError as err:
        raise click.BadParameter(str(err)) from None
    if seconds <= 0:
        raise click.BadParameter("must be positive")
    return seconds


@click.command("metrics-server")
@click.option("--kubeconfig", type=click.Path(path_type=Path, exists=True), default=None,
              help="Default: the pod's in-cluster service account.")
@click.option("--secure-port", type=click.IntRange(0, 65535), default=10250, show_default=True)
@click.option("--bind-address", default="0.0.0.0", show_default=True)
@click.option("--cert-dir", type=click.Path(path_type=Path), default=Path("apiserver.local.config/certificates"),
              show_default=True, help="Where a self-signed serving certificate is made without --tls-cert-file.")
@click.option("--tls-cert-file", type=click.Path(path_type=Path, exists=True), default=None)
@click.option("--tls-private-key-file", type=click.Path(path_type=Path, exists=True), default=None)
@click.option("--metric-resolution", default="60s", show_default=True, callback=_duration,
              help="How often the kubelets are scraped.")
@click.option("--kubelet-insecure-tls", is_flag=True, help="Do not verify the kubelets' serving certificates.")
@click.option("--kubelet-preferred-address-types", default="Hostname,InternalDNS,InternalIP,ExternalDNS,ExternalIP",
              show_default=True)
@click.option("--kubelet-use-node-status-port", is_flag=True, help="Use the port each node reports.")
@click.option("--kubelet-port", type=click.IntRange(1, 65535), default=10250, show_default=True)
@click.option("--kubelet-request-timeout", default="10s", show_default=True, callback=_duration)
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def command(kubeconfig: Path | None, secure_port: int, bind_address: str, cert_dir: Path,
            tls_cert_file: Path | None, tls_private_key_file: Path | None, metric_resolution: float,
            kubelet_insecure_tls: bool, kubelet_preferred_address_types: str, kubelet_use_node_status_port: bool,
            kubelet_port: int, kubelet_request_timeout: float, verbose: int) -> None:
    """Serve metrics.k8s.io/v1beta1 (kubectl top) from the kubelets' resource metrics."""
    logging.basicConfig(level=max(logging.WARNING - 10 * verbose, logging.DEBUG), stream=sys.stderr,
                        format="%(asctime)s %(levelname).1s %(name)s: %(message)s")
    if (tls_cert_file is None) != (tls_private_key_file is None):
        raise click.UsageError("--tls-cert-file and --tls-private-key-file go together")
    from kybernetes.metricsserver.daemon import Daemon, DaemonConfig

    config = DaemonConfig(
        secure_port=secure_port, bind_address=bind_address, cert_dir=cert_dir, tls_cert_file=tls_cert_file,
        tls_private_key_file=tls_private_key_file, metric_resolution=metric_resolution,
        kubelet_insecure_tls=kubelet_insecure_tls,
        address_types=tuple(t.strip() for t in kubelet_preferred_address_types.split(",") if t.strip()),
        kubelet_port=kubelet_port, use_node_status_port=kubelet_use_node_status_port,
        request_timeout=kubelet_request_timeout)

    async def main() -> None:
        from kybernetes.client.rest import Client

        stop = aiorun.stop_on_signals()
        agent = f"metrics-server/{socket.gethostname()}"
        client = (Client.from_kubeconfig(kubeconfig, user_agent=agent) if kubeconfig
                  else Client.in_cluster(user_agent=agent))
        daemon = Daemon(client, config)
        task = asyncio.ensure_future(daemon.run())
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                task.result()
        except errors.StatusError as err:
            raise click.ClickException(err.message) from None
        finally:
            for t in (task, stopper):
                t.cancel()
            await asyncio.gather(task, stopper, return_exceptions=True)
            await daemon.close()
            await client.close()

    aiorun.run(main())


if __name__ == "__main__":
    command()
