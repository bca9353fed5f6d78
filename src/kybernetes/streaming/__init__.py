"""Streaming between ``kubectl logs/exec/attach/port-forward`` and containers.

Three hops, each with its own protocol choices::

    kubectl --(WebSocket v5.channel.k8s.io | SPDY/3.1 | WebSocket "SPDY/3.1+portforward.k8s.io")--> API server
    API server --(the same bytes, proxied transparently over TLS)--> kubelet (``kubelet/server.py``)
    kubelet --(SPDY/3.1, v4.channel.k8s.io or portforward.k8s.io)--> containerd's CRI streaming server

Modules:

- ``channels``: the WebSocket channel protocol of remotecommand (v4/v5: one leading byte names the
  stream; v5 adds the CLOSE signal on channel 255) and the Status objects on its error channel;
- ``spdy``: SPDY/3.1 framing, header-block compression and a session usable as client or server.

This module holds the small byte-transport abstraction both build on (:class:`ByteStream`) and its
adapters: an asyncio stream pair, a WebSocket carrying an opaque byte stream (the port-forward
tunnel), and an aiohttp server connection taken over after a ``101 Switching Protocols``; plus
:func:`http_upgrade`, the client half of an HTTP/1.1 upgrade on a raw connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from aiohttp import WSMsgType, web

from kybernetes.aiorun import wait_for

__all__ = [
    "ByteStream",
    "RawUpgrade",
    "StreamPair",
    "UpgradeResponse",
    "WebSocketBytes",
    "http_upgrade",
    "read_response_head",
]


class ByteStream(Protocol):
    """A bidirectional byte stream: what a SPDY session runs over."""

    async def read(self) -> bytes:
        """The next bytes; ``b""`` at end of stream."""
        ...

    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


class StreamPair:
    """An asyncio ``StreamReader``/``StreamWriter`` as a :class:`ByteStream`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def read(self) -> bytes:
        try:
            return await self.reader.read(65536)
        except (ConnectionError, OSError):
            return b""

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class WebSocketBytes:
    """A WebSocket whose binary messages are arbitrary slices of one byte stream.

    This is kubectl's port-forward tunnel (subprotocol ``SPDY/3.1+portforward.k8s.io``): each
    write of the SPDY connection goes out as one binary message, and the receiver concatenates
    messages without regard to their boundaries. Works with aiohttp's server and client sockets.
    """

    def __init__(self, ws: Any) -> None:
        self.ws = ws

    async def read(self) -> bytes:
        while True:
            msg = await self.ws.receive()
            if msg.type == WSMsgType.BINARY:
                if msg.data:
                    return bytes(msg.data)
                continue
            if msg.type == WSMsgType.TEXT:
                return str(msg.data).encode()
            if msg.type in (WSMsgType.PING, WSMsgType.PONG):
                continue
            return b""

    async def write(self, data: bytes) -> None:
        await self.ws.send_bytes(data)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()


class _RawParser:
    """Stands in for aiohttp's payload parser after an upgrade: hands every byte to a queue."""

    def __init__(self, owner: RawUpgrade) -> None:
        self.owner = owner

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.owner._feed(bytes(data))
        return False, b""

    def feed_eof(self) -> None:
        self.owner._feed(b"")


