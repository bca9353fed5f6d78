"""Snapshots of the store: one file that brings a cluster back, for any backend.

The contract
------------
A snapshot file is a header line and then the payload::

    KYBSNAP\\n                           magic (8 bytes)
    {"format": "kybernetes-snapshot", "version": 1, "backend": "sqlite", "revision": R,
     "compactedRevision": C, "created": UNIX, "node": "...", "payloadSize": N,
     "checksum": "sha256:..."}\\n        one JSON line
    N bytes of payload                  the backend's own image of the store at revision R

- ``backend`` names who can read the payload: ``sqlite`` (an SQLite database file, the store's
  own schema) or ``etcd`` (etcd's own snapshot db: :mod:`kybernetes.storage.etcd_snapshot`). A backend restores only its own kind.
- ``revision`` is the store's revision the payload holds *exactly*: every key, value and
  mod_revision as the store had them at R, and nothing newer. A store restored from it starts at
  revision R, so every object keeps its resourceVersion.
- ``checksum`` is SHA-256 over the header's other fields (sorted-key JSON) and then the payload,
  so a flipped bit anywhere, or a payload shorter or longer than ``payloadSize``, is refused.
- :func:`open_verified` checks all of that *before* anything is written where the store lives:
  a truncated, corrupt, foreign or newer-format file raises :class:`SnapshotError` with a message
  that says which, and the target is left as it was.

A backend plugs in as a :class:`Snapshotter`: ``save_payload`` writes a consistent image of the
running store to a file and says its revision; ``install_payload`` replaces the (stopped) store
with a verified payload. The framing, checksums, names, listing and retention here are shared.

The SQLite backend
------------------
:class:`SQLiteSnapshotter` copies the database with SQLite's online backup API from a read-only
connection of its own, in one step: one read transaction, so one consistent revision, while the
server's writer keeps committing beside it (WAL mode: readers never block the writer). Any
process may take it (``kyb snapshot save`` or the server's schedule): reading the file does not
make a second writer, and a backup step that completes inside one read transaction never needs to
restart. The copy is checked (``PRAGMA integrity_check``) and its revision read from the copy itself.

Names are ``<name>-<node>-<unix time>`` (k3s's ``etcd-snapshot``): :func:`snapshot_name`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import glob
import hashlib
import json
import os
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Protocol

from kybernetes.datadir import running_pid, store_path
from kybernetes.storage.interface import StoreError
from kybernetes.storage.sqlite_schema import load_state

MAGIC = b"KYBSNAP\n"
FORMAT = "kybernetes-snapshot"
VERSION = 1
_MAX_HEADER = 64 * 1024
_CHUNK = 1 << 20


class SnapshotError(StoreError):
    """A snapshot that cannot be taken, read or restored; the message says why."""


@dataclass(frozen=True)
class SnapshotHeader:
    backend: str
    revision: int
    compacted_revision: int
    created: int
    node: str
    payload_size: int
    checksum: str = ""
    format: str = FORMAT
    version: int = VERSION

    def fields(self) -> dict[str, object]:
        """The header's fields as stored, without the checksum."""
        return {"format": self.format, "version": self.version, "backend": self.backend,
                "revision": self.revision, "compactedRevision": self.compacted_revision,
                "created": self.created, "node": self.node, "payloadSize": self.payload_size}

    def encode(self) -> bytes:
        return json.dumps({**self.fields(), "checksum": self.checksum}, sort_keys=True).encode() + b"\n"

    @classmethod
    def decode(cls, line: bytes, where: str) -> SnapshotHeader:
        try:
            d = json.loads(line)
            if d.get("format") != FORMAT:
                raise SnapshotError(f"{where}: not a kybernetes snapshot (format {d.get('format')!r})")
            if d.get("version") != VERSION:
                raise SnapshotError(f"{where}: snapshot format version {d.get('version')!r} is not supported "
                                    f"(this kyb reads version {VERSION})")
            return cls(backend=str(d["backend"]), revision=int(d["revision"]),
                       compacted_revision=int(d["compactedRevision"]), created=int(d["created"]),
                       node=str(d["node"]), payload_size=int(d["payloadSize"]), checksum=str(d["checksum"]))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise SnapshotError(f"{where}: corrupt snapshot header ({e})") from None


