"""The scheduling queue: priority order, per-pod backoff on a fake clock, reactivation by events."""

from __future__ import annotations

from kybernetes.client.workqueue import FakeClock
from kybernetes.scheduler.queue import ACTIVE, BACKOFF, UNSCHEDULABLE, SchedulingQueue

from .util import pod


def test_priority_then_fifo() -> None:
    clock = FakeClock()
    q = SchedulingQueue(clock)
    q.add(pod("low", priority=0))
    clock.advance(1)
    q.add(pod("high", priority=100))
    clock.advance(1)
    q.add(pod("low2", priority=0))
    q.add(pod("mid", priority=50))
    order = []
    while (qp := q.pop_nowait()) is not None:
        order.append(qp.key)
    assert order == ["default/high", "default/mid", "default/low", "default/low2"]


def test_exponential_backoff_capped() -> None:
    clock = FakeClock()
    q = SchedulingQueue(clock, initial_backoff=1, max_backoff=10)
    q.add(pod("p"))
    durations = []
    for _ in range(6):
        qp = q.pop_nowait()
        assert qp is not None
        durations.append(q.backoff_duration(qp))
        q.add_backoff(qp)
        assert q.pop_nowait() is None  # still backing off
        clock.advance(durations[-1] - 0.01)
        assert q.flush_backoff() == 0
        clock.advance(0.01)
        assert q.flush_backoff() == 1
    assert durations == [1, 2, 4, 8, 10, 10]


def test_unschedulable_reactivated_by_node_add_and_hints() -> None:
    clock = FakeClock()
    q = SchedulingQueue(clock)
    q.add(pod("p"))
    qp = q.pop_nowait()
    assert qp is not None
    q.add_unschedulable(qp, ["NodeResourcesFit"])
    assert qp.where == UNSCHEDULABLE
    # An event that cannot help this pod (only affinity plugins) leaves it parked.
    assert q.move_all(["InterPodAffinity"]) == 0
    assert qp.where == UNSCHEDULABLE
    # A node add helps anyone; still inside the 1 s backoff -> backoffQ, then active.
    assert q.move_all() == 1
    assert qp.where == BACKOFF
    clock.advance(1)
    q.flush_backoff()
    assert qp.where == ACTIVE
    assert q.pop_nowait() is qp


def test_event_during_cycle_sends_pod_to_backoff() -> None:
    q = SchedulingQueue(FakeClock())
    q.add(pod("p"))
    qp = q.pop_nowait()
    assert qp is not None
    q.move_all()  # a node appeared while the pod was being scheduled
    q.add_unschedulable(qp, ["NodeResourcesFit"])
    assert qp.where == BACKOFF


def test_flush_unschedulable_after_timeout_and_pod_update() -> None:
    clock = FakeClock()
    q = SchedulingQueue(clock, max_unschedulable=300)
    p = pod("p")
    q.add(p)
    qp = q.pop_nowait()
    assert qp is not None
    q.add_unschedulable(qp, ["TaintToleration"])
    clock.advance(200)
    assert q.flush_unschedulable() == 0
    clock.advance(101)
    assert q.flush_unschedulable() == 1
    assert qp.where == ACTIVE
    # A spec change of a parked pod moves it too; a status-only change does not.
    qp2 = q.pop_nowait()
    assert qp2 is qp
    q.add_unschedulable(qp, ["TaintToleration"])
    q.update(p, {**p, "status": {"phase": "Pending", "conditions": []}})
    assert qp.where == UNSCHEDULABLE
    clock.advance(3)  # past the second attempt's 2 s backoff
    q.update(p, {**p, "spec": {**p["spec"], "tolerations": [{"operator": "Exists"}]}})
    assert qp.where == ACTIVE


def test_delete_removes_from_heaps() -> None:
    q = SchedulingQueue(FakeClock())
    p = pod("p")
    q.add(p)
    q.delete(p)
    assert q.pop_nowait() is None
    assert len(q) == 0