class RawUpgrade:
    """An aiohttp server connection taken over after ``101 Switching Protocols``.

    aiohttp itself does this for WebSockets (it swaps the HTTP parser for a frame parser); here the
    replacement parser passes raw bytes on, so any upgraded protocol (SPDY/3.1, or a WebSocket the
    API server proxies without looking inside) can be spoken on the connection. Reading is paused
    while more than ``HIGH_WATER`` bytes wait, so a slow consumer holds the peer back.
    """

    HIGH_WATER = 1 << 20

    def __init__(self, request: web.BaseRequest) -> None:
        self.request = request
        self.transport = request.transport
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.buffered = 0
        self.paused = False
        self.eof = False
        self.response: web.StreamResponse | None = None
        """The 101 sent; a handler returns it (already prepared, aiohttp sends nothing more)."""

    @classmethod
    async def accept(cls, request: web.BaseRequest, headers: Mapping[str, str]) -> RawUpgrade:
        """Sends the 101 with ``headers`` and takes the connection over."""
        resp = web.StreamResponse(status=101, headers=dict(headers))
        resp.force_close()
        await resp.prepare(request)
        raw = cls(request)
        raw.response = resp
        protocol: Any = request.protocol
        # Bytes that arrived behind the request head are replayed into the new parser.
        protocol.set_parser(_RawParser(raw))
        protocol.keep_alive(False)
        return raw

    def _feed(self, data: bytes) -> None:
        if not data:
            self.eof = True
        self.buffered += len(data)
        self.queue.put_nowait(data)
        if self.buffered > self.HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            with contextlib.suppress(Exception):
                self.transport.pause_reading()

    async def read(self) -> bytes:
        if self.eof and self.queue.empty():
            return b""
        if (self.transport is None or self.transport.is_closing()) and self.queue.empty():
            return b""
        data = await self._get()
        self.buffered -= len(data)
        if self.paused and self.buffered < self.HIGH_WATER // 2 and self.transport is not None:
            self.paused = False
            with contextlib.suppress(Exception):
                self.transport.resume_reading()
        return data

    async def _get(self) -> bytes:
        # The transport may close without feed_eof (aiohttp closes the parser on connection_lost,
        # which does call feed_eof; this timeout loop is a guard against a silently dead peer).
        while True:
            try:
                return await wait_for(self.queue.get(), 5.0)
            except TimeoutError:
                if self.transport is None or self.transport.is_closing():
                    return b""

    async def write(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise ConnectionResetError("connection closed")
        self.transport.write(data)
        # aiohttp's protocol implements flow control for its writers; use the same drain.
        drain = getattr(self.request.protocol, "_drain_helper", None)
        if drain is not None:
            await drain()

    async def close(self) -> None:
        if self.transport is not None:
            with contextlib.suppress(Exception):
                self.transport.close()


class UpgradeResponse:
    """The head of an HTTP/1.1 response read from a raw connection."""

    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]]) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers

    def get(self, name: str, default: str = "") -> str:
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default


async def read_response_head(reader: asyncio.StreamReader) -> UpgradeResponse:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ConnectionError(f"bad HTTP response line {lines[0]!r}")
    headers = []
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers.append((k.strip(), v.strip()))
    return UpgradeResponse(int(parts[1]), parts[2] if len(parts) > 2 else "", headers)


async def read_body(reader: asyncio.StreamReader, head: UpgradeResponse, limit: int = 1 << 20) -> bytes:
    """The body of a (non-101) response: Content-Length, chunked, or until EOF."""
    if head.get("Content-Length"):
        return await reader.readexactly(min(int(head.get("Content-Length")), limit))
    if "chunked" in head.get("Transfer-Encoding").lower():
        out = b""
        while len(out) < limit:
            size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                break
            out += await reader.readexactly(size)
            await reader.readline()
        return out
    return await reader.read(limit)


async def http_upgrade(host: str, port: int, path: str,
                       headers: Mapping[str, str] | Iterable[tuple[str, str]], *,
                       method: str = "POST", ssl: Any = None, server_hostname: str | None = None,
                       timeout: float = 30.0) -> tuple[UpgradeResponse, asyncio.StreamReader, asyncio.StreamWriter]:
    """Sends an upgrade request on a new connection and reads the response head.

    The caller checks ``status`` (101 means the connection now speaks the new protocol; otherwise
    the body explains why not) and owns the reader and writer afterwards.
    """
    kw: dict[str, Any] = {"ssl": ssl}
    if ssl is not None and server_hostname is not None:
        kw["server_hostname"] = server_hostname
    reader, writer = await wait_for(asyncio.open_connection(host, port, limit=1 << 20, **kw), timeout)
    try:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
        items = headers.items() if isinstance(headers, Mapping) else headers
        # A list of pairs may repeat a name: Go servers read X-Stream-Protocol-Version that way.
        lines += [f"{k}: {v}" for k, v in items if k.lower() != "host"]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await writer.drain()
        head = await wait_for(read_response_head(reader), timeout)
    except BaseException:
        writer.close()
        raise
    return head, reader, writer


async def pipe(src: ByteStream, dst: ByteStream) -> None:
    """Copies ``src`` to ``dst`` until end of stream (or an error on either side)."""
    try:
        while True:
            data = await src.read()
            if not data:
                break
            await dst.write(data)
    except (ConnectionError, OSError, asyncio.IncompleteReadError):
        pass


async def splice(a: ByteStream, b: ByteStream) -> None:
    """Pipes both directions until either side ends, then closes both."""
    tasks = [asyncio.ensure_future(pipe(a, b)), asyncio.ensure_future(pipe(b, a))]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await a.close()
        await b.close()
