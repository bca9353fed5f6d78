"""``kyb dns``: flags -> :class:`DNSConfig` -> :func:`daemon.run` until SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from kybernetes import aiorun
from kybernetes.dns.daemon import DNSConfig, run
from kybernetes.dns.forward import parse_host_port


def _listen(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[str, int]:
    parsed = parse_host_port(value, 53)
    if parsed is None:
        raise click.BadParameter(f"{value!r} is not ADDRESS:PORT")
    return parsed


@click.command("dns")
@click.option("--kubeconfig", type=click.Path(path_type=Path, exists=True), default=None,
              help="Default: the pod's in-cluster service account.")
@click.option("--cluster-domain", default="cluster.local", show_default=True)
@click.option("--listen", default="0.0.0.0:53", show_default=True, callback=_listen,
              help="Address and port for DNS over UDP and TCP.")
@click.option("--resolv-conf", type=click.Path(path_type=Path), default=Path("/etc/resolv.conf"),
              show_default=True, help="Upstream nameservers for names outside the cluster domain.")
@click.option("--health-port", type=click.IntRange(1, 65535), default=8080, show_default=True,
              help="GET /health answers 200 OK here.")
@click.option("--ready-port", type=click.IntRange(1, 65535), default=8181, show_default=True,
              help="GET /ready answers 200 once the informers have synced, 503 before.")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=9153, show_default=True,
              help="GET /metrics serves CoreDNS's prometheus plugin metrics here; 0 disables.")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def command(kubeconfig: Path | None, cluster_domain: str, listen: tuple[str, int], resolv_conf: Path,
            health_port: int, ready_port: int, metrics_port: int,
            verbose: int) -> None:
    """Serve the cluster's DNS (the Kubernetes DNS specification), like CoreDNS as kube-dns."""
    logging.basicConfig(level=max(logging.WARNING - 10 * verbose, logging.DEBUG), stream=sys.stderr,
                        format="%(asctime)s %(levelname).1s %(name)s: %(message)s")
    domain = cluster_domain.strip(".").lower()
    if not domain:
        raise click.BadParameter("must not be empty", param_hint="--cluster-domain")
    cfg = DNSConfig(kubeconfig=kubeconfig, cluster_domain=domain, host=listen[0], port=listen[1],
                    resolv_conf=resolv_conf, health_port=health_port, ready_port=ready_port,
                    metrics_port=metrics_port)

    async def main() -> None:
        stop = aiorun.stop_on_signals()
        await run(cfg, stop)

    aiorun.run(main())


if __name__ == "__main__":
    command()
