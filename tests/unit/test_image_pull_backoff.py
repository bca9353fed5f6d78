"""ErrImagePull -> ImagePullBackOff timings against Kubernetes' (flowcontrol.Backoff(10s, 300s) keyed
by pod UID and image): 10 s doubling to 5 min, reset after 10 min without a failure, on a fake clock."""

from __future__ import annotations

from typing import Any

import pytest

from kybernetes.kubelet.cri import CRIError
from kybernetes.kubelet.images import ImageManager, ImagePullError
from kybernetes.kubelet.podworkers import Backoff

IMAGE = "127.0.0.1:1/missing:1"
POD = {"metadata": {"uid": "u1", "namespace": "default", "name": "p"}, "spec": {}}


class UnreachableRegistry:
    def __init__(self) -> None:
        self.pulls = 0

    async def image_status(self, image: str) -> None:
        return None

    async def pull_image(self, *args: Any, **kwargs: Any) -> str:
        self.pulls += 1
        raise CRIError("PullImage", None, "dial tcp 127.0.0.1:1: connection refused")


async def attempt(images: ImageManager) -> ImagePullError:
    with pytest.raises(ImagePullError) as info:
        await images.ensure(POD, {"image": IMAGE, "imagePullPolicy": "IfNotPresent"})
    return info.value


async def test_back_off_doubles_from_10s_to_5min_and_resets() -> None:
    now = [1_000_000.0]
    cri = UnreachableRegistry()
    events: list[tuple[str, str]] = []
    images = ImageManager(cri, get_secret=lambda ns, n: None, record=lambda p, t, r, m: events.append((r, m)),  # type: ignore[arg-type]
                          backoff=Backoff(10.0, 300.0, clock=lambda: now[0]))
    delays = []
    for _ in range(7):
        err = await attempt(images)
        assert err.reason == "ErrImagePull"
        delays.append(err.retry_after)
        now[0] += 1
        backing_off = await attempt(images)  # a sync a second later does not pull
        assert (backing_off.reason, backing_off.message) == ("ImagePullBackOff", f'Back-off pulling image "{IMAGE}"')
        assert backing_off.retry_after == pytest.approx(err.retry_after - 1)
        now[0] += err.retry_after - 1  # the back-off has just expired
    assert delays == [10, 20, 40, 80, 160, 300, 300]
    assert cri.pulls == 7
    assert ("BackOff", f'Back-off pulling image "{IMAGE}"') in events
    now[0] += 601  # more than twice the maximum since the last failure: back to the start
    assert (await attempt(images)).retry_after == 10
