"""Volumes on the host: the error a failed volume is reported with, tmpfs mounts, the hostPath type
check, and ``subPath``/``subPathExpr`` resolution.

:func:`check_host_path` is the kubelet's type check of a ``hostPath`` volume (``DirectoryOrCreate``,
``Directory``, ``FileOrCreate``, ``File``, ``Socket``, ``CharDevice``, ``BlockDevice``, or none).
A ``subPath`` is resolved inside its volume and may not leave it.
"""

from __future__ import annotations

import ctypes
import os
import stat
from pathlib import Path

from kybernetes.kubelet.containerd import mounts_under

_MNT_DETACH = 2
_libc = ctypes.CDLL(None, use_errno=True)


class VolumeError(Exception):
    """A volume could not be set up; the core reports it (event ``FailedMount``) and retries."""

    reason = "FailedMount"

    def __init__(self, volume: str, message: str, operation: str = "MountVolume.SetUp failed") -> None:
        self.volume = volume
        self.detail = message
        super().__init__(f'{operation} for volume "{volume}" : {message}' if volume else message)


# --- mounts ------------------------------------------------------------------------------------


def mount_tmpfs(path: Path, size: int | None) -> bool:
    """Mounts a tmpfs at ``path``; False when this process may not mount (not root)."""
    opts = "mode=0777" + (f",size={size}" if size else "")
    rc = _libc.mount(b"tmpfs", os.fsencode(str(path)), b"tmpfs", 0, opts.encode())
    if rc != 0:
        err = ctypes.get_errno()
        if err in (1, 13):  # EPERM, EACCES: run unprivileged (tests as a user): a plain directory
            return False
        raise OSError(err, f"mount tmpfs at {path}: {os.strerror(err)}")
    return True


def umount(path: str) -> bool:
    """Unmount ``path``; a busy mount is detached instead. False if neither worked."""
    if _libc.umount2(os.fsencode(path), 0) == 0:
        return True
    # Busy (a container still holds it): detach it, it goes away with the last user.
    return bool(_libc.umount2(os.fsencode(path), _MNT_DETACH) == 0)


def is_mount(path: Path) -> bool:
    """Whether ``path`` is a mount point (a tmpfs of ours, or a bind mount)."""
    # os.path.ismount (two stats) first: it sees every tmpfs we mount (a device of its own), and
    # /proc/self/mountinfo is slow to generate and parse with hundreds of container mounts: read on
    # every sync of every pod, it held the event loop for ~40% of a 50-pod burst. The mountinfo
    # scan stays as the fallback for what ismount cannot see (a bind mount within one filesystem).
    return path.exists() and (os.path.ismount(path) or str(path.resolve()) in mounts_under(path))


def check_host_path(volume: str, path: Path, kind: str) -> Path:
    """The kubelet's hostPath type check (and creation for the ``...OrCreate`` types)."""
    if not path.is_absolute():
        raise VolumeError(volume, f"hostPath {path} is not absolute")

    def fail(what: str) -> VolumeError:
        return VolumeError(volume, f"hostPath type check failed: {path} is not {what}")

    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    if kind == "":
        return path
    if kind == "DirectoryOrCreate":
        if st is None:
            path.mkdir(mode=0o755, parents=True, exist_ok=True)
            return path
        if not stat.S_ISDIR(st.st_mode):
            raise fail("a directory")
        return path
    if kind == "FileOrCreate":
        if st is None:
            # Like the kubelet: the file is created, its parent directory is not.
            try:
                fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o644)
            except OSError as e:
                raise VolumeError(volume, f"hostPath type check failed: cannot create {path}: {e.strerror}")
            os.close(fd)
            return path
        if not stat.S_ISREG(st.st_mode):
            raise fail("a file")
        return path
    checks = {"Directory": (stat.S_ISDIR, "a directory"), "File": (stat.S_ISREG, "a file"),
              "Socket": (stat.S_ISSOCK, "a socket file"), "CharDevice": (stat.S_ISCHR, "a character device"),
              "BlockDevice": (stat.S_ISBLK, "a block device")}
    if kind not in checks:
        raise VolumeError(volume, f"hostPath type {kind!r} is not supported")
    test, what = checks[kind]
    if st is None or not test(st.st_mode):
        raise fail(what)
    return path


def expand_subpath_expr(expr: str, env: dict[str, str]) -> str:
    """``$(VAR)`` expansion for subPathExpr (``$$`` escapes; unknown variables stay as written)."""
    out, i = [], 0
    while i < len(expr):
        if expr.startswith("$$", i):
            out.append("$")
            i += 2
        elif expr.startswith("$(", i) and ")" in expr[i:]:
            end = expr.index(")", i)
            var = expr[i + 2:end]
            out.append(env.get(var, expr[i:end + 1]))
            i = end + 1
        else:
            out.append(expr[i])
            i += 1
    return "".join(out)


def resolve_subpath(volume: str, base: Path, sub: str) -> Path:
    """The host path of ``sub`` inside the volume at ``base``; a VolumeError if it would leave it."""
    parts = sub.split("/")
    if sub.startswith("/") or ".." in parts:
        raise VolumeError(volume, f"subPath {sub!r} must be a relative path without '..'")
    target = base / sub
    if not os.path.lexists(target):
        # The kubelet creates a missing subPath as a directory with the volume's own mode.
        mode = stat.S_IMODE(os.stat(base).st_mode) if base.is_dir() else 0o755
        target.mkdir(parents=True, exist_ok=True)
        os.chmod(target, mode)
    real_base = os.path.realpath(base)
    real = os.path.realpath(target)
    # A symlink in the volume must not lead a container out of it (CVE-2017-1002101).
    if real != real_base and not real.startswith(real_base.rstrip("/") + "/"):
        raise VolumeError(volume, f"subpath {sub!r} resolves outside the volume ({real})")
    return Path(real)


__all__ = [
    "VolumeError",
    "check_host_path",
    "expand_subpath_expr",
    "is_mount",
    "mount_tmpfs",
    "resolve_subpath",
    "umount",
]
