"""The eviction manager's rounds on a fake clock: soft grace periods, the pressure transition period,
one eviction per round, the ranking, critical pods spared. The signals are given (the e2e test
trips the real ones); everything else is the manager's own code."""

from __future__ import annotations

from typing import Any

from kybernetes.kubelet.eviction import (
    EvictionManager,
    Observation,
    PodUsage,
    admission_refusal,
    eviction_message,
    parse_thresholds,
    rank,
)

Obj = dict[str, Any]
MI = 2**20


def pod(name: str, memory_request: str | None = None, priority: int = 0, **meta: Any) -> Obj:
    container: Obj = {"name": "main"}
    if memory_request:
        container["resources"] = {"requests": {"memory": memory_request}}
    return {"metadata": {"name": name, "namespace": "default", "uid": name, **meta},
            "spec": {"containers": [container], "priority": priority, "terminationGracePeriodSeconds": 30},
            "status": {"phase": "Running"}}


class Node:
    """What the manager sees: an available amount of memory, pods, their usage; what it did."""

    def __init__(self, pods: list[Obj], usage: dict[str, PodUsage]) -> None:
        self.available = 1000 * MI
        self.now = 0.0
        self.pods, self.usage = pods, usage
        self.evicted: list[tuple[str, int, str]] = []
        self.changes = 0

    def manager(self, hard: dict[str, str], soft: dict[str, str] | None = None,
                grace: dict[str, str] | None = None) -> EvictionManager:
        async def usage_of(pods: list[Obj]) -> dict[str, PodUsage]:
            return self.usage

        async def evict(p: Obj, seconds: int, message: str, condition: Obj | None) -> None:
            self.evicted.append((p["metadata"]["name"], seconds, message))
            self.pods.remove(p)

        def changed() -> None:
            self.changes += 1

        return EvictionManager(
            parse_thresholds(hard, soft, grace), observe=lambda: {"memory.available": Observation(self.available,
                                                                                                  2000 * MI)},
            active_pods=lambda: list(self.pods), pod_usage=usage_of, volume_usage=lambda uid, name: None,
            evict=evict, record_node=lambda *a: None, on_change=changed, pressure_transition_period=30,
            max_pod_grace_period=10, clock=lambda: self.now)


async def test_hard_threshold_evicts_one_pod_per_round_in_rank_order() -> None:
    pods = [pod("guarded", "500Mi"), pod("hog"), pod("static", annotations={"kubernetes.io/config.source": "file"})]
    node = Node(pods, {"guarded": PodUsage(memory={"main": 100 * MI}), "hog": PodUsage(memory={"main": 50 * MI}),
                       "static": PodUsage(memory={"main": 900 * MI})})
    m = node.manager({"memory.available": "1500Mi"})
    await m.synchronize()
    assert m.pressure() == {"MemoryPressure"} and node.changes == 1
    assert [(n, s) for n, s, _ in node.evicted] == [("hog", 1)]  # above its request (0); the static pod is spared
    await m.synchronize()
    assert [n for n, _, _ in node.evicted] == ["hog", "guarded"]
    await m.synchronize()
    assert len(node.evicted) == 2  # only the static pod is left


async def test_soft_threshold_waits_for_its_grace_period_and_caps_pod_grace() -> None:
    node = Node([pod("a")], {"a": PodUsage(memory={"main": MI})})
    m = node.manager({}, {"memory.available": "1500Mi"}, {"memory.available": "1m"})
    await m.synchronize()
    node.now = 59
    await m.synchronize()
    assert not node.evicted and not m.pressure()
    node.available = 1600 * MI  # a break resets the grace period
    node.now = 61
    await m.synchronize()
    node.available = 1000 * MI
    node.now = 62
    await m.synchronize()
    node.now = 121
    await m.synchronize()
    assert not node.evicted
    node.now = 122
    await m.synchronize()
    assert [(n, s) for n, s, _ in node.evicted] == [("a", 10)]  # min(evictionMaxPodGracePeriod, 30)


async def test_condition_outlasts_the_signal_by_the_transition_period() -> None:
    node = Node([], {})
    m = node.manager({"memory.available": "1500Mi"})
    await m.synchronize()
    assert m.pressure() == {"MemoryPressure"}
    node.available = 1600 * MI
    node.now = 29
    await m.synchronize()
    assert m.pressure() == {"MemoryPressure"}
    node.now = 30
    await m.synchronize()
    assert m.pressure() == frozenset() and node.changes == 2


