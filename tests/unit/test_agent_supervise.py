"""The agent's supervision of its node components: restart on request (renewed certificates)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from kybernetes.agent import supervise


async def _lines(path: Path, n: int) -> list[str]:
    for _ in range(200):
        lines = path.read_text().split() if path.exists() else []
        if len(lines) >= n:
            return lines
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} never had {n} lines")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_restart_event_stops_the_child_and_starts_it_again(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    child = [sys.executable, "-c",
             f"import os, time; open({str(pids)!r}, 'a').write(str(os.getpid()) + '\\n'); time.sleep(60)"]
    stop, restart = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(supervise(child, stop, 5.0, "child", restart))
    try:
        (first,) = await _lines(pids, 1)
        restart.set()
        first_again, second = await _lines(pids, 2)
        assert first_again == first and second != first
        assert not _alive(int(first)), "the old child was not stopped"
        assert not restart.is_set(), "the restart request was not consumed"
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert not _alive(int(second))
    assert len(pids.read_text().split()) == 2


async def test_a_restart_uses_the_restart_signal_and_a_stop_sigterm(tmp_path: Path) -> None:
    """The kubelet restarts on SIGHUP (pods untouched); SIGTERM is for the node going down."""
    seen = tmp_path / "signals"
    child = [sys.executable, "-c",
             "import signal, sys, time\n"
             "def on(sig, frame):\n"
             f"    open({str(seen)!r}, 'a').write(signal.Signals(sig).name + '\\n'); sys.exit(0)\n"
             "signal.signal(signal.SIGHUP, on); signal.signal(signal.SIGTERM, on)\n"
             f"open({str(seen)!r}, 'a').write('started\\n')\n"
             "time.sleep(60)\n"]
    stop, restart = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(supervise(child, stop, 5.0, "kubelet", restart, restart_signal=signal.SIGHUP))
    try:
        await _lines(seen, 1)
        restart.set()
        await _lines(seen, 3)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert seen.read_text().split() == ["started", "SIGHUP", "started", "SIGTERM"]
