"""The scheduler's view of storage: PVs, PVCs, StorageClasses and CSINodes, with assumptions.

Informer handlers keep the four stores current (the scheduler registers them; explain fills them
from listed objects). The volume plugins read them through ``Handle.volumes``.

Like kube-scheduler's assume cache, a decision of the VolumeBinding plugin is visible at once,
before its API write is done: Reserve *assumes* a PV bound to a claim (claimRef set) or a claim
given a node (``volume.kubernetes.io/selected-node``), so the next pod's cycle does not pick the
same PV. An assumption ends when Unreserve reverts it or when the informer delivers a newer version
of that object (the write has landed, or someone else changed it: either way the informer's copy is
now the truth).

``changed`` is an event set on every store change: PreBind waits on it for the binder and the
provisioner to finish a claim, instead of polling the API.
"""

from __future__ import annotations

import asyncio

from kybernetes.aiorun import wait_for
from kybernetes.api.obj import Obj
from kybernetes.api.storageutil import claim_key


def _rv(obj: Obj) -> str:
    return (obj.get("metadata") or {}).get("resourceVersion") or ""


class VolumeStore:
    def __init__(self) -> None:
        self.pvs: dict[str, Obj] = {}
        self.pvcs: dict[str, Obj] = {}
        """``namespace/name`` -> claim."""
        self.classes: dict[str, Obj] = {}
        self.csinodes: dict[str, Obj] = {}
        self._assumed_pvs: dict[str, Obj] = {}
        self._assumed_pvcs: dict[str, Obj] = {}
        self._changed: asyncio.Event | None = None

    # --- reads (assumptions first) ---------------------------------------------------------------

    def pv(self, name: str) -> Obj | None:
        return self._assumed_pvs.get(name) or self.pvs.get(name)

    def pvc(self, namespace: str, name: str) -> Obj | None:
        key = claim_key(namespace, name)
        return self._assumed_pvcs.get(key) or self.pvcs.get(key)

    def all_pvs(self) -> list[Obj]:
        if not self._assumed_pvs:
            return list(self.pvs.values())
        return [self._assumed_pvs.get(n) or pv for n, pv in self.pvs.items()]

    # --- assumptions -----------------------------------------------------------------------------

    def assume_pv(self, pv: Obj) -> None:
        self._assumed_pvs[pv["metadata"]["name"]] = pv

    def assume_pvc(self, pvc: Obj) -> None:
        meta = pvc["metadata"]
        self._assumed_pvcs[claim_key(meta.get("namespace") or "", meta["name"])] = pvc

    def revert_pv(self, name: str) -> None:
        self._assumed_pvs.pop(name, None)

    def revert_pvc(self, key: str) -> None:
        self._assumed_pvcs.pop(key, None)

    # --- informer handlers -----------------------------------------------------------------------

    def set_pv(self, pv: Obj, present: bool = True) -> None:
        name = pv["metadata"]["name"]
        self._set(self.pvs, self._assumed_pvs, name, pv, present)

    def set_pvc(self, pvc: Obj, present: bool = True) -> None:
        meta = pvc["metadata"]
        self._set(self.pvcs, self._assumed_pvcs, claim_key(meta.get("namespace") or "", meta["name"]), pvc, present)

    def set_class(self, sc: Obj, present: bool = True) -> None:
        self._set(self.classes, None, sc["metadata"]["name"], sc, present)

    def set_csinode(self, cn: Obj, present: bool = True) -> None:
        self._set(self.csinodes, None, cn["metadata"]["name"], cn, present)

    def _set(self, store: dict[str, Obj], assumed: dict[str, Obj] | None, key: str, obj: Obj,
             present: bool) -> None:
        if present:
            store[key] = obj
        else:
            store.pop(key, None)
        if assumed is not None:
            cur = assumed.get(key)
            if cur is not None and (not present or _rv(cur) != _rv(obj)):
                del assumed[key]
        self.notify()

    # --- waiting for changes ---------------------------------------------------------------------

    def notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def wait_changed(self, timeout: float) -> None:
        """Return after the next store change, or after ``timeout`` seconds."""
        if self._changed is None:
            self._changed = asyncio.Event()
        ev = self._changed
        try:
            await wait_for(ev.wait(), timeout)
        except TimeoutError:
            pass

    @classmethod
    def from_objects(cls, pvs: list[Obj] = (), pvcs: list[Obj] = (), classes: list[Obj] = (),  # type: ignore[assignment]
                     csinodes: list[Obj] = ()) -> VolumeStore:  # type: ignore[assignment]
        s = cls()
        for pv in pvs:
            s.set_pv(pv)
        for pvc in pvcs:
            s.set_pvc(pvc)
        for sc in classes:
            s.set_class(sc)
        for cn in csinodes:
            s.set_csinode(cn)
        return s
