"""kube-controller-manager: runs every controller of the process under one leader election.

One process holds one API client and one :class:`SharedInformerFactory`, so all controllers share
their watches and caches. With ``--leader-elect`` (the default) the controllers only run while
this process holds the ``kube-controller-manager`` Lease in kube-system; when leadership is lost
the process exits (as Kubernetes' does), and its supervisor starts it again as a candidate.

It serves ``/healthz``, ``/livez``, ``/readyz`` and ``/metrics`` on ``--secure-port`` (10257;
:mod:`kybernetes.serving`) with kube-controller-manager's checks: ``leaderElection``, and one ping
check per controller, named as the controller, added as it starts.

Controllers are found by module: each module in :data:`CONTROLLER_MODULES` exports
``CONTROLLERS``, a list of :class:`~kybernetes.controllers.base.Controller` classes; their
``name`` is what ``--controllers`` selects (``*`` for all, ``-name`` to leave one out).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kybernetes.client.events import EventRecorder
from kybernetes.client.informer import SharedInformerFactory
from kybernetes.client.leaderelection import HealthzAdaptor, LeaderElector
from kybernetes.client.rest import Client
from kybernetes.client.workqueue import RealClock
from kybernetes.controllers.base import Controller, ControllerContext, gather_controllers
from kybernetes.controllers.credentials import ServiceAccountClients
from kybernetes.serving import SecureServingOptions, serve_controllers

log = logging.getLogger(__name__)

CONTROLLER_MODULES = (
    "replicaset", "deployment", "statefulset", "daemonset",
    "job", "cronjob", "ttlafterfinished", "podgc",
    "endpoints", "endpointslice", "serviceaccounts", "serviceaccounttoken", "namespace", "garbagecollector",
    "nodelifecycle", "nodeipam", "resourcequota", "disruption",
    "csrsigning", "csrapproving", "csrcleaner", "volumeprotection", "clusterroleaggregation", "tokencleaner", "vapstatus",
    "podautoscaler",
    "volume.binder", "volume.ephemeral",
)


def all_controllers() -> dict[str, type[Controller]]:
    out: dict[str, type[Controller]] = {}
    for mod in CONTROLLER_MODULES:
        module = importlib.import_module(f"kybernetes.controllers.{mod}")
        for cls in getattr(module, "CONTROLLERS", ()):
            out[cls.name] = cls
    return out


def select(available: dict[str, type[Controller]], spec: list[str]) -> list[type[Controller]]:
    """Kubernetes' ``--controllers`` syntax: ``*`` (every controller not disabled by default),
    names, and ``-name`` exclusions."""
    chosen: set[str] = set()
    for item in spec:
        if item == "*":
            chosen |= {n for n, cls in available.items() if not cls.disabled_by_default}
        elif item.startswith("-"):
            continue
        elif item in available:
            chosen.add(item)
        else:
            raise ValueError(f"unknown controller {item!r}; known: {', '.join(sorted(available))}")
    for item in spec:
        if item.startswith("-"):
            chosen.discard(item[1:])
    return [available[n] for n in sorted(chosen)]


@dataclass
class ControllerManagerConfig:
    kubeconfig: Path | None
    controllers: list[str] = field(default_factory=lambda: ["*"])
    leader_elect: bool = True
    lease_name: str = "kube-controller-manager"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    identity: str = ""
    use_service_account_credentials: bool = False
    options: dict[str, Any] = field(default_factory=dict)


class LostLeadership(Exception):
    pass


async def _account_clients(accounts: ServiceAccountClients | None,
                           classes: list[type[Controller]]) -> dict[str, Client]:
    """Each selected controller's ServiceAccount client (none without per-controller credentials);
    waits while the API server refuses them (ServiceAccountClients.wait_for_clients)."""
    if accounts is None:
        return {}
    clients = await accounts.wait_for_clients(dict.fromkeys(cls.service_account for cls in classes
                                                            if cls.service_account))
    accounts.start()
    return clients


async def run(config: ControllerManagerConfig, stop: asyncio.Event | None = None,
              serving: SecureServingOptions | None = None) -> None:
    """Run until ``stop`` is set (or forever), serving the secure port if given; raise
    :class:`LostLeadership` if the lease is lost."""
    stop = stop or asyncio.Event()
    client = Client.from_kubeconfig(config.kubeconfig, user_agent="kube-controller-manager")
    election = HealthzAdaptor() if config.leader_elect else None
    try:
        server = await serve_controllers(serving, client, election)
    except BaseException:
        await client.close()
        raise
    recorders: dict[str, EventRecorder] = {}

    def recorder(component: str) -> EventRecorder:
        if component not in recorders:
            recorders[component] = EventRecorder(client, component, socket.gethostname())
        return recorders[component]

    classes = select(all_controllers(), config.controllers)
    lost = asyncio.Event()

    async def lead() -> None:
        factory = SharedInformerFactory(client)
        accounts = ServiceAccountClients(client) if config.use_service_account_credentials else None
        try:
            clients = await _account_clients(accounts, classes)
            ctx = ControllerContext(client, factory, recorder, RealClock(), dict(config.options), clients)
            controllers = [cls(ctx) for cls in classes]
            log.info("starting controllers: %s", ", ".join(c.name for c in controllers))
            if server is not None:
                server.add_ping_checks([c.name for c in controllers])
            await factory.start()
            await factory.wait_for_sync()
            await gather_controllers(controllers)
        finally:
            await factory.stop()
            if accounts is not None:
                await accounts.close()

    async def elect() -> None:
        if not config.leader_elect:
            await lead()
            return
        identity = config.identity or f"{socket.gethostname()}_{uuid.uuid4()}"
        elector = LeaderElector(client, lease_name=config.lease_name, identity=identity,
                                lease_duration=config.lease_duration, renew_deadline=config.renew_deadline,
                                retry_period=config.retry_period)
        assert election is not None
        election.elector = elector
        await elector.run(lead, lost.set)

    task = asyncio.create_task(elect(), name="controller-manager")
    stopper = asyncio.create_task(stop.wait())
    loser = asyncio.create_task(lost.wait())
    try:
        done, _ = await asyncio.wait({task, stopper, loser}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()
    finally:
        for t in (task, stopper, loser):
            t.cancel()
        with contextlib.suppress(BaseException):
            await task
        for r in recorders.values():
            with contextlib.suppress(Exception):
                await r.close()
        if server is not None:
            await server.stop()
        await client.close()
    if lost.is_set() and not stop.is_set():
        raise LostLeadership("leader election lost")
