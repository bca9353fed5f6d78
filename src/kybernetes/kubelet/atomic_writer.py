"""The kubelet's ``AtomicWriter``: the files of an API-backed volume, replaced all at once.

Atomic updates (the kubelet's ``AtomicWriter``): the files of an API-backed volume are written
into a fresh timestamped directory ``..2006_01_02_15_04_05.NNNN``; the symlink ``..data`` is then
swapped to it in one ``rename``; the visible names are symlinks through ``..data``. A reader
therefore sees either the old or the new set of files, never a mix. Nothing is written when the
contents (bytes and modes) did not change, so a periodic refresh costs a GET and a compare.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

DATA_DIR_NAME = "..data"
_DATA_TMP = "..data_tmp"
# --- the atomic writer ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FileProjection:
    """One file of a volume: its bytes and its mode."""
    data: bytes
    mode: int


def _validate_payload_path(path: str) -> None:
    parts = path.split("/")
    if not path or path.startswith("/") or ".." in parts or path.startswith(".."):
        raise ValueError(f"invalid path {path!r}: must be relative and may not contain '..'")
    if len(path) > 4096 or any(len(p) > 255 for p in parts):
        raise ValueError(f"invalid path {path!r}: too long")


def _current_payload(ts_dir: Path) -> dict[str, FileProjection] | None:
    found: dict[str, FileProjection] = {}
    try:
        for dirpath, _, files in os.walk(ts_dir):
            for name in files:
                full = Path(dirpath) / name
                st = full.lstat()
                found[str(full.relative_to(ts_dir))] = FileProjection(full.read_bytes(), stat.S_IMODE(st.st_mode))
    except OSError:
        return None
    return found


def write_atomic(target: Path, payload: dict[str, FileProjection], *, gid: int | None = None) -> bool:
    """Makes ``target`` hold exactly ``payload``, switching over atomically; False if nothing changed."""
    for rel in payload:
        _validate_payload_path(rel)
    target.mkdir(parents=True, exist_ok=True)
    data_link = target / DATA_DIR_NAME
    old_ts = os.readlink(data_link) if data_link.is_symlink() else None
    if old_ts is not None and _current_payload(target / old_ts) == payload:
        return False
    stamp = dt.datetime.now(dt.UTC).strftime("..%Y_%m_%d_%H_%M_%S.")
    ts_dir = Path(tempfile.mkdtemp(prefix=stamp, dir=target))
    try:
        os.chmod(ts_dir, 0o755)
        for rel, proj in payload.items():
            path = ts_dir / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as f:
                f.write(proj.data)
            os.chmod(path, proj.mode)
            if gid is not None:
                os.chown(path, -1, gid)
        if gid is not None:
            for dirpath, _, _ in os.walk(ts_dir):
                os.chown(dirpath, -1, gid)
        # The switch: a new symlink renamed over ..data is one atomic step for every reader.
        tmp_link = target / _DATA_TMP
        with contextlib.suppress(FileNotFoundError):
            tmp_link.unlink()
        os.symlink(ts_dir.name, tmp_link)
        os.rename(tmp_link, data_link)
    except BaseException:
        shutil.rmtree(ts_dir, ignore_errors=True)
        raise
    # Visible names: one symlink per top-level entry, through ..data so they follow every swap.
    top = {rel.split("/", 1)[0] for rel in payload}
    for name in top:
        link = target / name
        if link.is_symlink():
            continue
        if link.exists():
            raise ValueError(f"{link} exists and is not a symlink into {DATA_DIR_NAME}")
        os.symlink(f"{DATA_DIR_NAME}/{name}", link)
    for entry in target.iterdir():
        if not entry.name.startswith("..") and entry.name not in top and entry.is_symlink():
            entry.unlink()
    if old_ts is not None and old_ts != ts_dir.name:
        shutil.rmtree(target / old_ts, ignore_errors=True)
    return True


__all__ = [
    "DATA_DIR_NAME",
    "FileProjection",
    "write_atomic",
]
