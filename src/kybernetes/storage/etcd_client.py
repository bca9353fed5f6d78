"""A connection to an etcd v3 cluster: endpoints, TLS, failover, deadlines, error mapping.

Contract:

- ``EtcdConnection(endpoints, ...)`` holds one grpc.aio channel per endpoint, made lazily. Calls
  go to the *current* endpoint; a call that fails for an outage (:func:`is_unavailable`: the member
  is down, has no leader, or its cluster has lost quorum so the call's deadline passed) moves the
  connection to the next endpoint and is tried there, once per endpoint, before
  :class:`EtcdUnavailableError` is raised. Every call has a deadline (``timeout``).
- Endpoints are ``https://HOST:PORT`` (TLS with ``cafile`` and, for client authentication,
  ``certfile``/``keyfile``) or ``http://HOST:PORT`` (no TLS), as etcd and k3s accept them.
- Failover of a write is done on an outage only. gRPC answers UNAVAILABLE when the request never
  reached a member (connection refused or reset before sending) and also, rarely, when the
  connection broke after sending; in that second case, and when a deadline passed while the
  proposal waited for a quorum, the write may have been applied (or may be, once the quorum is
  back). The retry answers as etcd finds the key (a create then reports the key as existing, an
  update a revision mismatch); if no member answers, the caller gets :class:`EtcdUnavailableError`
  (a 503), the same outcome a client of kube-apiserver sees when its request timed out.

The generated messages are in :mod:`kybernetes.storage.etcdpb` (``scripts/gen-etcd.py``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import grpc
import grpc.aio

from kybernetes.storage.etcdpb import rpc_pb2 as rpc
from kybernetes.storage.etcdpb import rpc_pb2_grpc as rpc_grpc
from kybernetes.storage.interface import OutOfSpaceError, StoreError, UnavailableError

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_TIMEOUT = 10.0
"""Deadline of one unary call (kube-apiserver's etcd client uses the request's own deadline)."""

# What clientv3.WithRequireLeader sends: a member without a leader cancels the watch (UNAVAILABLE)
# instead of leaving it silent, so the watch fails over to a member that has one.
REQUIRE_LEADER = (("hasleader", "true"),)

_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", -1),  # a list of many large objects is one response
    ("grpc.max_send_message_length", -1),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2_000),
]


class EtcdUnavailableError(UnavailableError):
    """No endpoint answered: every member is down or unreachable."""


@dataclass(frozen=True)
class Endpoint:
    url: str
    target: str
    tls: bool


def parse_endpoints(spec: str) -> list[Endpoint]:
    """``https://H:P[,http://H:P...]`` as ``--datastore-endpoint`` takes it; ValueError if malformed."""
    out = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        u = urlsplit(part)
        if u.scheme not in ("http", "https") or not u.hostname or u.path not in ("", "/"):
            raise ValueError(f"invalid etcd endpoint {part!r} (want http://HOST:PORT or https://HOST:PORT)")
        port = u.port or 2379
        host = f"[{u.hostname}]" if ":" in u.hostname else u.hostname
        out.append(Endpoint(part, f"{host}:{port}", u.scheme == "https"))
    if not out:
        raise ValueError("no etcd endpoint given")
    return out


@dataclass(frozen=True)
class TLSFiles:
    cafile: str = ""
    certfile: str = ""
    keyfile: str = ""

    def credentials(self) -> grpc.ChannelCredentials:
        def read(p: str) -> bytes | None:
            return Path(p).read_bytes() if p else None

        return grpc.ssl_channel_credentials(read(self.cafile), read(self.keyfile), read(self.certfile))


_OUTAGE_DETAILS = ("context deadline exceeded", "etcdserver: request timed out", "etcdserver: no leader",
                   "etcdserver: leader changed", "etcdserver: unhealthy cluster", "etcdserver: server stopped")
"""How etcd words an outage (rpctypes' errors; ``context.DeadlineExceeded`` itself). etcd 3.4 sends
its own deadline, passed while a proposal waited for a quorum, as UNKNOWN with the Go error's text."""


def is_out_of_space(e: grpc.aio.AioRpcError) -> bool:
    """etcd's NOSPACE alarm: its backend reached its quota (``--quota-backend-bytes``) or disk."""
    return e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "space exceeded" in (e.details() or "")


