"""Snapshots of an etcd store: the :class:`~kybernetes.storage.snapshot.Snapshotter` for etcd.

Contract:

- ``save_payload`` streams etcd's own snapshot (``Maintenance.Snapshot``) from the cluster's
  *leader* (found with ``Maintenance.Status`` on every endpoint: the member whose id is the leader
  id it reports) into the payload file. The payload is exactly what etcd sends: its bbolt database,
  one read transaction of the leader's backend, so one consistent revision while writes go on,
  followed by the SHA-256 etcd appends for ``etcdctl snapshot restore`` to check. A stream that
  ends short of the size etcd announced (``remaining_bytes``) is an error, never a payload.
- The header revision is read from the payload itself (``etcdctl snapshot status``: the newest
  revision in the database), because etcd 3.4 sends no header in the snapshot stream; the
  compacted revision is the value of kube-apiserver's ``compact_rev_key`` at that revision (what
  a store on the restored etcd reports), 0 if none, or if etcd compacted past the snapshot since.
- ``install_payload`` (after the framing's checksum was verified) checks the payload's revision
  against the header, then runs ``etcdctl snapshot restore`` (etcd 3.4 ships restore in etcdctl;
  ``etcdutl`` came with 3.5) into a new directory beside the target and only then moves it into
  place; a data dir that was there is kept aside as ``<dir>.pre-restore-<unix time>``. An etcd
  started on the result, as member ``name`` at ``peer_url``, has every key with the value,
  create/mod revision and version it had at the snapshot's revision.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import grpc.aio

from kybernetes.aiorun import wait_for
from kybernetes.storage.etcd import COMPACT_REV_KEY
from kybernetes.storage.etcd_client import EtcdConnection, TLSFiles, is_unavailable, parse_endpoints
from kybernetes.storage.etcdpb import rpc_pb2 as rpc
from kybernetes.storage.etcdpb import rpc_pb2_grpc as rpc_grpc
from kybernetes.storage.snapshot import SnapshotError

ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"
_TOOL_TIMEOUT = 300.0
"""Deadline of one ``etcdctl snapshot status/restore`` run (they read the whole database)."""


@dataclass(frozen=True)
class RestoreMember:
    """Where a snapshot is restored to, and the member that data dir belongs to (``etcdctl
    snapshot restore``'s flags)."""

    data_dir: Path | None = None
    name: str = "default"
    peer_url: str = "http://localhost:2380"
    initial_cluster: str = ""
    """``NAME=PEER_URL[,...]``; empty: this member alone."""
    cluster_token: str = "etcd-cluster"


class EtcdSnapshotter:
    """Snapshots of the etcd cluster at ``endpoints`` (``--datastore-endpoint``'s syntax; empty
    for one that only restores)."""

    backend = "etcd"

    def __init__(self, endpoints: str, tls: TLSFiles | None = None, member: RestoreMember | None = None,
                 timeout: float = 10.0) -> None:
        try:
            self.endpoints = parse_endpoints(endpoints) if endpoints else []
        except ValueError as e:
            raise SnapshotError(str(e)) from None
        self.tls = tls or TLSFiles()
        self.member = member or RestoreMember()
        self.timeout = timeout

    async def save_payload(self, dest: Path) -> tuple[int, int]:
        if not self.endpoints:
            raise SnapshotError("no etcd endpoint to take a snapshot from")
        conn = EtcdConnection(self.endpoints, self.tls, self.timeout)
        try:
            leader = await self._leader(conn)
            await self._stream(rpc_grpc.MaintenanceStub(conn._channel(leader)), dest,
                               self.endpoints[leader].url)
            revision = await asyncio.to_thread(payload_revision, dest)
            return revision, await self._compacted_at(rpc_grpc.KVStub(conn._channel(leader)), revision)
        finally:
            await conn.close()

    async def _compacted_at(self, kv: rpc_grpc.KVStub, revision: int) -> int:
        """The store's compacted revision as of ``revision`` (kube-apiserver's compact key, as
        :meth:`EtcdStore.compacted_revision` reads it), which is what the payload holds."""
        try:
            resp = await kv.Range(rpc.RangeRequest(key=COMPACT_REV_KEY, revision=revision), timeout=self.timeout)
        except grpc.aio.AioRpcError as e:
            # Compacted past the snapshot already (a compaction trails by a whole interval): unknown.
            if e.code() == grpc.StatusCode.OUT_OF_RANGE:
                return 0
            raise SnapshotError(f"etcd: reading the compacted revision failed: {e.details()}") from None
        return int(resp.kvs[0].value or b"0") if resp.kvs else 0

    async def _leader(self, conn: EtcdConnection) -> int:
        """The index of the endpoint that is the leader (any endpoint's Status names the leader)."""
        errors = []
        for i, ep in enumerate(self.endpoints):
            try:
                st = await rpc_grpc.MaintenanceStub(conn._channel(i)).Status(rpc.StatusRequest(),
                                                                               timeout=self.timeout)
            except grpc.aio.AioRpcError as e:
                errors.append(f"{ep.url}: {e.details()}")
                continue
            if st.leader and st.leader == st.header.member_id:
                return i
        raise SnapshotError("no etcd leader among " + ", ".join(ep.url for ep in self.endpoints)
                            + (f" ({'; '.join(errors)})" if errors else ""))

    async def _stream(self, stub: rpc_grpc.MaintenanceStub, dest: Path, where: str) -> None:
        call = stub.Snapshot(rpc.SnapshotRequest())
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        remaining: int | None = None
        try:
            with os.fdopen(fd, "wb") as out:
                while True:
                    # A deadline per message, not per stream: a large database takes as long as it takes.
                    msg = await wait_for(call.read(), self.timeout)
                    if msg is grpc.aio.EOF:
                        break
                    out.write(msg.blob)
                    remaining = msg.remaining_bytes
                out.flush()
                os.fsync(out.fileno())
        except (TimeoutError, grpc.aio.AioRpcError) as e:
            call.cancel()
            why = "no data within the deadline" if isinstance(e, TimeoutError) else e.details()
            kind = "unavailable" if isinstance(e, grpc.aio.AioRpcError) and is_unavailable(e) else "failed"
            raise SnapshotError(f"etcd snapshot from {where} {kind}: {why}") from None
        if remaining is None or remaining != 0:
            raise SnapshotError(f"etcd snapshot from {where} ended early ({remaining} bytes announced but not sent)")

    async def install_payload(self, payload: Path, revision: int) -> None:
        await asyncio.to_thread(self._restore, payload, revision)

    def _restore(self, payload: Path, revision: int) -> None:
        m = self.member
        if m.data_dir is None:
            raise SnapshotError("restoring an etcd snapshot needs the etcd data dir to restore into")
        data_dir = m.data_dir
        rev = payload_revision(payload)
        if rev != revision:
            raise SnapshotError(f"the snapshot's database is at revision {rev}, its header says {revision}")
        fresh = data_dir.with_name(f".{data_dir.name}.restoring")
        shutil.rmtree(fresh, ignore_errors=True)
        try:
            etcdctl("snapshot", "restore", str(payload), "--data-dir", str(fresh), "--name", m.name,
                     "--initial-cluster", m.initial_cluster or f"{m.name}={m.peer_url}",
                     "--initial-advertise-peer-urls", m.peer_url, "--initial-cluster-token", m.cluster_token)
            if data_dir.exists():
                data_dir.rename(data_dir.with_name(f"{data_dir.name}.pre-restore-{int(time.time())}"))
            fresh.rename(data_dir)
        finally:
            shutil.rmtree(fresh, ignore_errors=True)


def payload_revision(db: Path) -> int:
    """The newest revision in an etcd snapshot database (``etcdctl snapshot status``)."""
    out = etcdctl("snapshot", "status", str(db), "--write-out", "json")
    try:
        return int(json.loads(out)["revision"])
    except (ValueError, KeyError, TypeError) as e:
        raise SnapshotError(f"etcdctl snapshot status of {db}: unexpected output ({e}): {out[:200]!r}") from None


def etcdctl(*args: str) -> str:
    try:
        p = subprocess.run([ETCDCTL, *args], capture_output=True, text=True, timeout=_TOOL_TIMEOUT,
                           env={**os.environ, "ETCDCTL_API": "3"}, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SnapshotError(f"etcdctl {args[0]} {args[1]} failed: {e}") from None
    if p.returncode != 0:
        msg = (p.stderr.strip() or p.stdout.strip()).splitlines()
        raise SnapshotError(f"etcdctl {args[0]} {args[1]} failed: {msg[-1] if msg else p.returncode}")
    return p.stdout
