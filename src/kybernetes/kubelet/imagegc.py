"""Image garbage collection: the kubelet's image GC manager (pkg/kubelet/images/image_gc_manager.go).

Guarantees of one :meth:`ImageGCManager.garbage_collect` pass (every 5 minutes in the kubelet):

- every image the runtime lists is recorded with when this kubelet first saw it and when a
  container (running or not: any the runtime still has) last used it;
- never removed: an image a container of the runtime uses, an image the runtime pins, and this
  node's own built-in images (`protected`, by ID or name: pause, busybox, the system image; no
  registry has them, so removing one could not be undone by a pull; containerd 1.7 pins the
  sandbox image itself, 1.6 does not);
- with imageMaximumGCAge set, once that long has passed since GC began, images unused for longer
  than it are removed;
- when the image filesystem's usage (100 - available*100/capacity, integer percent) is at or over
  imageGCHighThresholdPercent, images are removed least recently used first (ties: first seen
  first), skipping those younger than imageMinimumGCAge, until enough is freed to reach
  imageGCLowThresholdPercent; if the eligible images are not enough, a `FreeDiskSpaceFailed`
  Warning on the Node says so, in the kubelet's words.

The filesystem is the one CRI ImageFsInfo names (statvfs of its mount point).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from kybernetes.kubelet.cri import CRIClient, CRIError
from kybernetes.kubelet.metrics import IMAGE_GARBAGE_COLLECTED

log = logging.getLogger(__name__)

NodeRecorder = Callable[[str, str, str], None]  # (type, reason, message) on the Node


@dataclass
class ImageGCPolicy:
    """The thresholds, validated with the kubelet's messages (ValueError)."""

    high_threshold_percent: int = 85
    low_threshold_percent: int = 80
    min_age: float = 120.0
    max_age: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.high_threshold_percent <= 100:
            raise ValueError(f"invalid HighThresholdPercent {self.high_threshold_percent}, must be in range [0-100]")
        if not 0 <= self.low_threshold_percent <= 100:
            raise ValueError(f"invalid LowThresholdPercent {self.low_threshold_percent}, must be in range [0-100]")
        if self.low_threshold_percent > self.high_threshold_percent:
            raise ValueError(f"LowThresholdPercent {self.low_threshold_percent} can not be higher than "
                             f"HighThresholdPercent {self.high_threshold_percent}")


@dataclass
class _Record:
    first_detected: float
    last_used: float = 0.0
    size: int = 0
    pinned: bool = False
    protected: bool = False