def _digest_start(header: SnapshotHeader) -> hashlib._Hash:
    h = hashlib.sha256()
    h.update(json.dumps(header.fields(), sort_keys=True).encode())
    return h


# ---------------------------------------------------------------------------------------------
# The backend's part


class Snapshotter(Protocol):
    """What a store backend provides for snapshots."""

    backend: str

    async def save_payload(self, dest: Path) -> tuple[int, int]:
        """Write a consistent image of the store (which may be serving) to ``dest``, a new file;
        returns (revision, compacted revision) of that image. Raises :class:`SnapshotError`."""
        ...

    async def install_payload(self, payload: Path, revision: int) -> None:
        """Make ``payload`` (verified, on the target's filesystem, of the store at ``revision``)
        the store; the store is not running. What it replaces is kept aside, not deleted."""
        ...


def snapshotter_for(data_dir: Path, datastore_endpoint: str = "", tls: tuple[str, str, str] = ("", "", ""),
                    etcd_restore_dir: Path | None = None) -> Snapshotter:
    """The snapshotter for a server's store, as ``kyb server --data-dir --datastore-endpoint
    --datastore-cafile/-certfile/-keyfile`` names it; an etcd one restores into ``etcd_restore_dir``."""
    path = store_path(data_dir, datastore_endpoint)
    if path is not None:
        return SQLiteSnapshotter(path)
    if datastore_endpoint.startswith(("http://", "https://")):
        from kybernetes.storage.etcd_client import TLSFiles
        from kybernetes.storage.etcd_snapshot import EtcdSnapshotter, RestoreMember

        return EtcdSnapshotter(datastore_endpoint, TLSFiles(*tls), RestoreMember(data_dir=etcd_restore_dir))
    raise SnapshotError(f"snapshots of datastore {datastore_endpoint!r} are not supported (supported: sqlite, etcd)")


class SQLiteSnapshotter:
    """Snapshots of :class:`~kybernetes.storage.sqlite.SQLiteStore`'s file through the backup API."""

    backend = "sqlite"

    def __init__(self, db: Path) -> None:
        self.db = db

    async def save_payload(self, dest: Path) -> tuple[int, int]:
        return await asyncio.to_thread(self._backup, dest)

    def _backup(self, dest: Path) -> tuple[int, int]:
        if not self.db.exists():
            raise SnapshotError(f"no store at {self.db}")
        try:
            src = sqlite3.connect(f"{self.db.absolute().as_uri()}?mode=ro", uri=True)
        except sqlite3.Error as e:
            raise SnapshotError(f"cannot open {self.db}: {e}") from None
        try:
            src.execute("PRAGMA busy_timeout = 5000")
            with contextlib.closing(sqlite3.connect(dest, isolation_level=None)) as dst:
                # pages=-1: the whole file in one step, i.e. inside one read transaction of src.
                src.backup(dst, pages=-1)
                dst.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
                check = dst.execute("PRAGMA integrity_check").fetchone()[0]
                if check != "ok":
                    raise SnapshotError(f"the copy of {self.db} failed its integrity check: {check}")
                rev, compacted, _ = load_state(dst)
        except sqlite3.Error as e:
            raise SnapshotError(f"backup of {self.db} failed: {e}") from None
        finally:
            src.close()
        return rev, compacted

    async def install_payload(self, payload: Path, revision: int) -> None:
        await asyncio.to_thread(self._install, payload, revision)

    def _install(self, payload: Path, revision: int) -> None:
        try:
            with contextlib.closing(sqlite3.connect(f"{payload.absolute().as_uri()}?mode=ro", uri=True)) as c:
                check = c.execute("PRAGMA integrity_check").fetchone()[0]
                rev = load_state(c)[0] if check == "ok" else -1
        except sqlite3.Error as e:
            raise SnapshotError(f"the snapshot's database is unreadable: {e}") from None
        if check != "ok":
            raise SnapshotError(f"the snapshot's database failed its integrity check: {check}")
        if rev != revision:
            raise SnapshotError(f"the snapshot's database is at revision {rev}, its header says {revision}")
        # A WAL or shared-memory file left beside the old database would be replayed into the new one.
        stamp = int(time.time())
        for suffix in ("", "-wal", "-shm", "-journal"):
            old = self.db.with_name(self.db.name + suffix)
            if old.exists():
                old.rename(old.with_name(f"{self.db.name}.pre-restore-{stamp}{suffix}"))
        os.replace(payload, self.db)
        _fsync_dir(self.db.parent)


