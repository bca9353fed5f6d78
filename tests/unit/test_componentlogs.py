"""Rotation of the components' own logs (copy, gzip, truncate) while a real child process appends."""

from __future__ import annotations

import gzip
import itertools
import subprocess
import time
from pathlib import Path

from kybernetes.componentlogs import rotate_logs


def _numbers(text: str) -> list[int]:
    return [int(line.removeprefix("line-")) for line in text.splitlines()]


def _wait_size(path: Path, size: int) -> None:
    deadline = time.monotonic() + 20
    while path.stat().st_size < size:
        assert time.monotonic() < deadline, f"{path} stayed under {size} bytes"
        time.sleep(0.02)


def test_rotation_while_a_child_appends(tmp_path: Path) -> None:
    log = tmp_path / "scheduler.log"
    other = tmp_path / "small.log"
    other.write_text("short\n")
    ticks = itertools.count(1_700_000_000)
    with open(log, "ab") as out:  # as the supervisor spawns its children
        child = subprocess.Popen(["sh", "-c", "i=0; while true; do echo line-$i; i=$((i+1)); done"],
                                 stdout=out, stderr=out, start_new_session=True)
    try:
        for _ in range(4):
            _wait_size(log, 4096)
            rotate_logs(tmp_path, max_bytes=4096, max_files=2, clock=lambda: float(next(ticks)))
        _wait_size(log, 1)
    finally:
        child.kill()
        child.wait()
    rotated = sorted(tmp_path.glob("scheduler.log.*.gz"))
    assert len(rotated) == 2, rotated  # max_files: the two oldest went
    contents = [gzip.decompress(p.read_bytes()) for p in rotated]
    assert all(c.endswith(b"\n") for c in contents), "a half-written line went into a rotated file"
    older, newer = (_numbers(c.decode()) for c in contents)
    assert older == list(range(older[0], older[0] + len(older))) and older[0] > 0
    assert newer[0] > older[-1]
    current = log.read_bytes()
    assert not current.startswith(b"\0"), "the child wrote past a hole: the file is sparse after truncation"
    assert _numbers(current.decode())[0] > newer[-1]
    assert other.read_text() == "short\n" and not list(tmp_path.glob("small.log.*"))
