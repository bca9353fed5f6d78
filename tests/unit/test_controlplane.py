"""``kyb control-plane`` (kybernetes.controlplane): sections of the command line, all-or-nothing
running, each component's own metrics view and log lines; the bundle's health targets in both layouts."""

from __future__ import annotations

import asyncio
import contextvars
import io
import logging
from pathlib import Path

import click
import pytest
from prometheus_client import REGISTRY, Counter
from prometheus_client.parser import text_string_to_metric_families

from kybernetes import bundle, controlplane
from kybernetes.client.leaderelection import MASTER_STATUS, LeaderElector
from kybernetes.client.workqueue import WorkQueue
from kybernetes.controlplane import Component
from kybernetes.metrics import COMPONENT, exposition, own_families


def test_sections_split_each_components_flags() -> None:
    args = ["controller-manager", "--kubeconfig", "a", "---", "scheduler", "--secure-port", "0"]
    assert controlplane.sections(args) == {"controller-manager": ["--kubeconfig", "a"],
                                           "scheduler": ["--secure-port", "0"]}
    assert controlplane.command_line(controlplane.sections(args)) == args
    with pytest.raises(click.UsageError, match="unknown component 'apiserver'"):
        controlplane.sections(["apiserver"])
    with pytest.raises(click.UsageError, match="given twice"):
        controlplane.sections(["scheduler", "---", "scheduler"])


def test_each_section_is_parsed_by_its_own_command() -> None:
    from kybernetes.cli import main

    with main.make_context("kyb", ["control-plane"]) as root, \
            controlplane.command.make_context("control-plane", [], parent=root) as ctx:
        made = controlplane._prepare(ctx, "controller-manager", ["--kubeconfig", "/x", "-v"])
        assert made.name == "controller-manager" and made.log_level == logging.INFO
        with pytest.raises(click.UsageError, match="No such option '--no-such-flag'"):
            controlplane._prepare(ctx, "scheduler", ["--no-such-flag"])


def _component(name: str, body: asyncio.Future[None] | None = None) -> tuple[Component, list[str]]:
    seen: list[str] = []

    async def run(stop: asyncio.Event) -> None:
        seen.append(COMPONENT.get())
        try:
            if body is not None:
                await body
            else:
                await stop.wait()
        finally:
            seen.append("stopped")

    return Component(name, run), seen


async def test_stop_ends_every_component_cleanly() -> None:
    (a, seen_a), (b, seen_b) = _component("scheduler"), _component("controller-manager")
    stop = asyncio.Event()
    running = asyncio.create_task(controlplane.run([a, b], stop))
    await asyncio.sleep(0)
    stop.set()
    assert await asyncio.wait_for(running, 5) is True
    assert seen_a == ["scheduler", "stopped"] and seen_b == ["controller-manager", "stopped"]


@pytest.mark.parametrize("ending", ["returns", "raises"])
async def test_one_component_ending_stops_the_others(ending: str, caplog: pytest.LogCaptureFixture) -> None:
    fails: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    (a, seen_a), (b, seen_b) = _component("scheduler", fails), _component("controller-manager")
    stop = asyncio.Event()
    running = asyncio.create_task(controlplane.run([a, b], stop))
    await asyncio.sleep(0)
    if ending == "returns":
        fails.set_result(None)
    else:
        fails.set_exception(RuntimeError("boom"))
    assert await asyncio.wait_for(running, 5) is False
    assert seen_b == ["controller-manager", "stopped"] and seen_a[-1] == "stopped"
    assert ("scheduler stopped" if ending == "returns" else "scheduler failed") in caplog.text


