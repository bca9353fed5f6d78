"""kybernetes.httpserver on loopback, driven with raw bytes: framing, limits, streaming, upgrades."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import weakref
from collections.abc import AsyncIterator

import orjson
import pytest

from kybernetes.httpserver import protocol
from kybernetes.httpserver.messages import AnyResponse, Request, Response, StreamResponse
from kybernetes.httpserver.protocol import HTTPServer

LIMIT = 1000


class App:
    """Handlers keyed by path; records what they saw."""

    def __init__(self) -> None:
        self.seen: list[Request] = []
        self.cancelled = asyncio.Event()
        self.finished = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, req: Request) -> AnyResponse:
        self.seen.append(req)
        if req.path == "/echo":
            out = {"method": req.method, "path": req.path, "query": [list(x) for x in req.query.items()],
                   "body": req.body.decode(), "ua": req.headers.get("user-agent")}
            return Response(body=orjson.dumps(out), content_type="application/json")
        if req.path == "/slow":
            await asyncio.sleep(0.2)
            return Response(text="slow")
        if req.path == "/hold":
            # A non-streaming handler the client abandons: it must run to its end.
            await self.release.wait()
            self.finished.set()
            return Response(text="held")
        if req.path == "/stream":
            resp = StreamResponse(headers={"Content-Type": "text/plain"})
            await resp.prepare(req)
            for i in range(3):
                await resp.write(b"part%d\n" % i)
            if req.query.get("forever"):
                try:
                    await asyncio.sleep(60)
                except asyncio.CancelledError:
                    self.cancelled.set()
                    raise
            await resp.write_eof()
            return resp
        if req.path == "/upgrade":
            stream = await req.upgrade({"Connection": "Upgrade", "Upgrade": "echo"})
            while data := await stream.read():
                await stream.write(data.upper())
            return Response(status=101)
        if req.path == "/boom":
            raise RuntimeError("boom")
        if req.path == "/bad-header":  # a handler's header that cannot be sent as it is
            return Response(text="never", headers={"Warning": "299 - \"a\nb\""})
        return Response(status=404, text="no")


@pytest.fixture(autouse=True)
def short_linger(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(protocol, "LINGER_SECONDS", 0.3)


@pytest.fixture
async def server() -> AsyncIterator[tuple[App, int, HTTPServer]]:
    app = App()
    srv = HTTPServer(app, max_body=LIMIT)
    port = await srv.start("127.0.0.1", 0)
    try:
        yield app, port, srv
    finally:
        app.release.set()
        await srv.stop(timeout=1.0)


async def send(port: int, data: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A new connection with ``data`` written on it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    return reader, writer


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines[1:] if line)}
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
    else:
        body = await reader.read()
    return status, headers, body


async def test_keep_alive_and_pipelining(server: tuple[App, int, HTTPServer]) -> None:
    _app, port, _ = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    # Three requests in one write: answered in order, the slow one does not let the next overtake.
    writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
                 b"POST /echo?a=1&b=x+y&a=%2F HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                 b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
    s1, _, b1 = await read_response(reader)
    s2, h2, b2 = await read_response(reader)
    s3, _, _ = await read_response(reader)
    assert (s1, b1, s2, s3) == (200, b"slow", 200, 404)
    assert h2["content-type"] == "application/json" and "date" in h2
    echo = orjson.loads(b2)
    assert echo["method"] == "POST" and echo["body"] == "hello"
    assert echo["query"] == [["a", "1"], ["b", "x y"], ["a", "/"]]
    # Chunked request bodies are put together before the handler sees them.
    writer.write(b"PUT /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nUser-Agent: t/1\r\n\r\n"
                 b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    status, _, body = await read_response(reader)
    assert status == 200 and orjson.loads(body)["body"] == "abcde" and orjson.loads(body)["ua"] == "t/1"
    writer.write(b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    status, headers, _ = await read_response(reader)
    assert status == 200 and headers["connection"] == "close"
    assert await reader.read() == b""  # closed after the response
    writer.close()


async def test_http10_and_head(server: tuple[App, int, HTTPServer]) -> None:
    _, port, _ = server
    reader, writer = await send(port, b"HEAD /echo HTTP/1.0\r\n\r\n")
    head = await reader.read()
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"\r\n\r\n")
    assert b"Content-Length: " in head and b"Connection: close" in head
    writer.close()


@pytest.mark.parametrize("request_bytes", [
    b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n",  # refused before the body
    b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + (b"1f4\r\n" + b"x" * 500 + b"\r\n") * 3,
])
async def test_body_over_the_limit_is_413(server: tuple[App, int, HTTPServer], request_bytes: bytes) -> None:
    app, port, _ = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request_bytes)
    status, _, body = await read_response(reader)
    assert status == 413
    st = orjson.loads(body)
    assert st["reason"] == "RequestEntityTooLarge" and st["code"] == 413 and str(LIMIT) in st["message"]
    assert await reader.read() == b""
    assert not app.seen, "the handler never sees a refused request"
    writer.close()


async def test_413_reaches_a_client_that_sends_its_whole_body(server: tuple[App, int, HTTPServer]) -> None:
    """The rest of the body is read and dropped: closing on unread input would reset the connection."""
    _, port, _ = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = b"x" * (4 << 20)
    writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body))
    writer.write(body)
    await writer.drain()  # every byte accepted, none refused with a reset
    status, _, _ = await read_response(reader)
    assert status == 413
    writer.close()


@pytest.mark.parametrize(("request_bytes", "code"), [
    (b"NOT HTTP AT ALL\r\n\r\n", 400),  # malformed: a Status, from the server itself
    (b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n", 500),  # the handler raised
    # Its answer's head cannot be encoded: it was left unanswered (the fuzzer's unanswered requests).
    (b"GET /bad-header HTTP/1.1\r\nHost: x\r\n\r\n", 500),
])
async def test_errors_answer_and_close(server: tuple[App, int, HTTPServer], request_bytes: bytes, code: int) -> None:
    _, port, _ = server
    reader, writer = await send(port, request_bytes)
    status, headers, body = await asyncio.wait_for(read_response(reader), 10)
    assert status == code and headers["connection"] == "close"
    if code == 400:
        assert orjson.loads(body)["reason"] == "BadRequest"
    writer.close()


async def test_expect_continue(server: tuple[App, int, HTTPServer]) -> None:
    _, port, _ = server
    reader, writer = await send(port, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
    assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"ok")
    status, _, body = await read_response(reader)
    assert status == 200 and orjson.loads(body)["body"] == "ok"
    writer.close()


async def test_streaming_response(server: tuple[App, int, HTTPServer]) -> None:
    _, port, _ = server
    reader, writer = await send(port, b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\nGET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body = await read_response(reader)
    assert status == 200 and headers["transfer-encoding"] == "chunked" and body == b"part0\npart1\npart2\n"
    assert (await read_response(reader))[2] == b"slow"  # the connection goes on after the stream
    writer.close()


async def test_disconnect_cancels_a_stream_but_not_a_write(server: tuple[App, int, HTTPServer]) -> None:
    app, port, srv = server
    reader, writer = await send(port, b"GET /stream?forever=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    await reader.readuntil(b"part2\n\r\n")
    writer.close()
    await asyncio.wait_for(app.cancelled.wait(), 5)

    reader, writer = await send(port, b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
    for _ in range(100):
        if any(r.path == "/hold" for r in app.seen):
            break
        await asyncio.sleep(0.01)
    open_before = srv.open_connections
    writer.close()
    for _ in range(500):  # until the server has seen the client go, while the handler still holds
        if srv.open_connections < open_before:
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the server did not see the client disconnect")
    assert not app.finished.is_set()
    app.release.set()
    await asyncio.wait_for(app.finished.wait(), 5)


async def test_upgrade_takes_the_connection_over(server: tuple[App, int, HTTPServer]) -> None:
    _, port, _ = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    # Bytes behind the request head, in the same packet, belong to the upgraded protocol.
    writer.write(b"GET /upgrade HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nfirst")
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n") and b"Upgrade: echo" in head
    assert await reader.readexactly(5) == b"FIRST"
    writer.write(b"more")
    assert await reader.readexactly(4) == b"MORE"
    writer.write_eof()
    assert await reader.read() == b""
    writer.close()


async def test_upgrade_refused_closes_after_the_answer(server: tuple[App, int, HTTPServer]) -> None:
    _, port, _ = server
    reader, writer = await send(port, b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
    status, _, _ = await read_response(reader)
    assert status == 404
    assert await reader.read() == b""
    writer.close()


async def test_stop_ends_idle_and_streaming_connections(server: tuple[App, int, HTTPServer]) -> None:
    app, port, srv = server
    idle_r, idle_w = await asyncio.open_connection("127.0.0.1", port)
    idle_w.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    await read_response(idle_r)
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(b"GET /stream?forever=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    await r.readuntil(b"part2\n\r\n")
    await asyncio.wait_for(srv.stop(timeout=0.3), 5)
    assert await idle_r.read() == b""
    assert app.cancelled.is_set()
    idle_w.close()
    w.close()


async def test_idle_keep_alive_connections_are_closed(server: tuple[App, int, HTTPServer]) -> None:
    _, port, srv = server
    srv.idle_timeout = 0.4
    assert srv._sweeper is not None
    srv._sweeper.cancel()
    srv._sweeper = asyncio.create_task(srv._sweep())  # again, with the short timeout
    reader, writer = await send(port, b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    await read_response(reader)
    half_r, half_w = await asyncio.open_connection("127.0.0.1", port)
    half_w.write(b"GET /slow HTTP/1.1\r\nHost:")  # a head that never ends
    assert await asyncio.wait_for(reader.read(), 3) == b""
    assert await asyncio.wait_for(half_r.read(), 3) == b""
    writer.close()
    half_w.close()


@pytest.mark.parametrize("request_bytes", [
    b"GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (2 << 20) + b"\r\n\r\n",  # one header
    b"GET /echo HTTP/1.1\r\nHost: x\r\n" + b"X-Many: 0123456789\r\n" * 60_000 + b"\r\n",  # many
    b"GET /echo?" + b"q" * (2 << 20) + b" HTTP/1.1\r\nHost: x\r\n\r\n",  # the request line
])
async def test_a_request_head_over_1_mib_is_431(server: tuple[App, int, HTTPServer], request_bytes: bytes) -> None:
    """kube-apiserver's MaxHeaderBytes (1 MiB, and Go's 4 KiB beyond it): Go's own 431, then close."""
    app, port, _ = server
    reader, writer = await send(port, request_bytes)
    status, headers, body = await asyncio.wait_for(read_response(reader), 10)
    assert status == 431 and headers["connection"] == "close"
    assert body == b"431 Request Header Fields Too Large"
    assert not app.seen
    writer.close()


