"""The shape every controller has: informers feed a work queue of keys; workers run ``sync(key)``.

Kubernetes' sync-handler pattern (``pkg/controller/replicaset``): event handlers only enqueue
``namespace/name`` keys; ``sync`` reads the informer caches, compares desired with actual state,
acts through the API, always writes status, and is safe to run again at any time. A key that
fails is retried with per-key exponential backoff; NotFound in the cache means "deleted".

A controller declares its informers in ``__init__`` (through ``self.informer``, which shares them
with every other controller of the process) and its handlers with ``add_handler``. The manager
starts the shared informers, waits for them to sync, then runs each controller's workers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from kybernetes.api.obj import Obj
from kybernetes.client.events import EventRecorder
from kybernetes.client.informer import Informer, SharedInformerFactory, key_of
from kybernetes.client.rest import Client
from kybernetes.client.workqueue import Clock, RealClock, WorkQueue, run_workers

log = logging.getLogger(__name__)


@dataclass
class ControllerContext:
    client: Client
    informers: SharedInformerFactory
    recorder: Callable[[str], EventRecorder]
    """An event recorder for a component name (e.g. ``replicaset-controller``)."""
    clock: Clock = field(default_factory=RealClock)
    options: dict[str, Any] = field(default_factory=dict)
    """Tunables by flag name, e.g. ``node-monitor-grace-period`` (seconds)."""
    clients: dict[str, Client] = field(default_factory=dict)
    """With ``--use-service-account-credentials``: each ServiceAccount's client, by account name;
    a controller whose account has none here writes with ``client`` (the manager's identity)."""

    def option(self, name: str, default: Any) -> Any:
        return self.options.get(name, default)


class Controller:
    """Base class: subclasses set ``name``, register informers/handlers, and implement ``sync``."""

    name: ClassVar[str] = ""
    service_account: ClassVar[str] = ""
    """The kube-system ServiceAccount this controller writes as with per-controller credentials:
    Kubernetes' name for it (``system:controller:<service_account>`` is its bootstrap role)."""
    workers: ClassVar[int] = 2
    disabled_by_default: ClassVar[bool] = False
    """Not selected by ``*`` in ``--controllers`` (Kubernetes' ``ControllersDisabledByDefault``),
    only by name."""

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        # Writes go out under the controller's own account; reads come from the shared informers,
        # which stay on the controller manager's identity (as in Kubernetes).
        self.client = ctx.clients.get(self.service_account, ctx.client)
        self.queue = WorkQueue(self.name, clock=ctx.clock)
        self.recorder = ctx.recorder(self.name)

    def informer(self, api_version: str, plural: str, namespace: str = "", **kw: str) -> Informer:
        return self.ctx.informers.informer(api_version, plural, namespace, **kw)

    def enqueue(self, obj: Obj) -> None:
        self.queue.add(key_of(obj))

    def enqueue_after(self, obj: Obj, delay: float) -> None:
        self.queue.add_after(key_of(obj), delay)

    async def sync(self, key: str) -> None:
        raise NotImplementedError

    async def run(self) -> None:
        """Run the workers until the queue is shut down."""
        await run_workers(self.queue, self.sync, self.workers)

    async def stop(self) -> None:
        self.queue.shutdown()


def split_key(key: str) -> tuple[str, str]:
    """``namespace/name`` -> (namespace, name); ``name`` -> ("", name)."""
    ns, _, name = key.rpartition("/")
    return ns, name


async def gather_controllers(controllers: list[Controller]) -> None:
    """Run every controller until cancelled; stop them all on the way out."""
    tasks = [asyncio.create_task(c.run(), name=f"controller:{c.name}") for c in controllers]
    try:
        await asyncio.gather(*tasks)
    finally:
        for c in controllers:
            await c.stop()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
