"""Snapshots (storage/snapshot.py): the file contract, the SQLite backup under writes, refusals, retention, schedule."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kybernetes.controllers.cronschedule import CronSchedule
from kybernetes.storage.snapshot import (
    MAGIC,
    SnapshotError,
    SQLiteSnapshotter,
    list_snapshots,
    prune,
    read_info,
    restore_snapshot,
    run_schedule,
    save_snapshot,
)
from kybernetes.storage.sqlite import SQLiteStore
from kybernetes.storage.sqlite_schema import SQL_LIST, prefix_end


def live_at(db: Path, revision: int) -> dict[str, tuple[bytes, int, int]]:
    """key -> (value, create_revision, mod_revision) of every live key at ``revision``, read from the file."""
    with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True) as c:
        rows = c.execute(SQL_LIST, ("", prefix_end(""), "", revision, revision, -1)).fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


async def _store_with_data(data: Path, n: int = 20) -> SQLiteStore:
    s = await SQLiteStore.open(str(data / "db" / "state.db"), compact_interval=0)
    for i in range(n):
        await s.create(f"/registry/configmaps/ns/c{i}", f"v{i}".encode())
    return s


async def test_snapshot_under_writes_is_the_store_at_its_revision(tmp_path: Path) -> None:
    data, target = tmp_path / "data", tmp_path / "restored" / "db" / "state.db"
    s = await _store_with_data(data)
    db = data / "db" / "state.db"
    stop = asyncio.Event()
    revisions: list[int] = []

    async def writer() -> None:
        i = 0
        while not stop.is_set():
            key = f"/registry/configmaps/ns/c{i % 20}"
            kv = await s.get(key)
            assert kv is not None
            revisions.append(await s.update(key, f"w{i}".encode() * 50, kv.mod_revision))
            if i % 7 == 0:
                revisions.append(await s.create(f"/registry/secrets/ns/s{i}", b"x" * 2000))
            i += 1

    task = asyncio.create_task(writer())
    while len(revisions) < 50:
        await asyncio.sleep(0.01)
    info = await save_snapshot(SQLiteSnapshotter(db), data / "snaps", "on-demand", "n1")
    before = len(revisions)
    while len(revisions) < before + 50:
        await asyncio.sleep(0.01)
    stop.set()
    await task
    await s.close()
    assert info.header is not None
    rev = info.header.revision
    assert min(revisions) < rev < max(revisions)  # the writer kept going on both sides of it
    assert info.path.name.startswith("on-demand-n1-")
    header = await restore_snapshot(SQLiteSnapshotter(target), info.path, tmp_path / "restored", target)
    assert header.revision == rev
    assert live_at(target, rev) == live_at(db, rev)
    restored = await SQLiteStore.open(str(target), compact_interval=0)
    try:
        assert await restored.current_revision() == rev
        assert await restored.create("/registry/configmaps/ns/new", b"n") == rev + 1
    finally:
        await restored.close()


async def _one_snapshot(tmp_path: Path) -> Path:
    s = await _store_with_data(tmp_path / "data")
    try:
        info = await save_snapshot(SQLiteSnapshotter(tmp_path / "data" / "db" / "state.db"), tmp_path / "s", "x", "n")
    finally:
        await s.close()
    return info.path


def _split(path: Path) -> tuple[dict[str, object], bytes]:
    raw = path.read_bytes()
    assert raw.startswith(MAGIC)
    line, _, payload = raw[len(MAGIC):].partition(b"\n")
    return json.loads(line), payload


def _write(path: Path, header: dict[str, object], payload: bytes) -> None:
    path.write_bytes(MAGIC + json.dumps(header).encode() + b"\n" + payload)


async def test_header_states_format_backend_revision_and_checksum(tmp_path: Path) -> None:
    path = await _one_snapshot(tmp_path)
    header, payload = _split(path)
    assert header["format"] == "kybernetes-snapshot" and header["version"] == 1
    assert header["backend"] == "sqlite" and header["revision"] == 20 and header["node"] == "n"
    assert header["payloadSize"] == len(payload)
    fields = {k: v for k, v in header.items() if k != "checksum"}
    expected = hashlib.sha256(json.dumps(fields, sort_keys=True).encode() + payload).hexdigest()
    assert header["checksum"] == "sha256:" + expected
    assert payload.startswith(b"SQLite format 3\x00")
    [listed] = list_snapshots(tmp_path / "s")
    assert listed.path == path and listed.header is not None and listed.header.revision == 20


def _tamper_payload(path: Path) -> None:
    h, p = _split(path)
    _write(path, h, p[:5000] + bytes([p[5000] ^ 1]) + p[5001:])


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


def _tamper_revision(path: Path) -> None:
    h, p = _split(path)
    _write(path, {**h, "revision": 19}, p)


def _bad_magic(path: Path) -> None:
    path.write_bytes(b"X" + path.read_bytes()[1:])


def _newer_version(path: Path) -> None:
    h, p = _split(path)
    _write(path, {**h, "version": 2}, p)


def _trailing(path: Path) -> None:
    path.write_bytes(path.read_bytes() + b"extra")


def _header_cut(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:40])


@pytest.mark.parametrize(("damage", "message"), [
    (_tamper_payload, "checksum mismatch"),
    (_truncate, "truncated snapshot"),
    (_tamper_revision, "checksum mismatch"),
    (_bad_magic, "not a kybernetes snapshot"),
    (_newer_version, "version 2 is not supported"),
    (_trailing, "data after the payload"),
    (_header_cut, "truncated or corrupt snapshot header"),
])
async def test_damaged_snapshot_is_refused_before_the_target_is_touched(tmp_path: Path, damage, message) -> None:  # type: ignore[no-untyped-def]
    path = await _one_snapshot(tmp_path)
    damage(path)
    target_dir = tmp_path / "target"
    s = await _store_with_data(target_dir, n=3)
    await s.close()
    db = target_dir / "db" / "state.db"
    before = {p.name: p.read_bytes() for p in db.parent.iterdir()}
    with pytest.raises(SnapshotError, match=message):
        await restore_snapshot(SQLiteSnapshotter(db), path, target_dir, db)
    assert {p.name: p.read_bytes() for p in db.parent.iterdir()} == before


async def test_restore_refuses_a_running_server_and_another_backend(tmp_path: Path) -> None:
    path = await _one_snapshot(tmp_path)
    target_dir = tmp_path / "target"
    db = target_dir / "db" / "state.db"
    target_dir.mkdir()
    (target_dir / "kyb.pid").write_text(f"{os.getpid()}\n")  # this process is alive: "a server is running"
    with pytest.raises(SnapshotError, match=rf"pid {os.getpid()}\) is running on"):
        await restore_snapshot(SQLiteSnapshotter(db), path, target_dir, db)
    assert not db.exists()
    (target_dir / "kyb.pid").unlink()

    class Etcd(SQLiteSnapshotter):
        backend = "etcd"

    with pytest.raises(SnapshotError, match="snapshot of a sqlite store, not of etcd"):
        await restore_snapshot(Etcd(db), path, target_dir, db)
    assert not db.exists()
    assert sorted(p.name for p in target_dir.iterdir()) == []  # not even db/ was left behind


async def test_restore_keeps_the_replaced_store_aside(tmp_path: Path) -> None:
    path = await _one_snapshot(tmp_path)
    target_dir = tmp_path / "target"
    s = await _store_with_data(target_dir, n=3)
    await s.close()
    db = target_dir / "db" / "state.db"
    old = db.read_bytes()
    await restore_snapshot(SQLiteSnapshotter(db), path, target_dir, db)
    [aside] = [p for p in db.parent.iterdir() if p.name.startswith("state.db.pre-restore-")]
    assert aside.read_bytes() == old
    assert len(live_at(db, 20)) == 20


def test_prune_keeps_the_newest_of_this_name_and_node(tmp_path: Path) -> None:
    for t in (100, 200, 300, 1000, 50):
        (tmp_path / f"scheduled-n1-{t}").write_bytes(b"")
    (tmp_path / ".scheduled-n1-40.payload").write_bytes(b"left by a cancelled save")
    others = ["scheduled-n2-10", "on-demand-n1-10", "scheduled-n1-notatime", ".on-demand-n1-5.tmp"]
    for name in others:
        (tmp_path / name).write_bytes(b"")
    removed = prune(tmp_path, "scheduled", "n1", 2)
    assert sorted(p.name for p in removed) == ["scheduled-n1-100", "scheduled-n1-200", "scheduled-n1-50"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["scheduled-n1-300", "scheduled-n1-1000", *others])


async def test_schedule_takes_snapshots_at_cron_times_and_keeps_retention(tmp_path: Path) -> None:
    s = await _store_with_data(tmp_path / "data", n=2)
    clock = [datetime(2026, 1, 1, 11, 59, 30, tzinfo=UTC).timestamp()]
    taken: list[float] = []

    class Done(Exception):
        pass

    async def sleep(seconds: float) -> None:
        clock[0] += seconds

    def now() -> float:
        return clock[0]

    snapshotter = SQLiteSnapshotter(tmp_path / "data" / "db" / "state.db")
    real_save = snapshotter.save_payload

    async def save_payload(dest: Path) -> tuple[int, int]:
        taken.append(clock[0])
        if len(taken) > 3:
            raise Done
        return await real_save(dest)

    snapshotter.save_payload = save_payload  # type: ignore[method-assign]
    try:
        with pytest.raises(Done):
            await run_schedule(snapshotter, CronSchedule.parse("0 */12 * * *").next, tmp_path / "s", "scheduled",
                               "n1", 2, now=now, sleep=sleep)
    finally:
        await s.close()
    hours = [datetime.fromtimestamp(t, UTC).strftime("%d %H:%M:%S") for t in taken]
    assert hours == ["01 12:00:00", "02 00:00:00", "02 12:00:00", "03 00:00:00"]
    names = sorted(p.name for p in (tmp_path / "s").iterdir())
    assert names == [f"scheduled-n1-{int(t)}" for t in taken[1:3]]
    assert all(read_info(tmp_path / "s" / n).header is not None for n in names)


async def test_a_failed_scheduled_snapshot_is_reported_and_the_schedule_goes_on(tmp_path: Path) -> None:
    clock = [0.0]
    errors: list[Exception] = []

    async def sleep(seconds: float) -> None:
        clock[0] += seconds
        if clock[0] > 250:
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await run_schedule(SQLiteSnapshotter(tmp_path / "missing.db"), CronSchedule.parse("@every 100s").next,
                           tmp_path / "s", "scheduled", "n1", 2, now=lambda: clock[0], sleep=sleep,
                           on_error=errors.append)
    assert [str(e) for e in errors] == [f"no store at {tmp_path / 'missing.db'}"] * 2


async def test_a_snapshot_never_replaces_another_of_the_same_name(tmp_path: Path) -> None:
    s = await _store_with_data(tmp_path / "data", n=2)
    snapshotter = SQLiteSnapshotter(tmp_path / "data" / "db" / "state.db")
    try:
        first = await save_snapshot(snapshotter, tmp_path / "s", "x", "n", now=lambda: 1000.0)
        await s.create("/registry/configmaps/ns/more", b"m")
        with pytest.raises(SnapshotError, match="already exists"):
            await save_snapshot(snapshotter, tmp_path / "s", "x", "n", now=lambda: 1000.0)
    finally:
        await s.close()
    assert first.path.name == "x-n-1000"
    assert [p.name for p in (tmp_path / "s").iterdir()] == ["x-n-1000"]  # no partial files either
    assert read_info(first.path).header == first.header