def test_rank_by_request_excess_priority_then_usage() -> None:
    pods = [pod("low-prio-small", priority=-10), pod("big"), pod("small"), pod("within", "1Gi")]
    usage = {"low-prio-small": PodUsage(memory={"main": MI}), "big": PodUsage(memory={"main": 300 * MI}),
             "small": PodUsage(memory={"main": 2 * MI}), "within": PodUsage(memory={"main": 900 * MI})}
    assert [p["metadata"]["name"] for p in rank(pods, "memory", usage)] == ["low-prio-small", "big", "small", "within"]
    pids = {"big": PodUsage(pids=5), "small": PodUsage(pids=50)}
    assert [p["metadata"]["name"] for p in rank(pods[1:3], "pids", pids)] == ["small", "big"]


def test_message_names_the_threshold_and_containers_over_request() -> None:
    # A percentage is a float32 fraction in the kubelet: 10% of 1000Mi is 104857601 bytes, not 100Mi.
    assert parse_thresholds({"memory.available": "10%"})[0].value(1000 * MI) == 104857601
    threshold = parse_thresholds({"memory.available": "100Mi"})[0]
    message = eviction_message("memory", pod("x", "1Mi"), threshold, Observation(512 * 1024, 1000 * MI),
                               PodUsage(memory={"main": 3 * MI}))
    assert message == ("The node was low on resource: memory. Threshold quantity: 100Mi, available: 512Ki. "
                       "Container main was using 3Mi, request is 1Mi, has larger consumption of memory. ")


def test_admission_under_pressure() -> None:
    best_effort = {**pod("b"), "status": {"qosClass": "BestEffort"}}
    burstable = {**pod("u", "1Mi"), "status": {"qosClass": "Burstable"}}
    tolerant = {**best_effort, "spec": {**best_effort["spec"], "tolerations": [
        {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"}]}}
    critical = {**best_effort, "spec": {**best_effort["spec"], "priority": 2_000_001_000}}
    assert admission_refusal(best_effort, ()) is None
    assert admission_refusal(best_effort, {"MemoryPressure"}) == "The node had condition: [MemoryPressure]. "
    assert admission_refusal(burstable, {"MemoryPressure"}) is None
    assert admission_refusal(tolerant, {"MemoryPressure"}) is None
    assert admission_refusal(critical, {"DiskPressure"}) is None
    assert admission_refusal(burstable, {"DiskPressure", "MemoryPressure"}) == \
        "The node had condition: [MemoryPressure DiskPressure]. "


def test_signals_observed_on_this_machine(tmp_path: Any) -> None:
    import os

    from kybernetes.kubelet.eviction import observe
    from kybernetes.kubelet.machine import memory_bytes

    seen = observe(memory_bytes(), tmp_path, tmp_path)
    memory = seen["memory.available"]
    assert memory.capacity == memory_bytes() and 0 < memory.available < memory.capacity
    st = os.statvfs(tmp_path)
    assert seen["nodefs.available"].capacity == st.f_blocks * st.f_frsize
    assert seen["imagefs.inodesFree"].capacity == st.f_files
    pids = seen["pid.available"]
    assert 0 < pids.available < pids.capacity


async def test_disk_and_pid_pressure_from_the_real_signals(tmp_path: Any) -> None:
    """Thresholds shrunk to just above what this machine has: both conditions come up, a disk
    threshold evicts by disk usage; nothing is filled."""
    from kybernetes.kubelet.eviction import observe
    from kybernetes.kubelet.machine import memory_bytes

    def signals() -> dict[str, Observation]:
        return observe(memory_bytes(), tmp_path, tmp_path)

    pids = signals()["pid.available"]
    node = Node([pod("quiet"), pod("writer")], {"quiet": PodUsage(disk=MI), "writer": PodUsage(disk=50 * MI)})
    m = node.manager({})
    m.thresholds = parse_thresholds({"nodefs.available": "99.9%",
                                     "pid.available": str(min(pids.capacity - 1, pids.available + 10_000))})
    m._observe = signals
    await m.synchronize()
    assert m.pressure() == {"DiskPressure", "PIDPressure"}
    assert [n for n, _, _ in node.evicted] == ["writer"]
    assert node.evicted[0][2].startswith("The node was low on resource: ephemeral-storage. Threshold quantity: ")
