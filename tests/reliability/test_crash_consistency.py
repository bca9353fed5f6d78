"""kill -9 of the API server while 64 clients write: no acknowledged write is lost (issue 20).

CI-sized: three rounds on one server (SQLite), each in a namespace of its own; ``bench.chaos`` runs
twenty and prints the table. What one round checks is :mod:`tests.reliability.crash`'s contract.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kybernetes.testing import ServerProcess
from tests.reliability.crash import crash_round

pytestmark = pytest.mark.integration


def test_acknowledged_writes_survive_kill_9_and_watches_resume(tmp_path: Path) -> None:
    data_dir = tmp_path / "srv"
    srv = ServerProcess.start(data_dir, timeout=60)
    try:
        for round_no in range(3):
            ns = f"crash-{round_no}"
            assert srv.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})[0] == 201
            result, srv = asyncio.run(crash_round(
                srv, lambda: ServerProcess.start(data_dir, timeout=60), ns=ns, kill_after=150))
            assert result.acked >= 150
            assert result.lost == [], result.lost[:10]
            assert result.refused_present == []
            assert result.watch_gaps == [], result.watch_gaps[:10]
            assert result.watch_duplicates == [], result.watch_duplicates[:10]
    finally:
        srv.stop()
