"""The etcd v3 store: the Store contract on an external etcd cluster, over gRPC.

Mapping of the contract (:mod:`kybernetes.storage.interface`) onto etcd, as kube-apiserver's
``storage/etcd3`` does it:

- Keys are stored as given (``/registry/...``), values are the object JSON the store keeps; a
  key's ``mod_revision`` is its resourceVersion, a list's revision is the response header's.
- **create** is a transaction ``If(create_revision(key) == 0) Then(Put)``; **update** and
  **delete** are ``If(mod_revision(key) == expected) Then(Put | Delete) Else(Get)``: the Get says
  whether the key is missing (:class:`KeyNotFoundError`) or moved on
  (:class:`RevisionMismatchError` with its revision). A failed transaction writes nothing and so
  takes no revision.
- **list** is one Range over ``[max(prefix, start_after + "\\0"), prefix_end)`` at a fixed revision
  with ``limit``; etcd says whether more keys remain.
- **watch** is an etcd watch from ``start + 1`` with ``prev_kv`` (the DELETE's last value, an
  update's previous one). If the stream breaks (member killed, no leader), it is re-opened on the
  next endpoint from the last delivered revision + 1: no gap, no duplicate.
- **progress**: with ``progress=True`` a watch also yields ``PROGRESS`` events, which tell the
  watch cache it has seen everything up to a revision even when the newest writes were outside its
  prefix. On etcd 3.4.31+, 3.5.13+ and 3.6 they are etcd's own: ``request_progress`` sends a
  WatchProgressRequest on every such stream, and etcd's periodic progress notifications count too.
  Older members answer a WatchProgressRequest out of band, possibly *before* events already due on
  the stream (etcd PRs 15697, 17567; kube-apiserver refuses consistent reads from its cache there
  for this reason), which would let a reader see the cache before its own write. On those,
  ``request_progress`` instead writes the progress key ``prefix_end(prefix)`` (``/registry0`` for
  ``/registry/``: outside every listed prefix), which the watch's range includes: its event comes
  in order on the stream and is yielded as ``PROGRESS``. The member's version is read at open
  (Maintenance.Status).
- **compaction**: etcd's Compact RPC. As kube-apiserver, the compacted revision is also written to
  the key ``compact_rev_key`` in the same round, whose version is the compactors' logical clock:
  several API servers on one etcd each run the loop, and only the one whose transaction on the
  key's version wins compacts (``Compactor``; every ``compact_interval``, default 5 minutes, to
  the revision seen one interval earlier). A watch or list older than the compacted revision
  raises :class:`CompactedError` (the API's 410 Gone).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
from collections.abc import AsyncIterator

import grpc
import grpc.aio

from kybernetes.storage.etcd_client import (
    REQUIRE_LEADER,
    EtcdConnection,
    EtcdUnavailableError,
    is_unavailable,
    says_outage,
)
from kybernetes.storage.etcdpb import kv_pb2 as mvcc
from kybernetes.storage.etcdpb import rpc_pb2 as rpc
from kybernetes.storage.etcdpb import rpc_pb2_grpc as rpc_grpc
from kybernetes.storage.interface import (
    CompactedError,
    Event,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    ListResult,
    RevisionMismatchError,
    StoreError,
)

log = logging.getLogger(__name__)

COMPACT_REV_KEY = b"compact_rev_key"
"""kube-apiserver's key: value the last compacted revision, version the compactors' clock."""

_C = rpc.Compare
_STREAM_BROKE = (grpc.StatusCode.CANCELLED, grpc.StatusCode.INTERNAL)


def prefix_end(prefix: bytes) -> bytes:
    """The first key after every key that starts with ``prefix`` (etcd's ``GetPrefixRangeEnd``)."""
    b = bytearray(prefix)
    while b:
        if b[-1] < 0xFF:
            b[-1] += 1
            return bytes(b)
        b.pop()
    return b"\0"  # every key


def ordered_progress(version: str) -> bool:
    """Whether etcd ``version`` sends requested progress notifications in order with events."""
    try:
        major, minor, patch = (int(x) for x in version.split("-")[0].split(".")[:3])
    except ValueError:
        return False
    return (major, minor) > (3, 5) or (major, minor, patch) >= (3, 5, 13) or (3, 4, 31) <= (major, minor, patch) < (3, 5, 0)


def _kv(kv: mvcc.KeyValue) -> KeyValue:
    return KeyValue(kv.key.decode(), kv.value, kv.create_revision, kv.mod_revision)


def _retrieve(answer: asyncio.Future[int]) -> None:
    """A shared answer whose callers all gave up still has its error looked at (no asyncio warning)."""
    if not answer.cancelled():
        answer.exception()


def _out_of_range(e: grpc.aio.AioRpcError) -> str:
    """``compacted``, ``future`` or '' for an etcd range/compact error."""
    d = e.details() or ""
    if "compacted" in d:
        return "compacted"
    if "future revision" in d:
        return "future"
    return ""


class EtcdStore:
    """A :class:`~kybernetes.storage.interface.Store` on etcd v3 (see the module docstring)."""

    def __init__(self, conn: EtcdConnection) -> None:
        self.conn = conn
        self._compacted = 0
        self._progress_calls: set[grpc.aio.StreamStreamCall] = set()
        self._progress_keys: dict[bytes, int] = {}  # progress key -> open watches that include it
        self.ordered_progress = False
        """Whether etcd's own progress notifications can be trusted (see the module docstring)."""
        self._compactor: asyncio.Task[None] | None = None
        self._closed = False
        self._next_revision: asyncio.Future[int] | None = None
        """The answer of the revision read not sent yet, which every new ``current_revision`` joins."""
        self._revision_reader: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, conn: EtcdConnection, *, compact_interval: float = 300.0) -> EtcdStore:
        """A store on ``conn`` (reachable: this reads the compacted revision), with its compactor.

        ``compact_interval`` <= 0 disables compaction by this store.
        """
        store = cls(conn)
        await store.compacted_revision()
        try:
            store.ordered_progress = ordered_progress(await conn.version())
        except grpc.aio.AioRpcError as e:
            log.warning("etcd: cannot read the member's version (%s); progress by writes", e.details())
        if compact_interval > 0:
            store._compactor = asyncio.create_task(Compactor(store).run(compact_interval), name="etcd-compactor")
        return store

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in (self._compactor, self._revision_reader):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._next_revision is not None:  # joined, never sent
            self._next_revision.cancel()
        for call in list(self._progress_calls):
            call.cancel()
        await self.conn.close()

    async def __aenter__(self) -> EtcdStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -----------------------------------------------------------------------------------------
    # Reads

    async def _range(self, req: rpc.RangeRequest) -> rpc.RangeResponse:
        async def go(kv: rpc_grpc.KVStub, timeout: float) -> rpc.RangeResponse:
            resp: rpc.RangeResponse = await kv.Range(req, timeout=timeout)
            return resp

        try:
            return await self.conn.call(go)
        except grpc.aio.AioRpcError as e:
            kind = _out_of_range(e)
            if kind == "compacted":
                raise CompactedError(req.revision, await self.compacted_revision()) from None
            if kind == "future":
                raise FutureRevisionError(req.revision, await self.current_revision()) from None
            raise StoreError(f"etcd: {e.details()}") from None

    async def get(self, key: str) -> KeyValue | None:
        resp = await self._range(rpc.RangeRequest(key=key.encode()))
        return _kv(resp.kvs[0]) if resp.kvs else None

    async def list(
        self, prefix: str, *, revision: int = 0, start_after: str = "", limit: int = 0
    ) -> ListResult:
        p = prefix.encode()
        start = start_after.encode() + b"\0" if start_after and start_after >= prefix else p
        resp = await self._range(
            rpc.RangeRequest(key=start, range_end=prefix_end(p), revision=revision, limit=max(limit, 0))
        )
        items = [_kv(kv) for kv in resp.kvs]
        return ListResult(items=items, revision=revision or resp.header.revision, more=bool(resp.more))

    async def count(self, prefix: str) -> int:
        p = prefix.encode()
        resp = await self._range(rpc.RangeRequest(key=p, range_end=prefix_end(p), count_only=True))
        return int(resp.count)

    async def current_revision(self) -> int:
        """At least the revision of every write etcd acknowledged before this call (a linearizable
        Range's header revision).

        Concurrent callers share one Range: a caller joins the next read *not yet sent*, never one
        already in flight (its answer may predate a write acknowledged just before this call). Under
        load (every consistent GET asks) one Range answers every caller that arrived while the
        previous one was out, instead of one gRPC call each."""
        if self._next_revision is None:
            self._next_revision = asyncio.get_running_loop().create_future()
            self._next_revision.add_done_callback(_retrieve)
            if self._revision_reader is None or self._revision_reader.done():
                self._revision_reader = asyncio.create_task(self._read_revisions(), name="etcd-revision")
        return await asyncio.shield(self._next_revision)

    async def _read_revisions(self) -> None:
        """Sends the pending revision read, then the one callers joined meanwhile, until none is."""
        while (answer := self._next_revision) is not None:
            self._next_revision = None  # callers from now on wait for the next Range
            try:
                resp = await self._range(rpc.RangeRequest(key=COMPACT_REV_KEY, count_only=True))
            except asyncio.CancelledError:
                answer.cancel()
                raise
            except Exception as e:  # every caller of this round gets it
                answer.set_exception(e)
            else:
                answer.set_result(int(resp.header.revision))

    async def compacted_revision(self) -> int:
        resp = await self._range(rpc.RangeRequest(key=COMPACT_REV_KEY))
        if resp.kvs:
            self._compacted = max(self._compacted, int(resp.kvs[0].value or b"0"))
        return self._compacted

    # -----------------------------------------------------------------------------------------
    # Writes

    async def _txn(self, req: rpc.TxnRequest) -> rpc.TxnResponse:
        async def go(kv: rpc_grpc.KVStub, timeout: float) -> rpc.TxnResponse:
            resp: rpc.TxnResponse = await kv.Txn(req, timeout=timeout)
            return resp

        try:
            return await self.conn.call(go)
        except grpc.aio.AioRpcError as e:
            raise StoreError(f"etcd: {e.details()}") from None

    async def create(self, key: str, value: bytes) -> int:
        k = key.encode()
        resp = await self._txn(rpc.TxnRequest(
            compare=[_C(key=k, target=_C.CREATE, result=_C.EQUAL, create_revision=0)],
            success=[rpc.RequestOp(request_put=rpc.PutRequest(key=k, value=value))],
        ))
        if not resp.succeeded:
            raise KeyExistsError(key)
        return int(resp.header.revision)

    @staticmethod
    def _expect(k: bytes, expected: int) -> rpc.Compare:
        if expected:
            return _C(key=k, target=_C.MOD, result=_C.EQUAL, mod_revision=expected)
        return _C(key=k, target=_C.VERSION, result=_C.GREATER, version=0)  # exists, at any revision

    def _mismatch(self, key: str, expected: int, resp: rpc.TxnResponse) -> StoreError:
        kvs = resp.responses[0].response_range.kvs
        if not kvs:
            return KeyNotFoundError(key)
        return RevisionMismatchError(key, expected, int(kvs[0].mod_revision))

    async def update(self, key: str, value: bytes, expected_revision: int) -> int:
        k = key.encode()
        resp = await self._txn(rpc.TxnRequest(
            compare=[self._expect(k, expected_revision)],
            success=[rpc.RequestOp(request_put=rpc.PutRequest(key=k, value=value))],
            failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=k))],
        ))
        if not resp.succeeded:
            raise self._mismatch(key, expected_revision, resp)
        return int(resp.header.revision)

    async def delete(self, key: str, expected_revision: int = 0) -> tuple[int, KeyValue]:
        k = key.encode()
        resp = await self._txn(rpc.TxnRequest(
            compare=[self._expect(k, expected_revision)],
            success=[rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=k, prev_kv=True))],
            failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=k))],
        ))
        if not resp.succeeded:
            raise self._mismatch(key, expected_revision, resp)
        prev = resp.responses[0].response_delete_range.prev_kvs
        if not prev:  # deleted between the compare and the delete: cannot happen inside one txn
            raise KeyNotFoundError(key)
        return int(resp.header.revision), _kv(prev[0])

    # -----------------------------------------------------------------------------------------
    # Watch

    async def watch(self, prefix: str, start_revision: int, *, progress: bool = False) -> AsyncIterator[Event]:
        if self._closed:
            raise StoreError("store is closed")
        compacted = await self.compacted_revision()
        if start_revision < compacted:
            raise CompactedError(start_revision, compacted)
        p = prefix.encode()
        end = prefix_end(p)
        # The progress key is prefix_end itself: the range [p, end + "\0") holds it and nothing else.
        mark = end if progress and p else b""
        last = start_revision
        backoff = 0.1
        if mark:
            self._progress_keys[mark] = self._progress_keys.get(mark, 0) + 1
        try:
            while not self._closed:
                endpoint = self.conn._current
                call = self.conn.watch_stub().Watch(metadata=REQUIRE_LEADER)
                if progress:
                    self._progress_calls.add(call)
                try:
                    await call.write(rpc.WatchRequest(create_request=rpc.WatchCreateRequest(
                        key=p, range_end=end + b"\0" if mark else end, start_revision=last + 1, prev_kv=True,
                        progress_notify=progress,
                    )))
                    async for ev in self._read_stream(call, progress, mark, last):
                        last = max(last, ev.revision)
                        backoff = 0.1
                        yield ev
                except grpc.aio.AioRpcError as e:
                    # INTERNAL: gRPC's own "Internal error from Core" when a stream's connection
                    # fails (a member killed); re-opening a watch is harmless, so it resumes too.
                    if not is_unavailable(e) and e.code() not in _STREAM_BROKE:
                        raise StoreError(f"etcd watch failed: {e.details()}") from None
                    if self._closed:
                        return
                    log.warning("etcd watch on %s broke (%s); resuming from revision %d",
                                self.conn.endpoints[endpoint].url, e.details(), last + 1)
                    self.conn.fail_over(endpoint)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
                finally:
                    self._progress_calls.discard(call)
                    call.cancel()
        finally:
            if mark:
                self._progress_keys[mark] -= 1
                if not self._progress_keys[mark]:
                    del self._progress_keys[mark]

    async def _read_stream(self, call: grpc.aio.StreamStreamCall, progress: bool, mark: bytes,
                           last: int) -> AsyncIterator[Event]:
        """One watch stream's events after revision ``last`` (progress key writes as PROGRESS) until it breaks."""
        while True:
            resp = await call.read()
            if resp is grpc.aio.EOF:
                raise StoreError("etcd ended the watch stream")
            assert isinstance(resp, rpc.WatchResponse)
            if resp.compact_revision:
                self._compacted = max(self._compacted, int(resp.compact_revision))
                raise CompactedError(last, int(resp.compact_revision))
            if resp.canceled:
                if says_outage(resp.cancel_reason):  # the watcher resumes once the store is back
                    raise EtcdUnavailableError(f"etcd cancelled the watch: {resp.cancel_reason}")
                raise StoreError(f"etcd cancelled the watch: {resp.cancel_reason}")
            if not resp.events:
                if progress and self.ordered_progress and not resp.created and resp.header.revision > last:
                    yield Event("PROGRESS", "", int(resp.header.revision), None, None)
                continue
            for ev in resp.events:
                last = int(ev.kv.mod_revision)
                if mark and ev.kv.key == mark:
                    yield Event("PROGRESS", "", last, None, None)
                else:
                    yield _event(ev)

    async def request_progress(self) -> None:
        """Have every watch opened with ``progress=True`` yield a PROGRESS event soon: etcd's
        WatchProgressRequest where it answers in order, else a write of each watch's progress key."""
        if self.ordered_progress:
            req = rpc.WatchRequest(progress_request=rpc.WatchProgressRequest())
            for call in list(self._progress_calls):
                with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
                    await call.write(req)
            return
        for mark in list(self._progress_keys):
            await self._txn(rpc.TxnRequest(success=[rpc.RequestOp(request_put=rpc.PutRequest(key=mark))]))

    # -----------------------------------------------------------------------------------------
    # Compaction

    async def compact(self, revision: int) -> None:
        current = await self.current_revision()
        if revision > current:
            raise FutureRevisionError(revision, current)
        if revision <= await self.compacted_revision():
            return
        await self._txn(rpc.TxnRequest(success=[rpc.RequestOp(
            request_put=rpc.PutRequest(key=COMPACT_REV_KEY, value=str(revision).encode()))]))
        await self._compact_rpc(revision)

    async def _compact_rpc(self, revision: int) -> None:
        async def go(kv: rpc_grpc.KVStub, timeout: float) -> None:
            await kv.Compact(rpc.CompactionRequest(revision=revision), timeout=timeout)

        try:
            await self.conn.call(go)
        except grpc.aio.AioRpcError as e:
            if _out_of_range(e) != "compacted":  # another API server got there first
                raise StoreError(f"etcd: compaction failed: {e.details()}") from None
        self._compacted = max(self._compacted, revision)


