"""The audit log: lumberjack's rotation by size (names, maxbackup, maxage) and the buffered writer."""

from __future__ import annotations

import datetime as dt
import os
import threading
from pathlib import Path

import orjson
import pytest

from kybernetes.apiserver.audit.writer import LogBackend, RotatingFile, backup_name, backup_time


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


T0 = dt.datetime(2026, 3, 4, 5, 6, 7, 890000, dt.UTC).timestamp()


def test_backup_names_are_lumberjacks() -> None:
    name = backup_name(Path("/var/log/audit.log"), T0)
    assert name == Path("/var/log/audit-2026-03-04T05-06-07.890.log")
    assert backup_time(Path("/var/log/audit.log"), name.name) == pytest.approx(T0)
    assert backup_time(Path("/var/log/audit.log"), "audit.log") is None
    assert backup_time(Path("/var/log/audit.log"), "other-2026-03-04T05-06-07.890.log") is None
    assert backup_name(Path("/x/audit"), T0) == Path("/x/audit-2026-03-04T05-06-07.890")


def small(path: Path, max_bytes: int, clock: Clock, **kw: int) -> RotatingFile:
    f = RotatingFile(path, now=clock, **kw)
    f.max_bytes = max_bytes  # the flag is in MB; the rules are the same at any size
    return f


def test_rotates_before_a_write_that_would_pass_the_limit(tmp_path: Path) -> None:
    clock = Clock(T0)
    path = tmp_path / "audit.log"
    f = small(path, 100, clock)
    f.write(b"a" * 60)
    f.write(b"b" * 40)  # exactly at the limit: no rotation
    assert f.backups() == []
    clock.t += 1
    f.write(b"c" * 10)
    f.close()
    [(t, backup)] = f.backups()
    assert backup.name == "audit-2026-03-04T05-06-08.890.log" and t == pytest.approx(clock.t)
    assert backup.read_bytes() == b"a" * 60 + b"b" * 40
    assert path.read_bytes() == b"c" * 10
    assert os.stat(path).st_mode & 0o777 == 0o600
    with pytest.raises(ValueError, match="write length 101 exceeds maximum file size 100"):
        f.write(b"x" * 101)


def test_reopening_appends_or_rotates_a_full_file(tmp_path: Path) -> None:
    clock = Clock(T0)
    path = tmp_path / "audit.log"
    path.write_bytes(b"x" * 50)
    os.chmod(path, 0o640)
    f = small(path, 100, clock)
    f.write(b"y" * 10)
    f.close()
    assert path.read_bytes() == b"x" * 50 + b"y" * 10
    g = small(path, 100, clock)
    g.write(b"z" * 40)  # 60 + 40 >= 100: lumberjack rotates an existing file at open
    g.close()
    assert path.read_bytes() == b"z" * 40 and len(g.backups()) == 1
    assert os.stat(path).st_mode & 0o777 == 0o640  # the new file keeps the old one's mode


def test_maxbackup_and_maxage_remove_the_oldest_backups(tmp_path: Path) -> None:
    clock = Clock(T0)
    path = tmp_path / "audit.log"
    (tmp_path / "unrelated.log").write_text("keep")
    f = small(path, 10, clock, max_backups=2)
    for i in range(5):
        clock.t += 1
        f.write(b"%d" % i * 10)
    f.close()
    kept = f.backups()
    assert [p.read_bytes() for _, p in kept] == [b"3" * 10, b"2" * 10]  # newest first; 0 and 1 removed
    assert (tmp_path / "unrelated.log").exists()
    g = small(path, 10, clock, max_age_days=1)
    clock.t += 86400 + 1.5  # both backups are now older than a day; the one made next is not
    g.write(b"x" * 10)
    g.close()
    assert len(g.backups()) == 1 and g.backups()[0][1].read_bytes() == b"4" * 10


def test_backend_writes_off_the_caller_and_flushes_on_stop(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "audit.log"
    backend = LogBackend(str(path), max_size_mb=1, max_backups=3)
    backend.start()
    writers = [threading.Thread(target=lambda k=k: [backend.process(orjson.dumps({"k": k, "i": i}) + b"\n")
                                                     for i in range(500)]) for k in range(4)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    backend.stop()
    lines = path.read_bytes().splitlines()
    assert len(lines) == 2000 and {orjson.loads(x)["k"] for x in lines} == {0, 1, 2, 3}


def test_a_full_buffer_drops_events(tmp_path: Path) -> None:
    backend = LogBackend(str(tmp_path / "audit.log"), buffer_size=3)  # not started: nothing drains
    assert [backend.process(b"{}\n") for _ in range(4)] == [True, True, True, False]
    assert backend.dropped == 1
    backend.stop()
    assert (tmp_path / "audit.log").read_bytes() == b"{}\n" * 3


def test_a_batch_of_lines_rotates_where_single_writes_would(tmp_path: Path) -> None:
    clock = Clock(T0)
    f = small(tmp_path / "audit.log", 10, clock)
    f.write_lines([b"aaaa", b"bbbb"])  # 8: fits, one write
    f.write_lines([b"cccc", b"dd"])  # 8 + 4 > 10: line by line, rotating before "cccc"
    f.close()
    [(_, backup)] = f.backups()
    assert backup.read_bytes() == b"aaaabbbb" and (tmp_path / "audit.log").read_bytes() == b"ccccdd"
