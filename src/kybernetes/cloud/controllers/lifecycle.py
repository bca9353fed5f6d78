"""The cloud node lifecycle controller (``cloud-provider/controllers/nodelifecycle``).

Every ``node-monitor-period`` seconds (default 5) one sweep over the nodes:

* a Ready node loses the ``node.cloudprovider.kubernetes.io/shutdown`` taint if it has it;
* a node that is not Ready (False or Unknown) and whose instance the provider reports shut down
  gets that taint (NoSchedule), and is kept;
* a node that is not Ready and whose instance no longer exists is deleted (its pods are then
  collected by the pod garbage collector, as in Kubernetes).

A provider error about one node is logged and that node is judged again on the next sweep.
"""

from __future__ import annotations

import logging

from kybernetes import errors
from kybernetes.api.obj import Obj
from kybernetes.cloud.controllers.base import CloudController, has_taint, ready_status, taints_without
from kybernetes.cloud.provider import SHUTDOWN_TAINT, Interface
from kybernetes.controllers.base import ControllerContext

log = logging.getLogger(__name__)

SWEEP_KEY = "cloud-node-lifecycle"


class CloudNodeLifecycleController(CloudController):
    name = "cloud-node-lifecycle-controller"
    workers = 1

    def __init__(self, ctx: ControllerContext, cloud: Interface) -> None:
        super().__init__(ctx, cloud)
        self.nodes = self.informer("v1", "nodes")
        self.period = float(ctx.option("node-monitor-period", 5.0))

    async def run(self) -> None:
        self.queue.add(SWEEP_KEY)
        await super().run()

    async def sync(self, key: str) -> None:
        try:
            for node in self.nodes.store.list():
                try:
                    await self.judge(node)
                except errors.NotFound:
                    pass
                except Exception as e:  # one node's trouble must not stop the sweep
                    log.warning("node %s: %s", node["metadata"]["name"], e)
        finally:
            self.queue.add_after(SWEEP_KEY, self.period)

    async def judge(self, node: Obj) -> None:
        instances = self.cloud.instances_v2()
        if instances is None:
            return
        if ready_status(node) == "True":
            if has_taint(node, SHUTDOWN_TAINT):
                await self._set_taints(node, taints_without(node, SHUTDOWN_TAINT))
            return
        if await instances.instance_shutdown(node):
            if not has_taint(node, SHUTDOWN_TAINT):
                log.info("node %s: instance shut down; tainting", node["metadata"]["name"])
                await self._set_taints(node, [*taints_without(node, SHUTDOWN_TAINT),
                                              {"key": SHUTDOWN_TAINT, "effect": "NoSchedule"}])
            return
        if not await instances.instance_exists(node):
            name = node["metadata"]["name"]
            log.info("deleting node %s: its instance no longer exists", name)
            self.recorder.event(node, "Normal", "DeletingNode",
                                f"Deleting node {name} because it does not exist in the cloud provider")
            await self.client.delete("v1", "nodes", name)

    async def _set_taints(self, node: Obj, taints: list[Obj]) -> None:
        meta = node["metadata"]
        # resourceVersion in the merge patch makes it a compare-and-swap: a stale view loses (409)
        # and the next sweep judges the node again.
        await self.client.patch("v1", "nodes", meta["name"], {
            "metadata": {"resourceVersion": meta.get("resourceVersion")}, "spec": {"taints": taints or None}})
