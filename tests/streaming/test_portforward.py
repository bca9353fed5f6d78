"""port-forward over a WebSocket of channels: the port list, the first message, and the translation
to SPDY stream pairs (against a SPDY runtime of this project that connects to real loopback ports;
the real containerd is in tests/e2e/test_stream_clients.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

from kybernetes.streaming import channels, portforward, spdy
from kybernetes.streaming.channels import ChannelSocket
from kybernetes.testing import free_port
from tests.streaming.test_spdy import pipes


def test_parse_ports() -> None:
    assert portforward.parse_ports(["80,443", "8080"]) == [80, 443, 8080]
    assert portforward.parse_ports(["65535"]) == [65535]
    cases = {
        (): 'query parameter "port" is required',
        ("",): 'query parameter "port" cannot be empty',
        ("80,x",): 'unable to parse "80,x" as a port: strconv.ParseUint: parsing "x": invalid syntax',
        ("80,",): 'unable to parse "80," as a port: strconv.ParseUint: parsing "": invalid syntax',
        ("65536",): 'unable to parse "65536" as a port: strconv.ParseUint: parsing "65536": value out of range',
        ("-1",): 'strconv.ParseUint: parsing "-1": invalid syntax',
        ("8080,0",): 'port "8080,0" must be > 0',
    }
    for values, message in cases.items():
        with pytest.raises(ValueError) as err:
            portforward.parse_ports(list(values))
        assert message in str(err.value), (values, err.value)


def test_port_prefix() -> None:
    assert portforward.port_prefix(8080) == b"\x90\x1f"  # little-endian 0x1f90
    assert portforward.split_port_prefix(b"\x90\x1fmore") == (8080, b"more")
    with pytest.raises(ValueError):
        portforward.split_port_prefix(b"\x90")


@dataclass
class Runtime:
    """containerd's side of port-forward over SPDY, in miniature: per requestID a pair of streams;
    the data stream is connected to 127.0.0.1:port, a failure is written on the error stream."""

    pairs: dict[str, dict[str, spdy.Stream]] = field(default_factory=dict)
    headers: list[dict[str, str]] = field(default_factory=list)

    async def on_stream(self, stream: spdy.Stream) -> None:
        self.headers.append(dict(stream.headers))
        pair = self.pairs.setdefault(stream.header("requestid"), {})
        pair[stream.header("streamtype")] = stream
        if len(pair) == 2:
            await self.forward(int(stream.header("port")), pair["data"], pair["error"])

    async def forward(self, port: int, data: spdy.Stream, error: spdy.Stream) -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError as e:
            await error.write(f"error forwarding port {port} to pod x, uid : {e}".encode())
            await error.close()
            await data.close()
            return

        async def up() -> None:
            while chunk := await data.read():
                writer.write(chunk)
                await writer.drain()

        async def down() -> None:
            while chunk := await reader.read(65536):
                await data.write(chunk)

        await asyncio.wait([asyncio.ensure_future(up()), asyncio.ensure_future(down())],
                           return_when=asyncio.FIRST_COMPLETED)
        writer.close()
        await error.close()
        await data.close()


async def upper_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A pod's server: echoes upper-cased; a line 'bye' ends the connection."""
    while line := await reader.readline():
        if line == b"bye\n":
            break
        writer.write(line.upper())
        await writer.drain()
    writer.close()


