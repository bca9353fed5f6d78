"""Fixtures of the controller tests; the helpers they share are in :mod:`tests.controllers.harness`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kybernetes.testing import ServerProcess


@pytest.fixture(scope="module")
def srv(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """An API server of the test module's own (no scheduler; of the controllers only the
    serviceaccount controller, which pods need, unless the module sets
    ``SERVER_RUNS_SERVICEACCOUNT_CONTROLLER = False`` because it tests that controller itself)."""
    s = ServerProcess.start(tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2]),
                            service_accounts=getattr(request.module, "SERVER_RUNS_SERVICEACCOUNT_CONTROLLER", True))
    try:
        yield s
    finally:
        s.stop()
