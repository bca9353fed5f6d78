"""What the client tests share: an API server per test module, a client per test, polling."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from kybernetes import errors
from kybernetes.client.rest import Client
from kybernetes.testing import ServerProcess


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The module's own API server, started with the module's ``SERVER_ARGS`` (if it has any)."""
    name = request.module.__name__.rpartition(".")[2]
    srv = ServerProcess.start(tmp_path_factory.mktemp(name), *getattr(request.module, "SERVER_ARGS", ()))
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
async def client(server: ServerProcess) -> AsyncIterator[Client]:
    async with Client.from_kubeconfig(server.kubeconfig) as c:
        yield c


async def eventually(cond: Callable[[], bool], timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def until_compacted(client: Client, resource_version: str, timeout: float = 15.0) -> None:
    """Wait until the store has compacted ``resource_version`` away: an exact LIST at it is 410
    (of ConfigMaps, cluster-wide: compaction is by revision, whatever the resource)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            await client.request("GET", "/api/v1/configmaps", params={
                "resourceVersion": resource_version, "resourceVersionMatch": "Exact", "limit": 1})
        except errors.Gone:
            return
        if loop.time() > deadline:
            raise AssertionError(f"resourceVersion {resource_version} not compacted in time")
        await asyncio.sleep(0.05)
