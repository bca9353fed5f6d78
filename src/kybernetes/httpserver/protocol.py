"""The HTTP/1.1 connection protocol and the server that listens for it.

:class:`HTTPProtocol` is one ``asyncio.Protocol`` per connection: ``httptools`` (llhttp) parses;
a request is handed to the handler only when its head and whole body have arrived; requests on a
keep-alive connection are answered in order, one task each, and reading pauses while more than
:data:`MAX_PIPELINED` are queued. It answers 413 to a body over ``max_body`` and then lingers
(:data:`LINGER_SECONDS`, :data:`LINGER_BYTES`), cancels a streaming handler whose client went
away, and hands an ``Upgrade`` over to an :class:`~kybernetes.httpserver.messages.UpgradedStream`.
:class:`HTTPServer` listens on one address and closes connections idle past :data:`IDLE_TIMEOUT`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

from kybernetes import errors
from kybernetes.aiorun import wait_for
from kybernetes.api import gojson
from kybernetes.httpserver.messages import (
    AnyResponse,
    Request,
    Response,
    StreamResponse,
    UpgradedStream,
    header_lines,
    status_line,
)

log = logging.getLogger(__name__)

Handler = Callable[["Request"], Awaitable["AnyResponse"]]

MAX_PIPELINED = 16
"""Requests queued on one connection before reading from it pauses."""
IDLE_TIMEOUT = 90.0
"""A keep-alive connection with no request in progress and no input for this long is closed (a
client that vanished without a FIN)."""
READ_HEADER_TIMEOUT = 32.0
"""A request head (from a new connection, or from a keep-alive request's first byte) not complete
after this long closes the connection without an answer: a client trickling its head a byte at a
time (slowloris) holds nothing for longer. kube-apiserver's ``ReadHeaderTimeout``."""
MAX_HEADER_BYTES = (1 << 20) + 4096
"""A request line and headers larger than this are answered 431 and the connection is closed:
kube-apiserver's ``MaxHeaderBytes`` (1 MiB) and the 4 KiB Go's server reads beyond it."""
_HEADERS_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n"
                      b"Connection: close\r\n\r\n431 Request Header Fields Too Large")
"""Go's answer, word for word (its server writes it itself, not the API server's handler)."""
LINGER_SECONDS = 2.0
LINGER_BYTES = 16 * 1024 * 1024
"""After an early answer (413, 400), input is read and dropped for this long (or this much) before
the connection closes: closing a socket with unread input resets it, and a client still sending its
body would see the reset instead of the answer."""
# --- the protocol --------------------------------------------------------------------------------


class HTTPProtocol(asyncio.Protocol):
    """One client connection."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.parser: httptools.HttpRequestParser | None = httptools.HttpRequestParser(self)
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
        self._in_head = True  # between a request's first byte (or the connection's start) and its head's end
        self._head_bytes = 0
        self.head_deadline: float | None = time.monotonic() + server.read_header_timeout

    # -- asyncio callbacks --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but have its methods.
        self.transport = transport  # type: ignore[assignment]
        self.server._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server._connections.discard(self)
        # Break the connection's reference cycles (the parser calls back into this protocol; this
        # protocol and its transport refer to each other) so that reference counting frees a closed
        # connection, its TLS state among it, at once. Left to the collector, which the daemons run
        # rarely (aiorun.tune_gc), a quiet controller manager probed every 10 s kept every probe's
        # connection: +6.7 MB in the 30-minute soak. A request still in flight holds its own transport.
        self.transport = None
        self.parser = None
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
        if self.parser is None:  # closed
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as e:
            self._upgrade_buffer.append(data[e.args[0]:])
        except httptools.HttpParserError as e:
            self._refuse(400, "BadRequest", f"malformed HTTP request: {e}")
            return
        if self._in_head and not self._refused:
            # httptools holds a header's name and value until they are whole: count what arrives.
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEADER_BYTES:
                self._answer_early(_HEADERS_TOO_LARGE)

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
        if not self._in_head:  # a keep-alive request's first byte: its head has the timeout from now
            self._in_head = True
            self._head_bytes = 0
            self.head_deadline = time.monotonic() + self.server.read_header_timeout

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self._in_head = False
        self.head_deadline = None
        if len(self._url) + sum(len(k) + len(v) + 4 for k, v in self._headers) > MAX_HEADER_BYTES:
            self._answer_early(_HEADERS_TOO_LARGE)  # a head that arrived whole in the last read
            return
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
        assert parser is not None  # called back by the parser, so not closed
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
            try:
                head = resp.encode_head(req.keep_alive, req.extra_headers)
            except ValueError:  # a header the handler built cannot be sent (a newline): still answer
                log.exception("unsendable response head for %s %s", req.method, req.raw_path)
                resp = Response(status=500, text="internal server error")
                req.keep_alive = False
                head = resp.encode_head(False)
            if req.method == "HEAD" or not resp.body:
                self._write(head)
            elif len(resp.body) < 65536:
                self._write(head + resp.body)
            else:
                self._write(head)
                self._write(resp.body)
        elif isinstance(resp, StreamResponse):
            try:
                if not resp.prepared:
                    await resp.prepare(req)
                await resp.write_eof()
            except Exception:  # the head may be out: closing is the only answer left, never silence
                log.exception("error finishing the stream of %s %s", req.method, req.raw_path)
                self._task = None
                self.close()
                return
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
        head = status_line(101) + header_lines(headers) + b"\r\n"
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
        status = errors.status_object("Failure", message, reason, None, code)
        resp = Response(body=gojson.dumps(status), status=code, content_type="application/json")
        self._answer_early(resp.encode_head(False) + resp.body)

    def _answer_early(self, data: bytes) -> None:
        self._refused = True
        self._in_head = False
        self.head_deadline = None
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
        self.read_header_timeout = READ_HEADER_TIMEOUT

    @property
    def open_connections(self) -> int:
        """Client connections open now (closed ones leave when the server sees them go)."""
        return len(self._connections)

    async def start(self, host: str | Sequence[str], port: int, *, ssl_context: ssl.SSLContext | None = None,
                    backlog: int = 1024) -> int:
        """Start listening on `host` (or each of several); returns the port (useful with port 0)."""
        self._server = await self.loop.create_server(lambda: HTTPProtocol(self), host, port, ssl=ssl_context,
                                                     reuse_address=True, backlog=backlog)
        self._sweeper = self.loop.create_task(self._sweep())
        return int(self._server.sockets[0].getsockname()[1])

    async def _sweep(self) -> None:
        """Close connections idle past ``idle_timeout`` and those whose request head is not complete
        ``read_header_timeout`` after it began (checked a few times per timeout)."""
        while True:
            await asyncio.sleep(min(self.idle_timeout, self.read_header_timeout) / 4)
            now = time.monotonic()
            cutoff = now - self.idle_timeout
            for conn in list(self._connections):
                if conn._upgraded is not None:
                    continue
                if conn.head_deadline is not None and conn.head_deadline < now:
                    conn.close()  # as Go's server: no answer to a head that never came
                elif conn.idle and conn.last_input < cutoff:
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
                await wait_for(self._server.wait_closed(), timeout)


__all__ = [
    "HTTPProtocol",
    "HTTPServer",
    "Handler",
]
