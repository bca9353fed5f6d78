"""What a handler sees: :class:`Request`, the :class:`Response` and :class:`StreamResponse` it returns, and the :class:`UpgradedStream` it may take a connection over as.

A :class:`Response` is written with one ``transport.write`` (head and body together, when the
body is small); a :class:`StreamResponse` writes a chunked body as the handler produces it, with
the write-side flow control of its connection's protocol
(:class:`~kybernetes.httpserver.protocol.HTTPProtocol`). Status lines are formatted once per
code and the ``Date`` header once a second, because every response carries both.
"""

from __future__ import annotations

import asyncio
import collections
import email.utils
import http
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson
from multidict import CIMultiDictProxy, MultiDict, MultiDictProxy

if TYPE_CHECKING:
    from kybernetes.httpserver.protocol import HTTPProtocol

_REASONS = {s.value: s.phrase for s in http.HTTPStatus}
_STATUS_LINES: dict[int, bytes] = {}


def status_line(status: int) -> bytes:
    """``HTTP/1.1 200 OK\r\n``, formatted once per status code."""
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
        "stream_status",
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
        """Called once when a streamed response sends its head (a watch is set up), or the
        connection is upgraded (``101``)."""
        self.stream_status = 0
        """The status a streamed response started with (set before ``on_stream_start`` is called)."""

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

    @property
    def peercert_der(self) -> bytes | None:
        """The verified client certificate as DER (None without one)."""
        tls = self.transport.get_extra_info("ssl_object") if self.transport is not None else None
        return tls.getpeercert(binary_form=True) if tls is not None else None

    async def json(self) -> Any:
        return orjson.loads(self.body)

    async def upgrade(self, headers: Mapping[str, str]) -> UpgradedStream:
        """Answer ``101 Switching Protocols`` with ``headers`` and take the connection over."""
        if not self._upgrade_ok:
            raise RuntimeError("not an upgrade request")
        if self.on_stream_start is not None:
            started, self.on_stream_start = self.on_stream_start, None
            self.stream_status = 101
            started()
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
        parts = [status_line(status)]
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
            request.stream_status = self.status
            started()
        proto = request._protocol
        self._chunked = request.version >= (1, 1)
        parts = [status_line(self.status), header_lines(self.headers), request.extra_headers or b""]
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


__all__ = [
    "AnyResponse",
    "Request",
    "Response",
    "StreamResponse",
    "UpgradedStream",
    "chunk",
    "header_lines",
]
