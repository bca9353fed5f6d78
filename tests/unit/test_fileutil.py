"""kybernetes.fileutil: atomic, durable file replacement with an exact mode."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from kybernetes.fileutil import write_atomic


@pytest.mark.parametrize("mode", [0o600, 0o644, 0o640])
def test_write_atomic_replaces_content_and_sets_the_exact_mode(tmp_path: Path, mode: int) -> None:
    target = tmp_path / "ca.crt"
    target.write_bytes(b"old")
    # A left-over temporary file from a crash, with a wider mode, and a restrictive umask.
    (tmp_path / "ca.crt.tmp").write_bytes(b"junk")
    os.chmod(tmp_path / "ca.crt.tmp", 0o666)
    old_umask = os.umask(0o077)
    try:
        write_atomic(target, b"new", mode)
    finally:
        os.umask(old_umask)
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca.crt"]


def test_write_atomic_creates_a_private_file_by_default(tmp_path: Path) -> None:
    target = tmp_path / "key.pem"
    write_atomic(target, b"secret")
    assert target.read_bytes() == b"secret"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