# ---------------------------------------------------------------------------------------------
# Files


@dataclass(frozen=True)
class SnapshotInfo:
    path: Path
    header: SnapshotHeader | None
    """None when the header cannot be read (``problem`` says why)."""
    size: int
    problem: str = ""


def snapshot_name(name: str, node: str, unix: int) -> str:
    return f"{name}-{node}-{unix}"


ON_DEMAND = "on-demand"
"""The name of snapshots taken with ``kyb snapshot save`` unless ``--name`` says otherwise."""
SCHEDULED = "scheduled"
"""The name of the server's scheduled snapshots (the ones retention prunes)."""

_NAME_TIME = re.compile(r"-(\d+)$")


async def save_snapshot(snapshotter: Snapshotter, directory: Path, name: str, node: str,
                        now: Callable[[], float] = time.time) -> SnapshotInfo:
    """Take a snapshot into ``directory`` as ``<name>-<node>-<unix time>``; the file appears whole
    or not at all (written beside it, fsynced, renamed; an existing file is never replaced)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    created = int(now())
    final = directory / snapshot_name(name, node, created)
    if final.exists():
        raise SnapshotError(f"snapshot {final} already exists")
    payload = directory / f".{final.name}.payload"
    tmp = directory / f".{final.name}.tmp"
    try:
        revision, compacted = await snapshotter.save_payload(payload)
        await asyncio.to_thread(_frame, payload, tmp, SnapshotHeader(
            snapshotter.backend, revision, compacted, created, node, payload.stat().st_size))
        try:
            os.link(tmp, final)  # fails rather than replace a snapshot of the same name
        except FileExistsError:
            raise SnapshotError(f"snapshot {final} already exists") from None
        _fsync_dir(directory)
    finally:
        for p in (payload, tmp):
            p.unlink(missing_ok=True)
    return read_info(final)


def _frame(payload: Path, dest: Path, header: SnapshotHeader) -> None:
    h = _digest_start(header)
    with open(payload, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    header = dataclasses.replace(header, checksum="sha256:" + h.hexdigest())
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out, open(payload, "rb") as f:
        out.write(MAGIC)
        out.write(header.encode())
        while chunk := f.read(_CHUNK):
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())


def _read_header(f: BinaryIO, where: str) -> SnapshotHeader:
    if f.read(len(MAGIC)) != MAGIC:
        raise SnapshotError(f"{where}: not a kybernetes snapshot (bad magic)")
    line = f.readline(_MAX_HEADER)
    if not line.endswith(b"\n"):
        raise SnapshotError(f"{where}: truncated or corrupt snapshot header")
    return SnapshotHeader.decode(line, where)


def read_info(path: Path) -> SnapshotInfo:
    """A snapshot's header (not its payload: see :func:`open_verified`)."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            return SnapshotInfo(path, _read_header(f, str(path)), size)
    except SnapshotError as e:
        return SnapshotInfo(path, None, size, str(e))


