"""The hollow kubelet's pod half: pods bound to hollow nodes run, finish and go, without containers.

One informer watches every pod in the cluster (a watch per node, by ``spec.nodeName``, would be
thousands of watches); its handlers keep only pods whose ``spec.nodeName`` is a node of this fleet
and put their ``namespace/name`` keys on a work queue. ``sync(key)`` is the kubelet's pod worker,
reduced to a state machine over what the API says:

=========================================  ===================================================
the pod                                    the hollow kubelet
=========================================  ===================================================
has ``metadata.deletionTimestamp``         DELETE with ``gracePeriodSeconds=0`` and a ``uid``
                                           precondition (the containers "stopped" at once)
Succeeded / Failed                         nothing (its address goes back to the node's range)
bound, not running yet                     after ``pod_start_delay``: status Running, Ready
                                           (readiness gates permitting), a podIP of the node,
                                           init containers Completed, containers running
running, with ``kybernetes.io/hollow-      at ``startedAt + exit-after``: Succeeded (exit 0) or
exit-after`` and restartPolicy Never or    Failed (``kybernetes.io/hollow-exit-code``) — so Jobs
OnFailure                                  can be tested
=========================================  ===================================================

Status goes out as a strategic merge PATCH of ``pods/NAME/status``: conditions merge by ``type``,
so conditions other components own (readiness gates, DisruptionTarget) survive. Writes take a slot
of the fleet's semaphore, like the node heartbeats. A paused node's pods are left alone (a dead
kubelet does nothing); :meth:`HollowKubelet.enqueue_node` catches up when it resumes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from kybernetes import errors
from kybernetes.api.timeutil import parse_epoch
from kybernetes.client.informer import key_of
from kybernetes.client.rest import Client
from kybernetes.client.workqueue import WorkQueue, run_workers
from kybernetes.hollow import objects
from kybernetes.hollow.objects import Obj

if TYPE_CHECKING:
    from kybernetes.hollow.nodes import HollowNodes

log = logging.getLogger(__name__)

TERMINAL = ("Succeeded", "Failed")


class HollowKubelet:
    def __init__(self, fleet: HollowNodes) -> None:
        self.fleet = fleet
        self.client = fleet.client
        self.informer = fleet.pod_informer
        self.queue = WorkQueue("hollow-kubelet")
        self._first_seen: dict[str, float] = {}  # uid -> loop time the pod was first seen bound here
        self._started: dict[str, float] = {}  # uid -> loop time its containers "started"
        self._ips: dict[str, tuple[str, str]] = {}  # uid -> (node, pod IP) while its sandbox "exists"
        self._done: set[str] = set()  # uids this process finished (Succeeded/Failed)
        self.informer.add_handler(on_add=self._on_pod, on_update=self._on_pod_update, on_delete=self._on_pod_delete)

    async def run(self) -> None:
        await run_workers(self.queue, self.sync, max(1, self.fleet.config.pod_workers))

    async def stop(self) -> None:
        self.queue.shutdown()

    def pod_count(self) -> int:
        return len(self._ips)

    def enqueue_node(self, node: str) -> None:
        for pod in self.informer.store.by_index("nodeName", node):
            self.queue.add(key_of(pod))

    # --- informer handlers ----------------------------------------------------------------------

    def _on_pod(self, pod: Obj) -> None:
        node = (pod.get("spec") or {}).get("nodeName")
        if node not in self.fleet.nodes:
            return
        status = pod.get("status") or {}
        uid = pod["metadata"].get("uid", "")
        ip = status.get("podIP")
        # A pod running since before this process started: keep its address taken.
        if (ip and uid not in self._ips and status.get("phase") not in TERMINAL and status.get("hostIP") != ip
                and self.fleet.nodes[node].addresses.reserve(ip)):
            self._ips[uid] = (node, ip)
        self.queue.add(key_of(pod))

    def _on_pod_update(self, old: Obj, new: Obj) -> None:
        self._on_pod(new)

    def _on_pod_delete(self, pod: Obj) -> None:
        meta = pod.get("metadata") or {}
        uid = meta.get("uid", "")
        self._release(uid)
        self._first_seen.pop(uid, None)
        self._started.pop(uid, None)
        self._done.discard(uid)

    def _release(self, uid: str) -> None:
        entry = self._ips.pop(uid, None)
        if entry is not None:
            node = self.fleet.nodes.get(entry[0])
            if node is not None:
                node.addresses.release(entry[1])

    # --- the pod worker -------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        pod = self.informer.store.get(key)
        if pod is None:
            return
        node_name = (pod.get("spec") or {}).get("nodeName") or ""
        node = self.fleet.nodes.get(node_name)
        if node is None or not self.fleet.is_active(node_name):
            return
        meta = pod["metadata"]
        uid = meta.get("uid", "")
        if meta.get("deletionTimestamp"):
            await self._finish_deletion(pod)
            return
        phase = (pod.get("status") or {}).get("phase")
        if phase in TERMINAL:
            self._release(uid)
            return
        if uid in self._done:
            return  # our terminal status is written; the informer has not caught up yet
        now = asyncio.get_running_loop().time()
        if not _running(pod) and uid not in self._started:
            first = self._first_seen.setdefault(uid, now)
            wait = first + self.fleet.config.pod_start_delay - now
            if wait > 0:
                self.queue.add_after(key, wait)
                return
            await self._start(pod, key)
            return
        plan = objects.exit_plan(pod)
        if plan is None:
            return
        started = self._started.get(uid)
        if started is None:
            # Started by an earlier run of this process: go by the recorded wall-clock start.
            wall = parse_epoch(_started_at(pod))
            started = now - (time.time() - wall) if wall is not None else now
            self._started[uid] = started
        remaining = started + plan[0] - now
        if remaining > 0:
            self.queue.add_after(key, remaining)
            return
        status = objects.terminated_status(pod, plan[1])
        await self._patch_status(pod, status)
        self._done.add(uid)
        self._started.pop(uid, None)
        self._release(uid)

    async def _start(self, pod: Obj, key: str) -> None:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        uid = meta.get("uid", "")
        node = self.fleet.nodes[spec["nodeName"]]
        if spec.get("hostNetwork"):
            ip = node.ip
        elif uid in self._ips:
            ip = self._ips[uid][1]
        else:
            allocated = node.addresses.allocate()
            if allocated is None:
                # The node's range is full: the sandbox cannot be made; a kubelet keeps retrying.
                log.warning("hollow node %s has no pod address left for %s", node.name, key)
                self.queue.add_after(key, 5.0)
                return
            ip = allocated
            self._ips[uid] = (node.name, ip)
        await self._patch_status(pod, objects.running_status(pod, node.ip, ip))
        self._started[uid] = asyncio.get_running_loop().time()
        self._first_seen.pop(uid, None)
        plan = objects.exit_plan(pod)
        if plan is not None:
            self.queue.add_after(key, plan[0])

    def _client_of(self, pod: Obj) -> Client:
        """The client of the node the pod is bound to (the kubelet that owns it writes as that node)."""
        node = self.fleet.nodes.get((pod.get("spec") or {}).get("nodeName", ""))
        return node.client if node is not None else self.client

    async def _patch_status(self, pod: Obj, status: Obj) -> None:
        meta = pod["metadata"]
        # The uid in the patch makes it fail (409) rather than touch a new pod of the same name.
        body = {"metadata": {"uid": meta.get("uid")}, "status": status}
        self.fleet.stats["pod-status"] += 1
        async with self.fleet.slots:
            try:
                await self._client_of(pod).patch("v1", "pods", meta["name"], body, meta.get("namespace", ""),
                                                 patch_type="strategic", subresource="status")
            except (errors.NotFound, errors.Conflict):
                pass  # deleted or replaced meanwhile: its events bring the news

    async def _finish_deletion(self, pod: Obj) -> None:
        meta = pod["metadata"]
        uid = meta.get("uid", "")
        self.fleet.stats["pod-delete"] += 1
        async with self.fleet.slots:
            try:
                await self._client_of(pod).delete("v1", "pods", meta["name"], meta.get("namespace", ""),
                                                  grace_period_seconds=0, preconditions={"uid": uid})
            except (errors.NotFound, errors.Conflict):
                pass  # gone already, or a new pod now has the name
        self._release(uid)


def _running(pod: Obj) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Running" and bool(status.get("containerStatuses"))


def _started_at(pod: Obj) -> str:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        started = ((cs.get("state") or {}).get("running") or {}).get("startedAt")
        if started:
            return str(started)
    return ""
