"""The store's disk fills (a 48 MiB tmpfs the test mounts for the data dir): writes fail with a clear
Status, never a traceback or a hang; reads go on; nothing is lost or corrupted; writes succeed
again once there is room (issue 20). Root only (mount)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kybernetes.testing import ServerProcess

pytestmark = pytest.mark.integration

BIG = "x" * 200_000


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            raise AssertionError("CI runs as root")
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _create(srv: ServerProcess, name: str, value: str) -> tuple[int, dict]:
    return srv.request("POST", "/api/v1/namespaces/default/configmaps",
                       {"metadata": {"name": name}, "data": {"v": value}})


def test_a_full_disk_refuses_writes_clearly_and_recovers(small_disk: Path) -> None:
    srv = ServerProcess.start(small_disk / "srv", timeout=60)
    try:
        assert _create(srv, "before", "a")[0] == 201
        filler = small_disk / "filler"
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1M", "count=100"], capture_output=True)
        acked = ["before"]
        for i in range(200):  # what room the store's files still had fills up
            status, answer = _create(srv, f"big-{i}", BIG)
            if status != 201:
                break
            acked.append(f"big-{i}")
        else:
            raise AssertionError("200 writes of 200 KB fitted on a full 48 MiB disk")
        assert status == 500 and answer["reason"] == "InternalError", answer
        assert "database or disk is full" in answer["message"], answer
        assert _create(srv, "refused", BIG)[0] == 500
        status, listed = srv.request("GET", "/api/v1/namespaces/default/configmaps")
        assert status == 200 and {o["metadata"]["name"] for o in listed["items"]} >= set(acked)
        assert "refused" not in {o["metadata"]["name"] for o in listed["items"]}

        filler.unlink()
        assert _create(srv, "after", "a")[0] == 201
        acked.append("after")
        assert "Traceback" not in srv.log(), srv.log()
    finally:
        assert srv.stop() == 0
    # Nothing corrupted: a restarted server on the same files serves every acknowledged write.
    srv = ServerProcess.start(small_disk / "srv", timeout=60)
    try:
        for name in acked:
            assert srv.request("GET", f"/api/v1/namespaces/default/configmaps/{name}")[0] == 200, name
    finally:
        srv.stop()
