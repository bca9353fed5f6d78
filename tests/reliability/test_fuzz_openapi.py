"""Property-based fuzzing from the API server's own OpenAPI v2 and v3 (issue 20, "Hostile input").

CI-sized: about 2,000 generated requests, bounded to 60 s of fuzzing (on a loaded machine the
bound comes first; the figure is printed), against one server for the module. What is generated
and counted is :mod:`tests.reliability.fuzz`'s contract; ``bench.fuzz`` runs 50,000 and more.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kybernetes.testing import ServerProcess
from tests.reliability.fuzz import fuzz

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess.start(Path(tmp_path_factory.mktemp("fuzz")), timeout=60)
    try:
        yield server
    finally:
        server.stop()


def test_generated_requests_get_no_5xx_no_dropped_connection_and_no_half_write(srv: ServerProcess) -> None:
    result = fuzz(srv, requests_goal=2_000, seconds=60, seed=int(os.environ.get("KYB_FUZZ_SEED", "20")))
    print("fuzz:", result.summary())
    assert result.requests >= 250, result.summary()  # it ran: a 2-core CI machine sends ~2,000
    assert result.server_errors == [], result.server_errors[:10]
    assert result.dropped == [], result.dropped[:10]
    assert result.hung == [], result.hung[:10]
    assert result.half_writes == [], result.half_writes[:10]
    assert result.mutations_checked > 0  # refused writes on existing objects were checked
    assert not [e for e in result.generation_errors if e.startswith("sender")], result.generation_errors
    assert "Traceback" not in srv.log(), srv.log()[-5000:]
