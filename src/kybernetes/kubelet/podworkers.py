"""Pod workers, the relister that wakes them, and the back-off bookkeeping they share.

One worker (an asyncio task) per pod UID, as Kubernetes' pod_workers.go: syncs of one pod never
overlap, syncs of different pods run concurrently. A worker sleeps until it is woken (`update`:
the pod changed in the API, a container changed state in the runtime, a probe result flipped) or
its timer fires; the sync function returns when it wants to run again (a back-off expiring, a
periodic resync) or `None` when the pod is finished and the worker can go. Wake-ups that arrive
during a sync are coalesced into one more sync right after it, so no change is lost and a burst of
events costs one sync.

`Relister` is the PLEG: every `interval` seconds it lists sandboxes and containers (two CRI calls
for the whole node), compares each one's state with the previous listing and wakes the worker of
every pod whose runtime state changed — how a container that exited on its own is noticed within
a second.

`Backoff` is client-go's flowcontrol.Backoff: per key a delay that starts at `initial`, doubles on
each `next` up to `maximum`, and is forgotten when the last event is older than twice the maximum
(a container that ran ten minutes starts again from 10 s). Image pulls and container restarts both
use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from kybernetes.aiorun import wait_for
from kybernetes.kubelet import metrics
from kybernetes.kubelet.cri import CRIClient, CRIError, api
from kybernetes.kubelet.runtime import LABEL_POD_UID

log = logging.getLogger(__name__)

SyncFn = Callable[[str], Awaitable[float | None]]


@dataclass
class _Entry:
    delay: float
    last: float


class Backoff:
    """Per-key exponential back-off (see the module doc). Times are `clock()` seconds."""

    def __init__(self, initial: float = 10.0, maximum: float = 300.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.initial = initial
        self.maximum = maximum
        self.clock = clock
        self._entries: dict[str, _Entry] = {}

    def next(self, key: str, event_time: float) -> float:
        entry = self._entries.get(key)
        if entry is None or event_time - entry.last > 2 * self.maximum:
            entry = self._entries[key] = _Entry(self.initial, event_time)
        else:
            entry.delay = min(entry.delay * 2, self.maximum)
        entry.last = event_time
        return entry.delay

    def delay(self, key: str) -> float:
        entry = self._entries.get(key)
        return entry.delay if entry else 0.0

    def in_backoff_since(self, key: str, event_time: float) -> float:
        """Seconds of back-off left, counted from `event_time` (0: not in back-off)."""
        entry = self._entries.get(key)
        if entry is None or event_time - entry.last > 2 * self.maximum:
            return 0.0
        return max(0.0, entry.delay - (self.clock() - event_time))

    def in_backoff_since_update(self, key: str) -> float:
        entry = self._entries.get(key)
        if entry is None:
            return 0.0
        return max(0.0, entry.delay - (self.clock() - entry.last))

    def forget_prefix(self, prefix: str) -> None:
        for key in [k for k in self._entries if k.startswith(prefix)]:
            del self._entries[key]


class _Worker:
    def __init__(self) -> None:
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None


class PodWorkers:
    """One serialised sync loop per pod UID (see the module doc)."""

    def __init__(self, sync: SyncFn, *, error_delay: float = 2.0) -> None:
        self.sync = sync
        self.error_delay = error_delay
        self._workers: dict[str, _Worker] = {}
        self._stopping = False

    def update(self, uid: str) -> None:
        """Wake (or start) the worker of `uid`."""
        if self._stopping:
            return
        worker = self._workers.get(uid)
        if worker is None or worker.task is None or worker.task.done():
            worker = self._workers[uid] = _Worker()
            worker.task = asyncio.get_running_loop().create_task(self._run(uid, worker), name=f"pod-worker:{uid}")
        worker.wake.set()

    def uids(self) -> list[str]:
        return [uid for uid, w in self._workers.items() if w.task is not None and not w.task.done()]

    def has(self, uid: str) -> bool:
        return uid in self.uids()

    async def _run(self, uid: str, worker: _Worker) -> None:
        delay: float | None = 0.0
        while True:
            if delay is not None and delay > 0:
                with contextlib.suppress(TimeoutError):
                    await wait_for(worker.wake.wait(), delay)
            else:
                await worker.wake.wait()
            worker.wake.clear()
            try:
                delay = await self.sync(uid)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("syncing pod %s failed", uid)
                delay = self.error_delay
                continue
            if delay is None:
                if not worker.wake.is_set():
                    break
                delay = 0.0
            elif delay <= 0:
                worker.wake.set()
        if self._workers.get(uid) is worker:
            del self._workers[uid]

    async def stop(self) -> None:
        self._stopping = True
        tasks = [w.task for w in self._workers.values() if w.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._workers.clear()


class Relister:
    """The PLEG: notices runtime state changes by listing (see the module doc)."""

    def __init__(self, cri: CRIClient, on_change: Callable[[str], None], interval: float = 1.0) -> None:
        self.cri = cri
        self.on_change = on_change
        self.interval = interval
        self._states: dict[str, tuple[str, int]] = {}  # sandbox/container id -> (pod uid, state)
        self.healthy_at = 0.0
        self._last_relist = 0.0

    async def relist(self) -> set[str]:
        """One listing; wakes and returns the pods whose runtime state changed."""
        started = time.monotonic()
        if self._last_relist:
            metrics.PLEG_RELIST_INTERVAL.observe(started - self._last_relist)
        self._last_relist = started
        sandboxes = await self.cri.list_pod_sandbox()
        containers = await self.cri.list_containers()
        _count_running(sandboxes, containers)
        states: dict[str, tuple[str, int]] = {}
        for s in sandboxes:
            states["s" + s.id] = (s.labels.get(LABEL_POD_UID, ""), int(s.state))
        for c in containers:
            states["c" + c.id] = (c.labels.get(LABEL_POD_UID, ""), int(c.state))
        changed: set[str] = set()
        for key in states.keys() | self._states.keys():
            if states.get(key) != self._states.get(key):
                uid = (states.get(key) or self._states[key])[0]
                if uid:
                    changed.add(uid)
        self._states = states
        self.healthy_at = time.monotonic()
        metrics.PLEG_RELIST_DURATION.observe(self.healthy_at - started)
        metrics.PLEG_LAST_SEEN.set(time.time())
        for uid in changed:
            self.on_change(uid)
        return changed

    def runtime_uids(self) -> set[str]:
        """Pods the last listing found in the runtime."""
        return {uid for uid, _ in self._states.values() if uid}

    async def run(self) -> None:
        while True:
            try:
                await self.relist()
            except asyncio.CancelledError:
                raise
            except CRIError as err:
                log.warning("relist failed: %s", err)
            except Exception:
                log.exception("relist failed")
            await asyncio.sleep(self.interval)



def _count_running(sandboxes: list[Any], containers: list[Any]) -> None:
    """kubelet_running_pods and kubelet_running_containers from one listing (as the PLEG sets them)."""
    metrics.RUNNING_PODS.set(sum(1 for s in sandboxes if s.state == api.SANDBOX_READY))
    counts = dict.fromkeys(metrics.CONTAINER_STATES.values(), 0)
    for c in containers:
        counts[metrics.CONTAINER_STATES.get(int(c.state), "unknown")] += 1
    for state, n in counts.items():
        metrics.RUNNING_CONTAINERS.labels(state).set(n)
