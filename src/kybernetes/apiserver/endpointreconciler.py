"""API server identity leases and the ``kubernetes`` Service's endpoints (kube-apiserver's
``--endpoint-reconciler-type=lease`` with its APIServerIdentity leases).

Every API server sharing a store runs one :class:`EndpointReconciler`. Each round
(:meth:`EndpointReconciler.reconcile`, every ``renew_interval`` seconds):

1. it renews its own identity Lease ``kube-system/kube-apiserver-<hash>`` (label
   ``apiserver.kubernetes.io/identity=kube-apiserver``; the hash is of its host name, advertised
   address and port, so a restarted server takes its own lease back), creating it if missing;
2. it lists the identity leases; a lease is *live* while ``renewTime + leaseDurationSeconds`` has
   not passed by the reconciler's clock;
3. unless its own advertised address is loopback (pods could not reach it: such a server holds its
   lease but never writes endpoints), it makes ``default/kubernetes`` Endpoints (label
   ``endpointslice.kubernetes.io/skip-mirror``) and EndpointSlice list exactly the advertised
   addresses of the live leases, sorted as strings, one subset, port ``https`` = this server's
   port. Both objects are written only when they differ from that, so a steady cluster writes
   nothing but its leases;
4. it deletes leases expired for longer than their duration (the apiserverleasegc controller's
   job), with the expired lease's resourceVersion as a precondition: a lease renewed meanwhile
   stays.

:meth:`EndpointReconciler.stop` (a clean shutdown) deletes the server's own lease and writes the
endpoints without it, so it leaves at once; a killed server leaves once its lease expired.

Guarantees and limits, as in Kubernetes: the endpoints are never emptied (an empty live set is an
inconsistent read, not a cluster without API servers; the last server to stop stays listed); a
failed round (store unavailable, a conflicting write by another server) is logged and retried at
the next one; every API server of a cluster serves on the same port (the endpoints have one).

Where kybernetes differs: Kubernetes keeps the reconciler's own TTL keys (``/masterleases/IP``)
next to the identity leases, whose duration is an hour. Here the identity leases are the one
record, each carrying its server's advertised address in the annotation
:data:`ADDRESS_ANNOTATION`, so their duration is the reconciler's: 15 s, renewed every 5 s by
default (``--identity-lease-duration-seconds``, ``--identity-lease-renew-interval-seconds``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import ipaddress
import logging
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

from kybernetes import errors
from kybernetes.aiorun import wait_for
from kybernetes.api.resources import Catalogue, Resource
from kybernetes.api.timeutil import format_micro_epoch, parse_epoch
from kybernetes.apiserver.registry.request import DeleteOptions, ListOptions, RequestContext, User
from kybernetes.apiserver.registry.store import Registry
from kybernetes.storage.interface import StoreError

log = logging.getLogger(__name__)

IDENTITY_LABEL = "apiserver.kubernetes.io/identity"
"""Kubernetes' ``IdentityLeaseComponentLabelKey``; its value names the component."""
COMPONENT = "kube-apiserver"
ADDRESS_ANNOTATION = "kybernetes.io/advertise-address"
"""The address a server publishes in the ``kubernetes`` endpoints (absent: a loopback server)."""
LEASE_NAMESPACE = "kube-system"
SERVICE = "kubernetes"

DEFAULT_LEASE_DURATION = 15
DEFAULT_RENEW_INTERVAL = 5

Obj = dict[str, Any]


def lease_name(hostname: str, address: str, port: int) -> str:
    """``kube-apiserver-`` + the lowercase unpadded base32 of the first 16 bytes of a SHA-256 of
    the server's identity (Kubernetes hashes the host name alone; several servers may share a host
    here, so the advertised address and port are part of the identity)."""
    digest = hashlib.sha256(f"{hostname}/{address}:{port}".encode()).digest()[:16]
    return f"{COMPONENT}-" + base64.b32encode(digest).decode().rstrip("=").lower()


