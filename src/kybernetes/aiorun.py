"""How every long-running kybernetes process runs its event loop.

Each command (``kyb server``, ``apiserver``, ``scheduler``, ``controller-manager``, ``kubelet``,
``agent``, ``kube-proxy``, ``hollow-nodes``) ends in :func:`run`, which does two things before it
hands the coroutine to an event loop:

**uvloop.** The stock asyncio loop does TLS in pure Python (``asyncio.sslproto``) and its
scheduling in Python too; uvloop does both in C on libuv. Every byte these processes exchange is
TLS (API server <-> clients, kubelet <-> API server), so on a 2-core machine this is the single
largest saving there is: an API server GET goes from ~3,600/s to ~4,600/s on one core (``wrk``,
16 connections, ``bench.apiserver``). uvloop is a hard dependency; ``KYB_EVENT_LOOP=asyncio``
selects the stock loop (for comparing, or to rule uvloop out when debugging).

**The garbage collector.** These processes hold large, long-lived, acyclic heaps: the API server's
watch cache and OpenAPI schema, an informer's store, the scheduler's node cache. CPython's cyclic
collector walks the whole old generation whenever it has grown by a quarter, which with hundreds
of thousands of cached dicts is a pause of tens of milliseconds in the middle of a request: the
tail of every latency figure. So, once the process has imported what it needs:

- ``gc.freeze()`` moves everything alive at start-up (modules, schemas, the catalogue) to the
  permanent generation, which no collection ever walks again;
- the young-generation threshold is raised from 700 to 20,000 allocations: each young collection
  is still cheap (it walks only young objects) but runs ~30x less often, and the objects of one
  request are mostly gone again before it runs, so fewer of them are promoted at all.

Cycles are still collected (asyncio tasks, exceptions with tracebacks), just in larger batches.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

GEN0_THRESHOLD = 20_000


def tune_gc() -> None:
    """Freeze the start-up heap and make young collections rarer (see the module docstring)."""
    gc.collect()
    gc.freeze()
    _, g1, g2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, g1, g2)


def stop_on_signals() -> asyncio.Event:
    """An event that SIGTERM or SIGINT sets: how a daemon's main coroutine learns to shut down.

    Call it from the running loop's coroutine in the main thread (only there can a loop take
    signal handlers).
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def _loop_factory() -> Any:
    if os.environ.get("KYB_EVENT_LOOP", "uvloop") == "asyncio":
        return None
    import uvloop

    return uvloop.new_event_loop


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A loop of the kind :func:`run` uses (uvloop unless ``KYB_EVENT_LOOP=asyncio``), for a loop
    run on a thread of its own; the collector is left as it is (it is the whole process's)."""
    factory = _loop_factory()
    return factory() if factory is not None else asyncio.new_event_loop()


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on uvloop with the collector tuned: the entry point of every daemon."""
    tune_gc()
    factory = _loop_factory()
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


async def wait_for(aw: Awaitable[T], timeout: float | None) -> T:
    """``asyncio.wait_for``, without losing a cancellation: the one to use in this project.

    On Python 3.11, ``asyncio.wait_for`` returns the result, and drops the cancellation, when the
    calling task is cancelled after the awaited call has finished but before ``wait_for`` woke up
    (fixed in 3.12, which rebuilt it on ``asyncio.timeout``). A loop stopped by cancelling its
    task then runs on, and whatever awaits the task at shutdown hangs: a kubelet probe worker did
    exactly that in CI. This version is built on ``asyncio.timeout`` as 3.12's is; ruff bans
    ``asyncio.wait_for`` in ``src/`` (pyproject.toml, TID251).

    Same contract otherwise: ``TimeoutError`` after ``timeout`` seconds (``None``: no limit), the
    awaited call cancelled then.
    """
    if timeout is None:
        return await aw
    async with asyncio.timeout(timeout):
        return await aw
