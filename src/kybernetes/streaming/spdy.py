"""SPDY/3.1: a session usable as client or server, and its streams.

Kubernetes still multiplexes exec/attach (fallback) and port-forward streams over SPDY/3.1, after
an HTTP/1.1 ``Upgrade: SPDY/3.1`` (or, from kubectl 1.31 on, inside a WebSocket whose subprotocol is
``SPDY/3.1+portforward.k8s.io``). Only what those uses need is implemented; there is no HTTP
semantics on top (no ``:method``/``:path`` headers), just streams with header maps.

The wire format (frames, header blocks and their zlib compression) is in
:mod:`kybernetes.streaming.spdy_frames`; each direction of a session compresses its header blocks
with one zlib stream, so compression and sending must happen in the same order: the session
compresses under its write lock.

Stream ids: odd for streams the client opens, even for the server's. A stream is half-closed by a
frame with FIN (an empty DATA frame is how Go's spdystream closes) and aborted by RST_STREAM.

Flow control: SPDY/3.1 gives each stream a 64 KiB send window that the receiver reopens with
WINDOW_UPDATE. The Go implementation that kubectl, the kubelet and containerd use
(moby/spdystream) does not take part: it never sends WINDOW_UPDATE, and containerd's streaming
server was seen to drop the whole connection (without the exec status) when it received them. So
flow control is off by default and only on between two ends of this implementation
(``flow_control=True``: the reader acknowledges what it consumed, the writer waits for window).
Backpressure against Go peers comes from TCP alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Awaitable, Callable, Mapping

from kybernetes.aiorun import wait_for
from kybernetes.streaming import ByteStream
from kybernetes.streaming.spdy_frames import (
    DEFAULT_WINDOW,
    FLAG_FIN,
    FLAG_UNIDIRECTIONAL,
    MAX_DATA_FRAME,
    VERSION,
    DataFrame,
    Frame,
    FrameParser,
    FrameType,
    HeaderCompressor,
    HeaderDecompressor,
    ProtocolError,
    RstStatus,
    Setting,
    encode_control,
    encode_data,
    rst_name,
)

log = logging.getLogger(__name__)


class StreamReset(ConnectionError):
    """The peer reset the stream (RST_STREAM), or the session ended under it."""


# ---- session ------------------------------------------------------------------------------------


class Stream:
    """One SPDY stream. ``read`` returns ``b""`` once the peer half-closed it."""

    def __init__(self, session: Session, stream_id: int, headers: dict[str, str]) -> None:
        self.session = session
        self.id = stream_id
        self.headers = headers
        self.reply_headers: dict[str, str] = {}
        self.replied = asyncio.Event()
        self.accepted = False
        """A SYN_REPLY came (a reset after it is an end, not a refusal)."""
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.remote_closed = False
        self.local_closed = False
        self.reset_status: int | None = None
        self.send_window = session.initial_send_window
        self.window_open = asyncio.Event()
        self.window_open.set()
        self.unacked = 0
        self._eof = False

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    @property
    def closed(self) -> bool:
        return (self.remote_closed and self.local_closed) or self.reset_status is not None

    async def read(self) -> bytes:
        if self._eof:
            return b""
        item = await self.queue.get()
        if item is None:
            self._eof = True
            if self.reset_status is not None and self.reset_status != RstStatus.CANCEL:
                raise StreamReset(f"stream {self.id} reset ({rst_name(self.reset_status)})")
            return b""
        self.unacked += len(item)
        if self.session.flow_control and self.unacked >= DEFAULT_WINDOW // 2 and not self.remote_closed:
            delta, self.unacked = self.unacked, 0
            await self.session._send_control(FrameType.WINDOW_UPDATE, 0, struct.pack(">II", self.id, delta))
        return item

    async def read_all(self, limit: int = 1 << 20) -> bytes:
        out = b""
        while len(out) < limit:
            data = await self.read()
            if not data:
                break
            out += data
        return out

    async def write(self, data: bytes) -> None:
        if self.local_closed or self.reset_status is not None:
            raise StreamReset(f"stream {self.id} is closed for writing")
        view = memoryview(data)
        while view:
            if self.session.flow_control:
                while self.send_window <= 0:
                    self.window_open.clear()
                    await self.window_open.wait()
                    if self.reset_status is not None:
                        raise StreamReset(f"stream {self.id} reset")
                n = min(len(view), MAX_DATA_FRAME, self.send_window)
            else:
                n = min(len(view), MAX_DATA_FRAME)
            self.send_window -= n
            await self.session._send_raw(encode_data(self.id, bytes(view[:n])))
            view = view[n:]

    async def close(self) -> None:
        """Half-closes: the peer reads end of stream; we may still read."""
        if self.local_closed or self.reset_status is not None:
            return
        self.local_closed = True
        with contextlib.suppress(ConnectionError):
            await self.session._send_raw(encode_data(self.id, b"", fin=True))
        self.session._maybe_forget(self)

    async def reset(self, status: int = RstStatus.CANCEL) -> None:
        if self.reset_status is not None:
            return
        self._on_reset(status, discard=True)
        with contextlib.suppress(ConnectionError):
            await self.session._send_control(FrameType.RST_STREAM, 0, struct.pack(">II", self.id, status))

    def _on_data(self, data: bytes, fin: bool) -> None:
        if self.remote_closed:
            return
        if data:
            self.queue.put_nowait(data)
        if fin:
            self._on_remote_close()

    def _on_remote_close(self) -> None:
        if not self.remote_closed:
            self.remote_closed = True
            self.queue.put_nowait(None)
        self.session._maybe_forget(self)

    def _on_reset(self, status: int, *, discard: bool) -> None:
        self.reset_status = status
        self.local_closed = True
        if discard:
            # We aborted the stream ourselves: what was not read yet is dropped. A peer's RST_STREAM
            # (or the connection's end) keeps what arrived before it readable: Go's spdystream
            # resets every stream when its connection closes, right after writing the last data
            # (containerd writes the exec status that way), so dropping it would lose the status.
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)
        elif not self.remote_closed:
            self.queue.put_nowait(None)
        self.remote_closed = True
        self.replied.set()
        self.window_open.set()
        self.session._maybe_forget(self)


StreamHandler = Callable[[Stream], Awaitable[None] | None]


class Session:
    """A SPDY/3.1 connection over a :class:`ByteStream`.

    ``client`` decides the parity of the stream ids this end opens. Streams the peer opens are
    accepted with a SYN_REPLY at once and handed to ``on_stream`` (run as a task); without a handler
    they are refused. ``run()`` reads frames until the transport ends; ``closed`` is set then.
    """

    def __init__(self, transport: ByteStream, *, client: bool, on_stream: StreamHandler | None = None,
                 flow_control: bool = False) -> None:
        self.transport = transport
        self.client = client
        self.on_stream = on_stream
        self.flow_control = flow_control
        self.initial_send_window = DEFAULT_WINDOW
        self.next_id = 1 if client else 2
        self.next_ping = 1 if client else 2
        self.streams: dict[int, Stream] = {}
        self.compressor = HeaderCompressor()
        self.decompressor = HeaderDecompressor()
        self.write_lock = asyncio.Lock()
        self.closed = asyncio.Event()
        self.goaway_received = False
        self.last_remote_id = 0
        self.pings: dict[int, asyncio.Future[None]] = {}
        self.settings: dict[int, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    def start(self) -> Session:
        self._task = asyncio.ensure_future(self.run())
        return self

    async def run(self) -> None:
        parser = FrameParser()
        try:
            while True:
                data = await self.transport.read()
                if not data:
                    break
                for frame in parser.feed(data):
                    await self._dispatch(frame)
        except ProtocolError as e:
            log.debug("SPDY protocol error: %s", e)
            with contextlib.suppress(Exception):
                await self._send_control(FrameType.GOAWAY, 0, struct.pack(">II", self.last_remote_id, 1))
        except (ConnectionError, OSError, asyncio.IncompleteReadError) as e:
            log.debug("SPDY transport error: %r", e)
        finally:
            log.debug("SPDY session ends (client=%s, streams=%s)", self.client, list(self.streams))
            self._teardown()

    def _teardown(self) -> None:
        for s in list(self.streams.values()):
            s._on_reset(RstStatus.CANCEL, discard=False)
        self.streams.clear()
        for fut in self.pings.values():
            if not fut.done():
                fut.set_exception(ConnectionError("session closed"))
        self.closed.set()

    async def wait_closed(self) -> None:
        await self.closed.wait()

    async def close(self) -> None:
        """Sends GOAWAY and closes the transport."""
        if not self.closed.is_set():
            with contextlib.suppress(Exception):
                await self._send_control(FrameType.GOAWAY, 0, struct.pack(">II", self.last_remote_id, 0))
        await self.transport.close()
        if self._task is not None and not self._task.done():
            # The transport's end normally stops run(); a transport that does not report its own
            # close is not waited for long.
            with contextlib.suppress(Exception):
                await wait_for(asyncio.shield(self._task), 1.0)
            self._task.cancel()
        self._teardown()
        for t in list(self._handlers):
            t.cancel()

    # -- sending --

    async def _send_raw(self, data: bytes) -> None:
        if self.closed.is_set():
            raise ConnectionError("SPDY session closed")
        async with self.write_lock:
            await self.transport.write(data)

    async def _send_control(self, ftype: int, flags: int, payload: bytes) -> None:
        await self._send_raw(encode_control(ftype, flags, payload))

    async def _send_headers_frame(self, ftype: int, flags: int, prefix: bytes, headers: Mapping[str, str]) -> None:
        if self.closed.is_set():
            raise ConnectionError("SPDY session closed")
        # Compress inside the lock: the peer's decompressor must see blocks in the order we compressed.
        async with self.write_lock:
            block = self.compressor.compress(headers)
            await self.transport.write(encode_control(ftype, flags, prefix + block))

    async def open_stream(self, headers: Mapping[str, str], *, fin: bool = False, wait_reply: bool = True,
                          timeout: float = 30.0) -> Stream:
        """Opens a stream (SYN_STREAM) and, by default, waits for the peer's SYN_REPLY."""
        if self.goaway_received:
            raise ConnectionError("peer sent GOAWAY")
        sid = self.next_id
        self.next_id += 2
        stream = Stream(self, sid, {k.lower(): v for k, v in headers.items()})
        self.streams[sid] = stream
        if fin:
            stream.local_closed = True
        await self._send_headers_frame(FrameType.SYN_STREAM, FLAG_FIN if fin else 0,
                                       struct.pack(">IIBB", sid, 0, 0, 0), stream.headers)
        if wait_reply:
            await wait_for(stream.replied.wait(), timeout)
            if stream.reset_status is not None and not stream.accepted:
                raise StreamReset(f"stream {sid} refused ({rst_name(stream.reset_status)})")
        return stream

    async def ping(self, timeout: float = 10.0) -> float:
        """Round trip time of a PING."""
        pid = self.next_ping
        self.next_ping += 2
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pings[pid] = fut
        loop = asyncio.get_running_loop()
        start = loop.time()
        await self._send_control(FrameType.PING, 0, struct.pack(">I", pid))
        try:
            await wait_for(fut, timeout)
        finally:
            self.pings.pop(pid, None)
        return loop.time() - start

    async def send_settings(self, settings: Mapping[int, int]) -> None:
        payload = struct.pack(">I", len(settings))
        for sid, value in settings.items():
            payload += struct.pack(">II", sid & 0xFFFFFF, value)
        await self._send_control(FrameType.SETTINGS, 0, payload)

    def _maybe_forget(self, stream: Stream) -> None:
        if stream.closed and self.streams.get(stream.id) is stream:
            del self.streams[stream.id]

    # -- receiving --

    async def _dispatch(self, frame: Frame) -> None:
        if isinstance(frame, DataFrame):
            stream = self.streams.get(frame.stream_id)
            if stream is None:
                # Data for a stream already forgotten (e.g. we reset it): not an error for the session.
                return
            stream._on_data(frame.data, frame.fin)
            return
        if frame.version != VERSION:
            raise ProtocolError(f"SPDY version {frame.version}")
        p = frame.payload
        t = frame.type
        if t == FrameType.SYN_STREAM:
            if len(p) < 10:
                raise ProtocolError("short SYN_STREAM")
            sid = int.from_bytes(p[0:4], "big") & 0x7FFFFFFF
            headers = self.decompressor.decompress(p[10:])
            await self._on_syn_stream(sid, headers, frame.flags)
        elif t == FrameType.SYN_REPLY:
            sid = int.from_bytes(p[0:4], "big") & 0x7FFFFFFF
            headers = self.decompressor.decompress(p[4:])
            stream = self.streams.get(sid)
            if stream is not None:
                stream.reply_headers = headers
                stream.accepted = True
                stream.replied.set()
                if frame.flags & FLAG_FIN:
                    stream._on_remote_close()
        elif t == FrameType.HEADERS:
            sid = int.from_bytes(p[0:4], "big") & 0x7FFFFFFF
            headers = self.decompressor.decompress(p[4:])
            stream = self.streams.get(sid)
            if stream is not None:
                stream.reply_headers.update(headers)
                if frame.flags & FLAG_FIN:
                    stream._on_remote_close()
        elif t == FrameType.RST_STREAM:
            sid, status = struct.unpack(">II", p[:8])
            stream = self.streams.get(sid & 0x7FFFFFFF)
            if stream is not None:
                stream._on_reset(status, discard=False)
        elif t == FrameType.SETTINGS:
            count = int.from_bytes(p[0:4], "big")
            for i in range(count):
                entry = p[4 + 8 * i:12 + 8 * i]
                if len(entry) < 8:
                    break
                sid = int.from_bytes(entry[1:4], "big")
                value = int.from_bytes(entry[4:8], "big")
                self.settings[sid] = value
                if sid == Setting.INITIAL_WINDOW_SIZE:
                    delta = value - self.initial_send_window
                    self.initial_send_window = value
                    for s in self.streams.values():
                        s.send_window += delta
                        if s.send_window > 0:
                            s.window_open.set()
        elif t == FrameType.PING:
            pid = int.from_bytes(p[0:4], "big")
            if (pid % 2 == 1) == self.client:
                fut = self.pings.get(pid)
                if fut is not None and not fut.done():
                    fut.set_result(None)
            else:
                await self._send_control(FrameType.PING, 0, p[:4])
        elif t == FrameType.GOAWAY:
            self.goaway_received = True
        elif t == FrameType.WINDOW_UPDATE:
            sid, delta = struct.unpack(">II", p[:8])
            stream = self.streams.get(sid & 0x7FFFFFFF)
            if stream is not None:
                stream.send_window += delta & 0x7FFFFFFF
                if stream.send_window > 0:
                    stream.window_open.set()
        # Unknown control frames are ignored, as the spec says.

    async def _on_syn_stream(self, sid: int, headers: dict[str, str], flags: int) -> None:
        if sid in self.streams or sid == 0 or (sid % 2 == 1) == self.client:
            await self._send_control(FrameType.RST_STREAM, 0, struct.pack(">II", sid, RstStatus.PROTOCOL_ERROR))
            return
        self.last_remote_id = max(self.last_remote_id, sid)
        if self.on_stream is None or self.goaway_received:
            await self._send_control(FrameType.RST_STREAM, 0, struct.pack(">II", sid, RstStatus.REFUSED_STREAM))
            return
        stream = Stream(self, sid, headers)
        self.streams[sid] = stream
        if flags & FLAG_FIN:
            stream._on_remote_close()
        if flags & FLAG_UNIDIRECTIONAL:
            stream.local_closed = True
        await self._send_headers_frame(FrameType.SYN_REPLY, 0, struct.pack(">I", sid), {})
        stream.replied.set()
        res = self.on_stream(stream)
        if asyncio.iscoroutine(res):
            task = asyncio.ensure_future(res)
            self._handlers.add(task)
            task.add_done_callback(self._handler_done)

    def _handler_done(self, task: asyncio.Task[None]) -> None:
        self._handlers.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("SPDY stream handler failed", exc_info=task.exception())


async def connect(host: str, port: int, path: str, protocols: list[str], *, ssl: object = None,
                  extra_headers: Mapping[str, str] | None = None, on_stream: StreamHandler | None = None,
                  timeout: float = 30.0) -> tuple[Session, str]:
    """Upgrades a new connection to SPDY/3.1 as a client; returns the running session and the
    stream protocol the server chose from ``protocols`` (``X-Stream-Protocol-Version``)."""
    from kybernetes.streaming import StreamPair, http_upgrade, read_body

    headers = [("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1")]
    headers += list((extra_headers or {}).items())
    # One header line per protocol: Go's httpstream handshake does not split comma lists.
    headers += [("X-Stream-Protocol-Version", p) for p in protocols]
    head, reader, writer = await http_upgrade(host, port, path, headers, ssl=ssl, timeout=timeout)
    if head.status != 101:
        body = b""
        with contextlib.suppress(Exception):
            body = await wait_for(read_body(reader, head), 5)
        writer.close()
        raise ConnectionError(f"SPDY upgrade refused: {head.status} {head.reason}: {body.decode(errors='replace')}")
    chosen = head.get("X-Stream-Protocol-Version")
    session = Session(StreamPair(reader, writer), client=True, on_stream=on_stream).start()
    return session, chosen
