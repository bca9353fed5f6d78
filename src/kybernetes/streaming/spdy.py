"""SPDY/3.1: framing, header-block compression, and a session usable as client or server.

Kubernetes still multiplexes exec/attach (fallback) and port-forward streams over SPDY/3.1, after
an HTTP/1.1 ``Upgrade: SPDY/3.1`` (or, from kubectl 1.31 on, inside a WebSocket whose subprotocol is
``SPDY/3.1+portforward.k8s.io``). Only what those uses need is implemented; there is no HTTP
semantics on top (no ``:method``/``:path`` headers), just streams with header maps.

Wire format (all integers big-endian)::

    control frame:  |1| version=3 (15) | type (16) |  flags (8) | length (24) |  payload
    data frame:     |0| stream id (31)             |  flags (8) | length (24) |  payload

    SYN_STREAM (1)    stream id (31), associated stream id (31), priority (3) + 5 unused, slot (8),
                      header block; flags FIN=0x01, UNIDIRECTIONAL=0x02
    SYN_REPLY (2)     stream id (31), header block; flag FIN
    RST_STREAM (3)    stream id (31), status code (32)
    SETTINGS (4)      count (32), then count x [flags (8), id (24), value (32)]
    PING (6)          id (32): a peer answers its partner's pings (odd ids from clients, even from
                      servers) by echoing the frame
    GOAWAY (7)        last good stream id (31), status (32)
    HEADERS (8)       stream id (31), header block
    WINDOW_UPDATE (9) stream id (31), delta (31)

Header blocks: count (32), then per header name length (32), name, value length (32), value
(several values are joined by NUL). Names are lower case. Each direction of a session compresses
its blocks with one zlib stream (preset dictionary ``DICTIONARY`` from the SPDY/3 spec), flushed
with Z_SYNC_FLUSH after each block, so compression and sending must happen in the same order:
the session compresses under its write lock.

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
import enum
import logging
import struct
import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from kybernetes.streaming import ByteStream

log = logging.getLogger(__name__)

VERSION = 3
FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02
FLAG_SETTINGS_CLEAR = 0x01
DEFAULT_WINDOW = 64 * 1024
MAX_DATA_FRAME = 32 * 1024
"""What this implementation puts in one DATA frame (the format allows 16 MiB)."""
MAX_FRAME = 16 * 1024 * 1024


class FrameType(enum.IntEnum):
    SYN_STREAM = 1
    SYN_REPLY = 2
    RST_STREAM = 3
    SETTINGS = 4
    PING = 6
    GOAWAY = 7
    HEADERS = 8
    WINDOW_UPDATE = 9


class RstStatus(enum.IntEnum):
    PROTOCOL_ERROR = 1
    INVALID_STREAM = 2
    REFUSED_STREAM = 3
    UNSUPPORTED_VERSION = 4
    CANCEL = 5
    INTERNAL_ERROR = 6
    FLOW_CONTROL_ERROR = 7
    STREAM_IN_USE = 8
    STREAM_ALREADY_CLOSED = 9
    FRAME_TOO_LARGE = 11


class Setting(enum.IntEnum):
    UPLOAD_BANDWIDTH = 1
    DOWNLOAD_BANDWIDTH = 2
    ROUND_TRIP_TIME = 3
    MAX_CONCURRENT_STREAMS = 4
    CURRENT_CWND = 5
    DOWNLOAD_RETRANS_RATE = 6
    INITIAL_WINDOW_SIZE = 7
    CLIENT_CERTIFICATE_VECTOR_SIZE = 8


# The SPDY/3 header compression dictionary: 65 length-prefixed words, then a run of common
# header values, 1423 bytes in all (the zlib preset dictionary both ends must use).
_DICT_WORDS = [
    "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset", "accept-encoding",
    "accept-language", "accept-ranges", "age", "allow", "authorization", "cache-control", "connection",
    "content-base", "content-encoding", "content-language", "content-length", "content-location",
    "content-md5", "content-range", "content-type", "date", "etag", "expect", "expires", "from", "host",
    "if-match", "if-modified-since", "if-none-match", "if-range", "if-unmodified-since", "last-modified",
    "location", "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range",
    "referer", "retry-after", "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent",
    "vary", "via", "warning", "www-authenticate", "method", "get", "status", "200 OK", "version",
    "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin",
]
_DICT_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 "
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
DICTIONARY = b"".join(struct.pack(">I", len(w)) + w.encode() for w in _DICT_WORDS) + _DICT_TAIL.encode()


class ProtocolError(Exception):
    pass


class StreamReset(ConnectionError):
    """The peer reset the stream (RST_STREAM), or the session ended under it."""


def _rst_name(status: int) -> str:
    try:
        return RstStatus(status).name
    except ValueError:
        return f"status {status}"


# ---- frames -------------------------------------------------------------------------------------


@dataclass
class DataFrame:
    stream_id: int
    flags: int
    data: bytes

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


@dataclass
class ControlFrame:
    type: int
    flags: int
    payload: bytes
    version: int = VERSION


Frame = DataFrame | ControlFrame


def encode_data(stream_id: int, data: bytes, *, fin: bool = False) -> bytes:
    if len(data) >= 1 << 24:
        raise ValueError("DATA frame too large")
    return struct.pack(">IBBH", stream_id & 0x7FFFFFFF, FLAG_FIN if fin else 0,
                       len(data) >> 16, len(data) & 0xFFFF) + data


def encode_control(ftype: int, flags: int, payload: bytes) -> bytes:
    if len(payload) >= 1 << 24:
        raise ValueError("control frame too large")
    return struct.pack(">HHBBH", 0x8000 | VERSION, ftype, flags, len(payload) >> 16,
                       len(payload) & 0xFFFF) + payload


class FrameParser:
    """Incremental frame parser: ``feed`` bytes in any slicing, get whole frames out."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        self.buf += data
        out: list[Frame] = []
        while len(self.buf) >= 8:
            flags = self.buf[4]
            length = int.from_bytes(self.buf[5:8], "big")
            if length > MAX_FRAME:
                raise ProtocolError(f"frame of {length} bytes")
            if len(self.buf) < 8 + length:
                break
            head = bytes(self.buf[:8])
            payload = bytes(self.buf[8:8 + length])
            del self.buf[:8 + length]
            if head[0] & 0x80:
                version = int.from_bytes(head[0:2], "big") & 0x7FFF
                out.append(ControlFrame(int.from_bytes(head[2:4], "big"), flags, payload, version))
            else:
                out.append(DataFrame(int.from_bytes(head[0:4], "big") & 0x7FFFFFFF, flags, payload))
        return out


