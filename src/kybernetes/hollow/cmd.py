"""``kyb hollow-nodes``: flags -> :class:`HollowConfig` -> ``run(config)`` until SIGTERM/SIGINT.

``run`` connects with the kubeconfig, starts the fleet, optionally pauses every node after
``--stop-heartbeats-after`` seconds, and on a signal (or cancellation, when a test runs it as a
task) stops writing and closes the client, leaving the Nodes and Leases registered, as a kubelet
that is shut down does. Every ``--report-interval`` seconds it logs how many requests of each kind
it made.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

import click

from kybernetes import aiorun
from kybernetes.client.rest import Client
from kybernetes.hollow.nodes import HollowConfig, HollowNodes, fleet_summary
from kybernetes.hollow.objects import NodeShape

log = logging.getLogger(__name__)


async def run(config: HollowConfig, *, started: asyncio.Future[HollowNodes] | None = None) -> None:
    """Run the fleet until cancelled or signalled. ``started`` receives it once it is registering."""
    client = Client.from_kubeconfig(config.kubeconfig, context=config.context, user_agent="kyb-hollow-nodes")
    fleet = HollowNodes(client, config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    try:
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, stop.set)
                handled.append(sig)
            except (RuntimeError, ValueError, NotImplementedError):
                pass  # not the main thread (a test's loop): cancellation stops us instead
        try:
            await fleet.start()
        except BaseException as exc:
            if started is not None and not started.done():
                if isinstance(exc, asyncio.CancelledError):
                    started.cancel()
                else:
                    started.set_exception(exc)
            raise
        if started is not None and not started.done():
            started.set_result(fleet)
        if config.stop_heartbeats_after is not None:
            loop.call_later(config.stop_heartbeats_after, fleet.pause)
        await stop.wait()
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        await fleet.stop()
        await client.close()
        log.info("hollow nodes stopped: %s", fleet_summary(fleet))


async def _run_with_reports(config: HollowConfig, report_interval: float) -> None:
    started: asyncio.Future[HollowNodes] = asyncio.get_running_loop().create_future()
    main = asyncio.create_task(run(config, started=started))

    async def report() -> None:
        fleet = await started
        t0 = asyncio.get_running_loop().time()
        await fleet.wait_registered()
        click.echo(f"{len(fleet.nodes)} hollow nodes registered in "
                   f"{asyncio.get_running_loop().time() - t0:.1f}s", err=True)
        while report_interval > 0:
            await asyncio.sleep(report_interval)
            click.echo(f"hollow nodes: {fleet_summary(fleet)}", err=True)

    reporter = asyncio.create_task(report())
    try:
        await main
    finally:
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter


@click.command("hollow-nodes")
@click.option("--kubeconfig", type=click.Path(path_type=Path), default=None,
              help="Default: $KUBECONFIG, then ~/.kube/config.")
@click.option("--context", default=None, help="The kubeconfig context to use.")
@click.option("--count", type=click.IntRange(min=0), default=1, show_default=True, help="Nodes to simulate.")
@click.option("--name-prefix", default="hollow-", show_default=True)
@click.option("--first-index", type=click.IntRange(min=0), default=0, show_default=True,
              help="Number of the first node (several processes against one cluster).")
@click.option("--cpu", default="32", show_default=True)
@click.option("--memory", default="256Gi", show_default=True)
@click.option("--pods", type=click.IntRange(min=1), default=110, show_default=True)
@click.option("--ephemeral-storage", default="100Gi", show_default=True)
@click.option("--zones", default="zone-a,zone-b,zone-c", show_default=True,
              help="Comma-separated topology.kubernetes.io/zone values, round robin; empty for none.")
@click.option("--lease-interval", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="Seconds between renewals of each node's Lease.")
@click.option("--status-interval", type=click.FloatRange(min=0.1), default=60.0, show_default=True,
              help="Seconds between node status heartbeats.")
@click.option("--pod-start-delay", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Seconds from a pod bound here to it Running.")
@click.option("--concurrency", type=click.IntRange(min=1), default=48, show_default=True,
              help="API requests in flight at most, all nodes together.")
@click.option("--stop-heartbeats-after", type=click.FloatRange(min=0), default=None,
              help="Stop every node's heartbeats (and pod work) after this many seconds.")
@click.option("--report-interval", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="Seconds between request-count reports on stderr; 0 for none.")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def command(kubeconfig: Path | None, context: str | None, count: int, name_prefix: str, first_index: int,
            cpu: str, memory: str, pods: int, ephemeral_storage: str, zones: str, lease_interval: float,
            status_interval: float, pod_start_delay: float, concurrency: int,
            stop_heartbeats_after: float | None, report_interval: float, verbose: int) -> None:
    """Simulate COUNT nodes (Node, Lease, status, pods) against an API server, like kwok/kubemark."""
    logging.basicConfig(level=max(logging.WARNING - 10 * verbose, logging.DEBUG), stream=sys.stderr,
                        format="%(asctime)s %(levelname).1s %(name)s: %(message)s")
    config = HollowConfig(
        kubeconfig=str(kubeconfig) if kubeconfig else None, context=context, count=count,
        name_prefix=name_prefix, first_index=first_index,
        shape=NodeShape(cpu=cpu, memory=memory, pods=pods, ephemeral_storage=ephemeral_storage,
                        zones=tuple(z.strip() for z in zones.split(",") if z.strip())),
        lease_interval=lease_interval, status_interval=status_interval, pod_start_delay=pod_start_delay,
        concurrency=concurrency, stop_heartbeats_after=stop_heartbeats_after,
    )
    aiorun.run(_run_with_reports(config, report_interval))


if __name__ == "__main__":
    command()
