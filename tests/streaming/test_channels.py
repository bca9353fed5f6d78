"""The remotecommand WebSocket channel protocol, both ends over a real aiohttp WebSocket."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from kybernetes.streaming import channels
from kybernetes.streaming.channels import ChannelSocket, run_exec_client


def test_framing() -> None:
    assert channels.encode(channels.STDOUT, b"hi") == b"\x01hi"
    assert channels.decode(b"\x02err") == (channels.STDERR, b"err")
    assert channels.close_signal(channels.STDIN) == b"\xff\x00"
    with pytest.raises(ValueError):
        channels.decode(b"")


def test_base64_framing() -> None:
    # wsstream's own example: "foo\n" on stdin, "\n" on stdout.
    assert channels.encode(channels.STDIN, b"foo\n", base64=True) == b"0Zm9vCg=="
    assert channels.decode(b"1Cg==", base64=True) == (channels.STDOUT, b"\n")
    assert channels.encode(channels.ERROR, b"", base64=True) == b"3"
    assert channels.decode(b"3", base64=True) == (channels.ERROR, b"")
    assert channels.encode(80, b"", base64=True) == "\u0080".encode()  # Go's string('0'+80)
    every_byte = bytes(range(256))
    assert channels.decode(channels.encode(7, every_byte, base64=True), base64=True) == (7, every_byte)
    # Wrapped as `base64` prints it: Go's decoder skips CR and LF.
    assert channels.decode(b"0Zm9v\r\nCg==\n", base64=True) == (channels.STDIN, b"foo\n")
    for bad in (b"0Zm9vCg", b"0Zm9v!Cg==", b"0Zm9vCg==Zm9v="):
        with pytest.raises(ValueError, match="illegal base64 data on channel 0"):
            channels.decode(bad, base64=True)


def test_protocol_table() -> None:
    rules = channels.PROTOCOLS
    assert [p for p in rules if rules[p].base64] == [channels.BASE64_CHANNEL, channels.V4_BASE64]
    assert [p for p in rules if rules[p].status_json] == [channels.V4, channels.V4_BASE64, channels.V5]
    assert [p for p in rules if rules[p].close_signal] == [channels.V5]
    assert set(channels.REMOTECOMMAND_WEBSOCKET_PROTOCOLS) | {channels.NONE} == set(rules)
    assert set(channels.PORTFORWARD_WEBSOCKET_PROTOCOLS) == {channels.V4, channels.V4_BASE64}


def test_negotiation_follows_the_client() -> None:
    supported = channels.REMOTECOMMAND_WEBSOCKET_PROTOCOLS
    assert channels.negotiate([channels.V4, channels.V5], supported) == channels.V4
    assert channels.negotiate(["x", channels.BASE64_CHANNEL], supported) == channels.BASE64_CHANNEL
    assert channels.negotiate([], supported) == channels.NONE
    assert channels.negotiate([channels.V5], channels.PORTFORWARD_WEBSOCKET_PROTOCOLS) is None
    assert channels.unsupported_message(["a", "b"], ["c"]) == "requested protocol(s) are not supported: [a b]; supports [c]"


def test_status_and_exit_codes() -> None:
    assert channels.exit_status(0) == {"metadata": {}, "status": "Success"}
    failed = channels.exit_status(3)
    assert failed["reason"] == "NonZeroExitCode"
    assert failed["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    assert channels.exit_code(failed) == 3
    assert channels.exit_code(None) == 0
    assert channels.exit_code(channels.success_status()) == 0
    assert channels.exit_code(channels.error_status("boom")) == 1


async def fake_exec(request: web.Request) -> web.WebSocketResponse:
    """A server end: echoes stdin upper-cased on stdout until stdin is closed, reports resizes on
    stderr, then exits with the code in ?code=."""
    ws = web.WebSocketResponse(protocols=channels.REMOTECOMMAND_WEBSOCKET_PROTOCOLS)
    await ws.prepare(request)
    sock = ChannelSocket(ws, ws.ws_protocol or "")
    while (item := await sock.receive()) is not None:
        ch, data = item
        if ch == channels.STDIN:
            await sock.send(channels.STDOUT, data.upper())
        elif ch == channels.RESIZE:
            size = json.loads(data)
            await sock.send(channels.STDERR, f"{size['Width']}x{size['Height']}".encode())
        elif ch == channels.CLOSE and data == bytes((channels.STDIN,)):
            break
    await sock.send_status(channels.exit_status(int(request.query.get("code", "0"))))
    await sock.close()
    return ws


@pytest.fixture
async def server() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/exec", fake_exec)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_v5_client_and_server(server: str) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(
            f"{server}/exec?code=3", protocols=[channels.V5]) as ws:
        assert ws.protocol == channels.V5
        sock = ChannelSocket(ws, channels.V5)
        await sock.resize(80, 24)
        result = await run_exec_client(sock, stdin=b"hello")
    assert result.stdout == b"HELLO"
    assert result.stderr == b"80x24"
    assert result.exit_code == 3
    assert result.status is not None and result.status["reason"] == "NonZeroExitCode"


async def test_v4_has_no_close_signal(server: str) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(
            f"{server}/exec", protocols=[channels.V4]) as ws:
        sock = ChannelSocket(ws, channels.V4)
        assert not sock.supports_close
        await sock.send(channels.STDIN, b"abc")
        assert await sock.receive() == (channels.STDOUT, b"ABC")
        await sock.close_channel(channels.STDIN)  # a no-op on v4: the server keeps waiting
        await sock.send(channels.STDIN, b"d")
        assert await sock.receive() == (channels.STDOUT, b"D")


@pytest.mark.parametrize("protocol", [channels.V4_BASE64, channels.BASE64_CHANNEL])
async def test_base64_client_and_server(server: str, protocol: str) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(
            f"{server}/exec?code=0", protocols=[protocol]) as ws:
        sock = ChannelSocket(ws, protocol)
        await sock.send(channels.STDIN, b"\x00abc\xff")
        msg = await ws.receive()
        # On the wire: a text message, the channel as a digit, the payload in base64.
        assert (msg.type, msg.data) == (aiohttp.WSMsgType.TEXT, "1AEFCQ/8=")
        await sock.send(channels.STDIN, b"\n")
        assert await sock.receive() == (channels.STDOUT, b"\n")


async def status_server(request: web.Request) -> web.WebSocketResponse:
    """Reports the Status JSON given in ?status= as the negotiated protocol does."""
    ws = web.WebSocketResponse(protocols=channels.REMOTECOMMAND_WEBSOCKET_PROTOCOLS)
    await ws.prepare(request)
    sock = ChannelSocket(ws, ws.ws_protocol or "")
    await sock.send_status_json(request.query["status"].encode())
    await sock.close()
    return ws


@pytest.mark.parametrize("protocol", [channels.NONE, channels.CHANNEL, channels.BASE64_CHANNEL, channels.V4,
                                      channels.V4_BASE64, channels.V5])
async def test_status_per_protocol(protocol: str) -> None:
    app = web.Application()
    app.router.add_get("/status", status_server)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    failure = channels.exit_status(7)
    try:
        async with aiohttp.ClientSession() as session:
            got = {}
            for name, status in (("success", channels.success_status()), ("failure", failure)):
                async with session.ws_connect(f"http://127.0.0.1:{port}/status",
                                              params={"status": json.dumps(status)},
                                              protocols=[protocol] if protocol else []) as ws:
                    assert (ws.protocol or "") == protocol
                    got[name] = await run_exec_client(ChannelSocket(ws, protocol))
    finally:
        await runner.cleanup()
    if channels.PROTOCOLS[protocol].status_json:
        assert got["success"].status == channels.success_status()
        assert got["failure"].status == failure and got["failure"].exit_code == 7
    else:
        # Before v4: nothing on success, the failure's message alone otherwise.
        assert got["success"].status is None and got["success"].exit_code == 0
        assert got["failure"].status == {"status": "Failure", "message": failure["message"]}