@pytest.fixture
async def forwarder() -> AsyncIterator[tuple[str, int, Runtime]]:
    """A WebSocket endpoint ``/pf?port=...`` served by ``serve_ports`` over an in-memory runtime,
    and the port of an upper-casing echo server."""
    echo = await asyncio.start_server(upper_echo, "127.0.0.1", 0)
    echo_port = echo.sockets[0].getsockname()[1]
    runtime = Runtime()

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ports = portforward.parse_ports(request.query.getall("port", []))
        ws = web.WebSocketResponse(protocols=channels.PORTFORWARD_WEBSOCKET_PROTOCOLS)
        await ws.prepare(request)
        ours, theirs = pipes()
        server = spdy.Session(theirs, client=False, on_stream=runtime.on_stream).start()
        client = spdy.Session(ours, client=True).start()
        try:
            await portforward.serve_ports(ChannelSocket(ws, ws.ws_protocol or ""), client, ports, describe="x")
        finally:
            await client.close()
            await server.close()
        return ws

    app = web.Application()
    app.router.add_get("/pf", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/pf", echo_port, runtime
    finally:
        await runner.cleanup()
        echo.close()
        with contextlib.suppress(Exception):
            await echo.wait_closed()


async def _messages(sock: ChannelSocket, until: int) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    while len(out) < until:
        item = await asyncio.wait_for(sock.receive(), 10)
        assert item is not None, out
        out.append(item)
    return out


@pytest.mark.parametrize("protocol", [channels.V4, channels.V4_BASE64])
async def test_two_ports_and_a_refused_one(forwarder: tuple[str, int, Runtime], protocol: str) -> None:
    url, echo_port, runtime = forwarder
    closed = free_port()  # nothing listens there
    async with aiohttp.ClientSession() as session, session.ws_connect(
            url, params=[("port", f"{echo_port},{closed}"), ("port", str(echo_port))], protocols=[protocol]) as ws:
        assert ws.protocol == protocol
        sock = ChannelSocket(ws, protocol)
        # Sent at once, before the connections are open: nothing is lost.
        await sock.send(0, b"first\n")
        await sock.send(4, b"third\n")
        first = await _messages(sock, 6)
        prefixes = sorted((ch, portforward.split_port_prefix(data)[0]) for ch, data in first)
        assert prefixes == [(0, echo_port), (1, echo_port), (2, closed), (3, closed), (4, echo_port),
                            (5, echo_port)]
        got: dict[int, bytes] = {}
        while not (got.get(0, b"").endswith(b"\n") and got.get(4, b"").endswith(b"\n") and got.get(3)):
            ch, data = (await _messages(sock, 1))[0]
            got[ch] = got.get(ch, b"") + data
        assert (got[0], got[4]) == (b"FIRST\n", b"THIRD\n")
        assert got[3].startswith(f"error forwarding port {closed}".encode()), got[3]
        assert not got.get(2)
        # Error channels and channels of no port are ignored; the first port's connection goes on.
        await sock.send(1, b"ignored\n")
        await sock.send(9, b"ignored\n")
        await sock.send(0, b"bye\n")  # the pod's side ends port 0's connection...
        await sock.send(4, b"again\n")
        assert await _messages(sock, 1) == [(4, b"AGAIN\n")]
        await sock.send(4, b"bye\n")  # ... and once every port's has ended, the socket closes
        assert await asyncio.wait_for(sock.receive(), 10) is None
    # One error and one data stream per port, with kubectl's headers, the error stream first.
    assert [(h["streamtype"], h["requestid"]) for h in runtime.headers if h["requestid"] == "1"] == [
        ("error", "1"), ("data", "1")]
    assert {h["port"] for h in runtime.headers} == {str(echo_port), str(closed)}


async def test_client_going_away_ends_every_connection(forwarder: tuple[str, int, Runtime]) -> None:
    url, echo_port, runtime = forwarder
    async with aiohttp.ClientSession() as session, session.ws_connect(
            url, params={"port": str(echo_port)}) as ws:
        assert ws.protocol is None  # none offered: binary channels all the same
        sock = ChannelSocket(ws, "")
        assert [portforward.split_port_prefix(d)[0] for _, d in await _messages(sock, 2)] == [echo_port] * 2
        await sock.send(0, b"x\n")
        assert await _messages(sock, 1) == [(0, b"X\n")]
    data = runtime.pairs["0"]["data"]
    await asyncio.wait_for(_until(lambda: data.closed), 10)


async def _until(predicate: object) -> None:
    while not predicate():  # type: ignore[operator]
        await asyncio.sleep(0.02)
