"""Leaked containerd shims: found and stopped (containerd#6860, not fixed in the 1.6 this node runs).

containerd starts a ``containerd-shim-runc-v2`` for a sandbox (or a container) and then asks it to
create the task. When containerd dies between the two (killed with -9, say, while a pod starts),
the shim lives on with no task; the restarted containerd re-attaches to it, and when the kubelet
later removes the sandbox, containerd deletes its record but never tells that shim to exit. The
shim then runs forever, serving nothing (containerd 1.7 reaps it at start-up; 1.6 does not).

:class:`ShimReaper` is the kubelet's side of the fix, for a containerd the kubelet runs itself: a
shim of this containerd (found by its ``-address``) whose ``-id`` is no sandbox and no container
the runtime lists over CRI, in every sweep over at least :data:`GRACE` seconds, is killed, its
bundle's mounts are unmounted and its socket removed. The grace covers the moment when a shim is
already running but CRI does not list its sandbox yet (RunPodSandbox adds it once the task has
started) and the moment when a removed sandbox's shim is still exiting. A node that drains on exit
sweeps once more with no grace after every pod is gone (nothing can be starting then), before it
stops containerd, so that no leaked shim outlives the node.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from kybernetes.kubelet.containerd import cleanup_mounts, kill_pids, process_alive, shim_argvs

if TYPE_CHECKING:
    from kybernetes.kubelet.cri.client import CRIClient

log = logging.getLogger(__name__)

GRACE = 30.0
INTERVAL = 10.0
NAMESPACE = "k8s.io"


def shims_of(socket: str) -> dict[int, str]:
    """pid -> ``-id`` of every shim serving CRI's namespace (``-namespace k8s.io``) of the containerd
    at ``socket`` (``-address SOCKET``): what CRI does not list in another namespace (``ctr run``
    by hand) is not CRI's to judge."""
    out: dict[int, str] = {}
    for pid, argv in shim_argvs(socket):
        if _flag(argv, b"-namespace") != NAMESPACE.encode():
            continue
        sid = _flag(argv, b"-id")
        if sid:
            out[pid] = sid.decode(errors="replace")
    return out


async def runtime_ids(cri: CRIClient) -> set[str]:
    """The ids of every sandbox and container the runtime lists, in any state."""
    return {s.id for s in await cri.list_pod_sandbox()} | {c.id for c in await cri.list_containers()}


def _flag(argv: list[bytes], name: bytes) -> bytes:
    at = argv.index(name) + 1 if name in argv else len(argv)
    return argv[at] if at < len(argv) else b""


class ShimReaper:
    """Stops the shims of one containerd that serve nothing the runtime knows (see the module)."""

    def __init__(self, socket: str, state_dir: Path, known_ids: Callable[[], Awaitable[set[str]]], *,
                 grace: float = GRACE, clock: Callable[[], float] = time.monotonic) -> None:
        self.socket = socket
        self.bundles = state_dir / "io.containerd.runtime.v2.task" / NAMESPACE
        self.known_ids = known_ids
        self.grace = grace
        self.clock = clock
        self._unknown_since: dict[int, float] = {}

    async def run(self, interval: float = INTERVAL) -> None:
        """Sweep every ``interval`` seconds until cancelled; a failed sweep (containerd restarting)
        is logged and the next one tries again."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep()
            except Exception as err:  # the runtime may be down for a moment; never stop sweeping
                log.debug("shim sweep failed: %s", err)

    async def sweep(self, grace: float | None = None) -> list[str]:
        """One look: returns the ids of the shims it stopped (gone by then, unless one outlived 5 s
        after SIGKILL). ``grace`` overrides the reaper's for this sweep."""
        grace = self.grace if grace is None else grace
        shims = shims_of(self.socket)
        if not shims:
            self._unknown_since.clear()
            return []
        known = await self.known_ids()
        # Listed after the shims: a shim that started meanwhile is not judged on an older list.
        now = self.clock()
        unknown = {pid: sid for pid, sid in shims.items() if sid not in known}
        self._unknown_since = {pid: self._unknown_since.get(pid, now) for pid in unknown}
        leaked = {pid: sid for pid, sid in unknown.items() if now - self._unknown_since[pid] >= grace}
        for pid, sid in leaked.items():
            log.warning("containerd shim %s (pid %d) serves no sandbox or container of the runtime "
                        "(leaked when containerd died while starting it): stopping it", sid, pid)
            self._unknown_since.pop(pid, None)
        kill_pids(leaked)
        deadline = time.monotonic() + 5.0
        while any(process_alive(pid) for pid in leaked) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)  # SIGKILL takes effect asynchronously; its mounts go with it
        for sid in leaked.values():
            self._clean_bundle(sid)
        return sorted(leaked.values())

    def _clean_bundle(self, sid: str) -> None:
        bundle = self.bundles / sid
        cleanup_mounts(bundle)
        try:
            address = (bundle / "address").read_text().strip()
        except OSError:
            return
        if address.startswith("unix://"):
            try:
                os.unlink(address.removeprefix("unix://"))
            except OSError:
                pass