# ---- header blocks ------------------------------------------------------------------------------


def encode_header_block(headers: Mapping[str, str]) -> bytes:
    parts = [struct.pack(">I", len(headers))]
    for name, value in headers.items():
        n, v = name.lower().encode(), value.encode()
        parts += [struct.pack(">I", len(n)), n, struct.pack(">I", len(v)), v]
    return b"".join(parts)


def decode_header_block(block: bytes) -> dict[str, str]:
    def take(pos: int) -> tuple[bytes, int]:
        if pos + 4 > len(block):
            raise ProtocolError("truncated header block")
        n = int.from_bytes(block[pos:pos + 4], "big")
        if pos + 4 + n > len(block):
            raise ProtocolError("truncated header block")
        return block[pos + 4:pos + 4 + n], pos + 4 + n

    if len(block) < 4:
        raise ProtocolError("truncated header block")
    count = int.from_bytes(block[:4], "big")
    pos = 4
    out: dict[str, str] = {}
    for _ in range(count):
        name, pos = take(pos)
        value, pos = take(pos)
        out[name.decode("latin-1").lower()] = value.decode("latin-1")
    return out


class HeaderCompressor:
    """One direction's zlib stream for header blocks."""

    def __init__(self) -> None:
        self.z = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY,
                                  DICTIONARY)

    def compress(self, headers: Mapping[str, str]) -> bytes:
        return self.z.compress(encode_header_block(headers)) + self.z.flush(zlib.Z_SYNC_FLUSH)


class HeaderDecompressor:
    def __init__(self) -> None:
        self.z = zlib.decompressobj(15, DICTIONARY)

    def decompress(self, data: bytes) -> dict[str, str]:
        try:
            return decode_header_block(self.z.decompress(data))
        except zlib.error as e:
            raise ProtocolError(f"header block: {e}") from e


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
                raise StreamReset(f"stream {self.id} reset ({_rst_name(self.reset_status)})")
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
                await asyncio.wait_for(asyncio.shield(self._task), 1.0)
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
            await asyncio.wait_for(stream.replied.wait(), timeout)
            if stream.reset_status is not None and not stream.accepted:
                raise StreamReset(f"stream {sid} refused ({_rst_name(stream.reset_status)})")
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
            await asyncio.wait_for(fut, timeout)
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
            body = await asyncio.wait_for(read_body(reader, head), 5)
        writer.close()
        raise ConnectionError(f"SPDY upgrade refused: {head.status} {head.reason}: {body.decode(errors='replace')}")
    chosen = head.get("X-Stream-Protocol-Version")
    session = Session(StreamPair(reader, writer), client=True, on_stream=on_stream).start()
    return session, chosen
