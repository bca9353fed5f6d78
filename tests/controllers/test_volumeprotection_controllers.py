"""The pvc-protection and pv-protection controllers against a real server, under their own
identities (whose bootstrap roles allow ``update``, not ``patch``, of claims and volumes): an
unused claim or volume loses its finalizer and goes; one created without the finalizer (admission
plugin off, or created before it was on) gets it."""

from __future__ import annotations

from kybernetes.controllers.volumeprotection import (
    PV_FINALIZER,
    PVC_FINALIZER,
    PVCProtectionController,
    PVProtectionController,
)
from kybernetes.testing import ServerProcess
from tests.controllers.harness import get_or_none, namespace, patch, running, wait_for

PROTECTION = (PVCProtectionController, PVProtectionController)
CLAIM = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
         "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}
VOLUME = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "protected-vol"},
          "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                   "hostPath": {"path": "/tmp/kyb-protected-vol"}}}


async def test_unused_claim_and_volume_are_deleted(srv: ServerProcess) -> None:
    async with running(srv, *PROTECTION) as client:
        ns = await namespace(client, "protect")
        made = await client.create("v1", "persistentvolumeclaims", CLAIM, ns)
        assert made["metadata"]["finalizers"] == [PVC_FINALIZER]
        await client.create("v1", "persistentvolumes", VOLUME)
        await client.delete("v1", "persistentvolumeclaims", "data", ns)
        await client.delete("v1", "persistentvolumes", "protected-vol")
        await wait_for(lambda: _gone(client, "persistentvolumeclaims", "data", ns), what="claim deleted")
        await wait_for(lambda: _gone(client, "persistentvolumes", "protected-vol"), what="volume deleted")


async def _gone(client: object, plural: str, name: str, ns: str = "") -> bool:
    return await get_or_none(client, "v1", plural, name, ns) is None  # type: ignore[arg-type]


async def test_missing_finalizers_are_added(srv: ServerProcess) -> None:
    async with running(srv, *PROTECTION) as client:
        ns = await namespace(client, "protect-add")
        await client.create("v1", "persistentvolumeclaims", CLAIM, ns)
        await client.create("v1", "persistentvolumes", {**VOLUME, "metadata": {"name": "bare-vol"}})
        # as if the admission plugin had been off when they were created
        await patch(client, "v1", "persistentvolumeclaims", "data", {"metadata": {"finalizers": None}}, ns)
        await patch(client, "v1", "persistentvolumes", "bare-vol", {"metadata": {"finalizers": None}})

        async def protected() -> bool:
            pvc = await client.get("v1", "persistentvolumeclaims", "data", ns)
            pv = await client.get("v1", "persistentvolumes", "bare-vol")
            return (pvc["metadata"].get("finalizers") == [PVC_FINALIZER]
                    and pv["metadata"].get("finalizers") == [PV_FINALIZER])
        await wait_for(protected, what="finalizers added back")
        await client.delete("v1", "persistentvolumes", "bare-vol")
        await wait_for(lambda: _gone(client, "persistentvolumes", "bare-vol"), what="volume deleted")
