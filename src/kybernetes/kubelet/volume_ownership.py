"""fsGroup ownership of a volume: the kubelet's SetVolumeOwnership (pkg/volume/volume_linux.go).

`set_volume_ownership(dir, fs_group, policy, read_only=...)` gives every file and directory below
`dir` the group `fs_group` (symlinks themselves, never what they point to) and adds the group's
permissions: rw (0660; r, 0440, for a read-only volume) on everything, plus x (0110) and the
setgid bit on directories so that new files inherit the group. The walk does not follow symlinks,
visits children before their directory and the volume's root last, so a walk cut short leaves
the root unchanged and the next attempt starts over.

`fsGroupChangePolicy`: `OnRootMismatch` skips the walk when the root already has the group, the
setgid bit and the permissions the walk would give it; `Always` (or unset) walks every time the
volume is set up.

Which volumes get it is the volume plugin's business (`kybernetes.kubelet.volumes`): in the kubelet,
`local` persistent volumes that are not read-only take the pod's policy, on their first setup for
the pod. (emptyDir and the API-backed volumes are made with the group from the start there, which
is what the walk would give them.) `VolumeOwnership` remembers which (pod, volume) pairs are done.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from kybernetes.api.obj import Obj

log = logging.getLogger(__name__)

RW_MASK = 0o660
RO_MASK = 0o440
EXEC_MASK = 0o110
ON_ROOT_MISMATCH = "OnRootMismatch"


def requires_permission_change(root: Path, fs_group: int, read_only: bool) -> bool:
    """Whether the volume's root lacks the group, the setgid bit or the permissions the walk gives."""
    try:
        st = os.stat(root)
    except OSError as err:
        log.info("recursive ownership change on %s: cannot read its root (%s)", root, err)
        return True
    if st.st_gid != fs_group or not stat.S_ISDIR(st.st_mode):
        return True
    wanted = (RO_MASK if read_only else RW_MASK) | EXEC_MASK
    return (st.st_mode & wanted) != wanted or not st.st_mode & stat.S_ISGID


def _change(path: str, st: os.stat_result, fs_group: int, read_only: bool) -> None:
    try:
        os.lchown(path, -1, fs_group)
    except OSError as err:
        log.warning("lchown %s to group %d failed: %s", path, fs_group, err)
    if stat.S_ISLNK(st.st_mode):
        return  # chmod would reach the target: its mode is the volume plugin's
    mask = RO_MASK if read_only else RW_MASK
    if stat.S_ISDIR(st.st_mode):
        mask |= stat.S_ISGID | EXEC_MASK
    try:
        os.chmod(path, stat.S_IMODE(st.st_mode) | mask)
    except OSError as err:
        log.warning("chmod %s failed: %s", path, err)


def _walk(path: str, st: os.stat_result, fs_group: int, read_only: bool) -> None:
    if stat.S_ISDIR(st.st_mode):
        with os.scandir(path) as entries:
            children = [(entry.path, entry.stat(follow_symlinks=False)) for entry in entries]
        for child, child_st in children:
            _walk(child, child_st, fs_group, read_only)
    _change(path, st, fs_group, read_only)


def set_volume_ownership(directory: Path | str, fs_group: int | None, policy: str | None = None, *,
                         read_only: bool = False) -> bool:
    """SetVolumeOwnership (module doc); returns whether it walked. An unreadable directory raises
    OSError, which fails the volume's setup as in the kubelet."""
    if fs_group is None:
        return False
    if policy == ON_ROOT_MISMATCH and not requires_permission_change(Path(directory), fs_group, read_only):
        log.debug("skipping permission and ownership change for volume %s", directory)
        return False
    _walk(str(directory), os.lstat(directory), fs_group, read_only)
    return True


def pod_fs_group(pod: Obj) -> tuple[int | None, str | None]:
    """The pod's (fsGroup, fsGroupChangePolicy)."""
    psc = (pod.get("spec") or {}).get("securityContext") or {}
    group = psc.get("fsGroup")
    return (int(group) if isinstance(group, int) else None), psc.get("fsGroupChangePolicy")


class VolumeOwnership:
    """Applies a pod's fsGroup to a volume once per (pod, volume) setup (module doc)."""

    def __init__(self) -> None:
        self._done: set[tuple[str, str]] = set()

    def apply(self, pod: Obj, volume: str, directory: Path, *, read_only: bool = False) -> None:
        uid = str((pod.get("metadata") or {}).get("uid", ""))
        fs_group, policy = pod_fs_group(pod)
        if fs_group is None or read_only or (uid, volume) in self._done:
            return
        set_volume_ownership(directory, fs_group, policy, read_only=read_only)
        self._done.add((uid, volume))

    def forget(self, pod_uid: str) -> None:
        """The pod's volumes are torn down: a new setup owns them again."""
        self._done = {key for key in self._done if key[0] != pod_uid}
