"""A fleet of hollow nodes: registered Nodes, renewed Leases and node status, no machines.

Like kubemark's hollow kubelet or kwok, one process plays the kubelet of many nodes against a real
API server. What it keeps per node is a few hundred bytes (:class:`HollowNode`); what it does is
three kinds of write, all run from one :class:`~kybernetes.hollow.schedule.Timeline`:

``register``  create the Node with its status (AlreadyExists: adopt it), then its Lease; also run
              when the node is deleted while this process holds it (a kubelet re-registers);
``lease``     renew ``kube-node-lease/NAME`` every ``lease_interval`` (merge PATCH of renewTime: one
              request, no read, no conflict; NotFound re-creates it);
``status``    PATCH ``nodes/NAME/status`` with fresh condition heartbeats every ``status_interval``,
              and soon after someone else changed the conditions (the node lifecycle controller
              marking the node Unknown) while this process is healthy.

Node ``k`` of ``N`` renews at phase ``interval * k / N``, so ``N / interval`` leases per second go
out evenly instead of ``N`` at once; all writes share one semaphore of ``concurrency`` slots.

One informer watches this fleet's Nodes (by the ``node.kubernetes.io/instance-type=hollow`` label),
one watches all pods; :mod:`kybernetes.hollow.pods` plays the kubelet for the pods bound here.

:meth:`HollowNodes.pause` makes nodes look dead (no lease, no status, no pod work) — for tests of
the node lifecycle controller — and :meth:`HollowNodes.resume` brings them back. Stopping leaves
the Nodes and Leases in place, as a kubelet that is shut down does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, cast

from kybernetes import errors
from kybernetes.aiorun import wait_for
from kybernetes.api.timeutil import format_micro, format_rfc3339
from kybernetes.client.informer import Informer, SharedInformerFactory
from kybernetes.client.rest import Client
from kybernetes.hollow import objects
from kybernetes.hollow.objects import LEASE_NAMESPACE, NodeShape, Obj, PodAddresses
from kybernetes.hollow.schedule import Timeline
from kybernetes.join import NODES_GROUP, node_user

log = logging.getLogger(__name__)

LEASES = ("coordination.k8s.io/v1", "leases")
NODES = ("v1", "nodes")


@dataclass
class HollowConfig:
    """Everything ``kyb hollow-nodes`` takes from its command line."""

    kubeconfig: str | None = None
    context: str | None = None
    count: int = 1
    name_prefix: str = "hollow-"
    first_index: int = 0
    """Node names and data-only addresses count from here (several processes, one cluster)."""
    shape: NodeShape = field(default_factory=NodeShape)
    lease_interval: float = 10.0
    status_interval: float = 60.0
    pod_start_delay: float = 0.0
    """Seconds between a pod being bound here and it running."""
    concurrency: int = 48
    """API requests in flight at most, for all nodes together."""
    pod_workers: int = 16
    stop_heartbeats_after: float | None = None
    """Pause every node this many seconds after start (node lifecycle tests)."""

    def node_names(self) -> list[str]:
        return [f"{self.name_prefix}{self.first_index + i}" for i in range(self.count)]


class HollowNode:
    """What the fleet remembers about one node."""

    __slots__ = (
        "addresses",
        "cidr",
        "client",
        "failures",
        "index",
        "ip",
        "lease_ok",
        "lease_owner",
        "name",
        "paused",
        "phase",
        "registered",
        "transition",
        "uid",
    )

    def __init__(self, name: str, index: int, phase: float, client: Client) -> None:
        self.name = name
        self.client = client
        """The fleet's client impersonating this node (see :class:`HollowNodes`)."""
        self.index = index
        self.phase = phase  # 0..1: where in each interval this node's periodic writes fall
        self.uid = ""
        self.registered = False
        self.lease_ok = False  # the Lease exists as far as we know
        self.lease_owner = ""  # the node uid the Lease's ownerReference names
        self.failures = 0
        self.transition = format_rfc3339()
        self.paused = False
        self.ip = objects.node_ip(index)
        self.cidr = objects.default_pod_cidr(index)
        self.addresses = PodAddresses(self.cidr)


Key = tuple[str, str]


def node_client(client: Client, node_name: str) -> Client:
    """``client`` acting as the node: ``system:node:<name>`` in ``system:nodes``, the identity the
    Node authorizer and NodeRestriction expect of a kubelet. Impersonation rather than a client
    certificate per node: one connection pool serves thousands of hollow nodes, and the fleet's
    own identity (which must be allowed to impersonate nodes) keeps the informers."""
    return client.impersonating(node_user(node_name), (NODES_GROUP,))