def publishable(address: str) -> bool:
    """Whether ``address`` may be in the endpoints: an IP address, not loopback."""
    try:
        return not ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class EndpointReconciler:
    def __init__(self, registry: Registry, catalogue: Catalogue, *, address: str, port: int,
                 lease_duration: int = DEFAULT_LEASE_DURATION, renew_interval: float = DEFAULT_RENEW_INTERVAL,
                 clock: Callable[[], float] = time.time, hostname: str | None = None) -> None:
        if lease_duration <= 0 or renew_interval <= 0:
            raise ValueError("the identity lease's duration and renew interval must be positive")
        self.registry = registry
        self.address = address
        self.port = port
        self.lease_duration = lease_duration
        self.renew_interval = renew_interval
        self.clock = clock
        self.hostname = hostname if hostname is not None else socket.gethostname()
        self.name = lease_name(self.hostname, address, port)
        self.holder = f"{self.name}_{uuid.uuid4()}"
        self.publishes = publishable(address)
        self.ctx = RequestContext(user=User("system:apiserver", ("system:masters",)), field_manager="kube-apiserver")
        self._leases = self._resource(catalogue, "coordination.k8s.io", "leases")
        self._endpoints = self._resource(catalogue, "", "endpoints")
        self._slices = self._resource(catalogue, "discovery.k8s.io", "endpointslices")
        self._task: asyncio.Task[None] | None = None

    @staticmethod
    def _resource(catalogue: Catalogue, group: str, plural: str) -> Resource:
        r = catalogue.get(group, "v1", plural)
        assert r is not None
        return r

    # --- running ---------------------------------------------------------------------------

    async def start(self) -> None:
        """One round now (errors logged), then one every ``renew_interval`` seconds."""
        await self._round()
        self._task = asyncio.create_task(self._loop(), name="endpoint-reconciler")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.renew_interval)
            await self._round()

    async def _round(self) -> None:
        try:
            await self.reconcile()
        except (errors.StatusError, StoreError) as e:
            log.warning("endpoint reconciler: %s (retrying in %gs)", e, self.renew_interval)

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop renewing; delete this server's lease and publish the endpoints without it (given
        up after ``timeout`` seconds: the lease expires instead)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await wait_for(self._leave(), timeout)
        except (errors.StatusError, StoreError, TimeoutError) as e:
            log.warning("endpoint reconciler: could not remove this server (%s): its lease expires instead",
                        e or type(e).__name__)

    async def _leave(self) -> None:
        with contextlib.suppress(errors.NotFound, errors.Conflict):
            await self.registry.delete(self._leases, LEASE_NAMESPACE, self.name, DeleteOptions(), self.ctx)
        if self.publishes:
            await self._publish(await self.live_addresses())

    # --- one round -------------------------------------------------------------------------

    async def reconcile(self) -> None:
        """Renew this server's lease, publish the live servers, delete long expired leases."""
        await self._renew()
        leases = await self._identity_leases()
        now = self.clock()
        if self.publishes:
            await self._publish(sorted({a for lease in leases if self._live(lease, now)
                                        and publishable(a := self._address_of(lease))}))
        for lease in leases:
            if self._expired_for_gc(lease, now) and lease["metadata"]["name"] != self.name:
                await self._delete_expired(lease)

    async def live_addresses(self) -> list[str]:
        """The published addresses of the live identity leases, sorted as strings."""
        now = self.clock()
        return sorted({a for lease in await self._identity_leases() if self._live(lease, now)
                       and publishable(a := self._address_of(lease))})

    def _lease_object(self, current: Obj | None) -> Obj:
        now = format_micro_epoch(self.clock())
        meta: Obj = {"name": self.name, "namespace": LEASE_NAMESPACE,
                     "labels": {IDENTITY_LABEL: COMPONENT, "kubernetes.io/hostname": self.hostname}}
        if self.publishes:
            meta["annotations"] = {ADDRESS_ANNOTATION: self.address}
        spec: Obj = {"holderIdentity": self.holder, "leaseDurationSeconds": self.lease_duration, "renewTime": now}
        if current is not None:
            meta["resourceVersion"] = current["metadata"]["resourceVersion"]
            if current.get("spec", {}).get("holderIdentity") == self.holder:
                spec["acquireTime"] = current["spec"].get("acquireTime", now)
        spec.setdefault("acquireTime", now)
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": spec}

    async def _renew(self) -> None:
        try:
            current = await self.registry.get(self._leases, LEASE_NAMESPACE, self.name)
        except errors.NotFound:
            with contextlib.suppress(errors.AlreadyExists):  # a concurrent create: renewed next round
                await self.registry.create(self._leases, LEASE_NAMESPACE, self._lease_object(None), self.ctx)
            return
        await self.registry.update(self._leases, LEASE_NAMESPACE, self.name, self._lease_object(current), self.ctx)

    async def _identity_leases(self) -> list[Obj]:
        found = await self.registry.list(self._leases, LEASE_NAMESPACE, ListOptions())
        return [lease for lease in found.items
                if (lease.get("metadata", {}).get("labels") or {}).get(IDENTITY_LABEL) == COMPONENT]

    @staticmethod
    def _address_of(lease: Obj) -> str:
        return str((lease["metadata"].get("annotations") or {}).get(ADDRESS_ANNOTATION, ""))

    @staticmethod
    def _expiry(lease: Obj) -> float | None:
        spec = lease.get("spec") or {}
        renewed = parse_epoch(spec.get("renewTime"))
        duration = spec.get("leaseDurationSeconds")
        if renewed is None or not isinstance(duration, int):
            return None
        return renewed + duration

    def _live(self, lease: Obj, now: float) -> bool:
        expiry = self._expiry(lease)
        return expiry is not None and now <= expiry

    def _expired_for_gc(self, lease: Obj, now: float) -> bool:
        """Expired for as long again as its duration (so a server whose renewals are only late is
        left its lease; Kubernetes' collector, which runs once per lease duration, is as lenient)."""
        expiry = self._expiry(lease)
        if expiry is None:
            return False
        duration = lease["spec"]["leaseDurationSeconds"]
        return now > expiry + duration

    async def _delete_expired(self, lease: Obj) -> None:
        meta = lease["metadata"]
        opts = DeleteOptions(preconditions={"resourceVersion": meta["resourceVersion"]})
        with contextlib.suppress(errors.NotFound, errors.Conflict):
            await self.registry.delete(self._leases, LEASE_NAMESPACE, meta["name"], opts, self.ctx)
            log.info("deleted the expired API server identity lease %s (%s)", meta["name"], self._address_of(lease))

    # --- the kubernetes Service's endpoints ----------------------------------------------------

    def _port(self) -> Obj:
        return {"name": "https", "port": self.port, "protocol": "TCP"}

    async def _publish(self, addresses: list[str]) -> None:
        """Endpoints and EndpointSlice listing ``addresses``, written only where they differ."""
        if not addresses:
            log.warning("no live API server is listed; refusing to erase all endpoints of the kubernetes service")
            return
        await self._write_if_changed(self._endpoints, self._endpoints_object(addresses))
        await self._write_if_changed(self._slices, self._slice_object(addresses))

    def _endpoints_object(self, addresses: list[str]) -> Obj:
        return {"apiVersion": "v1", "kind": "Endpoints",
                "metadata": {"name": SERVICE, "namespace": "default",
                             "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
                "subsets": [{"addresses": [{"ip": a} for a in addresses], "ports": [self._port()]}]}

    def _slice_object(self, addresses: list[str]) -> Obj:
        family = "IPv6" if ipaddress.ip_address(addresses[0]).version == 6 else "IPv4"
        return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": SERVICE, "namespace": "default",
                             "labels": {"kubernetes.io/service-name": SERVICE}},
                "addressType": family, "ports": [self._port()],
                "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addresses]}

    async def _write_if_changed(self, r: Resource, want: Obj) -> None:
        try:
            current = await self.registry.get(r, "default", SERVICE)
        except errors.NotFound:
            with contextlib.suppress(errors.AlreadyExists):
                await self.registry.create(r, "default", want, self.ctx)
                log.info("kubernetes %s: %s", r.kind, _addresses(want))
            return
        if _same(current, want):
            return
        want["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        await self.registry.update(r, "default", SERVICE, want, self.ctx)
        log.info("kubernetes %s: %s (was %s)", r.kind, _addresses(want), _addresses(current))


def _addresses(obj: Obj) -> list[str]:
    if obj.get("kind") == "EndpointSlice":
        return [a for ep in obj.get("endpoints") or [] for a in ep.get("addresses") or []]
    return [a.get("ip", "") for s in obj.get("subsets") or [] for a in s.get("addresses") or []]


def _same(current: Obj, want: Obj) -> bool:
    """Whether ``current`` already says what ``want`` does (the fields the reconciler owns)."""
    labels = current["metadata"].get("labels") or {}
    if any(labels.get(k) != v for k, v in want["metadata"]["labels"].items()):
        return False
    if want["kind"] == "EndpointSlice":
        return all(current.get(k) == want[k] for k in ("addressType", "ports")) and \
            [(ep.get("addresses"), (ep.get("conditions") or {}).get("ready")) for ep in current.get("endpoints") or []] \
            == [(ep["addresses"], True) for ep in want["endpoints"]]
    subsets = current.get("subsets") or []
    return len(subsets) == 1 and subsets[0].get("ports") == want["subsets"][0]["ports"] and \
        _addresses(current) == _addresses(want)
