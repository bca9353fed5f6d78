"""The sidecar decisions without a runtime: `sidecars.init_actions` (computeInitContainerActions),
`app_containers_done`, `TerminationOrdering`, and the pod phase and conditions `status` derives
(getPhase, GeneratePodInitializedCondition / ContainersReady) for pods with sidecars."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from kybernetes.kubelet import runtime as rtcfg
from kybernetes.kubelet.cri import api
from kybernetes.kubelet.sidecars import TerminationOrdering, app_containers_done, init_actions
from kybernetes.kubelet.status import ContainerRecord, PodRuntime, generate_status

Obj = dict[str, Any]


class Probes:
    def __init__(self, started: set[str] | None = None, startup_failed: set[str] | None = None,
                 liveness_failed: set[str] | None = None) -> None:
        self.started = started if started is not None else {"side", "second"}
        self.failed_startup = startup_failed or set()
        self.failed_liveness = liveness_failed or set()

    def is_started(self, pod_uid: str, name: str) -> bool:
        return name in self.started

    def startup_failed(self, pod_uid: str, name: str) -> bool:
        return name in self.failed_startup

    def liveness_failed(self, pod_uid: str, name: str) -> bool:
        return name in self.failed_liveness


def side(name: str = "side", **extra: Any) -> Obj:
    return {"name": name, "image": "busybox", "restartPolicy": "Always", **extra}


def make_pod(inits: list[Obj], policy: str = "Always") -> Obj:
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": {"restartPolicy": policy, "initContainers": inits,
                     "containers": [{"name": "main", "image": "busybox"}]}}


def runtime(pod: Obj, **states: tuple[int, int]) -> PodRuntime:
    """states: name -> (CRI state, exit code)."""
    rt = PodRuntime("u", sandbox_id="s", pod_ip="10.0.0.2")
    spec = pod["spec"]
    for c in spec["initContainers"] + spec["containers"]:
        if c["name"] in states:
            state, code = states[c["name"]]
            rt.containers[c["name"]] = [ContainerRecord(
                id=f"id-{c['name']}", name=c["name"], init=c in spec["initContainers"], state=state, restart_count=0,
                hash=rtcfg.container_hash(c), started_at=1, finished_at=2 if state == api.CONTAINER_EXITED else 0,
                exit_code=code)]
    return rt


RUNNING = (api.CONTAINER_RUNNING, 0)
OK = (api.CONTAINER_EXITED, 0)
FAILED = (api.CONTAINER_EXITED, 1)


def names(containers: list[Obj]) -> list[str]:
    return [c["name"] for c in containers]


def test_first_init_container_starts_alone() -> None:
    pod = make_pod([side(), {"name": "setup", "image": "busybox"}])
    out = init_actions(pod, runtime(pod), Probes())
    assert (names(out.start), out.initialized) == (["side"], False)


def test_started_sidecar_lets_the_next_one_start_and_the_last_initializes() -> None:
    pod = make_pod([side(), {"name": "setup", "image": "busybox"}, side("second")])
    out = init_actions(pod, runtime(pod, side=RUNNING), Probes())
    assert (names(out.start), out.initialized) == (["setup"], False)
    out = init_actions(pod, runtime(pod, side=RUNNING, setup=OK), Probes())
    assert (names(out.start), out.initialized) == (["second"], False)
    out = init_actions(pod, runtime(pod, side=RUNNING, setup=OK, second=RUNNING), Probes())
    assert (names(out.start), out.initialized, out.kill) == ([], True, [])


def test_startup_probe_gates_and_its_failure_restarts() -> None:
    pod = make_pod([side(startupProbe={"exec": {"command": ["true"]}}), {"name": "setup", "image": "busybox"}])
    rt = runtime(pod, side=RUNNING)
    out = init_actions(pod, rt, Probes(started=set()))
    assert (names(out.start), out.kill, out.initialized) == ([], [], False)
    out = init_actions(pod, rt, Probes(started=set(), startup_failed={"side"}))
    assert names(out.start) == ["side"]
    assert [(k.record.name, k.message, k.reason) for k in out.kill] == [
        ("side", "Init container side failed startup probe", "startup")]


def test_exited_sidecar_restarts_whatever_the_restart_policy() -> None:
    pod = make_pod([side(), {"name": "setup", "image": "busybox"}], policy="Never")
    out = init_actions(pod, runtime(pod, side=FAILED, setup=OK, main=RUNNING), Probes())
    assert (names(out.start), out.initialized, out.failed) == (["side"], True, False)


def test_failed_plain_init_container_fails_the_pod_only_with_never() -> None:
    pod = make_pod([side(), {"name": "setup", "image": "busybox"}], policy="Never")
    out = init_actions(pod, runtime(pod, side=RUNNING, setup=FAILED), Probes())
    assert (out.failed, out.start) == (True, [])
    pod["spec"]["restartPolicy"] = "OnFailure"
    out = init_actions(pod, runtime(pod, side=RUNNING, setup=FAILED), Probes())
    assert (out.failed, names(out.start)) == (False, ["setup"])


def test_initialized_pod_only_keeps_sidecars_running() -> None:
    # After a restart of the node's runtime objects: the plain init container's record is gone and
    # must not run again; the vanished sidecar is started again.
    pod = make_pod([{"name": "setup", "image": "busybox"}, side()])
    out = init_actions(pod, runtime(pod, main=RUNNING), Probes())
    assert (names(out.start), out.initialized) == (["side"], True)


def test_changed_or_dead_sidecar_is_killed_and_restarted() -> None:
    pod = make_pod([side(livenessProbe={"exec": {"command": ["true"]}})])
    rt = runtime(pod, side=RUNNING, main=RUNNING)
    out = init_actions(pod, rt, Probes(liveness_failed={"side"}))
    assert [k.message for k in out.kill] == ["Init container side failed liveness probe"]
    assert names(out.start) == ["side"]
    rt.containers["side"][0].hash = "old"
    out = init_actions(pod, rt, Probes())
    assert [k.message for k in out.kill] == ["Init container side definition changed"]


def test_app_containers_done() -> None:
    pod = make_pod([side()], policy="Never")
    assert not app_containers_done(pod, runtime(pod, side=RUNNING, main=RUNNING))
    assert app_containers_done(pod, runtime(pod, side=RUNNING, main=FAILED))
    pod["spec"]["restartPolicy"] = "OnFailure"
    assert not app_containers_done(pod, runtime(pod, side=RUNNING, main=FAILED))
    assert app_containers_done(pod, runtime(pod, side=RUNNING, main=OK))
    pod["spec"]["restartPolicy"] = "Always"
    assert not app_containers_done(pod, runtime(pod, side=RUNNING, main=OK))


def test_termination_ordering() -> None:
    pod = make_pod([side("a"), {"name": "setup", "image": "busybox"}, side("b")])
    stopped: list[str] = []

    async def stop(order: TerminationOrdering, name: str, delay: float) -> None:
        await asyncio.sleep(delay)
        await order.wait_for_turn(name, 5)
        stopped.append(name)
        order.terminated(name)

    async def main() -> None:
        order = TerminationOrdering(pod, ["a", "b", "main"])
        await asyncio.gather(stop(order, "a", 0), stop(order, "b", 0), stop(order, "main", 0.2))
        # The grace period bounds the wait: a sidecar whose app container never stops goes anyway.
        order = TerminationOrdering(pod, ["a", "main"])
        started = time.monotonic()
        assert await order.wait_for_turn("a", 0.3) >= 0.29 and time.monotonic() - started < 1

    asyncio.run(main())
    assert stopped == ["main", "b", "a"]


def status(pod: Obj, rt: PodRuntime, started: set[str] | None = None, ready: set[str] | None = None) -> Obj:
    started = {"side", "main"} if started is None else started
    ready = started if ready is None else ready
    return generate_status(pod, rt, waiting={}, is_ready=lambda n: n in ready, is_started=lambda n: n in started,
                           host_ip="10.0.0.1")


def conditions(s: Obj) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c.get("message", "")) for c in s["conditions"]}


def test_phase_and_conditions_with_a_sidecar() -> None:
    pod = make_pod([side()], policy="Never")
    s = status(pod, runtime(pod, side=RUNNING), started=set())
    assert s["phase"] == "Pending"
    assert conditions(s)["Initialized"] == ("False", "containers with incomplete status: [side]")
    sc = s["initContainerStatuses"][0]
    assert (sc["started"], sc["ready"]) == (False, False)
    s = status(pod, runtime(pod, side=RUNNING, main=RUNNING), ready={"main"})
    assert s["phase"] == "Running"
    assert conditions(s)["Initialized"] == ("True", "")
    assert conditions(s)["ContainersReady"] == ("False", "containers with unready status: [side]")
    s = status(pod, runtime(pod, side=RUNNING, main=OK))
    assert s["phase"] == "Running"  # the sidecar still runs: it is stopped next
    s = status(pod, runtime(pod, side=(api.CONTAINER_EXITED, 143), main=OK))
    assert s["phase"] == "Succeeded"  # a stopped sidecar's exit code does not count
    # A sidecar restarting after the app containers ran keeps the pod Running and Initialized.
    pod["spec"]["restartPolicy"] = "Always"
    s = status(pod, runtime(pod, side=FAILED, main=RUNNING), started={"main"})
    assert s["phase"] == "Running" and conditions(s)["Initialized"] == ("True", "")
