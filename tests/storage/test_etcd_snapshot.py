"""Snapshots of an etcd store against a real etcd: saved from the leader under writes, restored
into a fresh data dir that an etcd then serves unchanged; damaged files refused untouched."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from kybernetes.storage.etcd import EtcdStore
from kybernetes.storage.etcd_client import EtcdConnection
from kybernetes.storage.etcd_snapshot import EtcdSnapshotter, RestoreMember
from kybernetes.storage.etcdpb import rpc_pb2 as rpc
from kybernetes.storage.etcdpb import rpc_pb2_grpc as rpc_grpc
from kybernetes.storage.snapshot import (
    SnapshotError,
    SnapshotHeader,
    _frame,
    read_info,
    restore_snapshot,
    save_snapshot,
)
from kybernetes.testing import EtcdCluster

Row = tuple[bytes, int, int, int]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    cluster = EtcdCluster(tmp_path_factory.mktemp("etcd-src"), size=3)
    cluster.start()
    try:
        asyncio.run(cluster.wait_healthy())
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
async def store(source: EtcdCluster) -> AsyncIterator[EtcdStore]:
    s = await EtcdStore.open(source.connection(), compact_interval=0)
    yield s
    await s.close()


async def _all_keys(conn: EtcdConnection, revision: int = 0) -> tuple[int, dict[bytes, Row]]:
    """(header revision, key -> (value, create_revision, mod_revision, version)) of every key."""
    resp = await conn.call(lambda kv, t: kv.Range(rpc.RangeRequest(key=b"\0", range_end=b"\0", revision=revision),
                                                   timeout=t))
    return resp.header.revision, {kv.key: (kv.value, kv.create_revision, kv.mod_revision, kv.version)
                                  for kv in resp.kvs}


async def _bulk(store: EtcdStore, n_txns: int, per_txn: int, size: int) -> None:
    """Enough data that etcd's snapshot stream takes many messages (writes land in between)."""
    for t in range(n_txns):
        puts = [rpc.RequestOp(request_put=rpc.PutRequest(key=f"/registry/bulk/{t}-{i}".encode(), value=b"v" * size))
                for i in range(per_txn)]
        await store.conn.call(lambda kv, to, puts=puts: kv.Txn(rpc.TxnRequest(success=puts), timeout=to))


def _snapshotter(cluster: EtcdCluster, member: RestoreMember | None = None) -> EtcdSnapshotter:
    return EtcdSnapshotter(cluster.endpoints, cluster.tls, member, timeout=10.0)


def _restore_member(cluster: EtcdCluster) -> RestoreMember:
    m = cluster.members[0]
    return RestoreMember(data_dir=m.dir / "data", name=m.name, peer_url=m.peer_url)


async def test_snapshot_under_writes_restores_every_key_and_mod_revision(
        store: EtcdStore, source: EtcdCluster, tmp_path: Path) -> None:
    await store.create("/registry/configmaps/ns/old", b"1")
    compacted = await store.current_revision()
    await store.compact(compacted)
    await _bulk(store, 40, 100, 2048)
    writes: list[int] = []
    stop = asyncio.Event()

    async def writer() -> None:
        for i in itertools.count():
            if stop.is_set():
                return
            rev = await store.create(f"/registry/configmaps/ns/w{i}", b"x" * 100)
            if i % 3 == 0:
                rev = await store.update(f"/registry/configmaps/ns/w{i}", b"y", rev)
            if i % 5 == 0:
                rev = (await store.delete(f"/registry/configmaps/ns/w{i}"))[0]
            writes.append(rev)

    task = asyncio.create_task(writer())
    try:
        while len(writes) < 20:
            await asyncio.sleep(0.01)
        started = writes[-1]
        info = await save_snapshot(_snapshotter(source), tmp_path / "snaps", "t", "node")
        during = len(writes)
        while len(writes) < during + 20:  # and the writes go on after it
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await task
    assert info.header is not None and info.header.backend == "etcd"
    rev = info.header.revision
    assert started <= rev < writes[-1], "the snapshot was taken while writes went on"
    src_conn = source.connection()
    try:
        _, expected = await _all_keys(src_conn, rev)
    finally:
        await src_conn.close()

    target = EtcdCluster(tmp_path / "restored")
    header = await restore_snapshot(_snapshotter(target, _restore_member(target)), info.path,
                                    tmp_path / "kyb", target.members[0].dir / "data")
    assert header.revision == rev and header.compacted_revision == compacted
    target.start()
    try:
        await target.wait_healthy()
        conn = target.connection()
        try:
            restored_rev, got = await _all_keys(conn)
        finally:
            await conn.close()
        restored = await EtcdStore.open(target.connection(), compact_interval=0)
        try:
            assert await restored.compacted_revision() == compacted
        finally:
            await restored.close()
    finally:
        target.stop()
    assert restored_rev == rev
    assert len(got) == len(expected) > 4000
    assert got == expected  # every key with its value, create and mod revision, and version