def open_verified(path: Path, dest: Path) -> SnapshotHeader:
    """Copy the payload of snapshot ``path`` to ``dest`` (a new file) and verify header, length
    and checksum; on any problem ``dest`` is removed and :class:`SnapshotError` raised."""
    where = str(path)
    try:
        with open(path, "rb") as f:
            header = _read_header(f, where)
            h = _digest_start(header)
            left = header.payload_size
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                while left > 0 and (chunk := f.read(min(_CHUNK, left))):
                    h.update(chunk)
                    out.write(chunk)
                    left -= len(chunk)
                if left > 0:
                    raise SnapshotError(f"{where}: truncated snapshot ({left} of {header.payload_size} payload "
                                        "bytes missing)")
                if f.read(1):
                    raise SnapshotError(f"{where}: corrupt snapshot (data after the payload)")
                if "sha256:" + h.hexdigest() != header.checksum:
                    raise SnapshotError(f"{where}: corrupt snapshot (checksum mismatch)")
                out.flush()
                os.fsync(out.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            if dest.exists():
                dest.unlink()
        raise
    return header


async def restore_snapshot(snapshotter: Snapshotter, path: Path, data_dir: Path, target: Path,
                           prepare: Callable[[], None] | None = None) -> SnapshotHeader:
    """Restore snapshot ``path`` into the store whose file or directory is ``target`` (of the
    server data dir ``data_dir``). Refuses a running server's data dir, a snapshot of another
    backend, and any file :func:`open_verified` refuses, before anything is overwritten;
    ``prepare`` runs (in a thread) once the file is verified, just before the store is replaced."""
    pid = running_pid(data_dir)
    if pid is not None:
        raise SnapshotError(f"a kybernetes server (pid {pid}) is running on {data_dir}: stop it before restoring")
    made = [p for p in (target.parent, *target.parent.parents) if not p.exists()]
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    payload = target.parent / f".{target.name}.restore"
    payload.unlink(missing_ok=True)
    try:
        header = await asyncio.to_thread(open_verified, path, payload)
        if header.backend != snapshotter.backend:
            raise SnapshotError(f"{path} is a snapshot of a {header.backend} store, not of {snapshotter.backend}")
        if prepare is not None:
            await asyncio.to_thread(prepare)
        await snapshotter.install_payload(payload, header.revision)
    except BaseException:
        payload.unlink(missing_ok=True)
        for d in made:  # a refused restore leaves no trace, not even the directories it made
            with contextlib.suppress(OSError):
                d.rmdir()
        raise
    return header


def list_snapshots(directory: Path) -> list[SnapshotInfo]:
    """The snapshot files in ``directory`` (not the partial ones being written), oldest first."""
    if not directory.is_dir():
        return []
    infos = [read_info(p) for p in directory.iterdir() if p.is_file() and not p.name.startswith(".")]
    return sorted(infos, key=lambda i: (i.header.created if i.header else _name_time(i.path.name), i.path.name))


def _name_time(name: str) -> int:
    m = _NAME_TIME.search(name)
    return int(m.group(1)) if m else 0


def prune(directory: Path, name: str, node: str, keep: int) -> list[Path]:
    """Remove all but the newest ``keep`` snapshots named ``<name>-<node>-<unix time>``; the removed.

    Also removes partial files of such snapshots (``.<name>-<node>-*``) that an interrupted save
    left (a save cancelled while its copying thread still ran): call it only between saves."""
    prefix = f"{name}-{node}-"
    if directory.is_dir():
        for partial in directory.glob(f".{glob.escape(prefix)}*"):
            partial.unlink(missing_ok=True)
    ours = [p for p in directory.iterdir() if p.name.startswith(prefix) and p.name[len(prefix):].isdigit()] \
        if directory.is_dir() else []
    ours.sort(key=lambda p: int(p.name[len(prefix):]))
    doomed = ours[:-keep] if keep > 0 else ours
    for p in doomed:
        p.unlink(missing_ok=True)
    return doomed


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------
# Schedule


async def run_schedule(snapshotter: Snapshotter, next_time: Callable[[datetime], datetime | None],
                       directory: Path, name: str, node: str, retention: int,
                       *, now: Callable[[], float] = time.time,
                       sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
                       on_error: Callable[[Exception], None] = lambda e: None) -> None:
    """Forever: wait for the schedule's next time, take a snapshot, keep the newest ``retention``
    of this node's scheduled ones. A failed snapshot is reported to ``on_error`` and the schedule
    goes on; ``next_time`` (a cron schedule's) returning None ends it."""
    while True:
        at = next_time(datetime.fromtimestamp(now(), UTC))
        if at is None:
            return
        while (wait := at.timestamp() - now()) > 0:
            await sleep(wait)
        try:
            await save_snapshot(snapshotter, directory, name, node, now)
            prune(directory, name, node, retention)
        except (SnapshotError, OSError) as e:
            on_error(e)


__all__ = [
    "FORMAT",
    "MAGIC",
    "ON_DEMAND",
    "SCHEDULED",
    "VERSION",
    "SQLiteSnapshotter",
    "SnapshotError",
    "SnapshotHeader",
    "SnapshotInfo",
    "Snapshotter",
    "list_snapshots",
    "open_verified",
    "prune",
    "read_info",
    "restore_snapshot",
    "run_schedule",
    "save_snapshot",
    "snapshot_name",
    "snapshotter_for",
]
