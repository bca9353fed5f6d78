"""What the kubelet tests share: an API server per test module, a client per test, and the node
runtime fixtures of ``tests/node`` (one containerd for every test of this directory).

A module that needs more on its server than a bare start defines ``prepare_server(srv)``; it runs
once, right after the server is up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from kybernetes.client.rest import Client
from kybernetes.testing import ServerProcess
from tests.node.conftest import cri, node_runtime

__all__ = ["client", "cri", "node_runtime", "srv"]


@pytest.fixture(scope="module")
def srv(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    s = ServerProcess.start(tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2]))
    try:
        prepare = getattr(request.module, "prepare_server", None)
        if prepare is not None:
            prepare(s)
        yield s
    finally:
        s.stop()


@pytest.fixture
async def client(srv: ServerProcess) -> AsyncIterator[Client]:
    c = Client.from_kubeconfig(srv.kubeconfig)
    try:
        yield c
    finally:
        await c.close()
