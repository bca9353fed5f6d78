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
    ws = web.WebSocketResponse(protocols=channels.WEBSOCKET_PROTOCOLS)
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
