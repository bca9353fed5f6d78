"""``v1`` ComponentStatus: the health of the control plane, computed on every GET (nothing stored).

kube-apiserver 1.32 answers ``componentstatuses`` (deprecated since 1.19, get and list only) by
probing ``https://127.0.0.1:10259/healthz`` (scheduler), ``:10257/healthz`` (controller manager)
and each etcd backend, and reports one ``Healthy`` condition per component: ``True`` with the
probe's answer as message (``ok``), or ``False``/``Unknown`` with the error.

kybernetes' scheduler and controller manager serve no health port; what shows that they are alive
and working is the leader-election Lease each renews while it leads (kube-system/kube-scheduler,
kube-system/kube-controller-manager). So:

* ``scheduler``, ``controller-manager``: ``True``/``ok`` while the Lease has a holder whose last
  renewal is within its duration; ``False`` when it expired or was released; ``Unknown`` when no
  such component ever ran (no Lease);
* ``etcd-0``: a read of the store itself (the SQLite database behind the API), ``True``/``ok`` when it
  answers within the probe timeout.

Every answer carries Kubernetes' deprecation warning.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from kybernetes import errors
from kybernetes.aiorun import wait_for
from kybernetes.api.obj import Obj
from kybernetes.api.timeutil import parse_rfc3339
from kybernetes.apiserver.registry.rest import ComputedREST
from kybernetes.apiserver.registry.store import Registry

DEPRECATION_WARNING = "v1 ComponentStatus is deprecated in v1.19+"
PROBE_TIMEOUT = 20.0  # Kubernetes' probeTimeOut
LEASE_NAMESPACE = "kube-system"
LEASES = {"scheduler": "kube-scheduler", "controller-manager": "kube-controller-manager"}
STORE = "etcd-0"
NAMES = ("scheduler", "controller-manager", STORE)


def _condition(status: str, message: str = "", error: str = "") -> Obj:
    cond: Obj = {"type": "Healthy", "status": status}
    if message:
        cond["message"] = message
    if error:
        cond["error"] = error
    return cond


def component_status(name: str, condition: Obj) -> Obj:
    return {"kind": "ComponentStatus", "apiVersion": "v1", "metadata": {"name": name}, "conditions": [condition]}


def lease_condition(lease: Obj | None, now: datetime) -> Obj:
    """The Healthy condition a leader-election Lease (or its absence) stands for at ``now``."""
    if lease is None:
        return _condition("Unknown", error="no leader election lease: the component has not run")
    meta, spec = lease.get("metadata") or {}, lease.get("spec") or {}
    where = f"lease {meta.get('namespace', '')}/{meta.get('name', '')}"
    holder = spec.get("holderIdentity")
    if not holder:
        return _condition("False", error=f"{where} has no holder: no instance is leading")
    renewed = parse_rfc3339(spec.get("renewTime")) or parse_rfc3339(spec.get("acquireTime"))
    duration = spec.get("leaseDurationSeconds")
    if renewed is None or not isinstance(duration, int):
        return _condition("False", error=f"{where} held by {holder} has no renewal time or duration")
    expired_for = now - (renewed + timedelta(seconds=duration))
    if expired_for > timedelta(0):
        return _condition("False", error=f"{where} held by {holder} expired {int(expired_for.total_seconds())}s ago")
    return _condition("True", message="ok")


class ComponentStatuses(ComputedREST):
    """Computes ComponentStatus objects from the registry's store and cache: the REST object of
    componentstatuses (never stored)."""

    warning = DEPRECATION_WARNING

    def __init__(self, registry: Registry, *, probe_timeout: float = PROBE_TIMEOUT) -> None:
        self.registry = registry
        self.probe_timeout = probe_timeout

    async def _store_condition(self) -> Obj:
        try:
            await wait_for(self.registry.store.current_revision(), self.probe_timeout)
            await wait_for(self.registry.store.get("/registry/health"), self.probe_timeout)
        except TimeoutError:
            return _condition("False", error=f"the store did not answer within {self.probe_timeout:g}s")
        except Exception as e:  # any failure of the store is what this reports
            return _condition("False", error=f"the store failed: {e}")
        return _condition("True", message="ok")

    async def _lease_condition(self, lease_name: str) -> Obj:
        leases = self.registry.catalogue.get("coordination.k8s.io", "v1", "leases")
        assert leases is not None
        try:
            lease = await self.registry.get(leases, LEASE_NAMESPACE, lease_name)
        except errors.NotFound:
            lease = None
        return lease_condition(lease, datetime.now(UTC))

    async def get(self, name: str) -> Obj:
        """One component's status; NotFound for a name that is not a component."""
        if name == STORE:
            return component_status(name, await self._store_condition())
        if name in LEASES:
            return component_status(name, await self._lease_condition(LEASES[name]))
        raise errors.NotFound.of("componentstatuses", name)

    async def list(self) -> list[Obj]:
        return list(await asyncio.gather(*(self.get(name) for name in NAMES)))
