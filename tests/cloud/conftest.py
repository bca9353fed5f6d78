"""Fixtures of the cloud-controller-manager tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kybernetes.testing import ServerProcess


@pytest.fixture(scope="module")
def srv(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """An API server of the test module's own (no scheduler, no controller manager's controllers
    but the serviceaccount controller)."""
    s = ServerProcess.start(tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2]))
    try:
        yield s
    finally:
        s.stop()
