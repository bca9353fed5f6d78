"""Rotation of the components' own logs: DATA/logs/*.log (the server's children: etcd,
control-plane (or, split, controller-manager, scheduler, cloud-controller-manager), agent; a
node's containerd.log under the kubelet's data dir).

Those files are the children's stdout and stderr, opened in append mode by the parent that spawned
them; the children cannot be told to reopen. So rotation copies and truncates (logrotate's
``copytruncate``): once a file reaches `max_bytes`, its content goes to ``NAME.log.<timestamp>.gz``
(the container logs' timestamp format) and the file is truncated to 0, where the children's next
append lands. A line written between the copy and the truncation is lost (and one half written as
the copy ends: rotated files hold whole lines only); nothing else is. At most
`max_files` rotated files are kept per log, the oldest removed first.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

MAX_BYTES = 10 * 1024 * 1024
"""A component log is rotated at 10 MiB (as containerLogMaxSize's default)."""
MAX_FILES = 5
"""Rotated files kept per component log."""
CHECK_INTERVAL = 60.0
TIMESTAMP_FORMAT = "%Y%m%d-%H%M%S"


def rotate_logs(directory: Path, *, max_bytes: int = MAX_BYTES, max_files: int = MAX_FILES,
                clock: Callable[[], float] = time.time) -> list[Path]:
    """One pass over `directory`/*.log; returns the rotated files written."""
    written = []
    for path in sorted(Path(directory).glob("*.log")):
        try:
            if path.stat().st_size < max_bytes:
                continue
            written.append(rotate(path, clock()))
        except OSError as err:
            log.warning("rotating %s: %s", path, err)
        _remove_excess(path, max_files)
    return written


def rotate(path: Path, now: float) -> Path:
    """Copies `path` into a gzip file named after `now`, then truncates it."""
    target = Path(f"{path}.{time.strftime(TIMESTAMP_FORMAT, time.localtime(now))}.gz")
    tmp = target.with_name(target.name + ".tmp")
    try:
        with open(path, "rb") as src, gzip.open(tmp, "wb") as dst:
            _copy_whole_lines(src, dst.write)
        os.rename(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
    os.truncate(path, 0)  # the children append (O_APPEND): their next line starts the file again
    return target


def _copy_whole_lines(src: BinaryIO, write: Callable[[bytes], object], chunk: int = 1 << 20) -> None:
    """Copies up to the last newline: a line being written as the copy reads is cut off, and goes
    with the truncation rather than into the rotated file half written."""
    pending = b""
    while block := src.read(chunk):
        data = pending + block
        end = data.rfind(b"\n") + 1
        write(data[:end])
        pending = data[end:]


def _remove_excess(path: Path, max_files: int) -> None:
    rotated = sorted(p for p in path.parent.glob(path.name + ".*.gz"))
    for old in rotated[:max(0, len(rotated) - max_files)]:
        with contextlib.suppress(FileNotFoundError):
            old.unlink()


async def run(directories: Iterable[Path], *, interval: float = CHECK_INTERVAL, max_bytes: int = MAX_BYTES,
              max_files: int = MAX_FILES) -> None:
    """Rotates the logs of `directories` every `interval` seconds until cancelled."""
    dirs = list(directories)
    while True:
        await asyncio.sleep(interval)
        for directory in dirs:
            await asyncio.to_thread(rotate_logs, directory, max_bytes=max_bytes, max_files=max_files)


__all__ = ["CHECK_INTERVAL", "MAX_BYTES", "MAX_FILES", "rotate", "rotate_logs", "run"]