class HollowNodes:
    """The fleet. ``await start()``, then it runs until ``await stop()``.

    Every write about a node (registration, its Lease, its status, its pods' status and final
    deletion) is made as that node (:func:`node_client`); the node and pod informers run under
    the fleet's own identity.
    """

    def __init__(self, client: Client, config: HollowConfig) -> None:
        self.client = client
        self.config = config
        self.stats: Counter[str] = Counter()
        """Requests by kind (``lease``, ``status``, ``register``, ``pod-status``, ...) and errors."""
        self.slots = asyncio.Semaphore(max(1, config.concurrency))
        self.timeline = Timeline(self._job, self.slots)
        names = config.node_names()
        self.nodes: dict[str, HollowNode] = {
            name: HollowNode(name, config.first_index + i, i / max(1, len(names)), node_client(client, name))
            for i, name in enumerate(names)
        }
        self.factory = SharedInformerFactory(client)
        self.node_informer: Informer = self.factory.informer(
            *NODES, label_selector=f"{objects.INSTANCE_TYPE_LABEL}={objects.INSTANCE_TYPE}")
        self.pod_informer: Informer = self.factory.informer("v1", "pods")
        self._registered = asyncio.Event()
        self._unregistered = len(self.nodes)
        self._tasks: list[asyncio.Task[None]] = []
        self._epoch = 0.0  # loop time the phases count from
        self._stopping = False
        from kybernetes.hollow.pods import HollowKubelet  # pods imports this module's types
        self.kubelet = HollowKubelet(self)

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the informers, wait for their lists, and begin registering every node."""
        self.node_informer.add_handler(on_add=self._on_node, on_update=self._on_node_update,
                                       on_delete=self._on_node_delete)
        await self.factory.start()
        await self.factory.wait_for_sync()
        loop = asyncio.get_running_loop()
        self._epoch = loop.time()
        self._tasks.append(loop.create_task(self.timeline.run(), name="hollow-timeline"))
        self._tasks.append(loop.create_task(self.kubelet.run(), name="hollow-kubelet"))
        for node in self.nodes.values():
            self.timeline.schedule(("register", node.name), self._epoch)
        if not self.nodes:
            self._registered.set()

    async def wait_registered(self, timeout: float | None = None) -> None:
        """Until every node (and its lease) was registered once."""
        await wait_for(self._registered.wait(), timeout)

    async def stop(self) -> None:
        """Stop writing; the Nodes and Leases stay, as a stopped kubelet leaves them."""
        self._stopping = True
        await self.kubelet.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.factory.stop()

    def pause(self, names: Iterable[str] | None = None) -> None:
        """Make nodes look dead: no lease renewals, no status, no pod work, no re-registration."""
        for node in self._select(names):
            node.paused = True
            for kind in ("lease", "status"):
                self.timeline.cancel((kind, node.name))

    def resume(self, names: Iterable[str] | None = None) -> None:
        """Bring paused nodes back: renew and post status now, then catch up on their pods."""
        now = asyncio.get_running_loop().time()
        for node in self._select(names):
            if not node.paused:
                continue
            node.paused = False
            if self.node_informer.store.get(node.name) is None:
                self.timeline.schedule(("register", node.name), now)
                continue
            self.timeline.schedule(("lease", node.name), now)
            self.timeline.schedule(("status", node.name), now)
            self.kubelet.enqueue_node(node.name)

    def _select(self, names: Iterable[str] | None) -> list[HollowNode]:
        if names is None:
            return list(self.nodes.values())
        return [self.nodes[n] for n in names if n in self.nodes]

    def is_active(self, name: str) -> bool:
        node = self.nodes.get(name)
        return node is not None and not node.paused and not self._stopping

    # --- informer handlers ----------------------------------------------------------------------

    def _on_node(self, obj: Obj) -> None:
        node = self.nodes.get(obj["metadata"]["name"])
        if node is None:
            return
        node.uid = obj["metadata"].get("uid", "")
        cidr = (obj.get("spec") or {}).get("podCIDR")
        if cidr and cidr != node.cidr:
            # Node IPAM assigned a range: new pods get addresses from it (running ones keep theirs).
            node.cidr, node.addresses = cidr, PodAddresses(cidr)
        if node.registered and not node.paused and not self._stopping and not _ready(obj):
            # Someone (the node lifecycle controller) says we are not Ready; a live kubelet answers.
            self.timeline.schedule_soon(("status", node.name), asyncio.get_running_loop().time() + 0.2)

    def _on_node_update(self, old: Obj, new: Obj) -> None:
        self._on_node(new)

    def _on_node_delete(self, obj: Obj) -> None:
        node = self.nodes.get(obj["metadata"]["name"])
        if node is None or self._stopping:
            return
        node.uid = ""
        if not node.paused:
            # A kubelet whose Node was deleted registers it again.
            self.timeline.schedule(("register", node.name), asyncio.get_running_loop().time() + 0.2)

    # --- jobs -----------------------------------------------------------------------------------

    async def _job(self, key: Hashable, due: float) -> None:
        kind, name = cast(Key, key)
        node = self.nodes[name]
        if node.paused:
            return
        if kind == "register":
            await self._register(node)
        elif kind == "lease":
            await self._renew_lease(node, due)
        elif kind == "status":
            await self._post_status(node, due)

    def _next(self, node: HollowNode, interval: float, after: float) -> float:
        """The first of ``epoch + phase * interval + m * interval`` that is later than ``after``."""
        offset = self._epoch + node.phase * interval
        if offset > after:
            return offset
        return offset + (int((after - offset) / interval) + 1) * interval

    def _retry(self, node: HollowNode, key: Key, interval: float) -> None:
        node.failures += 1
        delay = min(0.2 * 2 ** min(node.failures, 10), interval)
        self.timeline.schedule_soon(key, asyncio.get_running_loop().time() + delay)

    async def _register(self, node: HollowNode) -> None:
        now = asyncio.get_running_loop().time()
        existing = self.node_informer.store.get(node.name)
        try:
            if existing is None:
                body = objects.node_object(node.name, node.index, self.config.shape)
                self.stats["register"] += 1
                try:
                    created = await node.client.create(*NODES, body)
                    node.uid = created["metadata"]["uid"]
                    node.transition = body["status"]["conditions"][0]["lastTransitionTime"]
                except errors.AlreadyExists:
                    self.stats["register"] += 1
                    existing = await node.client.get(*NODES, node.name)
            if existing is not None:
                # Adopt a node registered before (an earlier run): post our status right away.
                node.uid = existing["metadata"].get("uid", "")
                self.timeline.schedule_soon(("status", node.name), now)
            await self._ensure_lease(node)
        except (errors.StatusError, OSError) as exc:
            self.stats["errors"] += 1
            log.warning("registering hollow node %s: %s", node.name, exc)
            self._retry(node, ("register", node.name), 10.0)
            return
        node.failures = 0
        if not node.registered:
            node.registered = True
            self._unregistered -= 1
            if self._unregistered == 0:
                self._registered.set()
            self.kubelet.enqueue_node(node.name)
        self.timeline.schedule(("lease", node.name), self._next(node, self.config.lease_interval, now))
        if self.timeline.due(("status", node.name)) is None:
            self.timeline.schedule(("status", node.name), self._next(node, self.config.status_interval, now))

    async def _ensure_lease(self, node: HollowNode) -> None:
        """Create the Lease, or renew it when it is already there (a restart)."""
        self.stats["lease"] += 1
        try:
            await node.client.create(*LEASES, objects.lease_object(node.name, node.uid), LEASE_NAMESPACE)
            node.lease_owner = node.uid
        except errors.AlreadyExists:
            node.lease_ok = True
            await self._patch_lease(node)
        node.lease_ok = True

    async def _patch_lease(self, node: HollowNode) -> None:
        spec: Obj = {"holderIdentity": node.name, "leaseDurationSeconds": objects.LEASE_DURATION_SECONDS,
                     "renewTime": format_micro()}
        patch: Obj = {"spec": spec}
        if node.uid and node.lease_owner != node.uid:
            # The Node was re-created (new uid): point the Lease at it, or GC would collect it.
            patch["metadata"] = {"ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": node.name, "uid": node.uid}]}
        self.stats["lease"] += 1
        await node.client.patch(*LEASES, node.name, patch, LEASE_NAMESPACE)
        node.lease_owner = node.uid or node.lease_owner

    async def _renew_lease(self, node: HollowNode, due: float) -> None:
        key: Key = ("lease", node.name)
        try:
            if node.lease_ok:
                try:
                    await self._patch_lease(node)
                except errors.NotFound:
                    node.lease_ok = False
            if not node.lease_ok:
                await self._ensure_lease(node)
        except (errors.StatusError, OSError) as exc:
            self.stats["errors"] += 1
            log.info("renewing lease of %s: %s", node.name, exc)
            self._retry(node, key, self.config.lease_interval)
            return
        node.failures = 0
        interval = self.config.lease_interval
        now = asyncio.get_running_loop().time()
        # Keep the phase; when far behind (a slow server), skip to the next slot instead of bursting.
        nxt = due + interval if due + interval > now else self._next(node, interval, now)
        self.timeline.schedule(key, nxt)

    async def _post_status(self, node: HollowNode, due: float) -> None:
        key: Key = ("status", node.name)
        current = self.node_informer.store.get(node.name)
        if current is not None and not _ready(current):
            node.transition = format_rfc3339()  # Ready goes back to True: a transition
        ts = format_rfc3339()
        patch = {"status": {"conditions": objects.node_conditions(True, node.transition, ts)}}
        self.stats["status"] += 1
        try:
            await node.client.patch(*NODES, node.name, patch, subresource="status")
        except errors.NotFound:
            self.timeline.schedule_soon(("register", node.name), asyncio.get_running_loop().time())
            return
        except (errors.StatusError, OSError) as exc:
            self.stats["errors"] += 1
            log.info("posting status of %s: %s", node.name, exc)
            self._retry(node, key, self.config.status_interval)
            return
        interval = self.config.status_interval
        now = asyncio.get_running_loop().time()
        nxt = due + interval if due + interval > now else self._next(node, interval, now)
        self.timeline.schedule(key, nxt)


def _ready(node: Obj) -> bool:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def fleet_summary(fleet: HollowNodes) -> dict[str, Any]:
    """Counters and sizes for logs and benchmarks."""
    return {"nodes": len(fleet.nodes), "scheduled": len(fleet.timeline), **fleet.stats,
            "pods": fleet.kubelet.pod_count(), "time": time.time()}
