"""Image garbage collection: the policy's rules on a fake clock and CRI lists (machinery), then
against the real containerd (images of this test only: every other image is `protected`, so the
session's shared runtime keeps its images)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import REGISTRY

from kybernetes.images.importer import import_images
from kybernetes.images.oci import build_busybox_image
from kybernetes.kubelet.cri import CRIClient
from kybernetes.kubelet.imagegc import ImageGCManager, ImageGCPolicy
from tests.node.conftest import NodeRuntime, container_config, remove_sandbox, sandbox_config


class FakeCRI:
    """ListImages/ListContainers/RemoveImage over plain lists (the machinery tests' runtime)."""

    def __init__(self, images: dict[str, int], used: set[str] = frozenset(), pinned: set[str] = frozenset()) -> None:
        self.images, self.used, self.pinned = dict(images), set(used), set(pinned)
        self.removed: list[str] = []

    async def list_images(self) -> list[Any]:
        return [SimpleNamespace(id=i, size=s, pinned=i in self.pinned, repo_tags=[f"docker.io/x/{i[7:]}:1"])
                for i, s in self.images.items()]

    async def list_containers(self) -> list[Any]:
        return [SimpleNamespace(image_ref=i, image=SimpleNamespace(image="")) for i in self.used]

    async def remove_image(self, image_id: str) -> None:
        self.removed.append(image_id)
        del self.images[image_id]


def manager(cri: FakeCRI, clock: list[float], fs: tuple[int, int], events: list[tuple[str, str, str]],
            **policy: Any) -> ImageGCManager:
    return ImageGCManager(cri, ImageGCPolicy(**policy), record_node=lambda *e: events.append(e),  # type: ignore[arg-type]
                          fs_stats=lambda: fs, clock=lambda: clock[0])


def test_policy_validation_wording() -> None:
    with pytest.raises(ValueError, match=r"invalid HighThresholdPercent 101, must be in range \[0-100\]"):
        ImageGCPolicy(high_threshold_percent=101)
    with pytest.raises(ValueError, match="LowThresholdPercent 90 can not be higher than HighThresholdPercent 85"):
        ImageGCPolicy(high_threshold_percent=85, low_threshold_percent=90)


async def test_below_high_threshold_nothing_is_removed() -> None:
    cri, clock, events = FakeCRI({"sha256:a": 10}), [1000.0], []
    gc = manager(cri, clock, (100, 20), events, high_threshold_percent=85, low_threshold_percent=80, min_age=0)
    await gc.garbage_collect(began_gc=0)  # usage 80% < 85%
    assert cri.removed == [] and events == []


async def test_least_recently_used_first_until_the_low_threshold() -> None:
    cri = FakeCRI({"sha256:old": 10, "sha256:mid": 10, "sha256:new": 10, "sha256:busy": 50, "sha256:pin": 50},
                  used={"sha256:old", "sha256:mid", "sha256:new", "sha256:busy"}, pinned={"sha256:pin"})
    clock, events = [1000.0], []
    gc = manager(cri, clock, (100, 10), events, high_threshold_percent=90, low_threshold_percent=80, min_age=60)
    for image in ("sha256:old", "sha256:mid", "sha256:new"):  # each used last at a later time
        await gc.detect_images(0)
        cri.used.discard(image)
        clock[0] += 10
    clock[0] += 100
    before = REGISTRY.get_sample_value("kubelet_image_garbage_collected_total", {"reason": "space"}) or 0
    await gc.garbage_collect(began_gc=0)  # usage 90%: free 100*20% - 10 = 10 bytes
    assert cri.removed == ["sha256:old"]
    assert events == []
    assert REGISTRY.get_sample_value("kubelet_image_garbage_collected_total", {"reason": "space"}) == before + 1


async def test_young_in_use_pinned_and_protected_images_are_never_removed() -> None:
    cri = FakeCRI({"sha256:young": 10, "sha256:busy": 10, "sha256:pin": 10, "sha256:builtin": 10,
                   "sha256:pause": 10}, used={"sha256:busy"}, pinned={"sha256:pin"})
    clock, events = [1000.0], []
    gc = ImageGCManager(cri, ImageGCPolicy(min_age=120), record_node=lambda *e: events.append(e),  # type: ignore[arg-type]
                        fs_stats=lambda: (100, 0), clock=lambda: clock[0],
                        protected=lambda: {"sha256:builtin", "docker.io/x/pause:1"})  # by ID and by name
    await gc.detect_images(clock[0] - 60)  # first seen a minute ago
    with pytest.raises(RuntimeError):
        await gc.garbage_collect(began_gc=0)
    assert cri.removed == []
    assert events == [("Warning", "FreeDiskSpaceFailed", "Failed to garbage collect required amount of images. "
                       "Attempted to free 20 bytes, but only found 0 bytes eligible to free.")]


async def test_maximum_age_removes_unused_images_once_gc_has_run_that_long() -> None:
    cri, clock, events = FakeCRI({"sha256:stale": 10}), [1000.0], []
    gc = manager(cri, clock, (100, 90), events, min_age=0, max_age=300)
    await gc.garbage_collect(began_gc=900)  # GC began only 100 s ago: too early
    assert cri.removed == []
    clock[0] = 1300.0
    await gc.garbage_collect(began_gc=900)
    assert cri.removed == ["sha256:stale"]


@pytest.mark.integration
async def test_real_runtime_removes_unused_image_keeps_used_one(cri: CRIClient, node_runtime: NodeRuntime,
                                                                tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    names = []
    for which in ("unused", "used"):
        name = f"docker.io/kyb-test/gc-{which}:{tag}"
        archive = tmp_path / f"{which}.tar"
        archive.write_bytes(build_busybox_image(name, extra_files={"/which": f"{which}-{tag}".encode()}))
        names += await import_images(node_runtime.socket, [archive], snapshotter=node_runtime.containerd.snapshotter)
    ids = {name: (await cri.image_status(name)).id for name in names}  # type: ignore[union-attr]
    unused_id, used_id = ids[names[0]], ids[names[1]]
    others = {i.id for i in await cri.list_images()} - {unused_id, used_id}
    config = sandbox_config(node_runtime, "imagegc")
    sandbox_id = await cri.run_pod_sandbox(config)
    events: list[tuple[str, str, str]] = []
    try:
        cid = await cri.create_container(sandbox_id, container_config("c", ["sleep", "60"], image=names[1]), config)
        await cri.start_container(cid)
        gc = ImageGCManager(cri, ImageGCPolicy(high_threshold_percent=0, low_threshold_percent=0, min_age=0),
                            record_node=lambda *e: events.append(e), protected=lambda: others)  # type: ignore[arg-type]
        await gc.detect_images(0)
        with pytest.raises(RuntimeError, match="Failed to garbage collect required amount of images"):
            await gc.garbage_collect(began_gc=0)  # low threshold 0%: more than there is to free
        remaining = {i.id for i in await cri.list_images()}
        assert unused_id not in remaining
        assert used_id in remaining and others <= remaining
        assert [e[1] for e in events] == ["FreeDiskSpaceFailed"]
    finally:
        await remove_sandbox(cri, sandbox_id)
        for name in names:
            if await cri.image_status(name) is not None:
                await cri.remove_image(name)


async def test_run_collects_at_once_and_reports_repeated_failures() -> None:
    """As wait.Until: a pass at start, then every period; ImageGCFailed only for a second failure in a row."""
    events: list[tuple[str, str, str]] = []
    failures: list[str] = []
    gc = ImageGCManager(FakeCRI({"sha256:a": 1}), ImageGCPolicy(), record_node=lambda *e: events.append(e),  # type: ignore[arg-type]
                        fs_stats=lambda: (0, 0))
    task = asyncio.create_task(gc.run(3600, failures.append))
    try:
        async with asyncio.timeout(5):
            while not events:
                await asyncio.sleep(0.01)
        assert events == [("Warning", "InvalidDiskCapacity", "invalid capacity 0 on image filesystem")]
        assert failures == []  # once may be stats not ready yet
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    task = asyncio.create_task(gc.run(0.01, failures.append))
    try:
        async with asyncio.timeout(5):
            while not failures:
                await asyncio.sleep(0.01)
        assert failures[0] == "invalid capacity 0 on image filesystem"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
