"""Container log rotation: the kubelet's container log manager (pkg/kubelet/logs).

Guarantees, every `monitor_interval` seconds (containerLogMonitorInterval, 10 s), for each
*running* container of the runtime (exited ones write nothing more):

- its current log (the CRI status' ``log_path``, e.g. ``.../main/0.log``) is reopened through CRI
  ``ReopenContainerLog`` when it has gone missing;
- once it is at least `max_size` bytes (containerLogMaxSize, 10Mi), it is rotated as the kubelet
  does it: leftover ``*.tmp`` files and uncompressed copies of already compressed files are removed,
  the oldest rotated files are removed so that at most ``max_files - 2`` remain, those left are
  gzip-compressed (``0.log.20240102-150405.gz``), then the current file is renamed to
  ``0.log.<UTC timestamp>`` and the runtime is told to reopen it (a failed reopen renames it back).
  So a container has at most `max_files` files: the current, the newest rotated (uncompressed,
  for log shippers still reading it) and ``max_files - 2`` compressed ones.

Rotated names never match ``<n>.log``, so `kubectl logs` (:meth:`Kubelet.log_path`) reads the
current file and ``--previous`` the previous instance's, whatever was rotated.

Logs do not outlive what they belong to: a dead container the kubelet prunes loses its log and
rotations first (`remove_container_logs`), and a pod's log directory goes once the pod exists
neither in the API, as a static pod, nor in the runtime (`remove_orphaned_pod_log_dirs`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from kybernetes.api.quantity import parse_quantity
from kybernetes.kubelet.cri import CRIClient, CRIError, api

log = logging.getLogger(__name__)

TIMESTAMP_FORMAT = "%Y%m%d-%H%M%S"  # Go's "20060102-150405"
COMPRESS_SUFFIX = ".gz"
TMP_SUFFIX = ".tmp"


class LogRotationPolicy:
    """containerLogMaxSize (a quantity, e.g. "10Mi") and containerLogMaxFiles, validated as the kubelet does."""

    def __init__(self, max_size: str | int, max_files: int) -> None:
        try:
            size = int(parse_quantity(str(max_size)))
        except ValueError as err:
            raise ValueError(f'failed to parse container log max size "{max_size}": {err}') from None
        if max_files <= 1:
            raise ValueError(f"invalid MaxFiles {max_files}, must be > 1")
        self.max_size = size
        self.max_files = max_files


class ContainerLogManager:
    """Rotates the logs of the runtime's running containers (module doc)."""

    def __init__(self, cri: CRIClient, policy: LogRotationPolicy, *, monitor_interval: float = 10.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.cri = cri
        self.policy = policy
        self.monitor_interval = monitor_interval
        self.clock = clock
        self._lock = asyncio.Lock()

    async def run(self) -> None:
        """Rotates every `monitor_interval` seconds until cancelled; a failed pass is logged."""
        while True:
            await asyncio.sleep(self.monitor_interval)
            try:
                await self.rotate_logs()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                log.warning("container log rotation: %s", err)

    async def rotate_logs(self) -> None:
        """One pass over the running containers."""
        async with self._lock:
            for container in await self.cri.list_containers():
                if container.state != api.CONTAINER_RUNNING:
                    continue
                try:
                    await self.rotate_if_needed(container.id)
                except (CRIError, OSError) as err:
                    log.warning("log rotation of container %s: %s", container.id, err)

    async def rotate_if_needed(self, container_id: str) -> None:
        """Reopens a missing log of `container_id`, rotates one that reached the maximum size."""
        path = Path((await self.cri.container_status(container_id)).status.log_path)
        if not str(path) or str(path) == ".":
            return
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            await self.cri.reopen_container_log(container_id)
            size = path.stat().st_size
        if size < self.policy.max_size:
            return
        await self.rotate(container_id, path)

    async def rotate(self, container_id: str, path: Path) -> None:
        """Rotates `path`, the current log of running container `container_id` (module doc)."""
        rotated = sorted(str(p) for p in path.parent.glob(path.name + ".*"))
        await asyncio.to_thread(self._prepare_rotated, rotated)
        # Local time, as Go's time.Now().Format.
        target = Path(f"{path}.{time.strftime(TIMESTAMP_FORMAT, time.localtime(self.clock()))}")
        os.rename(path, target)
        try:
            await self.cri.reopen_container_log(container_id)
        except CRIError:
            # Back where it was, to be rotated on a later pass (as the kubelet does).
            with contextlib.suppress(OSError):
                os.rename(target, path)
            raise

    def _prepare_rotated(self, rotated: list[str]) -> list[str]:
        """cleanupUnusedLogs, removeExcessLogs and compression of what remains; returns the kept files."""
        names = set(rotated)
        in_use = []
        for name in rotated:
            unused = name.endswith(TMP_SUFFIX) or (
                not name.endswith(COMPRESS_SUFFIX) and name + COMPRESS_SUFFIX in names)
            if unused:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(name)
            else:
                in_use.append(name)
        in_use.sort()
        excess = max(0, len(in_use) - max(0, self.policy.max_files - 2))
        for name in in_use[:excess]:  # oldest first, not to break a `kubectl logs` reading a newer one
            with contextlib.suppress(FileNotFoundError):
                os.remove(name)
        kept = in_use[excess:]
        out = []
        for name in kept:
            if not name.endswith(COMPRESS_SUFFIX):
                compress(name)
                name += COMPRESS_SUFFIX
            out.append(name)
        return out


async def remove_container_logs(cri: CRIClient, container_id: str) -> None:
    """The log manager's Clean: removes a container's log and its rotations (before the container
    itself is removed: its CRI status names the file)."""
    path = (await cri.container_status(container_id)).status.log_path
    if path:
        for name in Path(path).parent.glob(Path(path).name + "*"):
            with contextlib.suppress(FileNotFoundError):
                name.unlink()


def remove_orphaned_pod_log_dirs(log_root: Path, live_uids: set[str]) -> list[Path]:
    """Removes the log directories (NAMESPACE_NAME_UID) of pods that exist nowhere any more, as the
    kubelet's container GC evicts pod log directories; returns them."""
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for directory in Path(log_root).iterdir():
            uid = directory.name.rpartition("_")[2]
            if directory.is_dir() and uid and uid not in live_uids:
                shutil.rmtree(directory, ignore_errors=True)
                removed.append(directory)
    return removed


def compress(name: str) -> None:
    """`name` -> `name`.gz through a temporary file; the original is removed once the archive is complete."""
    tmp = name + TMP_SUFFIX
    mode = os.stat(name).st_mode & 0o777
    try:
        with open(name, "rb") as src, open(tmp, "wb") as raw:
            os.chmod(tmp, mode)
            with gzip.GzipFile(fileobj=raw, mode="wb") as gz:
                shutil.copyfileobj(src, gz)
        os.rename(tmp, name + COMPRESS_SUFFIX)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
    os.remove(name)


__all__ = ["ContainerLogManager", "LogRotationPolicy", "compress", "remove_container_logs",
           "remove_orphaned_pod_log_dirs"]
