"""The log relay against a real HTTP upstream that streams like pods/log?follow=true.

The upstream here is an aiohttp server on loopback (a container's log needs a node with
containerd; what is tested is the relay: lines as events, errors relayed, and the upstream closed
as soon as the browser goes away)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import ClientSession, ClientTimeout, web
from aiohttp.test_utils import TestServer

from kybernetes.client import Client
from kybernetes.client.kubeconfig import ClusterConfig
from kybernetes.console.logs import lines
from kybernetes.console.server import Console, ConsoleConfig


class Upstream:
    """pods/log of pod ``default/p``: two lines at once, then one more per 50 ms until closed."""

    def __init__(self) -> None:
        self.closed = asyncio.Event()
        self.params: dict[str, str] = {}

    async def log(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["pod"] != "p":
            return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404,
                                      "reason": "NotFound", "message": f'pods "{request.match_info["pod"]}" not found'},
                                     status=404)
        self.params = dict(request.query)
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await resp.prepare(request)
        try:
            await resp.write(b"first line\nsecond ")
            await resp.write(b"line\n")
            n = 0
            while True:
                await asyncio.sleep(0.05)
                n += 1
                await resp.write(f"tick {n}\n".encode())
        except (asyncio.CancelledError, ConnectionResetError):
            self.closed.set()
            raise
        return resp


@pytest.fixture
async def relay() -> AsyncIterator[tuple[str, Upstream]]:
    up = Upstream()
    app = web.Application()
    app.router.add_get("/api/v1/namespaces/{ns}/pods/{pod}/log", up.log)
    upstream = TestServer(app, handler_cancellation=True)
    await upstream.start_server()
    client = Client(ClusterConfig(server=str(upstream.make_url("")).rstrip("/")))
    console = TestServer(Console(client, ConsoleConfig(token=None)).app(), handler_cancellation=True)
    await console.start_server()
    try:
        yield str(console.make_url("")).rstrip("/"), up
    finally:
        await console.close()
        await client.close()
        await upstream.close()


async def test_lines_are_events_and_the_upstream_closes_when_the_browser_leaves(relay: Any) -> None:
    base, up = relay
    async with ClientSession(timeout=ClientTimeout(total=10)) as s, \
            s.get(f"{base}/api/logs/default/p?container=c&tailLines=5") as r:
        assert r.status == 200 and r.headers["Content-Type"] == "text/event-stream"
        got: list[str] = []
        while len(got) < 3:
            line = (await r.content.readline()).decode().rstrip("\n")
            if line.startswith("data: "):
                got.append(line[6:])
        assert got == ["first line", "second line", "tick 1"]
        assert up.params == {"container": "c", "tailLines": "5", "follow": "true"}
    # The browser is gone: the console must drop its upstream request at once.
    await asyncio.wait_for(up.closed.wait(), 5)


async def test_an_upstream_error_is_the_api_servers_code(relay: Any) -> None:
    base, _ = relay
    async with ClientSession(timeout=ClientTimeout(total=10)) as s, s.get(f"{base}/api/logs/default/gone") as r:
        assert r.status == 404
        assert await r.json() == {"error": 'pods "gone" not found', "code": 404}


async def test_lines_splits_chunks_and_keeps_an_unfinished_last_line() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for c in (b"a\r\nb", b"c\n", b"", b"tail"):
            yield c

    assert [x async for x in lines(chunks())] == ["a", "bc", "tail"]
