"""The node's registration, status and heartbeat Lease, as the kubelet keeps them.

``register`` creates this node's Node (labels ``kubernetes.io/hostname|os|arch`` and their beta
twins, taints to register with, the annotations given, e.g. the local-path root, the full
status), or adopts an existing Node of that name: the default labels and the given annotations
are reconciled, and the status is written. Then the Lease,
and ``on_registered`` (the kubelet registers its CSINode there).

``run`` keeps two loops going until cancelled:

``lease``   ``coordination.k8s.io/v1`` Lease ``kube-node-lease/NODE`` (holder: the node,
            ``leaseDurationSeconds`` 40, ownerReference to the Node so it goes with it) renewed
            every ``lease_interval`` (10 s) by a merge patch of ``renewTime`` — one request, no
            read, no conflict; NotFound re-creates it.
``status``  every ``status_interval`` (10 s, ``nodeStatusUpdateFrequency``) the status is
            computed; it is PATCHed when anything but heartbeat times changed, or when the last
            write is ``status_report_interval`` (5 min, ``nodeStatusReportFrequency``) old — the
            Lease is the liveness signal, the status is only rewritten when it says something new.
            The same read notices ``spec.podCIDR`` (assigned by node IPAM; ``pod_cidr_callback``
            gets it once per change), conditions someone else changed (the node lifecycle
            controller's ``Unknown``: written back at once), and a deleted Node (re-registered).

:meth:`NodeStatusManager.set_ready` is how the core reports runtime and network readiness; a change
wakes the status loop so the new Ready condition goes out without waiting for the next period.

What the status says (the kubelet's ``nodestatus`` setters): ``capacity`` cpu / memory /
ephemeral-storage (the data directory's filesystem) / pods / hugepages, ``allocatable`` what the
``allocatable`` callback makes of capacity (reservations and hard eviction thresholds taken off;
capacity itself without one), addresses ``InternalIP`` and
``Hostname``, ``nodeInfo`` from :mod:`kybernetes.kubelet.machine` and the runtime,
``daemonEndpoints.kubeletEndpoint.Port``, the images (largest first, at most 50) and the four
conditions. MemoryPressure/DiskPressure/PIDPressure are True while the ``pressure`` callback names
them (the eviction manager's), with the kubelet's reasons and messages; :meth:`NodeStatusManager.notify`
sends a changed set at once.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path

from kybernetes import errors
from kybernetes.api.obj import Obj
from kybernetes.api.quantity import BINARY_SI, format_quantity
from kybernetes.api.timeutil import format_micro, format_rfc3339
from kybernetes.client.rest import Client
from kybernetes.client.workqueue import Clock, RealClock
from kybernetes.kubelet import machine

log = logging.getLogger(__name__)


KUBELET_VERSION = "v1.32.0+kyb"
LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION_SECONDS = 40
STATUS_REPORT_INTERVAL = 300.0
MAX_IMAGES = 50
CONTROLLER_MANAGED_ATTACH = "volumes.kubernetes.io/controller-managed-attach-detach"

_PRESSURE = (
    ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available",
     "KubeletHasInsufficientMemory", "kubelet has insufficient memory available"),
    ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure",
     "KubeletHasDiskPressure", "kubelet has disk pressure"),
    ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available",
     "KubeletHasInsufficientPID", "kubelet has insufficient PID available"),
)


def _without_heartbeats(status: Obj) -> Obj:
    out = copy.deepcopy(status)
    for cond in out.get("conditions") or []:
        cond.pop("lastHeartbeatTime", None)
    return out


class NodeStatusManager:
    """Registers the Node, keeps its status and Lease current."""

    def __init__(self, client: Client, node_name: str, *, kubelet_port: int, address: str,
                 runtime_version: Callable[[], Awaitable[str]], data_dir: Path,
                 pod_cidr_callback: Callable[[str], Awaitable[None]] | None = None,
                 on_registered: Callable[[Obj], Awaitable[object]] | None = None,
                 images: Callable[[], Awaitable[list[Obj]]] | None = None,
                 labels: dict[str, str] | None = None, taints: list[Obj] | None = None,
                 annotations: dict[str, str] | None = None, max_pods: int = 110, lease_interval: float = 10.0, status_interval: float = 10.0,
                 status_report_interval: float = STATUS_REPORT_INTERVAL, clock: Clock | None = None,
                 wall_clock: Callable[[], float] = time.time,
                 allocatable: Callable[[dict[str, str]], dict[str, str]] | None = None,
                 pressure: Callable[[], Collection[str]] | None = None) -> None:
        self.client = client
        self.node_name = node_name
        self.kubelet_port = kubelet_port
        self.address = address
        self._runtime_version = runtime_version
        self._images = images
        self._pod_cidr_callback = pod_cidr_callback
        self._on_registered = on_registered
        self.labels = dict(labels or {})
        self.annotations = {CONTROLLER_MANAGED_ATTACH: "true", **(annotations or {})}
        """Set on the Node at registration and adoption (others' annotations are kept)."""
        self.taints = list(taints or [])
        self.max_pods = max_pods
        self.data_dir = Path(data_dir)
        self.lease_interval = lease_interval
        self.status_interval = status_interval
        self.status_report_interval = status_report_interval
        self._clock: Clock = clock or RealClock()
        self._wall = wall_clock
        self._allocatable = allocatable
        self._pressure = pressure
        self._ready = False
        self._ready_message = "container runtime status check may not have completed yet"
        self._node: Obj | None = None
        self._posted: Obj | None = None
        """The status last written (heartbeats stripped), to tell a change from a repeat."""
        self._last_post = float("-inf")
        self._pod_cidr = ""
        self._wake = asyncio.Event()
        self.lease: Obj | None = None
        self.status_rounds = 0
        """Rounds of the status loop finished so far, written or not (one can wait on it)."""

    # -- public ----------------------------------------------------------------------------------

    @property
    def node(self) -> Obj | None:
        """The last Node object seen from (or written to) the API server."""
        return self._node

    def set_ready(self, ready: bool, message: str = "") -> None:
        changed = ready != self._ready or (not ready and message and message != self._ready_message)
        self._ready = ready
        if not ready and message:
            self._ready_message = message
        if changed:
            self._wake.set()

    def notify(self) -> None:
        """Something the status says changed (e.g. a pressure condition): write it without waiting."""
        self._wake.set()

    async def register(self) -> Obj:
        status = await self._status(self._node)
        obj = {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": self.node_name, "labels": self._default_labels(),
                         "annotations": dict(self.annotations)},
            "spec": {"taints": copy.deepcopy(self.taints)} if self.taints else {},
            "status": status,
        }
        try:
            node = await self.client.create("v1", "nodes", obj)
            # The create's status is dropped by the API server's node strategy on some servers;
            # writing it through the subresource makes sure it is there.
            if not (node.get("status") or {}).get("conditions"):
                node = await self._patch_status(status)
            else:
                self._mark_posted(status)
            log.info("registered node %s", self.node_name)
        except errors.AlreadyExists:
            node = await self._adopt()
        self._node = node
        await self._check_pod_cidr(node)
        await self._renew_lease()
        if self._on_registered is not None:
            await self._on_registered(node)
        return node

    async def run(self) -> None:
        if self._node is None:
            await self.register()
        tasks = [asyncio.create_task(self._lease_loop(), name="node-lease"),
                 asyncio.create_task(self._status_loop(), name="node-status")]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def update_status(self, *, force: bool = False) -> bool:
        """One status round: read the Node, write the status if it changed (or is due); True if written."""
        try:
            current = await self.client.get("v1", "nodes", self.node_name)
        except errors.NotFound:
            log.warning("node %s was deleted; registering it again", self.node_name)
            await self.register()
            return True
        self._node = current
        await self._check_pod_cidr(current)
        status = await self._status(current)
        theirs = _without_heartbeats({"conditions": (current.get("status") or {}).get("conditions") or []})
        ours = _without_heartbeats({"conditions": status["conditions"]})
        due = self._clock.now() - self._last_post >= self.status_report_interval
        if force or due or _without_heartbeats(status) != self._posted or theirs != ours:
            self._node = await self._patch_status(status)
            return True
        return False

    # -- loops -------------------------------------------------------------------------------------

    async def _lease_loop(self) -> None:
        while True:
            await self._clock.sleep(self.lease_interval)
            try:
                await self._renew_lease()
            except (errors.StatusError, ConnectionError) as e:
                log.warning("renewing lease of node %s: %s", self.node_name, e)

    async def _status_loop(self) -> None:
        while True:
            sleeper = asyncio.ensure_future(self._clock.sleep(self.status_interval))
            woken = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({sleeper, woken}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                woken.cancel()
            self._wake.clear()
            try:
                await self.update_status()
            except (errors.StatusError, ConnectionError) as e:
                log.warning("updating status of node %s: %s", self.node_name, e)
            self.status_rounds += 1

    # -- pieces ------------------------------------------------------------------------------------

    def _default_labels(self) -> dict[str, str]:
        info_os, arch = machine.operating_system(), machine.architecture()
        return {
            "kubernetes.io/hostname": self.node_name,
            "kubernetes.io/os": info_os,
            "kubernetes.io/arch": arch,
            "beta.kubernetes.io/os": info_os,
            "beta.kubernetes.io/arch": arch,
            **self.labels,
        }

    async def _adopt(self) -> Obj:
        """An existing Node of our name: reconcile labels (the kubelet's updateDefaultLabels), write status."""
        existing = await self.client.get("v1", "nodes", self.node_name)
        labels = dict((existing.get("metadata") or {}).get("labels") or {})
        wanted = self._default_labels()
        annotations = (existing.get("metadata") or {}).get("annotations") or {}
        if any(labels.get(k) != v for k, v in wanted.items()) or any(
                annotations.get(k) != v for k, v in self.annotations.items()):
            existing = await self.client.patch("v1", "nodes", self.node_name, {"metadata": {
                "labels": wanted, "annotations": dict(self.annotations)}})
        self._node = existing
        log.info("adopted existing node %s", self.node_name)
        return await self._patch_status(await self._status(existing))

    async def _patch_status(self, status: Obj) -> Obj:
        # A merge patch replaces lists whole: conditions, addresses and images are ours to set.
        node = await self.client.patch("v1", "nodes", self.node_name, {"status": status}, subresource="status")
        self._mark_posted(status)
        return node

    def _mark_posted(self, status: Obj) -> None:
        self._posted = _without_heartbeats(status)
        self._last_post = self._clock.now()

    async def _check_pod_cidr(self, node: Obj) -> None:
        cidr = str((node.get("spec") or {}).get("podCIDR") or "")
        if cidr and cidr != self._pod_cidr:
            self._pod_cidr = cidr
            if self._pod_cidr_callback is not None:
                try:
                    await self._pod_cidr_callback(cidr)
                except Exception:
                    self._pod_cidr = ""  # try again on the next round
                    log.exception("pod CIDR callback for %s failed", cidr)

    async def _renew_lease(self) -> None:
        now = format_micro(self._wall())
        name = self.node_name
        meta: Obj = {"name": name, "namespace": LEASE_NAMESPACE}
        node_uid = ((self._node or {}).get("metadata") or {}).get("uid")
        if node_uid:
            meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": node_uid}]
        patch: Obj = {"spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_DURATION_SECONDS,
                               "renewTime": now}}
        owners = ((self.lease or {}).get("metadata") or {}).get("ownerReferences")
        if node_uid and owners != meta["ownerReferences"]:
            # A re-registered Node has a new uid: point the Lease at it (else GC would take it).
            patch["metadata"] = {"ownerReferences": meta["ownerReferences"]}
        try:
            self.lease = await self.client.patch("coordination.k8s.io/v1", "leases", name, patch, LEASE_NAMESPACE)
            return
        except errors.NotFound:
            pass
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta,
                 "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_DURATION_SECONDS,
                          "renewTime": now, "acquireTime": now}}
        try:
            self.lease = await self.client.create("coordination.k8s.io/v1", "leases", lease, LEASE_NAMESPACE)
        except errors.AlreadyExists:
            pass  # created meanwhile: the next round patches it

    async def _status(self, current: Obj | None) -> Obj:
        info = machine.machine_info(self.data_dir)
        capacity = {
            "cpu": str(info.cpu),
            "memory": format_quantity(info.memory, BINARY_SI),
            "ephemeral-storage": format_quantity(info.ephemeral_storage, BINARY_SI),
            "pods": str(self.max_pods),
            "hugepages-1Gi": "0",
            "hugepages-2Mi": "0",
        }
        try:
            runtime = await self._runtime_version()
        except Exception as e:
            log.warning("runtime version: %s", e)
            runtime = ""
        status: Obj = {
            "capacity": capacity,
            "allocatable": self._allocatable(dict(capacity)) if self._allocatable else dict(capacity),
            "conditions": self._conditions(current),
            "addresses": [{"type": "InternalIP", "address": self.address},
                          {"type": "Hostname", "address": self.node_name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port}},
            "nodeInfo": {
                "machineID": info.machine_id,
                "systemUUID": info.system_uuid,
                "bootID": info.boot_id,
                "kernelVersion": info.kernel_version,
                "osImage": info.os_image,
                "containerRuntimeVersion": runtime,
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": KUBELET_VERSION,
                "operatingSystem": info.operating_system,
                "architecture": info.architecture,
            },
        }
        if self._images is not None:
            try:
                images = await self._images()
            except Exception as e:
                log.warning("listing images: %s", e)
                images = list(((current or {}).get("status") or {}).get("images") or [])
            images = sorted(images, key=lambda i: -int(i.get("sizeBytes") or 0))[:MAX_IMAGES]
            status["images"] = [{"names": list(i.get("names") or []), "sizeBytes": int(i.get("sizeBytes") or 0)}
                                for i in images]
        return status

    def _conditions(self, current: Obj | None) -> list[Obj]:
        now = format_rfc3339(self._wall())
        # A transition time moves only when the status does; take it from what the API has.
        known = {c.get("type"): c for c in ((current or {}).get("status") or {}).get("conditions") or []}
        posted = {c.get("type"): c for c in (self._posted or {}).get("conditions") or []}

        def cond(ctype: str, status: str, reason: str, message: str) -> Obj:
            prev = known.get(ctype) or posted.get(ctype) or {}
            transition = prev.get("lastTransitionTime") if prev.get("status") == status else None
            return {"type": ctype, "status": status, "lastHeartbeatTime": now,
                    "lastTransitionTime": transition or now, "reason": reason, "message": message}

        pressure = set(self._pressure()) if self._pressure is not None else set()
        out = [cond(t, "True", bad_reason, bad_message) if t in pressure else cond(t, "False", reason, message)
               for t, reason, message, bad_reason, bad_message in _PRESSURE]
        if self._ready:
            out.append(cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"))
        else:
            out.append(cond("Ready", "False", "KubeletNotReady", self._ready_message))
        # Conditions of other writers (the route controller's NetworkUnavailable) stay as they are:
        # the merge patch replaces the list whole, where Kubernetes' strategic merge keeps them.
        ours = {c["type"] for c in out}
        return out + [c for t, c in known.items() if t not in ours]
