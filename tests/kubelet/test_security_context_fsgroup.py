"""fsGroup ownership of volumes (kybernetes.kubelet.volume_ownership): the walk itself, the
fsGroupChangePolicy, and the volume manager applying it to a `local` persistent volume once per
pod (against a real API server; as root, since the walk gives files another group)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from kybernetes.client.rest import Client
from kybernetes.kubelet.volume_ownership import set_volume_ownership
from kybernetes.kubelet.volumes import VolumeManager
from tests.kubelet.test_volumes import bound_local_claim, make_pod, prepare_server

__all__ = ["prepare_server"]  # the srv fixture runs it (tests/kubelet/conftest.py)

GROUP = 2345


@pytest.fixture(autouse=True)
def _root() -> None:
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("needs root (files are given another group)")
        pytest.skip("needs root (files are given another group)")


def tree(root: Path) -> dict[str, Path]:
    """A volume's contents: a directory with a private file, a top-level file and a symlink."""
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "secret").write_text("s")
    (root / "file").write_text("f")
    target = root.parent / f"{root.name}-outside"
    target.write_text("o")
    (root / "link").symlink_to(target)
    for path, mode in ((root, 0o700), (root / "sub", 0o700), (root / "sub" / "secret", 0o600),
                       (root / "file", 0o644), (target, 0o600)):
        os.chmod(path, mode)
    return {"root": root, "sub": root / "sub", "secret": root / "sub" / "secret", "file": root / "file",
            "link": root / "link", "outside": target}


def owner(path: Path) -> tuple[int, int]:
    st = os.lstat(path)
    return st.st_gid, stat.S_IMODE(st.st_mode)


def test_walk_gives_the_group_rw_and_setgid_directories(tmp_path: Path) -> None:
    t = tree(tmp_path / "vol")
    assert set_volume_ownership(t["root"], GROUP)
    assert owner(t["root"]) == (GROUP, 0o700 | 0o660 | 0o110 | stat.S_ISGID)
    assert owner(t["sub"]) == (GROUP, 0o770 | stat.S_ISGID)
    assert owner(t["secret"]) == (GROUP, 0o660)
    assert owner(t["file"]) == (GROUP, 0o664)
    assert os.lstat(t["link"]).st_gid == GROUP
    assert owner(t["outside"]) == (0, 0o600)  # a symlink's target is never touched
    assert not set_volume_ownership(t["root"], None)


def test_read_only_volume_gets_read_permission_only(tmp_path: Path) -> None:
    t = tree(tmp_path / "vol")
    set_volume_ownership(t["root"], GROUP, read_only=True)
    assert owner(t["secret"]) == (GROUP, 0o640)
    assert owner(t["sub"]) == (GROUP, 0o750 | stat.S_ISGID)


def test_on_root_mismatch_skips_a_root_that_already_matches(tmp_path: Path) -> None:
    t = tree(tmp_path / "vol")
    assert set_volume_ownership(t["root"], GROUP, "OnRootMismatch")  # the root did not match: walked
    os.chown(t["secret"], -1, 0)
    assert not set_volume_ownership(t["root"], GROUP, "OnRootMismatch")
    assert os.stat(t["secret"]).st_gid == 0  # not walked
    assert set_volume_ownership(t["root"], GROUP, "Always")
    assert os.stat(t["secret"]).st_gid == GROUP
    os.chmod(t["root"], 0o2750)  # the group lost w on the root: a mismatch again
    os.chown(t["secret"], -1, 0)
    assert set_volume_ownership(t["root"], GROUP, "OnRootMismatch")
    assert os.stat(t["secret"]).st_gid == GROUP and owner(t["root"])[1] == 0o2770


async def test_local_volume_owned_once_per_pod_with_the_pods_policy(client: Client, tmp_path: Path) -> None:
    data = tmp_path / "local-owned"
    t = tree(data)
    await bound_local_claim(client, "owned-claim", "pv-owned", data)
    pod = await make_pod(client, "owned", [{"name": "data", "persistentVolumeClaim": {"claimName": "owned-claim"}}],
                         mounts=[{"name": "data", "mountPath": "/data"}], automountServiceAccountToken=False,
                         securityContext={"fsGroup": GROUP, "fsGroupChangePolicy": "Always"})
    vm = VolumeManager(client, tmp_path / "pods", "node-a")
    assert await vm.setup(pod) == {"data": data}
    assert owner(t["secret"]) == (GROUP, 0o660) and owner(t["root"])[0] == GROUP
    # Once per pod: later sync passes set the volume up again without walking it.
    os.chown(t["secret"], -1, 0)
    await vm.setup(pod)
    assert os.stat(t["secret"]).st_gid == 0
    await vm.teardown(pod["metadata"]["uid"])
    await vm.setup(pod)  # set up anew after a teardown: owned anew
    assert os.stat(t["secret"]).st_gid == GROUP
    await vm.teardown(pod["metadata"]["uid"])


async def test_read_only_claim_and_no_fs_group_leave_the_volume_alone(client: Client, tmp_path: Path) -> None:
    data = tmp_path / "local-untouched"
    t = tree(data)
    await bound_local_claim(client, "ro-claim", "pv-ro", data)
    ro = await make_pod(client, "ro-owned", [{"name": "data", "persistentVolumeClaim": {"claimName": "ro-claim",
                                                                                       "readOnly": True}}],
                        automountServiceAccountToken=False, securityContext={"fsGroup": GROUP})
    plain = await make_pod(client, "no-group", [{"name": "data", "persistentVolumeClaim": {"claimName": "ro-claim"}}],
                           automountServiceAccountToken=False)
    vm = VolumeManager(client, tmp_path / "pods", "node-a")
    for pod in (ro, plain):
        await vm.setup(pod)
        assert owner(t["secret"]) == (0, 0o600) and owner(t["root"]) == (0, 0o700)
        await vm.teardown(pod["metadata"]["uid"])
