"""A lean HTTP/1.1 server: the API server's front door.

Why not aiohttp's server: a GET of one object from the watch cache costs the API server ~65 us of
its own work, and aiohttp's request/response machinery added ~80 us more around it (request and
response objects with many lazily computed properties, a payload stream per request, header
validation, access-log hooks). Measured on this 2-core machine with ``wrk`` and one core for the
server, a bare ``asyncio.Protocol`` answering the same bytes over the same TLS did ~27,000
requests/s where aiohttp's low-level server did ~8,700. This module is the small part of HTTP the
API server needs, written for that path:

- parsing is ``httptools`` (llhttp, in C, as uvicorn uses); a request is handed to the handler
  only when its head and its whole body have arrived. No request body is streamed: the API's
  largest is 3 MiB, and a body over ``max_body`` (by ``Content-Length`` up front, or as a chunked
  body grows) is answered 413 at once; the rest is read and dropped until the client stops
  sending (at most ``LINGER_SECONDS``), then the connection is closed;
- one task per request; requests on a keep-alive connection are answered in order (pipelined
  requests wait their turn, and reading pauses while too many are queued);
- a :class:`Response` is written with one ``transport.write`` (head and body together, when the
  body is small); a :class:`StreamResponse` writes a chunked body as the handler produces it,
  with write-side flow control (``pause_writing``/``resume_writing`` of the protocol);
- when the client goes away, a handler that is streaming (its response prepared, e.g. a watch)
  is cancelled; any other handler runs to its end, so a write the client gave up on is never
  left half done by a cancellation;
- ``Upgrade`` requests (exec, attach, port-forward) reach the handler like any other; it may take
  the connection over with :meth:`Request.upgrade`, which sends the ``101`` and returns the raw
  byte stream (the bytes that arrived behind the request head included); otherwise the
  connection is closed after its response;
- ``Expect: 100-continue`` is answered before the body is read; ``HEAD`` gets the head only;
- a connection with no request in progress and no input for ``IDLE_TIMEOUT`` (90 s) is closed.

It is not a general web framework: no routing, no cookies, no multipart, no compression. The
handler is one coroutine that returns a response; errors it raises become a bare 500 here (the
API server turns its own errors into ``Status`` objects before that).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import email.utils
import http
import logging
import ssl
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httptools
import orjson
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from kybernetes import errors
from kybernetes.api import gojson

log = logging.getLogger(__name__)

Handler = Callable[["Request"], Awaitable["AnyResponse"]]

MAX_PIPELINED = 16
"""Requests queued on one connection before reading from it pauses."""
IDLE_TIMEOUT = 90.0
"""A keep-alive connection with no request in progress and no input for this long is closed (a
client that vanished without a FIN, or one that never finishes its request head)."""
LINGER_SECONDS = 2.0
LINGER_BYTES = 16 * 1024 * 1024
"""After an early answer (413, 400), input is read and dropped for this long (or this much) before
the connection closes: closing a socket with unread input resets it, and a client still sending its
body would see the reset instead of the answer."""

_REASONS = {s.value: s.phrase for s in http.HTTPStatus}
_STATUS_LINES: dict[int, bytes] = {}


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        line = _STATUS_LINES[status] = b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, "Unknown").encode())
    return line


class _DateHeader:
    """The ``Date`` header line, formatted once a second."""

    second = -1
    line = b""

    @classmethod
    def get(cls) -> bytes:
        now = int(time.time())
        if now != cls.second:
            cls.second = now
            cls.line = b"Date: " + email.utils.formatdate(now, usegmt=True).encode() + b"\r\n"
        return cls.line


def chunk(data: bytes) -> bytes:
    """``data`` framed as one chunk of a chunked body."""
    return b"%x\r\n%b\r\n" % (len(data), data)


def header_lines(headers: Mapping[str, str] | None) -> bytes:
    if not headers:
        return b""
    out = []
    for k, v in headers.items():
        if "\r" in v or "\n" in v or "\r" in k or "\n" in k:
            raise ValueError(f"newline in response header {k!r}")
        out.append(f"{k}: {v}\r\n")
    return "".join(out).encode("latin-1", "replace")


# --- requests ------------------------------------------------------------------------------------


class Request:
    """One request, head and body complete. Header names are case-insensitive."""

    __slots__ = (
        "_path",
        "_protocol",
        "_query",
        "_upgrade_ok",
        "body",
        "extra_headers",
        "headers",
        "keep_alive",
        "method",
        "on_stream_start",
        "query_string",
        "raw_path",
        "transport",
        "version",
    )

    def __init__(self, method: str, raw_path: str, query_string: str, headers: CIMultiDictProxy[str],
                 version: tuple[int, int], body: bytes, protocol: HTTPProtocol, keep_alive: bool,
                 upgrade_ok: bool) -> None:
        self.method = method
        self.raw_path = raw_path
        self.query_string = query_string
        self.headers = headers
        self.version = version
        self.body = body
        self._protocol = protocol
        self.transport: asyncio.Transport | None = protocol.transport
        self.keep_alive = keep_alive
        self._path: str | None = None
        self._query: MultiDictProxy[str] | None = None
        self._upgrade_ok = upgrade_ok
        self.extra_headers: bytes | None = None
        """Header lines (each ending in CRLF) added to whatever response this request gets, set by
        the API server's gates; bytes encoded once, so adding them costs one list append."""
        self.on_stream_start: Callable[[], None] | None = None
        """Called once when a streamed response sends its head (a watch is set up)."""

    @property
    def path(self) -> str:
        """The path, percent-decoded."""
        if self._path is None:
            self._path = urllib.parse.unquote(self.raw_path) if "%" in self.raw_path else self.raw_path
        return self._path

    @property
    def query(self) -> MultiDictProxy[str]:
        """Query parameters (form decoding: ``+`` is a space, as Go's ``url.ParseQuery`` has it)."""
        if self._query is None:
            pairs = urllib.parse.parse_qsl(self.query_string, keep_blank_values=True) if self.query_string else []
            self._query = MultiDictProxy(MultiDict(pairs))
        return self._query

    @property
    def peercert(self) -> Any:
        return self.transport.get_extra_info("peercert") if self.transport is not None else None

    async def json(self) -> Any:
        return orjson.loads(self.body)

    async def upgrade(self, headers: Mapping[str, str]) -> UpgradedStream:
        """Answer ``101 Switching Protocols`` with ``headers`` and take the connection over."""
        if not self._upgrade_ok:
            raise RuntimeError("not an upgrade request")
        return self._protocol._upgrade(headers)