def test_a_failing_component_ends_the_process_non_zero(tmp_path: Path) -> None:
    """The whole command: a controller manager that cannot start (no kubeconfig) ends the process
    with 1, the scheduler beside it stopped too."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "kybernetes.cli", "control-plane", "scheduler", "--kubeconfig", str(_kubeconfig(tmp_path)),
         "--secure-port", "0", "---", "controller-manager", "--kubeconfig", str(tmp_path / "missing"),
         "--secure-port", "0"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert " E control-plane kybernetes.controlplane: controller-manager failed; stopping the control plane" \
        in proc.stderr, proc.stderr


def _kubeconfig(tmp_path: Path) -> Path:
    """A kubeconfig of a server that is not there (the scheduler retries; it must be stopped)."""
    path = tmp_path / "kubeconfig"
    path.write_text("apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:9'}}]\n"
                    "users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n"
                    "current-context: c\n")
    return path


def _families(component: str) -> dict[str, list[dict[str, str]]]:
    body, _ = exposition("", REGISTRY, component)
    return {f.name: [s.labels for s in f.samples] for f in text_string_to_metric_families(body.decode())}


OWN = Counter("cptest_scheduler_things", "Things only the test scheduler counts.")
own_families("cptest_scheduler_", "scheduler")


def test_each_component_sees_its_own_series_only() -> None:
    OWN.inc()

    queues = []

    def make(name: str, queue: str) -> None:
        queues.append(WorkQueue(queue))
        LeaderElector(object(), lease_name=f"lease-of-{name}", identity="me")  # type: ignore[arg-type]
        MASTER_STATUS.labels(f"lease-of-{name}").set(1)  # as the elector does once it leads

    for name in ("scheduler", "controller-manager"):
        ctx = contextvars.copy_context()
        ctx.run(COMPONENT.set, name)
        ctx.run(make, name, f"cptest-{name}-queue")
    queues.append(WorkQueue("cptest-nobodys-queue"))  # outside any component
    sched, cm = _families("scheduler"), _families("controller-manager")
    assert [s["name"] for s in sched["leader_election_master_status"]] == ["lease-of-scheduler"]
    assert [s["name"] for s in cm["leader_election_master_status"]] == ["lease-of-controller-manager"]
    assert "cptest_scheduler_things" in sched and "cptest_scheduler_things" not in cm
    assert [s["name"] for s in sched["workqueue_depth"]] == ["cptest-scheduler-queue"]
    assert [s["name"] for s in cm["workqueue_depth"]] == ["cptest-controller-manager-queue"]
    assert "process_cpu_seconds" in sched and "process_cpu_seconds" in cm
    whole = _families("")  # a process that is one component: everything
    assert {"cptest-scheduler-queue", "cptest-controller-manager-queue", "cptest-nobodys-queue"} <= {
        s["name"] for s in whole["workqueue_depth"]}
    assert "cptest_scheduler_things" in whole
    REGISTRY.collect()  # the views registered nothing: no duplicate-registration error on a second view
    assert _families("scheduler") == _families("scheduler")


def test_log_lines_say_their_component_at_its_own_level() -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    out = io.StringIO()
    try:
        controlplane._setup_logging([Component("scheduler", None, logging.INFO),  # type: ignore[arg-type]
                                     Component("controller-manager", None, logging.WARNING)])  # type: ignore[arg-type]
        root.handlers[-1].setStream(out)  # type: ignore[attr-defined]
        logger = logging.getLogger("kybernetes.cptest")

        def say(name: str) -> None:
            COMPONENT.set(name)
            logger.info("info of %s", name)
            logger.warning("warning of %s", name)

        for name in ("scheduler", "controller-manager"):
            contextvars.copy_context().run(say, name)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    lines = [line.split(" ", 3)[3] for line in out.getvalue().splitlines()]
    assert lines == ["scheduler kybernetes.cptest: info of scheduler",
                     "scheduler kybernetes.cptest: warning of scheduler",
                     "controller-manager kybernetes.cptest: warning of controller-manager"]


def _child(name: str, *args: str) -> bundle.Child:
    return bundle.Child(name, ["python", "-m", "kybernetes.cli", name, *args], Path("/dev/null"))


def test_health_targets_in_both_layouts() -> None:
    split = {"scheduler": _child("scheduler", "--secure-port", "1111"),
             "controller-manager": _child("controller-manager", "--bind-address", "127.0.0.2"),
             "agent": _child("agent")}
    combined = {"control-plane": _child("control-plane", *controlplane.command_line({
        "controller-manager": ["--bind-address", "127.0.0.2"], "scheduler": ["--secure-port", "1111"]})),
        "agent": _child("agent")}
    want = {"scheduler": "https://127.0.0.1:1111/healthz", "controller-manager": "https://127.0.0.2:10257/healthz"}
    assert bundle.health_targets(split) == bundle.health_targets(combined) == want
