"""Service ClusterIPs and NodePorts held in the store, one key each, so that several API servers on
one store never hand out the same one.

Kubernetes keeps a bitmap per range (the RangeAllocation at ``/registry/ranges/serviceips``) and,
since its MultiCIDRServiceAllocator, one ``IPAddress`` object per allocated IP. This is the second
way, for ports too: a held IP is the key ``/registry/ipaddresses/<ip>`` (an ``IPAddress`` as
kube-apiserver writes it, its ``parentRef`` the Service), a held node port the key
``/registry/servicenodeports/<port>`` (ours: Kubernetes has no per-port object). Taking one is the
store's atomic create, so of two API servers racing for a value exactly one gets it; releasing one
is a compare-and-swap delete of a key that names the Service. One write per value, none shared by
all allocations (no contention on a bitmap); a create's values are claimed together, so it costs
one more commit of the store before the Service's own.

The owner is the Service's namespace and name (not its uid: a create may claim before the Service
exists). A key owned by the Service being created is reused, not refused: that is a create that
failed half-way (or a concurrent create of the same Service, of which the store lets one win).

:class:`Repair` is kube-apiserver's repair controllers (``pkg/registry/core/service/ipallocator/
controller``, ``portallocator/controller``): every API server runs it; at one revision of the store
it reads every Service and every held key; a key no Service holds is released once seen so
:data:`LEAK_ROUNDS` rounds in a row (an allocation whose Service write is still under way, or was
lost with its API server); a value a Service holds without a key (written before keys existed) gets
its key.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kybernetes.api.timeutil import now_rfc3339
from kybernetes.apiserver.registry.core.services import needs_health_check
from kybernetes.storage import interface as st

log = logging.getLogger(__name__)

IP_PREFIX = "/registry/ipaddresses/"
PORT_PREFIX = "/registry/servicenodeports/"
REPAIR_INTERVAL = 60.0
"""Seconds between repair rounds (kube-apiserver: 3 minutes)."""
LEAK_ROUNDS = 3
"""Rounds a key must be seen without its Service before it is released (Kubernetes' numRepairsBeforeLeakCleanup)."""


@dataclass(frozen=True, slots=True)
class Owner:
    namespace: str
    name: str


class Taken(Exception):
    """The value is held by another Service."""


def key_of(value: str | int) -> str:
    return f"{PORT_PREFIX}{value}" if isinstance(value, int) else f"{IP_PREFIX}{value}"


def _value(value: str | int, owner: Owner) -> bytes:
    ref = {"group": "", "resource": "services", "namespace": owner.namespace, "name": owner.name}
    if isinstance(value, int):
        obj: dict[str, Any] = {"apiVersion": "kybernetes.io/v1", "kind": "ServiceNodePort",
                               "metadata": {"name": str(value), "creationTimestamp": now_rfc3339()},
                               "spec": {"parentRef": ref}}
    else:
        family = "IPv6" if ":" in value else "IPv4"
        obj = {"apiVersion": "networking.k8s.io/v1beta1", "kind": "IPAddress",
               "metadata": {"name": value, "creationTimestamp": now_rfc3339(),
                            "labels": {"ipaddress.kubernetes.io/ip-family": family,
                                       "ipaddress.kubernetes.io/managed-by": "ipallocator.k8s.io"}},
               "spec": {"parentRef": ref}}
    return json.dumps(obj, separators=(",", ":")).encode()


def owner_of(data: bytes) -> Owner | None:
    try:
        ref = json.loads(data)["spec"]["parentRef"]
        return Owner(str(ref["namespace"]), str(ref["name"]))
    except (ValueError, KeyError, TypeError):
        return None


async def claim(store: st.Store, value: str | int, owner: Owner) -> int:
    """Hold ``value`` for ``owner``: the new key's revision, 0 if ``owner`` held it already;
    :class:`Taken` if another Service holds it."""
    key = key_of(value)
    try:
        return await store.create(key, _value(value, owner))
    except st.KeyExistsError:
        kv = await store.get(key)
        if kv is None:  # released meanwhile: try once more
            return await store.create(key, _value(value, owner))
        if owner_of(kv.value) == owner:
            return 0
        raise Taken(value) from None


async def release(store: st.Store, value: str | int, owner: Owner | None, revision: int = 0) -> None:
    """Let go of ``value`` if ``owner`` (None: anyone) holds it (at ``revision``, if given)."""
    key = key_of(value)
    kv = await store.get(key)
    if kv is None or (revision and kv.mod_revision != revision):
        return
    if owner is not None and owner_of(kv.value) != owner:
        return
    with contextlib.suppress(st.KeyNotFoundError, st.RevisionMismatchError):
        await store.delete(key, kv.mod_revision)


def held_by(spec: Any) -> Iterator[str | int]:
    """The cluster IPs and node ports a Service's ``spec`` holds: those its type allocates (a
    ClusterIP Service's stray ``nodePort`` is no allocation; validation refuses it)."""
    if not isinstance(spec, dict):
        return
    stype = spec.get("type") or "ClusterIP"
    if stype != "ExternalName":
        for ip in spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else []):
            if isinstance(ip, str) and ip and ip != "None":
                yield ip
    if stype in ("NodePort", "LoadBalancer"):
        for p in spec.get("ports") or []:
            if isinstance(p, dict) and isinstance(p.get("nodePort"), int) and p["nodePort"]:
                yield p["nodePort"]
    hc = spec.get("healthCheckNodePort")
    if needs_health_check(spec) and isinstance(hc, int) and hc:
        yield hc