def is_unavailable(e: grpc.aio.AioRpcError) -> bool:
    """Whether ``e`` says the cluster could not serve the call (member down, no leader, no quorum,
    deadline passed): the store's :class:`UnavailableError`, a 503 in the API, never a 500."""
    if e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return True
    return e.code() == grpc.StatusCode.UNKNOWN and says_outage(e.details() or "")


def says_outage(message: str) -> bool:
    """Whether an etcd error message (or a watch's cancel reason) is one of an outage."""
    return any(d in message for d in _OUTAGE_DETAILS)


class EtcdConnection:
    """Channels to every endpoint of one etcd cluster, with failover (see the module docstring)."""

    def __init__(self, endpoints: list[Endpoint], tls: TLSFiles = TLSFiles(), timeout: float = DEFAULT_TIMEOUT) -> None:
        self.endpoints = endpoints
        self.tls = tls
        self.timeout = timeout
        self._channels: dict[int, grpc.aio.Channel] = {}
        self._kv_stubs: dict[int, rpc_grpc.KVStub] = {}
        """One stub per channel: making one builds a callable per method (~60 us), every call paid it."""
        self._current = 0
        self._closed = False

    @property
    def current(self) -> Endpoint:
        return self.endpoints[self._current]

    def _channel(self, i: int) -> grpc.aio.Channel:
        ch = self._channels.get(i)
        if ch is None:
            ep = self.endpoints[i]
            if ep.tls:
                ch = grpc.aio.secure_channel(ep.target, self.tls.credentials(), options=_CHANNEL_OPTIONS)
            else:
                ch = grpc.aio.insecure_channel(ep.target, options=_CHANNEL_OPTIONS)
            self._channels[i] = ch
        return ch

    def kv(self) -> rpc_grpc.KVStub:
        return self._kv(self._current)

    def _kv(self, i: int) -> rpc_grpc.KVStub:
        stub = self._kv_stubs.get(i)
        if stub is None:
            stub = self._kv_stubs[i] = rpc_grpc.KVStub(self._channel(i))
        return stub

    def channel(self) -> grpc.aio.Channel:
        """The current endpoint's channel (inside ``call``: the endpoint being tried), for the
        services other than KV (Cluster, Maintenance)."""
        return self._channel(self._current)

    def watch_stub(self) -> rpc_grpc.WatchStub:
        return rpc_grpc.WatchStub(self._channel(self._current))

    def fail_over(self, failed: int) -> None:
        """The endpoint ``failed`` did not answer: use the next one (unless another call already moved on)."""
        if self._current == failed and len(self.endpoints) > 1:
            self._current = (failed + 1) % len(self.endpoints)
            log.warning("etcd endpoint %s unavailable; switching to %s",
                        self.endpoints[failed].url, self.endpoints[self._current].url)

    async def call(self, fn: Callable[[rpc_grpc.KVStub, float], Awaitable[T]]) -> T:
        """``fn(stub, timeout)`` on the current endpoint, failing over on UNAVAILABLE."""
        if self._closed:
            raise StoreError("store is closed")
        last: grpc.aio.AioRpcError | None = None
        for _ in range(len(self.endpoints)):
            i = self._current
            try:
                return await fn(self._kv(i), self.timeout)
            except grpc.aio.AioRpcError as e:
                if is_out_of_space(e):
                    raise OutOfSpaceError(f"etcdserver: {(e.details() or '').removeprefix('etcdserver: ')}") from None
                if not is_unavailable(e):
                    raise
                last = e
                self.fail_over(i)
        assert last is not None
        raise EtcdUnavailableError(
            f"etcd unavailable at {', '.join(ep.url for ep in self.endpoints)}: {last.details()}"
        )

    async def version(self) -> str:
        """The etcd version of the current member (Maintenance.Status)."""

        async def go(_kv: rpc_grpc.KVStub, timeout: float) -> str:
            stub = rpc_grpc.MaintenanceStub(self._channel(self._current))
            resp = await stub.Status(rpc.StatusRequest(), timeout=timeout)
            return str(resp.version)

        return await self.call(go)

    async def close(self) -> None:
        self._closed = True
        channels, self._channels = list(self._channels.values()), {}
        self._kv_stubs = {}
        await asyncio.gather(*(ch.close() for ch in channels), return_exceptions=True)