def _snapshots_sent(cluster: EtcdCluster) -> list[int]:
    """How many snapshots each member has logged sending."""
    return [(m.dir / "etcd.log").read_text(errors="replace").count("sending database snapshot")
            for m in cluster.members]


async def test_the_snapshot_comes_from_the_leader(store: EtcdStore, source: EtcdCluster, tmp_path: Path) -> None:
    snap = _snapshotter(source)
    conn = source.connection()
    try:
        leader = await snap._leader(conn)
        st = await rpc_grpc.MaintenanceStub(conn._channel(leader)).Status(rpc.StatusRequest(), timeout=5)
        assert st.leader == st.header.member_id
    finally:
        await conn.close()
    before = _snapshots_sent(source)
    await save_snapshot(snap, tmp_path, "t", "node")
    after = _snapshots_sent(source)
    assert [a - b for a, b in zip(after, before, strict=True)] == [int(i == leader) for i in range(3)]


def _flip_payload_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 5000])


def _reframe_damaged_etcd_db(path: Path) -> None:
    """A file whose framing is right (checksum of the damaged payload) but whose etcd database is
    not what etcd sent: etcd's own trailing SHA-256 no longer matches, so etcdctl refuses it."""
    info = read_info(path)
    assert info.header is not None
    raw = path.read_bytes()
    payload = bytearray(raw[len(raw) - info.header.payload_size:])
    payload[len(payload) // 2] ^= 0xFF
    bad = path.with_name("payload")
    bad.write_bytes(bytes(payload))
    path.unlink()
    h = info.header
    _frame(bad, path, SnapshotHeader(h.backend, h.revision, h.compacted_revision, h.created, h.node, h.payload_size))


@pytest.mark.parametrize(("damage", "message"), [
    (_flip_payload_byte, "checksum mismatch"),
    (_truncate, "truncated snapshot"),
    (_reframe_damaged_etcd_db, "etcdctl snapshot"),
])
async def test_damaged_snapshot_is_refused_before_the_target_is_touched(  # type: ignore[no-untyped-def]
        store: EtcdStore, source: EtcdCluster, tmp_path: Path, damage, message) -> None:
    await store.create(f"/registry/configmaps/ns/{tmp_path.name}", b"x")
    info = await save_snapshot(_snapshotter(source), tmp_path / "snaps", "t", "node")
    damage(info.path)
    target = tmp_path / "etcd" / "data"
    (target / "member").mkdir(parents=True)
    (target / "member" / "marker").write_text("old")
    member = RestoreMember(data_dir=target, name="m0", peer_url="https://127.0.0.1:2380")
    with pytest.raises(SnapshotError, match=message):
        await restore_snapshot(EtcdSnapshotter(source.endpoints, source.tls, member), info.path,
                               tmp_path / "kyb", target)
    assert sorted(p.name for p in target.parent.iterdir()) == ["data"]  # no restoring dir, no payload left
    assert [p.name for p in target.rglob("*")] == ["member", "marker"]
    assert (target / "member" / "marker").read_text() == "old"


async def test_no_leader_reachable_is_a_clear_error(tmp_path: Path) -> None:
    snap = EtcdSnapshotter("http://127.0.0.1:9", timeout=2.0)
    with pytest.raises(SnapshotError, match=r"no etcd leader among http://127\.0\.0\.1:9"):
        await save_snapshot(snap, tmp_path, "t", "node")
    assert list(tmp_path.iterdir()) == []  # no payload left behind


def _kyb(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kybernetes.cli", *args], capture_output=True, text=True,
                          timeout=120)


async def test_kyb_snapshot_save_over_tls_and_restore_into_an_etcd_data_dir(
        store: EtcdStore, source: EtcdCluster, tmp_path: Path) -> None:
    """The commands as typed: ``kyb snapshot save --datastore-endpoint https://... --datastore-cafile
    /-certfile/-keyfile``, ``kyb snapshot ls``, ``kyb snapshot restore FILE --etcd-data-dir ...``."""
    await store.create(f"/registry/configmaps/ns/{tmp_path.name}", b"cli")
    tls = source.tls
    snaps = tmp_path / "snaps"
    saved = await asyncio.to_thread(
        _kyb, "snapshot", "save", "--data-dir", str(tmp_path / "kyb"), "--dir", str(snaps),
        "--datastore-endpoint", source.endpoints, "--datastore-cafile", tls.cafile,
        "--datastore-certfile", tls.certfile, "--datastore-keyfile", tls.keyfile, "--node-name", "n1")
    assert saved.returncode == 0, saved.stderr
    [snap] = list(snaps.iterdir())
    header = read_info(snap).header
    assert header is not None and header.backend == "etcd"
    assert f"saved at revision {header.revision}" in saved.stdout
    listed = await asyncio.to_thread(_kyb, "snapshot", "ls", "--dir", str(snaps))
    assert snap.name in listed.stdout and str(header.revision) in listed.stdout

    src_conn = source.connection()
    try:
        _, expected = await _all_keys(src_conn, header.revision)
    finally:
        await src_conn.close()
    target = EtcdCluster(tmp_path / "restored")
    m = target.members[0]
    without_dir = await asyncio.to_thread(_kyb, "snapshot", "restore", str(snap), "--data-dir", str(tmp_path / "kyb"),
                                          "--datastore-endpoint", source.endpoints)
    assert without_dir.returncode == 2 and "needs --etcd-data-dir" in without_dir.stderr, without_dir.stderr
    (m.dir / "data").mkdir(parents=True)
    (m.dir / "data" / "old").write_text("kept")  # a data dir that was there is kept aside
    restored = await asyncio.to_thread(
        _kyb, "snapshot", "restore", str(snap), "--data-dir", str(tmp_path / "kyb"),
        "--etcd-data-dir", str(m.dir / "data"), "--etcd-name", m.name, "--initial-advertise-peer-urls", m.peer_url)
    assert restored.returncode == 0, restored.stderr
    [aside] = m.dir.glob("data.pre-restore-*")
    assert (aside / "old").read_text() == "kept"
    target.start()
    try:
        await target.wait_healthy()
        conn = target.connection()
        try:
            rev, got = await _all_keys(conn)
        finally:
            await conn.close()
    finally:
        target.stop()
    assert rev == header.revision and got == expected
    assert got[f"/registry/configmaps/ns/{tmp_path.name}".encode()][0] == b"cli"


class CuttingProxy:
    """A TCP proxy on loopback to one etcd member that cuts every connection once ``limit`` bytes
    have come back from etcd: a snapshot stream broken half way, deterministically."""

    def __init__(self, upstream: str, limit: int) -> None:
        host, port = upstream.removeprefix("https://").rsplit(":", 1)
        self.upstream = (host, int(port))
        self.limit = limit
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
        return f"https://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    async def _conn(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        ur, uw = await asyncio.wait_for(asyncio.open_connection(*self.upstream), 5)

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter, limit: int | None) -> None:
            sent = 0
            with contextlib.suppress(OSError):
                while (data := await r.read(65536)) and (limit is None or sent < limit):
                    w.write(data)
                    sent += len(data)
                    await w.drain()
            for x in (cw, uw):
                x.close()

        await asyncio.gather(pipe(cr, uw, None), pipe(ur, cw, self.limit))


