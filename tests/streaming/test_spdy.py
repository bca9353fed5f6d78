"""SPDY/3.1: frames, header compression, and sessions (in memory and over a real HTTP upgrade)."""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections.abc import Callable

import pytest
from aiohttp import web

from kybernetes.streaming import RawUpgrade, spdy, spdy_frames


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait (bounded) until ``cond`` holds: the other session's task has handled what was sent."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


def test_dictionary_shape() -> None:
    d = spdy_frames.DICTIONARY
    assert len(d) == 1423
    assert d.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert b"\x00\x00\x00\x06origin100101201" in d
    assert d.endswith(b"utf-,*,enq=0.")


def test_data_frame_round_trip_any_slicing() -> None:
    raw = spdy_frames.encode_data(5, b"hello", fin=True) + spdy_frames.encode_data(7, b"")
    assert raw[:8] == b"\x00\x00\x00\x05\x01\x00\x00\x05"
    parser = spdy_frames.FrameParser()
    frames: list[spdy_frames.Frame] = []
    for i in range(len(raw)):  # one byte at a time
        frames += parser.feed(raw[i:i + 1])
    assert frames == [spdy_frames.DataFrame(5, spdy_frames.FLAG_FIN, b"hello"), spdy_frames.DataFrame(7, 0, b"")]
    assert isinstance(frames[0], spdy_frames.DataFrame) and frames[0].fin


def test_control_frame_round_trip() -> None:
    raw = spdy_frames.encode_control(spdy_frames.FrameType.RST_STREAM, 0, struct.pack(">II", 3, spdy_frames.RstStatus.CANCEL))
    assert raw[:4] == b"\x80\x03\x00\x03"
    (frame,) = spdy_frames.FrameParser().feed(raw)
    assert frame == spdy_frames.ControlFrame(spdy_frames.FrameType.RST_STREAM, 0, struct.pack(">II", 3, 5), 3)


def test_header_blocks_share_one_zlib_stream_with_the_dictionary() -> None:
    comp, decomp = spdy_frames.HeaderCompressor(), spdy_frames.HeaderDecompressor()
    blocks = [comp.compress({"streamType": "error", "port": "8080", "requestID": "0"}),
              comp.compress({"streamType": "data", "port": "8080", "requestID": "0"}),
              comp.compress({})]
    assert decomp.decompress(blocks[0]) == {"streamtype": "error", "port": "8080", "requestid": "0"}
    assert decomp.decompress(blocks[1]) == {"streamtype": "data", "port": "8080", "requestid": "0"}
    assert decomp.decompress(blocks[2]) == {}
    # The stream needs the SPDY dictionary: plain zlib cannot read it.
    with pytest.raises(zlib.error):
        zlib.decompressobj().decompress(blocks[0])
    # And the second block only decodes in sequence, after the first (shared compression context).
    with pytest.raises(spdy_frames.ProtocolError):
        spdy_frames.HeaderDecompressor().decompress(blocks[1])


def test_header_block_layout() -> None:
    block = spdy_frames.encode_header_block({"A": "b"})
    assert block == b"\x00\x00\x00\x01" + b"\x00\x00\x00\x01a" + b"\x00\x00\x00\x01b"
    assert spdy_frames.decode_header_block(block) == {"a": "b"}
    with pytest.raises(spdy_frames.ProtocolError):
        spdy_frames.decode_header_block(block[:-1])


class Pipe:
    """One direction-pair of an in-memory byte stream."""

    def __init__(self, inbox: asyncio.Queue[bytes], outbox: asyncio.Queue[bytes]) -> None:
        self.inbox, self.outbox = inbox, outbox
        self.closed = False

    async def read(self) -> bytes:
        return await self.inbox.get()

    async def write(self, data: bytes) -> None:
        if self.closed:
            raise ConnectionError("closed")
        self.outbox.put_nowait(data)

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.outbox.put_nowait(b"")
            self.inbox.put_nowait(b"")  # like a socket: our own reads end too


def pipes() -> tuple[Pipe, Pipe]:
    a: asyncio.Queue[bytes] = asyncio.Queue()
    b: asyncio.Queue[bytes] = asyncio.Queue()
    return Pipe(a, b), Pipe(b, a)


async def echo(stream: spdy.Stream) -> None:
    while data := await stream.read():
        await stream.write(data.upper())
    await stream.close()


