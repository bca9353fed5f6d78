"""Children that die with the process that started them, even when it is killed with SIGKILL.

k3s' promise after ``kill -9``: the pods keep running in their containerd shims and nothing else of
the killed instance survives (its next start adopts the pods). A kybernetes process starts its
children in sessions of their own (a terminal's Ctrl-C reaches the parent only, which stops them in
order), so nothing ends them when the parent dies without stopping them. Linux' parent-death signal
(``prctl(PR_SET_PDEATHSIG)``) does: the kernel sends it to the child when the *thread* that forked
it exits. Every spawn this covers happens on its process' event-loop thread, which lives as long as
the process (the server's and the agent's children, the kubelet's containerd); a spawn from a
worker thread must not use it.

The signal is SIGKILL (:data:`PARENT_DEATH_SIGNAL`): a node's components must die hard, as their
parent did. SIGTERM would be their orderly shutdown, which for the agent drains the node and kills
the pods. containerd dying by SIGKILL leaves its shims (and so the containers) running; the next
containerd on that root re-attaches to them.

How a child gets it, without code between fork and exec in the parent (``preexec_fn`` is unsafe in
a process with threads, and grpc's fork handlers make it worse):

- The parent starts the child with :func:`child_env`: ``KYB_PARENT_PID`` names the parent.
- A ``kyb`` command calls :func:`die_with_parent` first thing (``kybernetes.cli``'s group): it
  removes the variable (so that nothing further down inherits a stale one), asks for the signal,
  then compares ``getppid()`` with the named parent. A parent that died before the request was
  made would never send it; the child then finds another parent and kills itself.
- A foreign binary (containerd, etcd) runs through :func:`exec_dying_with_parent`'s argv: this
  module's ``__main__`` does the same, then ``execvp``s the binary in the same process (the signal
  stays set across ``execve`` for a binary that is neither set-user-ID nor file-capable).

Not Linux (or no libc): everything here is a no-op and children outlive their parent as before.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

PARENT_PID_ENV = "KYB_PARENT_PID"
PARENT_DEATH_SIGNAL = signal.SIGKILL
PR_SET_PDEATHSIG = 1


def child_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a child that is to die with this process: ``env`` (default: this
    process') naming this process as its parent."""
    out = dict(os.environ if env is None else env)
    out[PARENT_PID_ENV] = str(os.getpid())
    return out


def exec_dying_with_parent(argv: list[str]) -> list[str]:
    """The command line that runs the foreign binary ``argv`` (started with :func:`child_env`) so
    that it dies with its parent: this module sets the signal, then execs ``argv`` in its place."""
    if not sys.platform.startswith("linux"):
        return list(argv)
    return [sys.executable, "-m", "kybernetes.procctl", *argv]


def _set_parent_death_signal(sig: int) -> bool:
    """``prctl(PR_SET_PDEATHSIG, sig)``; False where that does not exist or fails."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return False
    return int(libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)) == 0


def die_with_parent(environ: os._Environ[str] | dict[str, str] | None = None) -> bool:
    """If ``KYB_PARENT_PID`` is set (and removed from ``environ``, default ``os.environ``): asks for
    :data:`PARENT_DEATH_SIGNAL` when the parent dies, and if the parent is already gone (this process
    has another parent than the one named) sends it to itself at once. True when the signal is set."""
    env = os.environ if environ is None else environ
    named = env.pop(PARENT_PID_ENV, None)
    if named is None:
        return False
    try:
        parent = int(named)
    except ValueError:
        return False
    if not _set_parent_death_signal(PARENT_DEATH_SIGNAL):
        return False
    if os.getppid() != parent:  # it died between our fork and the prctl: no signal would ever come
        os.kill(os.getpid(), PARENT_DEATH_SIGNAL)
    return True


def main(argv: list[str]) -> None:
    """``python -m kybernetes.procctl BINARY ARGS...``: die with the parent, then become BINARY."""
    if not argv:
        print("usage: python -m kybernetes.procctl BINARY [ARGS...]", file=sys.stderr)
        sys.exit(2)
    die_with_parent()
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
