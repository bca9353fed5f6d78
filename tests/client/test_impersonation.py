"""``Client.impersonating``: the headers ``kubectl --as`` sends, on the owner's connections.

The API server's side (authorizing ``impersonate``) is another part of issue 10; here a loopback
HTTP server records what the client sends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from kybernetes.client.kubeconfig import ClusterConfig
from kybernetes.client.rest import Client


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[str, list[list[tuple[str, str]]]]]:
    seen: list[list[tuple[str, str]]] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append([(k, v) for k, v in request.headers.items() if k.lower().startswith(("impersonate", "auth"))])
        return web.json_response({"kind": "Status", "status": "Success"})

    app = web.Application()
    app.router.add_get("/api/v1/namespaces/default/configmaps/x", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


async def test_view_sends_impersonation_headers_on_the_owners_session(
        recorder: tuple[str, list[list[tuple[str, str]]]]) -> None:
    url, seen = recorder
    owner = Client(ClusterConfig(server=url, token="fleet-token"))
    node = owner.impersonating("system:node:n1", ("system:nodes", "extra"))
    try:
        await owner.get("v1", "configmaps", "x", "default")
        await node.get("v1", "configmaps", "x", "default")
        assert seen[0] == [("Authorization", "Bearer fleet-token")]
        assert seen[1] == [("Authorization", "Bearer fleet-token"), ("Impersonate-User", "system:node:n1"),
                           ("Impersonate-Group", "system:nodes"), ("Impersonate-Group", "extra")]
        assert node._get_session() is owner._get_session()
        await node.close()  # a view closes nothing
        await owner.get("v1", "configmaps", "x", "default")
        assert len(seen) == 3
    finally:
        await owner.close()
