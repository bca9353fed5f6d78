"""A test cluster's guardian: what it runs ends when the test process that started it is gone.

``python -m kybernetes.testing.guardian PARENT_PID DIR -- ARGV...`` runs ARGV as its only child
(in a session of its own) and stays until one of these, then stops the child and cleans up:

- SIGTERM or SIGINT to the guardian (the fixture's normal teardown);
- ``PARENT_PID`` is no longer its parent: the test process ended however it ended (a pytest-xdist
  worker killed with SIGKILL, an interpreter that died before its fixtures' teardown), noticed
  within :data:`POLL` seconds;
- the child exits by itself.

With no ARGV (``-- `` alone) the guardian runs nothing and only watches: it removes ``DIR`` when
signalled or when ``PARENT_PID`` is gone (the in-process cluster's data dir: the API server runs in
the test process, which a SIGKILL leaves no time to clean up).

Stopping the child is :func:`kybernetes.testing.stop_process`: SIGTERM, up to
:data:`STOP_TIMEOUT` seconds for it to end its own children (``kyb server`` stops its scheduler
and controller manager), then SIGKILL. Then ``DIR`` (the cluster's data dir; ``-`` for none) is
removed, and the guardian exits with the child's exit code. The guardian holds no other state, so
its own death by SIGKILL is the one case it cannot clean up after: a ``kyb`` child then dies with it
(:mod:`kybernetes.procctl`), but ``DIR`` stays.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from types import FrameType

from kybernetes import procctl
from kybernetes.testing import stop_process

POLL = 0.2
STOP_TIMEOUT = 30.0


def guard(parent: int, directory: str, argv: list[str]) -> int:
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # Not dying with our own parent (a bundle's supervisor may name it): when it is gone we still
    # have to stop the child and remove DIR. The child dies with us (procctl), which only matters
    # when we are killed with SIGKILL ourselves.
    os.environ.pop(procctl.PARENT_PID_ENV, None)
    child = subprocess.Popen(argv, start_new_session=True, env=procctl.child_env()) if argv else None
    while not stopping and os.getppid() == parent:
        if child is None:
            time.sleep(POLL)  # a signal ends the sleep at once (and sets stopping)
            continue
        try:
            child.wait(POLL)
            break
        except subprocess.TimeoutExpired:
            continue
    code = stop_process(child, STOP_TIMEOUT) if child is not None else 0
    if directory != "-":
        shutil.rmtree(directory, ignore_errors=True)
    return code


def main(args: list[str]) -> int:
    if len(args) < 3 or args[2] != "--":
        print("usage: python -m kybernetes.testing.guardian PARENT_PID DIR -- [ARGV...]", file=sys.stderr)
        return 2
    return guard(int(args[0]), args[1], args[3:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
