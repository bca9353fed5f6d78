"""``kyb control-plane``: several control-plane components in one process, on one event loop (as k3s).

``kyb server`` runs the scheduler, the controller manager and the cloud-controller-manager this
way by default (one Python interpreter and one set of imports instead of three: ``bundle.py``).
Its command line is each component's own, one after the other, separated by ``---``::

    kyb control-plane controller-manager --kubeconfig cm.kubeconfig ... --- scheduler --kubeconfig ...

Contract:

- **One home for flags.** Each section is parsed by that component's own command (``kyb scheduler``,
  ``kyb controller-manager``, ``kyb cloud-controller-manager``), which ends in :func:`start`: run
  alone, it runs the component in its process; parsed here, it hands the :class:`Component` over.
  So each component has exactly its own flags, kubeconfig (its own identity), secure port
  (``/healthz``, ``/readyz``, ``/metrics``) and leader election, whichever way it runs.
- **Its own metrics and log lines.** Each component runs in a task whose
  :data:`kybernetes.metrics.COMPONENT` names it: its ``/metrics`` shows its own series only
  (:func:`kybernetes.metrics.exposition`), and each log line (on stderr, which the bundle writes
  to ``DATA_DIR/logs/control-plane.log``) says whose it is, at that component's own ``-v``.
- **All or nothing.** SIGTERM/SIGINT stops every component (exit 0). A component whose task ends
  while the process is not stopping (an error, a lost lease) stops the others and the process
  exits 1, so its supervisor starts all of them again: never a half-alive process.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import click

from kybernetes import aiorun
from kybernetes.aiorun import wait_for
from kybernetes.metrics import COMPONENT

log = logging.getLogger(__name__)

COMPONENTS = ("controller-manager", "cloud-controller-manager", "scheduler")
"""What ``kyb control-plane`` runs: the commands of these names."""
SEPARATOR = "---"
STOP_TIMEOUT = 8.0
"""How long the others may take to stop after one ended (the bundle kills the process after 10 s)."""
_EMBEDDED = "kybernetes.controlplane.embedded"


@dataclass
class Component:
    """A component made from its command line: ``run(stop)`` runs it until ``stop`` is set, or
    raises (one of ``exits``: a known way to end, such as a lost lease, reported by its message)."""

    name: str
    run: Callable[[asyncio.Event], Awaitable[None]]
    log_level: int = logging.WARNING
    log_format: str = "%(asctime)s %(levelname).1s %(name)s: %(message)s"
    exits: tuple[type[Exception], ...] = field(default=())


def start(component: Component) -> Component:
    """What a component's command ends in: parsed by ``kyb control-plane``, return ``component``;
    else run it alone in this process until SIGTERM/SIGINT (exit 1, with the message, on one of
    its ``exits``)."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.meta.get(_EMBEDDED):
        return component
    logging.basicConfig(level=component.log_level, stream=sys.stderr, format=component.log_format)

    async def main() -> None:
        await component.run(aiorun.stop_on_signals())

    try:
        aiorun.run(main())
    except component.exits as e:
        click.echo(str(e), err=True)
        sys.exit(1)
    return component


def sections(args: Sequence[str]) -> dict[str, list[str]]:
    """``NAME FLAGS... --- NAME FLAGS...`` -> each component's flags; UsageError for an unknown or
    repeated name."""
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    for arg in args:
        if arg == SEPARATOR:
            current = None
        elif current is None:
            if arg not in COMPONENTS:
                raise click.UsageError(f"unknown component {arg!r} (one of {', '.join(COMPONENTS)})")
            if arg in out:
                raise click.UsageError(f"component {arg!r} given twice")
            current = out[arg] = []
        else:
            current.append(arg)
    return out


def command_line(components: dict[str, list[str]]) -> list[str]:
    """The arguments of ``kyb control-plane`` that run ``components`` (name -> its flags)."""
    out: list[str] = []
    for name, flags in components.items():
        out += [*([SEPARATOR] if out else []), name, *flags]
    return out


def _prepare(ctx: click.Context, name: str, flags: list[str]) -> Component:
    """``kyb NAME FLAGS`` parsed by the component's own command, made into its Component."""
    root = ctx.find_root()
    assert isinstance(root.command, click.Group)
    cmd = root.command.get_command(root, name)
    assert cmd is not None
    ctx.meta[_EMBEDDED] = True  # shared by every context of this invocation
    with cmd.make_context(name, list(flags), parent=ctx) as sub:
        component = cmd.invoke(sub)
    assert isinstance(component, Component), name
    return component


class _ComponentLines(logging.Filter):
    """Tags each record with its task's component and passes it at that component's level."""

    def __init__(self, levels: dict[str, int]) -> None:
        super().__init__()
        self.levels = levels
        self.floor = min(levels.values(), default=logging.WARNING)

    def filter(self, record: logging.LogRecord) -> bool:
        component = COMPONENT.get()
        record.component = component or "control-plane"
        return record.levelno >= self.levels.get(component, self.floor)


def _setup_logging(components: list[Component]) -> None:
    levels = {c.name: c.log_level for c in components}
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname).1s %(component)s %(name)s: %(message)s"))
    lines = _ComponentLines(levels)
    handler.addFilter(lines)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(lines.floor)


async def run(components: list[Component], stop: asyncio.Event) -> bool:
    """Runs each component in a task of its own (``COMPONENT`` set to its name) until ``stop`` is
    set (True), or until one ends first (False, the others stopped)."""
    tasks: dict[asyncio.Task[None], Component] = {}
    for c in components:
        ctx = contextvars.copy_context()
        ctx.run(COMPONENT.set, c.name)
        tasks[asyncio.create_task(_awaited(c.run(stop)), name=c.name, context=ctx)] = c
    stopper: asyncio.Task[object] = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait({*tasks, stopper}, return_when=asyncio.FIRST_COMPLETED)
        clean = stopper in done
        for task, component in tasks.items():
            if task in done:
                _report(component, task)
        stop.set()
        with contextlib.suppress(TimeoutError):
            await wait_for(asyncio.wait(tasks), STOP_TIMEOUT)
        return clean
    finally:
        stopper.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, stopper, return_exceptions=True)


async def _awaited(aw: Awaitable[None]) -> None:
    await aw


def _report(component: Component, task: asyncio.Task[None]) -> None:
    err = None if task.cancelled() else task.exception()
    if err is None:
        log.error("%s stopped; stopping the control plane", component.name)
    elif isinstance(err, component.exits):
        log.error("%s: %s; stopping the control plane", component.name, err)
    else:
        log.error("%s failed; stopping the control plane", component.name, exc_info=err)


@click.command("control-plane", hidden=True,
               context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def command(ctx: click.Context, args: tuple[str, ...]) -> None:
    """Run control-plane components in one process: NAME FLAGS... [--- NAME FLAGS...]."""
    given = sections(args)
    if not given:
        raise click.UsageError(f"no component given (any of {', '.join(COMPONENTS)})")
    components = [_prepare(ctx, name, flags) for name, flags in given.items()]
    _setup_logging(components)

    async def main() -> bool:
        return await run(components, aiorun.stop_on_signals())

    if not aiorun.run(main()):
        sys.exit(1)
