"""cloud-controller-manager: the cloud controllers under one leader election.

One process, one API client (the ``cloud-controller-manager`` identity), one shared informer
factory. With ``--leader-elect`` (the default) the controllers run only while this process holds
the ``cloud-controller-manager`` Lease in kube-system (Kubernetes' name); each leadership term
starts with the provider's ``initialize`` (the local provider recovers its load balancer
addresses from the Services there). Losing the lease ends the process (its supervisor starts it
again as a candidate), as kube-controller-manager does. It serves ``/healthz``, ``/livez``,
``/readyz`` and ``/metrics`` on ``--secure-port`` (10258; :mod:`kybernetes.serving`), with the
``leaderElection`` check and a ping check per started controller.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from kybernetes.cloud.controllers.base import CloudController
from kybernetes.cloud.controllers.lifecycle import CloudNodeLifecycleController
from kybernetes.cloud.controllers.node import CloudNodeController
from kybernetes.cloud.controllers.route import RouteController
from kybernetes.cloud.controllers.service import ServiceController
from kybernetes.cloud.provider import Interface
from kybernetes.cloud.registry import ProviderConfig, get_provider
from kybernetes.controllers.base import ControllerContext, gather_controllers
from kybernetes.serving import SecureServingOptions, serve_controllers

log = logging.getLogger(__name__)

USER_AGENT = "cloud-controller-manager"
LEASE_NAME = "cloud-controller-manager"
CONTROLLERS: dict[str, type[CloudController]] = {c.name.removesuffix("-controller"): c for c in (
    CloudNodeController, CloudNodeLifecycleController, ServiceController, RouteController)}
"""By ``--controllers`` name, Kubernetes' (``cloud-node``, ``cloud-node-lifecycle``, ``service``, ``route``)."""


@dataclass
class CloudControllerManagerConfig:
    kubeconfig: Path | None
    cloud_provider: str = "local"
    provider_options: dict[str, str] = field(default_factory=dict)
    controllers: list[str] = field(default_factory=lambda: list(CONTROLLERS))
    leader_elect: bool = True
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    options: dict[str, Any] = field(default_factory=dict)


class LostLeadership(Exception):
    pass


class _Clients:
    def __init__(self, client: Client) -> None:
        self._client = client

    def client(self) -> Client:
        return self._client


def select(names: list[str]) -> list[type[CloudController]]:
    """``--controllers``: ``*`` for all, names, ``-name`` to leave one out."""
    chosen: set[str] = set()
    for n in names:
        if n == "*":
            chosen |= set(CONTROLLERS)
        elif not n.startswith("-"):
            if n not in CONTROLLERS:
                raise ValueError(f"unknown controller {n!r}; known: {', '.join(CONTROLLERS)}")
            chosen.add(n)
    chosen -= {n[1:] for n in names if n.startswith("-")}
    return [CONTROLLERS[n] for n in CONTROLLERS if n in chosen]


def controller_options(options: dict[str, Any], classes: list[type[CloudController]]) -> dict[str, Any]:
    """The controllers' options: the flags', plus ``configure-cloud-routes`` (whether the route
    controller runs: only then does the cloud node controller mark new nodes ``NoRouteCreated``,
    since nothing else would ever clear it)."""
    return {**options, "configure-cloud-routes": RouteController in classes}


async def run(config: CloudControllerManagerConfig, stop: asyncio.Event | None = None,
              cloud: Interface | None = None, serving: SecureServingOptions | None = None) -> None:
    """Run until ``stop`` is set, serving the secure port if given; raise :class:`LostLeadership`
    if the lease is lost."""
    stop = stop or asyncio.Event()
    cloud = cloud or get_provider(config.cloud_provider, ProviderConfig(dict(config.provider_options)))
    classes = select(config.controllers)
    client = Client.from_kubeconfig(config.kubeconfig, user_agent=USER_AGENT)
    election = HealthzAdaptor() if config.leader_elect else None
    try:
        server = await serve_controllers(serving, client, election)
    except BaseException:
        await client.close()
        raise
    recorder = EventRecorder(client, USER_AGENT, socket.gethostname())
    lost = asyncio.Event()

    async def lead() -> None:
        factory = SharedInformerFactory(client)
        try:
            await cloud.initialize(_Clients(client))
            ctx = ControllerContext(client, factory, lambda _name: recorder, RealClock(),
                                    controller_options(config.options, classes))
            controllers = [cls(ctx, cloud) for cls in classes]
            log.info("cloud provider %s; starting controllers: %s", cloud.provider_name(),
                     ", ".join(c.name for c in controllers))
            if server is not None:
                server.add_ping_checks([c.name for c in controllers])
            await factory.start()
            await factory.wait_for_sync()
            await gather_controllers(list(controllers))
        finally:
            await factory.stop()

    async def elect() -> None:
        if not config.leader_elect:
            await lead()
            return
        elector = LeaderElector(client, lease_name=LEASE_NAME, identity=f"{socket.gethostname()}_{uuid.uuid4()}",
                                lease_duration=config.lease_duration, renew_deadline=config.renew_deadline,
                                retry_period=config.retry_period)
        assert election is not None
        election.elector = elector
        await elector.run(lead, lost.set)

    task = asyncio.create_task(elect(), name="cloud-controller-manager")
    waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(lost.wait())]
    try:
        done, _ = await asyncio.wait({task, *waiters}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()
    finally:
        for t in (task, *waiters):
            t.cancel()
        with contextlib.suppress(BaseException):
            await task
        with contextlib.suppress(Exception):
            await recorder.close()
        if server is not None:
            await server.stop()
        await client.close()
    if lost.is_set() and not stop.is_set():
        raise LostLeadership("leader election lost")
