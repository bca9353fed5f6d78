"""Pod garbage collection (``pkg/controller/podgc``): a periodic sweep, not an event-driven sync.

Every ``podgc-period`` seconds (default 20, Kubernetes' ``gcCheckPeriod``) one key runs three
passes over the pod and node informers:

1. **Terminated pods.** When more than ``terminated-pod-gc-threshold`` pods (default 12500; 0 or
   less disables the pass) are Succeeded or Failed, the excess is deleted, oldest first by
   creation time.
2. **Orphaned pods.** A pod bound to a node the informer does not know is suspect. The node is
   checked again after a quarantine (``podgc-quarantine`` seconds, default 40) — directly against
   the API server, so informer lag cannot cost a pod — and if it is still missing each pod is
   first marked Failed with the ``DisruptionTarget`` condition (reason ``DeletionByPodGC``) so
   its owner (a Job's pod failure policy, for one) can see why, then deleted with grace 0.
3. **Unscheduled terminating pods.** A pod with a deletionTimestamp and no node will never see
   a kubelet confirm its deletion: it is marked Failed (if it was not finished) and deleted with
   grace 0.

Quarantine and periods run on ``ctx.clock``.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from kybernetes import errors
from kybernetes.api.podutil import is_pod_terminal
from kybernetes.api.timeutil import format_rfc3339, parse_rfc3339
from kybernetes.controllers.base import Controller, ControllerContext
from kybernetes.controllers.job_util import Obj, now_dt
from kybernetes.controllers.podutil import meta, spec_of

log = logging.getLogger(__name__)

GC_KEY = "podgc"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class PodGCController(Controller):
    name = "pod-garbage-collector"
    service_account = "pod-garbage-collector"
    workers = 1  # one sweep at a time; the passes are not meant to race each other

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.pods = self.informer("v1", "pods")
        self.nodes = self.informer("v1", "nodes")
        self.period = float(ctx.option("podgc-period", 20.0))
        self.quarantine = float(ctx.option("podgc-quarantine", 40.0))
        self.threshold = int(ctx.option("terminated-pod-gc-threshold", 12500))
        self._suspects: dict[str, float] = {}  # node name -> clock time first seen missing

    async def run(self) -> None:
        self.queue.add(GC_KEY)
        await super().run()

    async def sync(self, key: str) -> None:
        try:
            await self.gc_terminated()
            await self.gc_orphaned()
            await self.gc_unscheduled_terminating()
        finally:
            self.queue.add_after(GC_KEY, self.period)

    # --- passes --------------------------------------------------------------------------------

    async def gc_terminated(self) -> None:
        if self.threshold <= 0:
            return
        terminated = [p for p in self.pods.store.list() if is_pod_terminal(p) and not meta(p).get("deletionTimestamp")]
        excess = len(terminated) - self.threshold
        if excess <= 0:
            return
        terminated.sort(key=lambda p: (parse_rfc3339(meta(p).get("creationTimestamp")) or _EPOCH, meta(p).get("name", "")))
        log.info("garbage collecting %d terminated pods", excess)
        await asyncio.gather(*(self._delete(p) for p in terminated[:excess]))

    async def gc_orphaned(self) -> None:
        known = {meta(n).get("name") for n in self.nodes.store.list()}
        on_nodes: dict[str, list[Obj]] = {}
        for p in self.pods.store.list():
            node = spec_of(p).get("nodeName")
            if node and node not in known:
                on_nodes.setdefault(str(node), []).append(p)
        now = self.ctx.clock.now()
        for node in list(self._suspects):
            if node not in on_nodes:
                del self._suspects[node]  # the node came back, or its pods are gone
        for node, pods in on_nodes.items():
            first = self._suspects.setdefault(node, now)
            if now - first < self.quarantine:
                # Re-check soon after the quarantine ends rather than a whole period later.
                self.queue.add_after(GC_KEY, self.quarantine - (now - first))
                continue
            try:
                await self.client.get("v1", "nodes", node)
                del self._suspects[node]
                continue  # it exists after all: the informer was behind
            except errors.NotFound:
                pass
            log.info("deleting %d pods orphaned by node %s", len(pods), node)
            await asyncio.gather(*(self._fail_and_delete(p, {
                "type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC",
                "message": "PodGC: node no longer exists"}) for p in pods))
            del self._suspects[node]

    async def gc_unscheduled_terminating(self) -> None:
        stuck = [p for p in self.pods.store.list() if meta(p).get("deletionTimestamp") and not spec_of(p).get("nodeName")]
        await asyncio.gather(*(self._fail_and_delete(p, None) for p in stuck))

    # --- writes --------------------------------------------------------------------------------

    async def _fail_and_delete(self, pod: Obj, condition: dict[str, Any] | None) -> None:
        """``markFailedAndDeletePod``: record why in the pod's status, then force-delete it."""
        if not is_pod_terminal(pod):
            now = format_rfc3339(now_dt(self.ctx.clock))
            patch: dict[str, Any] = {"status": {"phase": "Failed"}}
            if condition is not None:
                patch["status"]["conditions"] = [dict(condition, lastTransitionTime=now)]
            pm = meta(pod)
            try:
                await self.client.patch("v1", "pods", pm.get("name", ""), patch, pm.get("namespace", ""),
                                        patch_type="strategic", subresource="status")
            except errors.NotFound:
                return
        await self._delete(pod)

    async def _delete(self, pod: Obj) -> None:
        pm = meta(pod)
        try:
            await self.client.delete("v1", "pods", pm.get("name", ""), pm.get("namespace", ""), grace_period_seconds=0,
                                     preconditions={"uid": pm.get("uid")})
        except (errors.NotFound, errors.Conflict):
            return


CONTROLLERS: list[type[Controller]] = [PodGCController]

__all__ = ["CONTROLLERS", "PodGCController"]
