"""Service ClusterIP and NodePort allocation: part of the Service's REST object, as in Kubernetes
(``pkg/registry/core/service/storage``, whose REST allocates in its BeginCreate/BeginUpdate), not
admission. :meth:`ServiceAllocator.install` makes the services REST object call it on every create
and update, after defaulting and before admission and validation, and on every deletion.

A value is picked among those free in this server's view: the watch cache of Services plus a
short-lived in-memory reservation for values handed out whose Service is not in the cache yet.
That view is not the truth when several API servers share the store: the truth is the value's key
in the store (:mod:`.serviceallocations`), created atomically before the Service is written. A
picked value another server took meanwhile is picked again; one the client asked for is refused
("provided IP is already allocated"). A refused write releases what it claimed; an update releases
what the Service no longer holds once stored, a deletion all it held; what a crash leaves behind
the repair loop (:class:`.serviceallocations.Repair`) releases. The first address of the range is
the ``kubernetes`` Service's, as in Kubernetes. Random picks (then a scan when the range is
crowded) keep a freed address from being handed out again at once.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import time
from typing import Any

from kybernetes import errors
from kybernetes.api import validation as v
from kybernetes.api.obj import Obj
from kybernetes.api.resources import Resource
from kybernetes.apiserver.registry.core import serviceallocations as held
from kybernetes.apiserver.registry.request import RequestContext
from kybernetes.apiserver.registry.rest import Finish, ResourceREST
from kybernetes.apiserver.registry.store import Registry
from kybernetes.storage import interface as st

log = logging.getLogger(__name__)

RESERVE_SECONDS = 120.0
CLAIM_ATTEMPTS = 32
"""Picks of a value that other API servers keep taking before the write is refused (range full)."""


class _Reservations:
    """Values this server handed out whose Service its watch cache does not show yet.

    A reservation ends when the cache shows the value (from then on the cache accounts for it,
    and the Service's deletion frees it at once, whichever server deletes it), when this server
    releases the value (a refused write, a deletion), or after RESERVE_SECONDS at the latest (a
    write that never landed). Holding values longer made a server that handed out many of them
    see a nearly full range as full after they were all deleted."""

    def __init__(self) -> None:
        self._until: dict[Any, float] = {}

    def add(self, item: Any) -> None:
        self._until[item] = time.monotonic() + RESERVE_SECONDS

    def discard(self, item: Any) -> None:
        self._until.pop(item, None)

    def active(self, cached: set[Any]) -> set[Any]:
        """The reservations still pending, given the values the watch cache shows."""
        now = time.monotonic()
        for k in [k for k, t in self._until.items() if t < now or k in cached]:
            del self._until[k]
        return set(self._until)


def needs_health_check(spec: Obj) -> bool:
    """Kubernetes' ``NeedsHealthCheck``: a LoadBalancer Service with ``externalTrafficPolicy: Local``."""
    return spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"


def _internal_error(cause: str) -> errors.StatusError:
    return errors.InternalError(f"Internal error occurred: {cause}", details={"causes": [{"message": cause}]})


class ServiceAllocator:
    def __init__(self, service_cidr: str = "10.43.0.0/16", node_port_range: tuple[int, int] = (30000, 32767)) -> None:
        self.network = ipaddress.ip_network(service_cidr)
        self.node_ports = node_port_range
        self._ips = _Reservations()
        self._ports = _Reservations()
        self.repair: held.Repair | None = None

    @property
    def kubernetes_ip(self) -> str:
        return str(self.network.network_address + 1)

    async def _in_use(self, registry: Registry, r: Resource, exclude_uid: str = "") -> tuple[set[str], set[int]]:
        cache = await registry.cacher.cache_for(r.key_prefix)
        ips: set[str] = set()
        ports: set[int] = set()
        for svc in cache.objects.values():
            if svc.get("metadata", {}).get("uid") == exclude_uid and exclude_uid:
                continue
            spec = svc.get("spec") or {}
            for ip in spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else []):
                ips.add(ip)
            for p in spec.get("ports") or []:
                if p.get("nodePort"):
                    ports.add(int(p["nodePort"]))
            if needs_health_check(spec) and spec.get("healthCheckNodePort"):
                ports.add(int(spec["healthCheckNodePort"]))
        return ips | self._ips.active(ips), ports | self._ports.active(ports)

    def _pick_ip(self, used: set[str]) -> str | None:
        size = self.network.num_addresses
        base = self.network.network_address
        # Skip the network address, the kubernetes Service's address and the broadcast address.
        lo, hi = 2, size - 2
        if hi < lo:
            return None
        for _ in range(64):
            ip = str(base + random.randint(lo, hi))
            if ip not in used:
                return ip
        for off in range(lo, hi + 1):
            ip = str(base + off)
            if ip not in used:
                return ip
        return None

    def _pick_port(self, used: set[int]) -> int | None:
        lo, hi = self.node_ports
        for _ in range(64):
            p = random.randint(lo, hi)
            if p not in used:
                return p
        for p in range(lo, hi + 1):
            if p not in used:
                return p
        return None

    async def begin_write(self, rest: ResourceREST, obj: Obj, old: Obj | None, ctx: RequestContext) -> Finish | None:
        """Allocate what ``obj`` (a Service being created, or updated from ``old``) needs, and hold
        the new values in the store (not on a dry run). The finish releases them if the write is
        refused, and, once it is stored, what ``old`` held and ``obj`` no longer does."""
        requested = set(held.held_by(obj.get("spec")))
        before = set(held.held_by((old or {}).get("spec")))

        def forget_new() -> None:  # this write's values (read when called: a claim may repick one)
            self._forget(set(held.held_by(obj.get("spec"))) - before)

        try:
            await self._allocate(rest.registry, rest.resource, obj, old)
        except errors.StatusError:
            forget_new()
            raise
        if ctx.dry_run:  # nothing is held for a write that is not made
            forget_new()
            return None
        meta = obj.get("metadata") or {}
        owner = held.Owner(str(meta.get("namespace", "")), str(meta.get("name", "")))
        # A changed immutable value is not claimed: validation refuses the update ("field is
        # immutable"), as Kubernetes validates before it allocates; claiming first would answer a
        # 500 "already allocated" instead when another Service holds the value.
        refused = _immutable_changes(obj.get("spec") or {}, (old or {}).get("spec") or {})
        store = rest.registry.store
        # All at once: the store commits them together (SQLite: one group commit, one fsync).
        results = await asyncio.gather(*(self._claim(rest, obj, value, owner, value in requested)
                                         for value in held.held_by(obj.get("spec"))
                                         if value not in before and value not in refused),
                                       return_exceptions=True)
        claimed = [r for r in results if isinstance(r, tuple)]
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            await _release_claimed(rest, claimed, owner)
            forget_new()
            raise failed[0]

        async def finish(stored: bool) -> None:
            if not stored:
                await _release_claimed(rest, claimed, owner)
                forget_new()
                return
            for value in before - set(held.held_by(obj.get("spec"))):
                await _release(store, value, owner)
                self._forget((value,))

        return finish

    async def _claim(self, rest: ResourceREST, obj: Obj, value: str | int, owner: held.Owner,
                     requested: bool) -> tuple[str | int, int]:
        """Hold ``value`` in the store: (the value held, the revision of its key, 0 if the Service
        held it already). A picked value taken by another server is picked again, in ``obj`` too."""
        spec, taken = obj["spec"], set[Any]()
        for _ in range(CLAIM_ATTEMPTS):
            try:
                return value, await held.claim(rest.registry.store, value, owner)
            except held.Taken:
                if requested:
                    raise _already_allocated(obj, value) from None
            taken.add(value)
            used_ips, used_ports = await self._in_use(rest.registry, rest.resource)
            picked = (self._pick_port(used_ports | taken) if isinstance(value, int)
                      else self._pick_ip(used_ips | taken))
            if picked is None:
                break
            _replace(spec, value, picked)
            (self._ports if isinstance(picked, int) else self._ips).add(picked)
            value = picked
        path = "spec.clusterIPs" if isinstance(value, str) else "spec.ports"
        raise errors.Invalid("Service", owner.name, [v.FieldError("FieldValueInvalid", path, detail="range is full").cause()])

    async def after_delete(self, rest: ResourceREST, obj: Obj) -> None:
        """Release what a deleted Service held."""
        meta = obj.get("metadata") or {}
        owner = held.Owner(str(meta.get("namespace", "")), str(meta.get("name", "")))
        for value in held.held_by(obj.get("spec")):
            await _release(rest.registry.store, value, owner)
            self._forget((value,))

    def _forget(self, values: Any) -> None:
        """End this server's reservations of ``values``: released, or never held."""
        for value in values:
            (self._ports if isinstance(value, int) else self._ips).discard(value)

    async def _allocate(self, registry: Registry, r: Resource, obj: Obj, old: Obj | None) -> None:
        """Fill in the cluster IP and node ports ``obj`` needs; 422 Invalid if one asked for is out of
        range or taken, or a range is full."""
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        name = obj.get("metadata", {}).get("name", "")
        old_spec = (old or {}).get("spec") or {}
        uid = (old or {}).get("metadata", {}).get("uid", "")
        used_ips, used_ports = await self._in_use(registry, r, exclude_uid=uid)
        errs: list[v.FieldError] = []
        stype = spec.get("type") or "ClusterIP"
        if stype == "ExternalName":
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
        else:
            errs.extend(self._allocate_cluster_ip(spec, old_spec, used_ips))
        if stype in ("NodePort", "LoadBalancer"):
            errs.extend(self._allocate_node_ports(spec, old_spec, used_ports))
        elif stype == "ClusterIP":
            for p in spec.get("ports") or []:
                if isinstance(p, dict):
                    p.pop("nodePort", None)
        v.raise_if_errors("Service", name, errs)
        self._allocate_health_check_node_port(spec, old_spec, used_ports)

    def _allocate_health_check_node_port(self, spec: Obj, old_spec: Obj, used_ports: set[int]) -> None:
        """A LoadBalancer Service with ``externalTrafficPolicy: Local`` gets a health-check node port
        from the node-port range (the one asked for, else any free one), kept while it needs one and
        dropped when it stops needing one unless the client changed it (``dropTypeDependentFields``).
        As in Kubernetes, failing to allocate is a 500 InternalError, not a field error."""
        needed = bool(old_spec) and needs_health_check(old_spec)
        if needed and not needs_health_check(spec):
            if spec.get("healthCheckNodePort") == old_spec.get("healthCheckNodePort"):
                spec.pop("healthCheckNodePort", None)
            return
        if not needs_health_check(spec) or (needed and spec.get("healthCheckNodePort")):
            # Nothing to allocate; a change of an allocated port is refused by validation. (A
            # Service stored before ports were allocated for it has none yet: it gets one now.)
            return
        wanted = spec.get("healthCheckNodePort")
        if wanted:
            lo, hi = self.node_ports
            if not isinstance(wanted, int) or not lo <= wanted <= hi:
                reason = f"provided port is not in the valid range. The range of valid ports is {lo}-{hi}"
            elif wanted in used_ports:
                reason = "provided port is already allocated"
            else:
                self._ports.add(wanted)
                used_ports.add(wanted)
                return
            raise _internal_error(f"failed to allocate requested HealthCheck NodePort {wanted}: {reason}")
        picked = self._pick_port(used_ports)
        if picked is None:
            raise _internal_error("failed to allocate a HealthCheck NodePort 0: range is full")
        self._ports.add(picked)
        used_ports.add(picked)
        spec["healthCheckNodePort"] = picked

    def _allocate_cluster_ip(self, spec: Obj, old_spec: Obj, used_ips: set[str]) -> list[v.FieldError]:
        """Keep, check and reserve, or pick the cluster IP of a Service that has one; set its IP families."""
        errs: list[v.FieldError] = []
        ip = spec.get("clusterIP") or ""
        if not ip and old_spec.get("clusterIP"):
            ip = old_spec["clusterIP"]
        if ip == "None":
            spec["clusterIP"] = "None"
            spec["clusterIPs"] = ["None"]
        elif not ip:
            picked = self._pick_ip(used_ips)
            if picked is None:
                errs.append(v.FieldError("FieldValueInvalid", "spec.clusterIPs", detail="range is full"))
            else:
                self._ips.add(picked)
                spec["clusterIP"], spec["clusterIPs"] = picked, [picked]
        elif old_spec.get("clusterIP") != ip:
            try:
                addr = ipaddress.ip_address(ip)
            except ValueError:
                addr = None
            if addr is None:
                errs.append(v.invalid("spec.clusterIPs[0]", ip, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"))
            elif addr not in self.network:
                errs.append(v.invalid("spec.clusterIPs[0]", ip,
                                      f"failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. "
                                      f"The range of valid IPs is {self.network}"))
            elif ip in used_ips:
                errs.append(v.invalid("spec.clusterIPs[0]", ip,
                                      f"failed to allocate IP {ip}: provided IP is already allocated"))
            else:
                self._ips.add(ip)
                spec["clusterIP"], spec["clusterIPs"] = ip, [ip]
        else:
            spec["clusterIP"] = ip
            spec.setdefault("clusterIPs", [ip])
        if (spec.get("clusterIP") and spec["clusterIP"] != "None") or spec.get("clusterIP") == "None":
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
        return errs

    def _allocate_node_ports(self, spec: Obj, old_spec: Obj, used_ports: set[int]) -> list[v.FieldError]:
        """Keep, check and reserve, or pick the node port of each port of a NodePort or LoadBalancer Service."""
        errs: list[v.FieldError] = []
        old_ports = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                     for p in old_spec.get("ports") or [] if isinstance(p, dict)}
        for i, p in enumerate(spec.get("ports") or []):
            if not isinstance(p, dict):
                continue
            np = p.get("nodePort")
            prev = old_ports.get((p.get("port"), p.get("protocol", "TCP")))
            if not np and prev:
                p["nodePort"] = prev
                continue
            if not np and spec.get("type") == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is False:
                continue  # Kubernetes' shouldAllocateNodePorts: none picked, but one asked for is kept
            if not np:
                picked_port = self._pick_port(used_ports)
                if picked_port is None:
                    errs.append(v.FieldError("FieldValueInvalid", f"spec.ports[{i}].nodePort", detail="range is full"))
                    continue
                self._ports.add(picked_port)
                used_ports.add(picked_port)
                p["nodePort"] = picked_port
            elif np != prev:
                lo, hi = self.node_ports
                if not isinstance(np, int) or not lo <= np <= hi:
                    errs.append(v.invalid(f"spec.ports[{i}].nodePort", np,
                                          f"provided port is not in the valid range. The range of valid ports is {lo}-{hi}"))
                elif np in used_ports:
                    errs.append(v.invalid(f"spec.ports[{i}].nodePort", np, "provided port is already allocated"))
                else:
                    self._ports.add(np)
                    used_ports.add(np)
        return errs

    def start_repair(self, registry: Registry) -> None:
        """Run the repair loop of the values held in the store (see :mod:`.serviceallocations`)."""
        services = registry.catalogue.get("", "v1", "services")
        assert services is not None
        self.repair = held.Repair(registry.store, services.key_prefix)
        self.repair.start()

    async def stop(self) -> None:
        if self.repair is not None:
            await self.repair.stop()

    def install(self, registry: Registry) -> None:
        """Make every served version of services allocate through this allocator."""
        for r in registry.catalogue.all():
            if r.builtin and r.stored_in == ("", "services"):
                rest = registry.rest_for(r)
                rest.begin_create = rest.begin_update = self.begin_write
                rest.after_delete = self.after_delete


async def _release(store: st.Store, value: str | int, owner: held.Owner, revision: int = 0) -> None:
    """Release ``value`` after a write's outcome is known; if the store fails now, the write's own
    answer stands and the repair loop releases the value later."""
    try:
        await held.release(store, value, owner, revision)
    except st.StoreError as e:
        log.warning("cannot release %s of Service %s/%s now (%s); the repair loop will", value,
                    owner.namespace, owner.name, e)


async def _release_claimed(rest: ResourceREST, claimed: list[tuple[str | int, int]], owner: held.Owner) -> None:
    """Release the keys this write created (not those the Service held already)."""
    for value, revision in claimed:
        if revision:
            await _release(rest.registry.store, value, owner, revision)


def _immutable_changes(spec: Obj, old_spec: Obj) -> set[str | int]:
    """The values of ``spec`` that change an allocated immutable field of ``old_spec``: its cluster
    IPs, and its health-check node port while it still needs one."""
    out: set[str | int] = set()
    if old_spec.get("clusterIP") not in (None, "", "None") and spec.get("clusterIPs") != old_spec.get("clusterIPs"):
        out.update(ip for ip in spec.get("clusterIPs") or () if ip not in (old_spec.get("clusterIPs") or ()))
    hc, old_hc = spec.get("healthCheckNodePort"), old_spec.get("healthCheckNodePort")
    if old_hc and hc and hc != old_hc and needs_health_check(old_spec) and needs_health_check(spec):
        out.add(hc)
    return out


def _replace(spec: Obj, value: str | int, picked: str | int) -> None:
    """Put ``picked`` where the picked ``value`` is in ``spec``."""
    if isinstance(value, str):
        spec["clusterIP"], spec["clusterIPs"] = picked, [picked]
        return
    for p in spec.get("ports") or []:
        if isinstance(p, dict) and p.get("nodePort") == value:
            p["nodePort"] = picked
    if spec.get("healthCheckNodePort") == value:
        spec["healthCheckNodePort"] = picked


def _already_allocated(obj: Obj, value: str | int) -> errors.StatusError:
    """The error for a value the client asked for that another Service holds, in Kubernetes' words."""
    name = str((obj.get("metadata") or {}).get("name", ""))
    spec = obj["spec"]
    if isinstance(value, str):
        err = v.invalid("spec.clusterIPs[0]", value, f"failed to allocate IP {value}: provided IP is already allocated")
        return errors.Invalid("Service", name, [err.cause()])
    for i, p in enumerate(spec.get("ports") or []):
        if isinstance(p, dict) and p.get("nodePort") == value:
            err = v.invalid(f"spec.ports[{i}].nodePort", value, "provided port is already allocated")
            return errors.Invalid("Service", name, [err.cause()])
    return _internal_error(f"failed to allocate requested HealthCheck NodePort {value}: provided port is already allocated")
