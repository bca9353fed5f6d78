"""``kyb scheduler`` and ``kyb explain-scheduling``; ``run(config)`` for embedding.

``kyb scheduler`` connects with a kubeconfig, optionally takes a KubeSchedulerConfiguration file,
and schedules until SIGTERM/SIGINT (or, parsed by ``kyb control-plane``, until that process stops:
:mod:`kybernetes.controlplane`). It serves ``/healthz``, ``/livez``, ``/readyz`` and ``/metrics``
on ``--secure-port`` (10259; :mod:`kybernetes.serving`). With ``--leader-elect`` (the default, as kube-scheduler) only
the holder of the ``kube-system/<lease-name>`` Lease schedules; losing the lease stops the process
so that a supervisor restarts it with a clean cache, as Kubernetes does.

``kyb explain-scheduling POD -n NS`` reads nodes, pods, namespaces and PDBs through the API and
prints, per node, which plugin rejects the pod or how each plugin scores it, plus the smallest
change that would let an unschedulable pod fit (see :mod:`kybernetes.scheduler.explain`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import sys
import uuid
from typing import Any

import click

from kybernetes.api.podutil import is_pod_terminal
from kybernetes.controlplane import Component, start
from kybernetes.scheduler import config as cfg
from kybernetes.scheduler.explain import Explanation, explain_pod
from kybernetes.scheduler.scheduler import Scheduler
from kybernetes.scheduler.volumes import VolumeStore
from kybernetes.serving import (
    SCHEDULER_PORT,
    Checks,
    ComponentServer,
    SecureServingOptions,
    secure_serving_flags,
)

log = logging.getLogger(__name__)


def _health_checks(sched: Scheduler, election: Any, stopping: asyncio.Event) -> tuple[Checks, Checks]:
    """kube-scheduler's checks: ``/healthz`` and ``/livez`` ping and leaderElection; ``/readyz`` also
    shutdown and sched-handler-sync (its informers have synced)."""

    async def shutdown() -> None:
        if stopping.is_set():
            raise RuntimeError("process is shutting down")

    async def handler_sync() -> None:
        if not sched.handlers_synced:
            raise RuntimeError("waiting for handlers to sync")

    live: Checks = {election.name: election.check} if election is not None else {}
    return live, {**live, "shutdown": shutdown, "sched-handler-sync": handler_sync}


async def run(config: cfg.SchedulerConfig, serving: SecureServingOptions | None = None,
              stopping: asyncio.Event | None = None) -> None:
    """Schedule until cancelled (leader-elected if the config says so), serving the secure port if given."""
    from kybernetes.client.leaderelection import HealthzAdaptor, LeaderElector
    from kybernetes.client.rest import Client

    client = Client.from_kubeconfig(config.kubeconfig, user_agent="kube-scheduler")
    server: ComponentServer | None = None
    try:
        sched = Scheduler(client, config)
        election = HealthzAdaptor() if config.leader_elect else None
        if serving is not None:
            live, ready = _health_checks(sched, election, stopping or asyncio.Event())
            server = ComponentServer(serving, client, healthz_checks=live, readyz_checks=ready)
            await server.start()
        if not config.leader_elect:
            await sched.run()
            return

        identity = f"{socket.gethostname()}_{uuid.uuid4()}"
        lost = asyncio.Event()

        async def lead(*_: Any) -> None:
            log.info("became leader (%s), scheduling", identity)
            await sched.run()

        def stopped(*_: Any) -> None:
            log.warning("lost the scheduler lease; stopping")
            lost.set()

        elector = LeaderElector(client, lease_name=config.lease_name, namespace=config.lease_namespace,
                                identity=identity, lease_duration=config.lease_duration,
                                renew_deadline=config.renew_deadline, retry_period=config.retry_period)
        assert election is not None
        election.elector = elector
        await elector.run(lead, stopped)
    finally:
        if server is not None:
            await server.stop()
        await client.close()


async def run_until(config: cfg.SchedulerConfig, serving: SecureServingOptions | None, stop: asyncio.Event) -> None:
    """:func:`run` until ``stop`` is set (then cancelled, ``/readyz`` failing ``shutdown`` meanwhile)
    or until it ends by itself (a lost lease) or fails (raised)."""
    task = asyncio.ensure_future(run(config, serving, stop))
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (task, stopper):
            t.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopper
        with contextlib.suppress(asyncio.CancelledError):
            await task


@click.command("scheduler")
@click.option("--kubeconfig", type=click.Path(exists=True, dir_okay=False), default=None,
              help="kubeconfig to reach the API server (default: $KUBECONFIG / ~/.kube/config).")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="a KubeSchedulerConfiguration (kubescheduler.config.k8s.io/v1) YAML file.")
@click.option("--leader-elect/--no-leader-elect", default=None,
              help="only the holder of the lease schedules (default on, or as the config file says).")
@click.option("--lease-name", default=None, help="the Lease in kube-system (default kube-scheduler).")
@click.option("-v", "--verbose", count=True)
@secure_serving_flags(SCHEDULER_PORT)
def scheduler_command(kubeconfig: str | None, config_file: str | None, leader_elect: bool | None,
                      lease_name: str | None, verbose: int, serving: SecureServingOptions) -> Component:
    """Run the scheduler: bind pending pods to nodes."""
    config = cfg.load(config_file) if config_file else cfg.SchedulerConfig(leader_elect=True)
    if kubeconfig:
        config.kubeconfig = kubeconfig
    if leader_elect is not None:
        config.leader_elect = leader_elect
    if lease_name:
        config.lease_name = lease_name

    async def scheduler(stop: asyncio.Event) -> None:
        await run_until(config, serving, stop)

    return start(Component(
        "scheduler", scheduler, log_level=logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING,
        log_format="%(asctime)s %(levelname)s %(name)s: %(message)s"))


async def explain_remote(pod_name: str, namespace: str, kubeconfig: str | None,
                         config: cfg.SchedulerConfig) -> Explanation:
    from kybernetes.client.rest import Client

    client = Client.from_kubeconfig(kubeconfig, user_agent="kyb-explain-scheduling")
    try:
        pod = await client.get("v1", "pods", pod_name, namespace)
        (nodes, _), (pods, _), (nss, _) = await asyncio.gather(
            client.list_all("v1", "nodes"), client.list_all("v1", "pods"), client.list_all("v1", "namespaces"))
        try:
            pdbs, _ = await client.list_all("policy/v1", "poddisruptionbudgets")
        except Exception:
            pdbs = []
        (pvs, _), (pvcs, _), (classes, _), (csinodes, _) = await asyncio.gather(
            client.list_all("v1", "persistentvolumes"), client.list_all("v1", "persistentvolumeclaims"),
            client.list_all("storage.k8s.io/v1", "storageclasses"), client.list_all("storage.k8s.io/v1", "csinodes"))
    finally:
        await client.close()
    pods = [p for p in pods if not is_pod_terminal(p)]
    ns_labels = {n["metadata"]["name"]: (n["metadata"].get("labels") or {}) for n in nss}
    volumes = VolumeStore.from_objects(pvs, pvcs, classes, csinodes)
    return explain_pod(pod, nodes, pods, config, namespaces=ns_labels, pdbs=pdbs, volumes=volumes)


@click.command("explain-scheduling")
@click.argument("pod")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("--kubeconfig", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="the scheduler's KubeSchedulerConfiguration, to explain with its profiles.")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table")
def explain_command(pod: str, namespace: str, kubeconfig: str | None, config_file: str | None,
                    output: str) -> None:
    """Explain where POD can be scheduled, and why not elsewhere."""
    config = cfg.load(config_file) if config_file else cfg.SchedulerConfig()
    try:
        exp = asyncio.run(explain_remote(pod, namespace, kubeconfig, config))
    except Exception as e:  # an API error: print it like kubectl does
        click.echo(f"Error: {e}", err=True)
        sys.exit(1)
    if output == "json":
        click.echo(json.dumps(exp.to_dict(), indent=2))
    else:
        click.echo(exp.render())