# --- responses -----------------------------------------------------------------------------------


class Response:
    """A whole response: status, headers and body, written at once."""

    __slots__ = ("body", "content_type", "headers", "status")

    def __init__(self, *, body: bytes = b"", status: int = 200, headers: Mapping[str, str] | None = None,
                 text: str | None = None, content_type: str | None = None) -> None:
        self.status = status
        self.headers = headers
        self.body = text.encode() if text is not None else body
        if content_type is None and text is not None:
            content_type = "text/plain; charset=utf-8"
        elif content_type is not None and text is not None and "charset" not in content_type:
            content_type += "; charset=utf-8"
        self.content_type = content_type

    def encode_head(self, keep_alive: bool, extra_headers: bytes | None = None) -> bytes:
        status = self.status
        parts = [_status_line(status)]
        no_body = status < 200 or status in (204, 304)
        headers = self.headers
        if self.content_type is not None and not (headers and "Content-Type" in headers):
            parts.append(b"Content-Type: " + self.content_type.encode("latin-1") + b"\r\n")
        if headers:
            parts.append(header_lines(headers))
        if extra_headers:
            parts.append(extra_headers)
        if not no_body:
            parts.append(b"Content-Length: %d\r\n" % len(self.body))
        parts.append(_DateHeader.get())
        if not keep_alive:
            parts.append(b"Connection: close\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)


class StreamResponse:
    """A response whose body the handler writes piece by piece (a watch, a log stream).

    HTTP/1.1 clients get a chunked body; HTTP/1.0 clients get the body until the connection
    closes. :meth:`prepare` sends the head; :meth:`write` awaits the transport's drain when the
    client reads slower than the handler writes.
    """

    def __init__(self, *, status: int = 200, headers: Mapping[str, str] | None = None) -> None:
        self.status = status
        self.headers = dict(headers or {})
        self.prepared = False
        self._request: Request | None = None
        self._chunked = True
        self._eof = False

    async def prepare(self, request: Request) -> None:
        if self.prepared:
            return
        self.prepared = True
        self._request = request
        if request.on_stream_start is not None:
            started, request.on_stream_start = request.on_stream_start, None
            started()
        proto = request._protocol
        self._chunked = request.version >= (1, 1)
        parts = [_status_line(self.status), header_lines(self.headers), request.extra_headers or b""]
        if self._chunked:
            parts.append(b"Transfer-Encoding: chunked\r\n")
        parts.append(_DateHeader.get())
        if not request.keep_alive or not self._chunked:
            parts.append(b"Connection: close\r\n")
        parts.append(b"\r\n")
        proto._streaming = True
        proto._write(b"".join(parts))
        if request.method == "HEAD":
            self._eof = True

    async def write(self, data: bytes) -> None:
        assert self._request is not None, "write before prepare"
        if not data or self._eof:
            return
        proto = self._request._protocol
        if proto.closed:
            raise ConnectionResetError("the client went away")
        proto._write(chunk(data) if self._chunked else data)
        await proto.drain()

    async def write_eof(self) -> None:
        if self._eof or self._request is None:
            return
        self._eof = True
        proto = self._request._protocol
        if self._chunked:
            proto._write(b"0\r\n\r\n")


AnyResponse = Response | StreamResponse
"""What a handler returns."""


# --- upgraded connections ------------------------------------------------------------------------


class UpgradedStream:
    """A connection after ``101 Switching Protocols``: a :class:`~kybernetes.streaming.ByteStream`.

    Reading pauses while more than ``HIGH_WATER`` bytes wait, so a slow consumer holds the peer
    back; writing awaits the transport's drain.
    """

    HIGH_WATER = 1 << 20

    def __init__(self, protocol: HTTPProtocol) -> None:
        self._protocol = protocol
        self._queue: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._eof = False
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False

    def _feed(self, data: bytes) -> None:
        if data:
            self._queue.append(data)
            self._buffered += len(data)
            if self._buffered > self.HIGH_WATER and not self._paused:
                self._paused = True
                self._protocol._pause_reading()
        else:
            self._eof = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def read(self) -> bytes:
        while not self._queue:
            if self._eof:
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data = self._queue.popleft()
        self._buffered -= len(data)
        if self._paused and self._buffered < self.HIGH_WATER // 2:
            self._paused = False
            self._protocol._resume_reading()
        return data

    async def write(self, data: bytes) -> None:
        if self._protocol.closed:
            raise ConnectionResetError("connection closed")
        self._protocol._write(data)
        await self._protocol.drain()

    async def close(self) -> None:
        self._protocol.close()


# --- the protocol --------------------------------------------------------------------------------


class HTTPProtocol(asyncio.Protocol):
    """One client connection."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.closed = False
        self._url = b""
        self._headers: list[tuple[str, str]] = []
        self._body: list[bytes] = []
        self._body_size = 0
        self._refused = False  # answered early (413, 400); the rest of the input is dropped
        self._dropped = 0
        self.last_input = time.monotonic()
        self._pending: collections.deque[Request] = collections.deque()
        self._task: asyncio.Task[None] | None = None
        self._streaming = False
        self._reading_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._writing_paused = False
        self._upgrade_request = False
        self._upgrade_buffer: list[bytes] = []
        self._upgraded: UpgradedStream | None = None
        self._refusal = b""  # an early answer (413) waiting for the response in progress

    # -- asyncio callbacks --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but have its methods.
        self.transport = transport  # type: ignore[assignment]
        self.server._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server._connections.discard(self)
        if self._upgraded is not None:
            self._upgraded._feed(b"")
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_exception(ConnectionResetError("the client went away"))
        if self._task is not None and self._streaming and not self._task.done():
            # Only a streaming handler (a watch, a log) is cancelled: nothing is half done there.
            self._task.cancel()
        self._pending.clear()

    def data_received(self, data: bytes) -> None:
        self.last_input = time.monotonic()
        if self._upgraded is not None:
            self._upgraded._feed(data)
            return
        if self._refused:
            self._dropped += len(data)
            if self._dropped > LINGER_BYTES:
                self.close()
            return
        if self._upgrade_request:
            self._upgrade_buffer.append(data)
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as e:
            self._upgrade_buffer.append(data[e.args[0]:])
        except httptools.HttpParserError as e:
            self._refuse(400, "BadRequest", f"malformed HTTP request: {e}")

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    # -- httptools callbacks --

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._body = []
        self._body_size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        length = None
        expect = False
        for k, v in self._headers:
            lk = k.lower()
            if lk == "content-length":
                length = int(v) if v.isdigit() else None
            elif lk == "expect":
                expect = v.lower() == "100-continue"
        if length is not None and length > self.server.max_body:
            self._too_large()
            return
        if expect and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        if self._refused:
            return
        self._body_size += len(body)
        if self._body_size > self.server.max_body:
            self._too_large()
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        parser = self.parser
        url = self._url.decode("latin-1")
        path, _, query = url.partition("?")
        if "#" in query:
            query = query.partition("#")[0]
        upgrade = parser.should_upgrade()
        version = (1, 1) if parser.get_http_version() == "1.1" else (1, 0)
        keep_alive = parser.should_keep_alive() and not upgrade and not self.server.closing
        body = b"".join(self._body) if len(self._body) != 1 else self._body[0]
        req = Request(parser.get_method().decode("latin-1"), path, query, CIMultiDictProxy(CIMultiDict(self._headers)),
                      version, body, self, keep_alive, upgrade)
        if upgrade:
            self._upgrade_request = True
        self._pending.append(req)
        if len(self._pending) > MAX_PIPELINED:
            self._pause_reading()
        if self._task is None:
            self._start_next()

    # -- handling --

    def _start_next(self) -> None:
        req = self._pending.popleft()
        self._task = self.server.loop.create_task(self._serve(req))

    async def _serve(self, req: Request) -> None:
        try:
            resp = await self.server.handler(req)
        except asyncio.CancelledError:
            if self.closed:
                return
            raise
        except Exception:
            log.exception("unhandled error serving %s %s", req.method, req.raw_path)
            if self._streaming or self._upgraded is not None:
                self._task = None
                self.close()  # the head is out: nothing else can be said on this connection
                return
            resp = Response(status=500, text="internal server error")
            req.keep_alive = False
        self._streaming = False
        if self._upgraded is not None:
            return  # the connection belongs to the upgraded protocol now
        if isinstance(resp, Response):
            head = resp.encode_head(req.keep_alive, req.extra_headers)
            if req.method == "HEAD" or not resp.body:
                self._write(head)
            elif len(resp.body) < 65536:
                self._write(head + resp.body)
            else:
                self._write(head)
                self._write(resp.body)
        elif isinstance(resp, StreamResponse):
            if not resp.prepared:
                await resp.prepare(req)
            await resp.write_eof()
            if not resp._chunked:
                req.keep_alive = False
        self._task = None
        if self._refusal:
            self._write(self._refusal)
            self._linger()
            return
        if not req.keep_alive or self._upgrade_request or self.closed:
            self.close()
            return
        if self._pending:
            self._start_next()
            if self._reading_paused and len(self._pending) <= MAX_PIPELINED // 2:
                self._resume_reading()
        elif self._reading_paused:
            self._resume_reading()

    def _upgrade(self, headers: Mapping[str, str]) -> UpgradedStream:
        head = _status_line(101) + header_lines(headers) + b"\r\n"
        self._write(head)
        stream = UpgradedStream(self)
        self._upgraded = stream
        self._streaming = True
        for data in self._upgrade_buffer:
            if data:
                stream._feed(data)
        self._upgrade_buffer = []
        if self.closed:
            stream._feed(b"")
        return stream

    def _too_large(self) -> None:
        self._refuse(413, "RequestEntityTooLarge", f"Request entity too large: limit is {self.server.max_body}")

    def _refuse(self, code: int, reason: str, message: str) -> None:
        """Answer now (before or instead of the handler) and close: the rest of the input is dropped."""
        self._refused = True
        status = errors.status_object("Failure", message, reason, None, code)
        resp = Response(body=gojson.dumps(status), status=code, content_type="application/json")
        data = resp.encode_head(False) + resp.body
        self._pending.clear()
        if self._task is None:
            self._write(data)
            self._linger()
        else:
            # A request is still being answered: its response goes first, then this one.
            self._refusal = data

    def _linger(self) -> None:
        """Close once the client has stopped sending (it closes), or after ``LINGER_SECONDS``."""
        if self.transport is not None and not self.closed:
            self.server.loop.call_later(LINGER_SECONDS, self.close)

    # -- transport helpers --

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed and not self.transport.is_closing():
            self.transport.write(data)

    async def drain(self) -> None:
        if self.closed:
            raise ConnectionResetError("the client went away")
        if not self._writing_paused:
            return
        self._drain_waiter = self.server.loop.create_future()
        try:
            await self._drain_waiter
        finally:
            self._drain_waiter = None

    def _pause_reading(self) -> None:
        if not self._reading_paused and self.transport is not None and not self.closed:
            self._reading_paused = True
            with contextlib.suppress(Exception):
                self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._reading_paused and self.transport is not None and not self.closed:
            self._reading_paused = False
            with contextlib.suppress(Exception):
                self.transport.resume_reading()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    @property
    def idle(self) -> bool:
        return self._task is None and not self._pending


# --- the server ----------------------------------------------------------------------------------


class HTTPServer:
    """Listens on one address and hands each request to ``handler``."""

    def __init__(self, handler: Handler, *, max_body: int) -> None:
        self.handler = handler
        self.max_body = max_body
        self.loop = asyncio.get_running_loop()
        self.closing = False
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[HTTPProtocol] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self.idle_timeout = IDLE_TIMEOUT

    @property
    def open_connections(self) -> int:
        """Client connections open now (closed ones leave when the server sees them go)."""
        return len(self._connections)

    async def start(self, host: str, port: int, *, ssl_context: ssl.SSLContext | None = None,
                    backlog: int = 1024) -> int:
        """Start listening; returns the port (useful with port 0)."""
        self._server = await self.loop.create_server(lambda: HTTPProtocol(self), host, port, ssl=ssl_context,
                                                     reuse_address=True, backlog=backlog)
        self._sweeper = self.loop.create_task(self._sweep())
        return int(self._server.sockets[0].getsockname()[1])

    async def _sweep(self) -> None:
        """Close connections idle past ``idle_timeout`` (checked a few times per timeout)."""
        while True:
            await asyncio.sleep(self.idle_timeout / 4)
            cutoff = time.monotonic() - self.idle_timeout
            for conn in list(self._connections):
                if conn.idle and conn._upgraded is None and conn.last_input < cutoff:
                    conn.close()

    async def stop(self, timeout: float = 2.0) -> None:
        """Stop accepting, close idle connections, give in-flight requests ``timeout`` seconds, then cancel."""
        self.closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections):
            if conn.idle:
                conn.close()
        deadline = self.loop.time() + timeout
        while self._connections and self.loop.time() < deadline:
            for conn in list(self._connections):
                if conn.idle:
                    conn.close()
            await asyncio.sleep(0.05)
        for conn in list(self._connections):
            if conn._task is not None:
                conn._task.cancel()
            conn.close()
        tasks = [c._task for c in self._connections if c._task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout)


__all__ = ["AnyResponse", "HTTPServer", "Request", "Response", "StreamResponse", "UpgradedStream", "chunk"]