class ImageGCManager:
    """Records image use and frees image space by the policy (module doc)."""

    def __init__(self, cri: CRIClient, policy: ImageGCPolicy, *, record_node: NodeRecorder,
                 protected: Callable[[], set[str]] = set, fs_stats: Callable[[], tuple[int, int]] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        """``protected``: image IDs and names (repo tags) never removed; ``fs_stats``: (capacity, available) bytes of the
        image filesystem, by default from CRI ImageFsInfo and statvfs."""
        self.cri = cri
        self.policy = policy
        self.record_node = record_node
        self.protected = protected
        self.fs_stats = fs_stats
        self.clock = clock
        self.records: dict[str, _Record] = {}
        self._lock = asyncio.Lock()

    # ---- bookkeeping ----

    async def detect_images(self, detect_time: float) -> set[str]:
        """Updates the records from the runtime; returns the IDs of the images containers use."""
        images = await self.cri.list_images()
        protected = self.protected()
        in_use: set[str] = set()
        for container in await self.cri.list_containers():
            # image_ref is the image ID; the spec too when the kubelet created it from the ID.
            in_use.update(ref for ref in (container.image_ref, container.image.image) if ref.startswith("sha256:"))
        now = self.clock()
        current = set()
        for image in images:
            current.add(image.id)
            record = self.records.setdefault(image.id, _Record(first_detected=detect_time))
            if image.id in in_use:
                record.last_used = now
            record.size = int(image.size)
            record.pinned = bool(image.pinned)
            record.protected = image.id in protected or any(tag in protected for tag in image.repo_tags)
        for gone in set(self.records) - current:
            del self.records[gone]
        return in_use

    async def images_in_eviction_order(self, free_time: float) -> list[tuple[str, _Record]]:
        """Unused, unpinned, unprotected images, least recently used (then first seen) first."""
        in_use = await self.detect_images(free_time)
        candidates = [(image_id, record) for image_id, record in self.records.items()
                      if image_id not in in_use and not record.pinned and not record.protected]
        candidates.sort(key=lambda item: (item[1].last_used, item[1].first_detected))
        return candidates

    # ---- collection ----

    async def garbage_collect(self, began_gc: float) -> None:
        """One pass (module doc); raises what the kubelet reports as an image GC failure."""
        async with self._lock:
            free_time = self.clock()
            images = await self.images_in_eviction_order(free_time)
            images = await self._free_old_images(images, free_time, began_gc)
            capacity, available = await self._fs_stats()
            available = min(available, capacity)
            if capacity == 0:
                message = "invalid capacity 0 on image filesystem"
                self.record_node("Warning", "InvalidDiskCapacity", message)
                raise RuntimeError(message)
            usage = 100 - available * 100 // capacity
            if usage < self.policy.high_threshold_percent:
                return
            to_free = capacity * (100 - self.policy.low_threshold_percent) // 100 - available
            log.info("disk usage on image filesystem is %d%%, over the high threshold (%d%%): freeing %d bytes "
                     "down to the low threshold (%d%%)", usage, self.policy.high_threshold_percent, to_free,
                     self.policy.low_threshold_percent)
            freed = await self._free_space(to_free, free_time, images)
            if freed < to_free:
                message = (f"Failed to garbage collect required amount of images. Attempted to free {to_free} bytes, "
                           f"but only found {freed} bytes eligible to free.")
                self.record_node("Warning", "FreeDiskSpaceFailed", message)
                raise RuntimeError(message)

    async def _free_old_images(self, images: list[tuple[str, _Record]], free_time: float,
                               began_gc: float) -> list[tuple[str, _Record]]:
        max_age = self.policy.max_age
        if max_age == 0 or free_time - began_gc <= max_age:  # not before max_age since the kubelet started
            return images
        remaining = []
        for image_id, record in images:
            if free_time - record.last_used > max_age:
                with contextlib.suppress(CRIError):
                    await self._remove(image_id, record, "age")
                    continue
            remaining.append((image_id, record))
        return remaining

    async def _free_space(self, to_free: int, free_time: float, images: list[tuple[str, _Record]]) -> int:
        freed = 0
        errors = []
        for image_id, record in images:
            if record.last_used >= free_time:
                continue
            if free_time - record.first_detected < self.policy.min_age:
                continue  # maybe just pulled, for a container about to start
            try:
                await self._remove(image_id, record, "space")
            except CRIError as err:
                errors.append(str(err))
                continue
            freed += record.size
            if freed >= to_free:
                break
        if errors:
            raise RuntimeError(f"wanted to free {to_free} bytes, but freed {freed} bytes space with errors in "
                               f"image deletion: [{', '.join(errors)}]")
        return freed

    async def _remove(self, image_id: str, record: _Record, reason: str) -> None:
        log.info("removing image %s to free %d bytes", image_id, record.size)
        await self.cri.remove_image(image_id)
        self.records.pop(image_id, None)
        IMAGE_GARBAGE_COLLECTED.labels(reason).inc()

    async def _fs_stats(self) -> tuple[int, int]:
        if self.fs_stats is not None:
            return self.fs_stats()
        info = await self.cri.image_fs_info()
        mountpoint = info.image_filesystems[0].fs_id.mountpoint if info.image_filesystems else ""
        if not mountpoint:
            return 0, 0
        st = await asyncio.to_thread(os.statvfs, mountpoint)
        return st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize

    # ---- the loop ----

    async def run(self, period: float, on_error: Callable[[str], None]) -> None:
        """Collects now and then every `period` seconds, as the kubelet's wait.Until; a failure
        twice in a row is reported through `on_error` (the kubelet's ImageGCFailed event: the
        first may be stats not ready yet)."""
        began = self.clock()
        failed_before = False
        while True:
            try:
                await self.garbage_collect(began)
                failed_before = False
            except asyncio.CancelledError:
                raise
            except Exception as err:
                if failed_before:
                    on_error(str(err))
                    log.error("image garbage collection failed multiple times in a row: %s", err)
                else:
                    log.warning("image garbage collection failed once (stats may not be ready yet): %s", err)
                failed_before = True
            await asyncio.sleep(period)


__all__ = ["ImageGCManager", "ImageGCPolicy"]
