"""The audit log backend: JSON lines to ``--audit-log-path``, rotated by size as kube-apiserver's is.

Kubernetes' ``plugin/pkg/audit/log/backend.go`` writes each event as one JSON line to a
``lumberjack.Logger`` (``gopkg.in/natefinch/lumberjack.v2``). :class:`RotatingFile` keeps
lumberjack's rules:

- a line that would take the file past ``--audit-log-maxsize`` MB (100 when 0) first rotates it: the
  file is renamed to ``NAME-2006-01-02T15-04-05.000.EXT`` (UTC, milliseconds, in the same directory)
  and a new one is started with the old one's mode (0600 for a new file); a single line larger than
  the limit is refused;
- after a rotation, backups beyond ``--audit-log-maxbackup`` (0 keeps all) are removed oldest first,
  and those older than ``--audit-log-maxage`` days (0 keeps all) by the time in their names.

``-`` writes to standard output, never rotated.

:class:`LogBackend` keeps the writing off the request's path. Of kube-apiserver's two modes
(``--audit-log-mode``: ``blocking``, its default for the log backend, writes in the request;
``batch`` buffers) this is **batch**: :meth:`LogBackend.process` appends the encoded line to an
in-memory buffer of at most ``buffer_size`` events (10,000, Kubernetes' batch buffer default) and
returns; a writer thread takes whatever has accumulated every ``interval`` (0.1 s) and writes it,
then flushes, so an event reaches the file within about that time. The request never wakes the
thread: a wake-up per event cost more than the event (a GIL hand-over and a context switch each).
A full buffer drops the event with an error logged, as Kubernetes' batch backend does.
:meth:`LogBackend.stop` writes everything buffered before it returns.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

MEGABYTE = 1024 * 1024
DEFAULT_MAX_SIZE_MB = 100
"""lumberjack's size limit when none is given."""
BACKUP_TIME_FORMAT = "%Y-%m-%dT%H-%M-%S"


def backup_name(path: Path, when: float) -> Path:
    """lumberjack's ``backupName``: ``audit.log`` rotated at ``when`` is ``audit-2006-01-02T15-04-05.000.log``."""
    t = dt.datetime.fromtimestamp(when, dt.UTC)
    stamp = t.strftime(BACKUP_TIME_FORMAT) + f".{t.microsecond // 1000:03d}"
    return path.with_name(f"{path.stem}-{stamp}{path.suffix}")


def backup_time(path: Path, name: str) -> float | None:
    """The rotation time in a backup's name, or None when ``name`` is not one of ``path``'s backups."""
    prefix, ext = path.stem + "-", path.suffix
    if not name.startswith(prefix) or not name.endswith(ext):
        return None
    stamp = name[len(prefix):len(name) - len(ext)] if ext else name[len(prefix):]
    try:
        t = dt.datetime.strptime(stamp, BACKUP_TIME_FORMAT + ".%f").replace(tzinfo=dt.UTC)
    except ValueError:
        return None
    return t.timestamp()


class RotatingFile:
    """A file that rotates itself by size (lumberjack's ``Logger``); not thread-safe (one writer)."""

    def __init__(self, path: Path, max_size_mb: int = 0, max_backups: int = 0, max_age_days: int = 0,
                 now: Callable[[], float] = time.time) -> None:
        self.path = path
        self.max_bytes = (max_size_mb or DEFAULT_MAX_SIZE_MB) * MEGABYTE
        self.max_backups = max_backups
        self.max_age_days = max_age_days
        self.now = now
        self._file: BinaryIO | None = None
        self._size = 0

    def write(self, data: bytes) -> None:
        if len(data) > self.max_bytes:
            raise ValueError(f"write length {len(data)} exceeds maximum file size {self.max_bytes}")
        if self._file is None:
            self._open_existing_or_new(len(data))
        elif self._size + len(data) > self.max_bytes:
            self.rotate()
        assert self._file is not None
        self._file.write(data)
        self._size += len(data)

    def write_lines(self, lines: list[bytes]) -> None:
        """Each of ``lines`` as :meth:`write` would, in one write when they all fit before the limit."""
        total = sum(map(len, lines))
        if self._file is not None and self._size + total <= self.max_bytes:
            self._file.write(b"".join(lines))
            self._size += total
            return
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def rotate(self) -> None:
        """Close the file, move it aside under its backup name, start a new one, remove old backups."""
        self.close()
        self._open_new()
        self._remove_old_backups()

    def _open_existing_or_new(self, write_len: int) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            self._open_new()
            return
        if size + write_len >= self.max_bytes:
            self.rotate()
            return
        self._file = open(self.path, "ab")  # noqa: SIM115 - kept open for the writer's life
        self._size = size

    def _open_new(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        mode = 0o600
        try:
            mode = self.path.stat().st_mode & 0o777
            os.replace(self.path, backup_name(self.path, self.now()))
        except FileNotFoundError:
            pass
        fd = os.open(self.path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, mode)
        self._file = os.fdopen(fd, "wb")
        self._size = 0

    def backups(self) -> list[tuple[float, Path]]:
        """This file's backups, newest first."""
        found = []
        for entry in os.scandir(self.path.parent):
            t = backup_time(self.path, entry.name)
            if t is not None and entry.is_file():
                found.append((t, Path(entry.path)))
        return sorted(found, reverse=True)

    def _remove_old_backups(self) -> None:
        if not self.max_backups and not self.max_age_days:
            return
        files = self.backups()
        doomed = files[self.max_backups:] if self.max_backups else []
        if self.max_age_days:
            cutoff = self.now() - self.max_age_days * 86400
            doomed += [f for f in files if f[0] < cutoff and f not in doomed]
        for _, p in doomed:
            try:
                p.unlink()
            except OSError as e:
                log.error("audit log: removing old backup %s: %s", p, e)


class LogBackend:
    """Audit events to a log file (or stdout), written by a thread of its own (see the module docstring)."""

    def __init__(self, path: str, max_size_mb: int = 0, max_backups: int = 0, max_age_days: int = 0,
                 buffer_size: int = 10000, interval: float = 0.1) -> None:
        self.path = path
        self._out: RotatingFile | None = None
        if path != "-":
            self._out = RotatingFile(Path(path), max_size_mb, max_backups, max_age_days)
        self.buffer_size = buffer_size
        self.interval = interval
        self._buffer: collections.deque[bytes] = collections.deque()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.dropped = 0
        """Events dropped so far because the buffer was full."""
        self._dropped_logged = float("-inf")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="audit-log", daemon=True)
        self._thread.start()

    def process(self, line: bytes) -> bool:
        """Queue one encoded event (a JSON line); False when the buffer is full and it was dropped."""
        if len(self._buffer) >= self.buffer_size:
            self.dropped += 1
            now = time.monotonic()
            if now - self._dropped_logged >= 1.0:  # at most once a second, not once an event
                self._dropped_logged = now
                log.error("Error in audit plugin 'buffered' affecting %d audit events: audit buffer queue blocked",
                          self.dropped)
            return False
        self._buffer.append(line)
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is buffered, then close the file."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._drain()
        if self._out is not None:
            self._out.close()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self.interval)  # set only by stop
            self._drain()

    def _drain(self) -> None:
        buf = self._buffer
        if not buf:
            return
        lines = [buf.popleft() for _ in range(len(buf))]  # appends may go on meanwhile
        try:
            if self._out is None:
                sys.stdout.buffer.write(b"".join(lines))
                sys.stdout.buffer.flush()
                return
            self._out.write_lines(lines)
            self._out.flush()
        except (OSError, ValueError) as e:
            log.error("Error in audit plugin 'log' affecting audit events: %s", e)
