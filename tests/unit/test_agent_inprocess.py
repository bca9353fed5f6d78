"""The agent's supervision of its in-process node components (kybernetes.agent.inprocess.run_all):
stop reaches each as a stop, a restart runs one again in place, a component ending on its own ends
them all (the others as for a restart: the kubelet keeps its pods) with ComponentFailed."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from kybernetes.agent import inprocess
from kybernetes.agent.inprocess import Component, ComponentFailed, run_all


@dataclass
class Fake:
    """A component that records how each of its runs ended: "stop" or "restart"."""

    name: str
    ends: list[str] = field(default_factory=list)
    runs: int = 0
    fail_on_run: int = 0  # this run (1-based) raises once started
    started: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, stop: asyncio.Event, restart: asyncio.Event) -> None:
        self.runs += 1
        self.started.set()
        if self.runs == self.fail_on_run:
            await asyncio.sleep(0)
            raise RuntimeError(f"{self.name} broke")
        waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(restart.wait())]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for w in waiters:
            w.cancel()
        self.ends.append("stop" if stop.is_set() else "restart")

    def component(self, stop_timeout: float = 5.0) -> Component:
        return Component(self.name, self.run, stop_timeout)


async def _started(*fakes: Fake) -> None:
    await asyncio.wait_for(asyncio.gather(*(f.started.wait() for f in fakes)), 5)
    for f in fakes:
        f.started.clear()


async def test_stop_reaches_every_component_as_a_stop() -> None:
    kubelet, proxy = Fake("kubelet"), Fake("kube-proxy")
    stop = asyncio.Event()
    task = asyncio.create_task(run_all([kubelet.component(), proxy.component()], stop, {}))
    await _started(kubelet, proxy)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert kubelet.ends == proxy.ends == ["stop"]


async def test_a_restart_runs_one_component_again_and_leaves_the_others() -> None:
    kubelet, proxy = Fake("kubelet"), Fake("kube-proxy")
    stop, restart = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_all([kubelet.component(), proxy.component()], stop, {"kubelet": restart}))
    await _started(kubelet, proxy)
    restart.set()
    await _started(kubelet)
    assert kubelet.runs == 2 and kubelet.ends == ["restart"] and not restart.is_set()
    stop.set()
    await asyncio.wait_for(task, 5)
    assert kubelet.ends == ["restart", "stop"] and proxy.ends == ["stop"] and proxy.runs == 1


async def test_a_failing_component_ends_all_of_them_keeping_the_kubelets_pods() -> None:
    kubelet, proxy = Fake("kubelet"), Fake("kube-proxy", fail_on_run=1)
    stop = asyncio.Event()
    with pytest.raises(ComponentFailed, match="the kube-proxy failed: kube-proxy broke"):
        await asyncio.wait_for(run_all([kubelet.component(), proxy.component()], stop, {}), 5)
    # A restart's stop, not the node's: graceful node shutdown would kill the pods.
    assert kubelet.ends == ["restart"] and not stop.is_set()


async def test_a_component_returning_unasked_is_a_failure() -> None:
    async def quits(stop: asyncio.Event, restart: asyncio.Event) -> None:
        return None

    kubelet = Fake("kubelet")
    with pytest.raises(ComponentFailed, match="the network ended on its own"):
        await asyncio.wait_for(run_all([kubelet.component(), Component("network", quits, 5)], asyncio.Event(), {}), 5)
    assert kubelet.ends == ["restart"]


async def test_a_component_that_does_not_stop_is_cancelled_and_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inprocess, "CANCEL_GRACE", 1.0)
    cancelled = asyncio.Event()

    async def stuck(stop: asyncio.Event, restart: asyncio.Event) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    stop = asyncio.Event()
    task = asyncio.create_task(run_all([Component("kubelet", stuck, 0.1)], stop, {}))
    await asyncio.sleep(0)
    stop.set()
    with pytest.raises(ComponentFailed, match="did not stop within"):
        await asyncio.wait_for(task, 5)
    assert cancelled.is_set()
