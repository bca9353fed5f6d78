"""Leader election on a ``coordination.k8s.io/v1`` Lease, as client-go's ``tools/leaderelection``.

Several candidates share one Lease (``lease_name`` in ``namespace``). The lease's spec is the
election record::

    holderIdentity        who leads ("" after a graceful release)
    leaseDurationSeconds  how long the holder's claim lasts after its last renewal
    acquireTime           when the current holder took the lease (MicroTime)
    renewTime             the holder's last renewal (MicroTime)
    leaseTransitions      how many times the holder changed

The algorithm (each step is one GET and at most one CREATE/PUT; the PUT carries the
resourceVersion it read, so two candidates can never both win the same round — the loser gets
409 and tries again later):

- **Acquire**: every ``retry_period`` (jittered), try to take the lease. It can be taken when it
  does not exist, when its holder is empty (released), when we already hold it, or when it has
  *expired*. Expiry is judged like client-go, by *local observation*: a candidate remembers when
  it last saw the record change (``observed_time`` on its own clock); the lease has expired when
  ``observed_time + leaseDurationSeconds < now``. No clocks are compared across machines, and
  ``renewTime`` is informational only.
- **Lead**: once acquired, ``is_leader`` is true and ``on_started_leading()`` runs as a task.
- **Renew**: every ``retry_period``, write a new ``renewTime``. If no renewal succeeds for
  ``renew_deadline`` seconds, leadership is lost: the leading task is cancelled,
  ``on_stopped_leading()`` is called and :meth:`LeaderElector.run` returns. (client-go stops the
  process at that point; callers that want to stand again call ``run`` again.)
  ``renew_deadline < lease_duration`` is what makes this safe: we give up before any other
  candidate may consider the lease expired.
- **Release**: when ``run`` is cancelled, or ``on_started_leading`` returns or raises, the leader
  writes ``holderIdentity: ""`` and ``leaseDurationSeconds: 1`` so another candidate takes over
  at its next retry instead of waiting out the lease; then ``on_stopped_leading()`` runs.

Timing uses the :class:`~kybernetes.client.workqueue.Clock` given (a FakeClock in tests); the
MicroTime fields are wall-clock UTC.

Observability, as client-go's: ``leader_election_master_status{name=<lease name>}`` is 1 while this
process leads and 0 once it stopped; :class:`HealthzAdaptor` is the ``leaderElection`` health check
(failing only for a leader that has not renewed for ``lease_duration`` + its tolerance, 20 s as the
scheduler and controller manager use).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import Gauge

from kybernetes import errors
from kybernetes.aiorun import wait_for
from kybernetes.api.timeutil import format_micro
from kybernetes.client.rest import Client
from kybernetes.client.workqueue import Clock, RealClock
from kybernetes.metrics import own_series

log = logging.getLogger(__name__)

JITTER = 1.2
"""Acquire attempts wait ``retry_period * (1 + random() * (JITTER - 1))`` (client-go's JitterFactor 1.2)."""

LEASE_API = "coordination.k8s.io/v1"

MASTER_STATUS = Gauge(
    "leader_election_master_status",
    "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. "
    "'name' is the string used to identify the lease. Please make sure to group by name.",
    ["name"])


def _record(lease: dict[str, Any]) -> dict[str, Any]:
    spec = lease.get("spec") or {}
    return {k: spec.get(k) for k in ("holderIdentity", "leaseDurationSeconds", "acquireTime", "renewTime",
                                      "leaseTransitions")}


class LeaderElector:
    """One candidate in an election (see the module doc for the protocol and its guarantees)."""

    def __init__(self, client: Client, *, lease_name: str, namespace: str = "kube-system", identity: str,
                 lease_duration: float = 15.0, renew_deadline: float = 10.0, retry_period: float = 2.0,
                 clock: Clock | None = None) -> None:
        if not identity:
            raise ValueError("identity must not be empty")
        if not lease_duration > renew_deadline > 0:
            raise ValueError("need lease_duration > renew_deadline > 0")
        self.client = client
        self.lease_name = lease_name
        own_series("leader_election_master_status", lease_name)
        self.namespace = namespace
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.clock: Clock = clock or RealClock()
        self.is_leader = False
        self._observed: dict[str, Any] | None = None
        self._observed_time = 0.0
        self._lease: dict[str, Any] | None = None
        self.attempts = 0
        """Acquire or renew attempts finished so far, won or not (one can wait on it)."""

    @property
    def observed_holder(self) -> str:
        """The holder in the last record this candidate saw ("" if none)."""
        return str((self._observed or {}).get("holderIdentity") or "")

    async def run(self, on_started_leading: Callable[[], Awaitable[None]],
                  on_stopped_leading: Callable[[], None] | None = None) -> None:
        """Campaign, lead, and return when leadership is lost or the leading callback ends."""
        await self._acquire()
        self.is_leader = True
        MASTER_STATUS.labels(self.lease_name).set(1)
        log.info("%s: became leader of %s/%s", self.identity, self.namespace, self.lease_name)
        leading = asyncio.create_task(self._lead(on_started_leading), name=f"leading:{self.lease_name}")
        release = True
        try:
            release = await self._renew_until_lost(leading)
        finally:
            self.is_leader = False
            MASTER_STATUS.labels(self.lease_name).set(0)
            leading.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await leading
            if release:
                # Shield: a cancelled run() must still hand the lease over.
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._release())
            if on_stopped_leading is not None:
                try:
                    on_stopped_leading()
                except Exception:
                    log.exception("%s: on_stopped_leading failed", self.identity)

    async def _lead(self, on_started_leading: Callable[[], Awaitable[None]]) -> None:
        try:
            await on_started_leading()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: on_started_leading failed", self.identity)

    async def _acquire(self) -> None:
        while True:
            if await self._try_acquire_or_renew():
                return
            await self.clock.sleep(self.retry_period * (1 + random.random() * (JITTER - 1)))

    async def _renew_until_lost(self, leading: asyncio.Task[None]) -> bool:
        """Renew until a renewal misses the deadline (False: lost) or ``leading`` ends (True)."""
        while True:
            await self._sleep_or_done(self.retry_period, leading)
            if leading.done():
                return True
            deadline = self.clock.now() + self.renew_deadline
            renewed = False
            while not renewed:
                remaining = deadline - self.clock.now()
                if remaining <= 0:
                    break
                try:
                    renewed = await wait_for(self._try_acquire_or_renew(), timeout=remaining)
                except TimeoutError:
                    renewed = False
                if not renewed:
                    if self.clock.now() + self.retry_period >= deadline:
                        # Another attempt could not finish in time either.
                        break
                    await self._sleep_or_done(self.retry_period, leading)
                    if leading.done():
                        return True
            if not renewed:
                log.warning("%s: failed to renew lease %s/%s within %.1fs; stopping leading",
                            self.identity, self.namespace, self.lease_name, self.renew_deadline)
                # Someone else may hold it now; writing an empty holder could clobber theirs.
                return False

    async def _sleep_or_done(self, seconds: float, task: asyncio.Task[None]) -> None:
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        try:
            await asyncio.wait({sleeper, task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not sleeper.done():
                sleeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sleeper

    def _desired(self, now: str, old: dict[str, Any] | None) -> dict[str, Any]:
        rec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, math.ceil(self.lease_duration)),
            "acquireTime": now,
            "renewTime": now,
            "leaseTransitions": 0,
        }
        if old is not None:
            if old.get("holderIdentity") == self.identity:
                rec["acquireTime"] = old.get("acquireTime") or now
                rec["leaseTransitions"] = int(old.get("leaseTransitions") or 0)
            else:
                rec["leaseTransitions"] = int(old.get("leaseTransitions") or 0) + 1
        return rec

    async def _try_acquire_or_renew(self) -> bool:
        try:
            return await self._attempt()
        finally:
            self.attempts += 1

    async def _attempt(self) -> bool:
        now = format_micro()
        try:
            lease = await self.client.get(LEASE_API, "leases", self.lease_name, self.namespace)
        except errors.NotFound:
            rec = self._desired(now, None)
            body = {"apiVersion": LEASE_API, "kind": "Lease",
                    "metadata": {"name": self.lease_name, "namespace": self.namespace}, "spec": rec}
            try:
                self._lease = await self.client.create(LEASE_API, "leases", body, self.namespace)
            except Exception as e:
                log.debug("%s: create lease: %s", self.identity, e)
                return False
            self._observe(rec)
            return True
        except Exception as e:  # any failure is a failed attempt; the loops decide what it means
            log.debug("%s: get lease: %s", self.identity, e)
            return False

        old = _record(lease)
        if old != self._observed:
            self._observe(old)
        holder = old.get("holderIdentity") or ""
        duration = float(old.get("leaseDurationSeconds") or 0)
        if holder and holder != self.identity and self._observed_time + duration > self.clock.now():
            return False  # held by someone else and not expired (by our observation)

        rec = self._desired(now, old)
        updated = {**lease, "spec": {**(lease.get("spec") or {}), **rec}}
        try:
            self._lease = await self.client.update(LEASE_API, "leases", updated, self.namespace)
        except Exception as e:
            log.debug("%s: update lease: %s", self.identity, e)
            return False
        self._observe(rec)
        return True

    def check(self, max_tolerable_expired_lease: float) -> None:
        """client-go's ``Check``: raises if this leader has not renewed for longer than
        ``lease_duration + max_tolerable_expired_lease`` (a follower is always healthy)."""
        if self.is_leader and self.clock.now() - self._observed_time > self.lease_duration + max_tolerable_expired_lease:
            raise RuntimeError(f"failed election to renew leadership on lease {self.lease_name}")

    def _observe(self, rec: dict[str, Any]) -> None:
        self._observed = dict(rec)
        self._observed_time = self.clock.now()

    async def _release(self) -> None:
        """Hand the lease over at once (only if we still hold it: the PUT is compare-and-swap)."""
        lease = self._lease
        if lease is None or _record(lease).get("holderIdentity") != self.identity:
            return
        now = format_micro()
        spec = {**(lease.get("spec") or {}), "holderIdentity": "", "leaseDurationSeconds": 1,
                "acquireTime": now, "renewTime": now}
        try:
            self._lease = await wait_for(
                self.client.update(LEASE_API, "leases", {**lease, "spec": spec}, self.namespace),
                timeout=max(1.0, self.renew_deadline))
            self._observe(_record(self._lease))
            log.info("%s: released lease %s/%s", self.identity, self.namespace, self.lease_name)
        except Exception as e:
            log.info("%s: could not release lease: %s", self.identity, e)


class HealthzAdaptor:
    """The ``leaderElection`` health check of a process that may run an election (client-go's
    ``HealthzAdaptor``): healthy until ``elector`` is set, then as :meth:`LeaderElector.check` says."""

    name = "leaderElection"

    def __init__(self, timeout: float = 20.0) -> None:
        self.timeout = timeout
        self.elector: LeaderElector | None = None

    async def check(self) -> None:
        if self.elector is not None:
            self.elector.check(self.timeout)