def _event(ev: mvcc.Event) -> Event:
    kv, prev = ev.kv, ev.prev_kv if ev.HasField("prev_kv") else None
    key = kv.key.decode()
    if ev.type == mvcc.Event.DELETE:
        create = prev.create_revision if prev is not None else 0
        return Event("DELETE", key, int(kv.mod_revision), None, prev.value if prev is not None else None, create)
    created = kv.create_revision == kv.mod_revision
    return Event("PUT", key, int(kv.mod_revision), kv.value, None if created else (prev.value if prev else None),
                 int(kv.create_revision))


class Compactor:
    """kube-apiserver's compactor (``storage/etcd3/compact.go``): every interval, compact to the
    revision seen one interval earlier, coordinated through ``compact_rev_key``'s version so that
    of several API servers on one etcd only one compacts per round."""

    def __init__(self, store: EtcdStore) -> None:
        self.store = store

    async def run(self, interval: float) -> None:
        clock, rev = 0, 0
        while True:
            await asyncio.sleep(interval)
            try:
                clock, rev = await self.round(clock, rev)
            except (StoreError, grpc.aio.AioRpcError) as e:
                log.warning("etcd compaction round failed: %s", e)

    async def round(self, clock: int, rev: int) -> builtins.tuple[int, int]:
        """One round: returns the clock and the revision to compact to next time."""
        k = COMPACT_REV_KEY
        resp = await self.store._txn(rpc.TxnRequest(
            compare=[_C(key=k, target=_C.VERSION, result=_C.EQUAL, version=clock)],
            success=[rpc.RequestOp(request_put=rpc.PutRequest(key=k, value=str(rev).encode()))],
            failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=k))],
        ))
        current = int(resp.header.revision)
        if not resp.succeeded:
            kvs = resp.responses[0].response_range.kvs
            return (int(kvs[0].version) if kvs else 0), current
        if rev > 0:
            await self.store._compact_rpc(rev)
            log.info("etcd compacted to revision %d", rev)
        return clock + 1, current


__all__ = ["COMPACT_REV_KEY", "Compactor", "EtcdStore", "EtcdUnavailableError", "ordered_progress", "prefix_end"]