class Repair:
    """The repair loop (see the module docstring) over the Services stored under ``services_prefix``."""

    def __init__(self, store: st.Store, services_prefix: str) -> None:
        self.store = store
        self.services_prefix = services_prefix
        self._leaks: dict[str, tuple[int, int]] = {}  # key -> (mod_revision, rounds seen leaked)
        self._task: asyncio.Task[None] | None = None

    def start(self, interval: float = REPAIR_INTERVAL) -> None:
        self._task = asyncio.create_task(self._run(interval), name="service-allocation-repair")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self, interval: float) -> None:
        while True:
            try:
                await self.round()
            except st.UnavailableError as e:
                log.warning("service allocation repair: store unavailable (%s); next round in %.0fs", e, interval)
            except Exception:
                log.exception("service allocation repair failed")
            await asyncio.sleep(interval)

    async def _list(self, prefix: str, revision: int) -> list[st.KeyValue]:
        out: list[st.KeyValue] = []
        after = ""
        while True:
            res = await self.store.list(prefix, revision=revision, start_after=after, limit=1000)
            out.extend(res.items)
            if not res.more:
                return out
            after = res.items[-1].key

    async def round(self) -> None:
        """One round: release keys leaked for LEAK_ROUNDS rounds, add the keys Services lack."""
        revision = await self.store.current_revision()
        holders: dict[str, Owner] = {}
        for kv in await self._list(self.services_prefix, revision):
            svc = json.loads(kv.value)
            meta = svc.get("metadata") or {}
            owner = Owner(str(meta.get("namespace", "")), str(meta.get("name", "")))
            for value in held_by(svc.get("spec")):
                key = key_of(value)
                if key in holders and holders[key] != owner:
                    log.warning("service allocation repair: %s is held by both %s/%s and %s/%s", key,
                                holders[key].namespace, holders[key].name, owner.namespace, owner.name)
                    continue
                holders[key] = owner
        keys = {kv.key: kv for prefix in (IP_PREFIX, PORT_PREFIX) for kv in await self._list(prefix, revision)}
        leaks: dict[str, tuple[int, int]] = {}
        for key, kv in keys.items():
            if key in holders:
                continue
            rev, rounds = self._leaks.get(key, (kv.mod_revision, 0))
            rounds = rounds + 1 if rev == kv.mod_revision else 1
            if rounds < LEAK_ROUNDS:
                leaks[key] = (kv.mod_revision, rounds)
                continue
            log.info("service allocation repair: releasing %s, held by no Service", key)
            with contextlib.suppress(st.KeyNotFoundError, st.RevisionMismatchError):
                await self.store.delete(key, kv.mod_revision)
        self._leaks = leaks
        for key, owner in holders.items():
            if key not in keys:
                missing = int(key[len(PORT_PREFIX):]) if key.startswith(PORT_PREFIX) else key[len(IP_PREFIX):]
                with contextlib.suppress(st.KeyExistsError):
                    await self.store.create(key, _value(missing, owner))
