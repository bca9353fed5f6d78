"""kybernetes.procctl: a child started with ``child_env`` dies by SIGKILL with its parent, also when
the parent was gone before the child asked for it (the ppid check). Real processes, Linux only."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from kybernetes import procctl

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")

REPORT = "from kybernetes import procctl; import os; print(procctl.die_with_parent(), os.environ.get('KYB_PARENT_PID'))"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_child_of_a_live_parent_sets_the_signal_and_hides_the_variable() -> None:
    out = subprocess.run([sys.executable, "-c", REPORT], env=procctl.child_env(), capture_output=True, text=True,
                         timeout=30)
    assert (out.returncode, out.stdout.strip()) == (0, "True None"), out.stderr


def test_without_the_variable_nothing_changes() -> None:
    env = dict(os.environ)
    env.pop(procctl.PARENT_PID_ENV, None)
    out = subprocess.run([sys.executable, "-c", REPORT], env=env, capture_output=True, text=True, timeout=30)
    assert (out.returncode, out.stdout.strip()) == (0, "False None"), out.stderr


def test_child_whose_parent_is_already_gone_kills_itself() -> None:
    """The race: the parent named died before the child asked; its parent is now another process."""
    env = procctl.child_env()
    env[procctl.PARENT_PID_ENV] = str(os.getppid())  # alive, but not the child's parent (that is us)
    out = subprocess.run([sys.executable, "-c", REPORT], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == -signal.SIGKILL, (out.stdout, out.stderr)
    assert out.stdout == ""


def test_grandchild_dies_when_its_parent_is_killed() -> None:
    """A parent started here spawns a child (a foreign binary, through the exec shim) and is killed
    with SIGKILL: the child gets SIGKILL from the kernel."""
    spawn = ("import subprocess, sys, time; from kybernetes import procctl; "
             "p = subprocess.Popen(procctl.exec_dying_with_parent(['sleep', '60']), env=procctl.child_env(), "
             "start_new_session=True); print(p.pid, flush=True); time.sleep(60)")
    parent = subprocess.Popen([sys.executable, "-c", spawn], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        deadline = time.monotonic() + 10
        while _argv0(child) != b"sleep" and time.monotonic() < deadline:  # the shim has exec'd sleep
            time.sleep(0.02)
        assert _argv0(child) == b"sleep"
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not _alive(child), "the child outlived its parent"
    finally:
        parent.kill()
        parent.wait(10)


def _argv0(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return os.path.basename(f.read().split(b"\0")[0])
    except OSError:
        return b""


def test_a_containerd_still_in_the_exec_shim_counts_as_running() -> None:
    """A node's containerd is found (and adopted, never started twice) also during the moment it is
    still procctl's Python process about to exec it: a second start in that window made two
    containerds on one root (CI: test_component_faults[containerd] found two)."""
    from kybernetes.kubelet.containerd import _runs_containerd

    cfg = b"/data/agent/containerd/config.toml"
    assert _runs_containerd([b"/usr/bin/containerd", b"--config", cfg])
    assert _runs_containerd([b"/venv/bin/python", b"-m", b"kybernetes.procctl", b"/usr/bin/containerd",
                             b"--config", cfg])
    assert not _runs_containerd([b"/venv/bin/python", b"-m", b"kybernetes.procctl", b"/usr/bin/etcd"])
    assert not _runs_containerd([b"/usr/bin/containerd-shim-runc-v2", b"-address", b"/x.sock"])
    assert not _runs_containerd([b""])