async def test_a_stream_cut_half_way_is_an_error_and_leaves_no_file(
        store: EtcdStore, source: EtcdCluster, tmp_path: Path) -> None:
    await _bulk(store, 10, 100, 2048)  # a db of some MB (the bulk of the first test may not be there)
    conn = source.connection()
    try:
        leader = source.members[await EtcdSnapshotter(source.endpoints, source.tls)._leader(conn)]
    finally:
        await conn.close()
    async with CuttingProxy(leader.client_url, 1 << 20) as url:
        snap = EtcdSnapshotter(url, source.tls, timeout=5.0)
        with pytest.raises(SnapshotError, match=r"etcd snapshot from https://127\.0\.0\.1:\d+ (unavailable|failed)"):
            await save_snapshot(snap, tmp_path / "snaps", "t", "node")
    assert list((tmp_path / "snaps").iterdir()) == []  # neither a snapshot nor a partial file


async def test_one_snapshot_restored_into_every_member_of_a_new_three_member_cluster(
        store: EtcdStore, source: EtcdCluster, tmp_path: Path) -> None:
    """Each member's data dir restored from the same snapshot with the same --initial-cluster: the
    three form one cluster, and every member serves the snapshot's keys at its revision."""
    await store.create(f"/registry/configmaps/ns/{tmp_path.name}", b"3")
    info = await save_snapshot(_snapshotter(source), tmp_path / "snaps", "t", "node")
    assert info.header is not None
    src_conn = source.connection()
    try:
        _, expected = await _all_keys(src_conn, info.header.revision)
    finally:
        await src_conn.close()
    target = EtcdCluster(tmp_path / "restored", size=3)
    initial = ",".join(f"{m.name}={m.peer_url}" for m in target.members)
    for m in target.members:
        member = RestoreMember(m.dir / "data", m.name, m.peer_url, initial, cluster_token="restored")
        await restore_snapshot(_snapshotter(target, member), info.path, tmp_path / f"kyb-{m.name}", m.dir / "data")
    target.start()
    try:
        await target.wait_healthy()
        conn = target.connection()
        try:
            for i in range(3):
                resp = await rpc_grpc.KVStub(conn._channel(i)).Range(
                    rpc.RangeRequest(key=b"\0", range_end=b"\0", serializable=True), timeout=5)
                got = {kv.key: (kv.value, kv.create_revision, kv.mod_revision, kv.version) for kv in resp.kvs}
                assert got == expected, f"member {i}"
            st = [await rpc_grpc.MaintenanceStub(conn._channel(i)).Status(rpc.StatusRequest(), timeout=5)
                  for i in range(3)]
            assert len({s.header.cluster_id for s in st}) == 1 and len({s.leader for s in st}) == 1
        finally:
            await conn.close()
    finally:
        target.stop()
