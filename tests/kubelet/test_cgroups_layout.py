"""The cgroup manager's files on a cgroup v2 and a v1 layout.

This machine has the other layout (or neither) for one of them, so both are directory trees
laid out as the kernel shows them (v2: ``cgroup.controllers`` / ``cgroup.subtree_control`` at each
level; v1: one directory per hierarchy). Making, limiting and removing pod cgroups on the real
hierarchy is tests/kubelet/test_cgroups_e2e.py.
"""

from __future__ import annotations

from pathlib import Path

from kybernetes.kubelet import cgroups
from kybernetes.kubelet.cm import CgroupManager, weight

GUARANTEED = {"metadata": {"uid": "g1"}, "status": {"qosClass": "Guaranteed"},
              "spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}}}]}}
BESTEFFORT = {"metadata": {"uid": "b1"}, "status": {"qosClass": "BestEffort"}, "spec": {"containers": [{"name": "c"}]}}


def v2_root(tmp_path: Path) -> Path:
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("")
    return tmp_path


def test_v2_hierarchy_limits_and_removal(tmp_path: Path) -> None:
    root = v2_root(tmp_path)
    m = CgroupManager("/", fs_root=root, pids_limit=256)
    assert m.v2 and cgroups.hierarchies(root) == [root]
    m.setup({"cpu": "1900m", "memory": "1Gi", "pods": "110"})
    assert (root / "kubepods" / "memory.max").read_text() == str(2**30)
    assert (root / "kubepods" / "cpu.weight").read_text() == str(weight(1945))
    assert (root / "kubepods/besteffort/cpu.weight").read_text() == "1"
    # Controllers are enabled one level at a time (the fake file keeps the last write).
    assert (root / "cgroup.subtree_control").read_text() == "+pids"
    assert m.ensure_pod(GUARANTEED) == "/kubepods/podg1"
    pod = root / "kubepods/podg1"
    assert (pod / "cpu.max").read_text() == "50000 100000"
    assert (pod / "memory.max").read_text() == str(128 * 2**20)
    assert (pod / "pids.max").read_text() == "256"
    assert m.ensure_pod(BESTEFFORT) == "/kubepods/besteffort/podb1"
    assert (root / "kubepods/besteffort/podb1/memory.max").read_text() == "max"
    assert m.pod_uids() == {"g1", "b1"}


def test_v1_hierarchies_and_removal_of_what_runc_left(tmp_path: Path) -> None:
    for controller in ("cpu", "cpuacct", "memory", "pids", "cpuset", "systemd"):
        (tmp_path / controller).mkdir()
    m = CgroupManager("/nested", fs_root=tmp_path)
    m.setup(None)
    name = m.ensure_pod(GUARANTEED)
    assert name == "/nested/kubepods/podg1"
    assert (tmp_path / "cpu/nested/kubepods/podg1/cpu.cfs_quota_us").read_text() == "50000"
    assert (tmp_path / "memory/nested/kubepods/podg1/memory.limit_in_bytes").read_text() == str(128 * 2**20)
    assert not (tmp_path / "cpuset/nested/kubepods").exists()  # runc makes those on the way
    (tmp_path / "cpuset/nested/kubepods/podg1/sandbox").mkdir(parents=True)
    assert len(cgroups.cgroup_dirs(name, tmp_path)) == 5
    # The fake cgroups hold files (a real one's vanish with rmdir): empty them the kernel's way.
    for directory in cgroups.cgroup_dirs(name, tmp_path):
        for f in directory.iterdir():
            if f.is_file():
                f.unlink()
    assert m.remove_pod("g1")
    assert cgroups.cgroup_dirs(name, tmp_path) == []


def test_leftovers_find_the_pod_cgroup_of_a_task(tmp_path: Path) -> None:
    import json

    from kybernetes.kubelet.leftovers import task_pod_cgroups

    state = tmp_path / "containerd/state/io.containerd.runtime.v2.task/k8s.io"
    for task, path in (("t1", "/kubepods/besteffort/poduid1/t1"), ("t2", "/k8s.io/t2"), ("t3", "")):
        (state / task).mkdir(parents=True)
        (state / task / "config.json").write_text(json.dumps({"linux": {"cgroupsPath": path}}))
    assert task_pod_cgroups(tmp_path) == {"t1": "/kubepods/besteffort/poduid1"}