async def test_a_head_just_under_the_limit_is_served(server: tuple[App, int, HTTPServer]) -> None:
    _, port, _ = server
    reader, writer = await send(port, b"GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n")
    status, _, _ = await asyncio.wait_for(read_response(reader), 10)
    assert status == 200
    writer.close()


async def test_a_head_trickled_slower_than_the_read_header_timeout_is_closed(
        server: tuple[App, int, HTTPServer]) -> None:
    """Slowloris: a byte every 50 ms keeps the connection from being idle, but its head must be whole
    within the read-header timeout (kube-apiserver: 32 s; 0.4 s here); then it is closed unanswered.
    A keep-alive connection gets the timeout afresh from its next request's first byte."""
    app, port, srv = server
    srv.read_header_timeout = 0.4
    assert srv._sweeper is not None
    srv._sweeper.cancel()
    srv._sweeper = asyncio.create_task(srv._sweep())  # again, with the short timeout
    kept_r, kept_w = await send(port, b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await read_response(kept_r))[0] == 200
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = b"GET /echo HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000
    closed_after = None
    t0 = asyncio.get_running_loop().time()
    for i in range(len(head)):
        writer.write(head[i:i + 1])
        await asyncio.sleep(0.05)
        with contextlib.suppress(TimeoutError):
            if reader.at_eof() or await asyncio.wait_for(reader.read(1), 0.001) == b"":
                closed_after = asyncio.get_running_loop().time() - t0
                break
    assert closed_after is not None and closed_after < 3, "the trickled head was never cut off"
    assert not app.seen[1:]
    kept_w.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")  # 1 s after its last request: still served
    assert (await asyncio.wait_for(read_response(kept_r), 5))[0] == 200
    writer.close()
    kept_w.close()


async def test_a_closed_connection_is_freed_without_the_collector(server: tuple[App, int, HTTPServer]) -> None:
    """Reference counting alone frees a closed connection's protocol (and with it its parser,
    transport and, over TLS, their buffers): the daemons run the cyclic collector rarely
    (aiorun.tune_gc), and a quiet controller manager probed every 10 s kept every probe's connection."""
    app, port, srv = server
    reader, writer = await send(port, b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await read_response(reader))[0] == 200
    app.seen.clear()  # the test's own reference to the request (and so to its connection)
    assert srv.open_connections == 1
    conn = weakref.ref(next(iter(srv._connections)))
    gc.collect()
    gc.disable()
    try:
        writer.close()
        async with asyncio.timeout(10):
            while srv.open_connections:
                await asyncio.sleep(0.01)
        for _ in range(3):
            await asyncio.sleep(0)  # the transport's own close callbacks run
        assert conn() is None, "the closed connection is still referenced (a cycle left to the collector)"
    finally:
        gc.enable()
