"""DefaultBinder: POST ``pods/<name>/binding`` with the chosen node."""

from __future__ import annotations

from kybernetes import errors
from kybernetes.scheduler.framework import Code, CycleState, Plugin, Status
from kybernetes.scheduler.nodeinfo import PodInfo


class DefaultBinder(Plugin):
    name = "DefaultBinder"

    async def bind(self, state: CycleState, pi: PodInfo, node_name: str) -> Status | None:
        binding = {
            "apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": pi.name, "namespace": pi.namespace, "uid": pi.uid},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node_name},
        }
        try:
            await self.handle.client.create("v1", "pods", binding, namespace=pi.namespace,
                                            subresource="binding", name=pi.name)
        except errors.StatusError as e:
            return Status(Code.ERROR, f"binding rejected: {e}")
        return None
