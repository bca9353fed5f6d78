"""The node's components in the agent's own process and event loop: the default layout (issue 18).

k3s runs its kubelet, kube-proxy and flannel inside its agent; so does ``kyb agent`` unless given
``--split-node-components`` (then they are child processes, :mod:`kybernetes.agent.children`).
One interpreter pays its imports once: an idle node costs ~63 MB and ~0.5 s of CPU to start
instead of ~170 MB and ~1.3 s as four processes.

Contract:

- Each component runs with exactly the flags its child process would get: the command line
  :mod:`kybernetes.agent.children` builds is parsed by the component's own command
  (``kybernetes.kubelet.cmd.parse``, ``kybernetes.proxy.cmd.parse``,
  ``kybernetes.proxy.netcmd.parse``) and run by its own ``serve``/``run`` with a stop event: one
  home for each component's flags.
- ``stop`` (the agent's SIGTERM/SIGINT) is the node going down for every component at once, as
  SIGTERM to each child was: the kubelet's graceful node shutdown, if configured, kills the pods
  before it stops. A component's ``restart`` event (renewed certificates) stops it as a restart
  does (the kubelet's pods keep running) and runs it again with its command line parsed anew.
- A component that ends on its own (it raised, or returned unasked) is a failure: the others are
  stopped as for a restart (pods keep running, containerd too) and :class:`ComponentFailed` is
  raised, so the agent exits non-zero and its supervisor (``kyb server``'s, systemd) restarts the
  whole node; never a node half alive. A component that does not stop within its stop timeout is
  cancelled.
- Everything shares one loop. Blocking work (nft, ip, /proc scans, cgroup setup) already runs in
  worker threads in each component; the loop's default executor is sized for three components
  (:func:`use_executor_for`) so that one component's slow nft call cannot queue another's.
- Each component keeps its own servers (the kubelet's HTTPS port and healthz, kube-proxy's
  ``127.0.0.1:10256`` /healthz and its metrics port); the Prometheus registry is the process's, as
  in k3s, so each /metrics shows the process's series (the kubelet's, kube-proxy's and the shared
  client and process metrics, each defined once).
- Logging: one stream, the agent's (``agent.log`` under ``kyb server``); the components' loggers
  (``kybernetes.kubelet``, ``kybernetes.proxy``) get the level their own process would have had.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

CANCEL_GRACE = 10.0
"""Seconds a component cancelled after its stop timeout gets to unwind."""


class ComponentFailed(Exception):
    """A node component ended on its own (the message says which and why)."""


Run = Callable[[asyncio.Event, asyncio.Event], Coroutine[Any, Any, None]]
"""A component's run: until ``stop`` (the node goes down) or ``restart`` (to be run again), then returns."""


@dataclass(frozen=True)
class Component:
    name: str
    run: Run
    stop_timeout: float


def kubelet(flags: list[str], stop_timeout: float) -> Component:
    """The kubelet of ``kyb kubelet FLAGS``."""

    async def run(stop: asyncio.Event, restart: asyncio.Event) -> None:
        from kybernetes.kubelet import cmd

        await cmd.serve(cmd.parse(flags), stop, restart)

    return Component("kubelet", run, stop_timeout)


def kube_proxy(flags: list[str], stop_timeout: float) -> Component:
    """kube-proxy of ``kyb proxy FLAGS``: a restart is a stop and a new start, as for its process."""

    async def run(stop: asyncio.Event, restart: asyncio.Event) -> None:
        from kybernetes.proxy import cmd

        config = cmd.parse(flags)
        await _until_either(lambda ending: cmd.serve(config, ending), stop, restart)

    return Component("kube-proxy", run, stop_timeout)


def network(flags: list[str], stop_timeout: float) -> Component:
    """The node network daemon of ``kyb network FLAGS``."""

    async def run(stop: asyncio.Event, restart: asyncio.Event) -> None:
        from kybernetes.proxy import netcmd
        from kybernetes.proxy.network import run as run_network

        config = netcmd.parse(flags)
        await _until_either(lambda ending: run_network(config, ending), stop, restart)

    return Component("network", run, stop_timeout)


async def _until_either(run: Callable[[asyncio.Event], Awaitable[None]], stop: asyncio.Event,
                        restart: asyncio.Event) -> None:
    ending = asyncio.Event()

    async def relay() -> None:
        waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(restart.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        ending.set()

    relaying = asyncio.create_task(relay())
    try:
        await run(ending)
    finally:
        relaying.cancel()


def set_log_levels(verbose: int) -> None:
    """The components' loggers at the level ``kyb kubelet -v…``/``kyb proxy -v…`` would set (warnings
    only, unless verbose); the certificate rotation under ``kybernetes.kubelet`` is the agent's."""
    level = max(logging.WARNING - 10 * verbose, logging.DEBUG)
    for name in ("kybernetes.kubelet", "kybernetes.proxy"):
        logging.getLogger(name).setLevel(level)
    logging.getLogger("kybernetes.kubelet.certificate").setLevel(logging.getLogger().getEffectiveLevel())


def use_executor_for(components: int) -> None:
    """Give the running loop a default executor with room for ``components`` processes' worth of
    threads (asyncio's default size each); threads are started only when needed."""
    per_process = min(32, (os.cpu_count() or 1) + 4)
    asyncio.get_running_loop().set_default_executor(
        concurrent.futures.ThreadPoolExecutor(max_workers=per_process * components, thread_name_prefix="node"))


async def run_all(components: list[Component], stop: asyncio.Event, restarts: dict[str, asyncio.Event]) -> None:
    """Run ``components`` until ``stop`` (see the module's contract); ``restarts[name]`` restarts one.
    Raises :class:`ComponentFailed` once the others have stopped if one of them ended on its own."""
    halt = asyncio.Event()
    failures: list[str] = []

    async def keep(component: Component) -> None:
        restart = restarts.get(component.name) or asyncio.Event()
        while True:
            failure = await _run_once(component, stop, restart, halt)
            if failure is not None:
                failures.append(failure)
                halt.set()
                return
            if stop.is_set() or halt.is_set():
                return
            restart.clear()
            log.info("restarting the %s to use its renewed certificates", component.name)

    await asyncio.gather(*(keep(c) for c in components))
    if failures:
        raise ComponentFailed("; ".join(failures))


async def _run_once(component: Component, stop: asyncio.Event, restart: asyncio.Event,
                    halt: asyncio.Event) -> str | None:
    """One run of ``component``; the failure, if it ended on its own or failed to stop."""
    own_restart = asyncio.Event()
    task = asyncio.create_task(component.run(stop, own_restart), name=component.name)
    waiters = [asyncio.create_task(e.wait()) for e in (stop, restart, halt)]
    try:
        await asyncio.wait([task, *waiters], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    asked = not task.done()
    if asked:
        if not stop.is_set():
            own_restart.set()  # a restart, or another component failed: pods keep running
        done, _ = await asyncio.wait([task], timeout=component.stop_timeout)
        if not done:
            log.error("the %s did not stop within %.0fs; cancelling it", component.name, component.stop_timeout)
            task.cancel()
            await asyncio.wait([task], timeout=CANCEL_GRACE)
            return f"the {component.name} did not stop within {component.stop_timeout:.0f}s"
    error = None if task.cancelled() or not task.done() else task.exception()
    if error is not None:
        log.error("the %s failed: %s", component.name, error, exc_info=error)
        return f"the {component.name} failed: {error}"
    if not asked and not (stop.is_set() or restart.is_set() or halt.is_set()):
        return f"the {component.name} ended on its own"
    return None