async def test_session_streams_half_close_reset_ping() -> None:
    left, right = pipes()
    server = spdy.Session(right, client=False, on_stream=echo).start()
    client = spdy.Session(left, client=True).start()
    s1 = await client.open_stream({"streamType": "data", "port": "80"})
    s2 = await client.open_stream({"streamType": "data", "port": "81"})
    assert (s1.id, s2.id) == (1, 3)
    await s1.write(b"abc")
    await s2.write(b"xyz")
    await s1.close()
    assert await s1.read_all() == b"ABC"  # the echo's FIN ends our read
    assert s1.closed and 1 not in client.streams
    await s2.reset()
    assert await s2.read() == b""
    assert await client.ping() >= 0
    await client.close()
    await asyncio.wait_for(server.wait_closed(), 5)


async def test_refused_without_handler() -> None:
    left, right = pipes()
    spdy.Session(right, client=False).start()
    client = spdy.Session(left, client=True).start()
    with pytest.raises(spdy.StreamReset):
        await client.open_stream({"a": "b"}, timeout=5)
    await client.close()


async def test_flow_control_window() -> None:
    left, right = pipes()
    received: asyncio.Queue[spdy.Stream] = asyncio.Queue()
    spdy.Session(right, client=False, on_stream=received.put_nowait, flow_control=True).start()
    client = spdy.Session(left, client=True, flow_control=True).start()
    stream = await client.open_stream({})
    peer = await received.get()
    payload = b"x" * (spdy_frames.DEFAULT_WINDOW + 10_000)
    writer = asyncio.ensure_future(stream.write(payload))
    # The window is spent and the writer waits for the reader (parked on window_open, which only
    # a writer facing a closed window clears).
    await until(lambda: not stream.window_open.is_set() or writer.done())
    assert not writer.done() and stream.send_window == 0
    got = b""
    while len(got) < len(payload):
        got += await peer.read()  # reading sends WINDOW_UPDATE, which lets the writer go on
    await asyncio.wait_for(writer, 5)
    assert got == payload
    await client.close()


async def test_settings_initial_window_applies_to_open_streams() -> None:
    left, right = pipes()
    received: asyncio.Queue[spdy.Stream] = asyncio.Queue()
    server = spdy.Session(right, client=False, on_stream=received.put_nowait).start()
    client = spdy.Session(left, client=True).start()
    stream = await client.open_stream({})
    await server.send_settings({spdy_frames.Setting.INITIAL_WINDOW_SIZE: 1000})
    await until(lambda: client.initial_send_window != spdy.DEFAULT_WINDOW)  # the SETTINGS frame arrived
    assert stream.send_window == 1000 and client.initial_send_window == 1000
    await client.close()


async def test_connect_over_http_upgrade() -> None:
    """spdy.connect (client) against an aiohttp server that takes the connection over (RawUpgrade)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        offered = request.headers.getall("X-Stream-Protocol-Version")
        assert offered == ["v4.channel.k8s.io", "v3.channel.k8s.io"]  # one header line each
        raw = await RawUpgrade.accept(request, {"Connection": "Upgrade", "Upgrade": "SPDY/3.1",
                                                "X-Stream-Protocol-Version": offered[0]})
        session = spdy.Session(raw, client=False, on_stream=echo)
        await session.run()
        assert raw.response is not None
        return raw.response

    app = web.Application()
    app.router.add_post("/x", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        session, proto = await spdy.connect("127.0.0.1", port, "/x", ["v4.channel.k8s.io", "v3.channel.k8s.io"])
        assert proto == "v4.channel.k8s.io"
        stream = await session.open_stream({"streamType": "stdin"})
        big = b"spdy" * 100_000
        await stream.write(big)
        await stream.close()
        assert await stream.read_all(limit=1 << 22) == big.upper()
        await session.close()
    finally:
        await runner.cleanup()


async def test_peer_reset_keeps_data_already_received() -> None:
    """Go's spdystream resets streams as its connection closes, just after the last data (the exec
    status): that data must stay readable."""

    async def write_then_reset(stream: spdy.Stream) -> None:
        await stream.write(b"status")
        await stream.reset()

    left, right = pipes()
    spdy.Session(right, client=False, on_stream=write_then_reset).start()
    client = spdy.Session(left, client=True).start()
    stream = await client.open_stream({"streamType": "error"})
    assert await stream.read_all() == b"status"
    assert stream.reset_status == spdy_frames.RstStatus.CANCEL
    await client.close()
