"""Integration fixtures: a real ``kyb server`` process on loopback, driven by kubectl and clients."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kybernetes.testing import KUBECTL, ServerProcess


def _require_kubectl() -> None:
    if shutil.which(KUBECTL) is None and not os.path.exists(KUBECTL):
        if os.environ.get("CI"):
            pytest.fail("kubectl is required on CI")
        pytest.skip("kubectl is not installed on this machine (it is on CI)")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server shared by the tests that only need a working cluster."""
    _require_kubectl()
    srv = ServerProcess.start(tmp_path_factory.mktemp("kyb-shared"))
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server of the test's own, for tests that restart or kill it."""
    _require_kubectl()
    srv = ServerProcess.start(tmp_path / "data")
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def kubectl(server: ServerProcess):  # type: ignore[no-untyped-def]
    return server.kubectl


@pytest.fixture
def namespace(server: ServerProcess, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of the test's own, so tests sharing the server do not see each other."""
    name = "t-" + request.node.name.lower().replace("_", "-")[:50].strip("-")
    name = "".join(c for c in name if c.isalnum() or c == "-")[:60].strip("-")
    server.kubectl("create", "-f", "-", input=f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n")
    yield name


@pytest.fixture
def api(server: ServerProcess) -> Iterator[Any]:
    """The official Python client (``kubernetes.client.ApiClient``) on the shared server."""
    config = pytest.importorskip("kubernetes.config")
    c = config.new_client_from_config(config_file=str(server.kubeconfig))
    try:
        yield c
    finally:
        c.close()
