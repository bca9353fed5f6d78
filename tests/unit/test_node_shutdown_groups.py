"""Graceful node shutdown's grouping, as the kubelet's migrateConfig and groupByPriority."""

from __future__ import annotations

from kybernetes.kubelet.shutdown import group_by_priority, shutdown_groups


def pod(name: str, priority: int | None) -> dict[str, object]:
    spec = {} if priority is None else {"priority": priority}
    return {"metadata": {"name": name}, "spec": spec}


def test_periods_become_a_default_and_a_critical_group() -> None:
    groups = shutdown_groups(30, 10)
    assert [(g.priority, g.grace) for g in groups] == [(0, 20), (2_000_000_000, 10)]
    assert shutdown_groups(0, 0) == []  # off
    assert shutdown_groups(10, 20) == []  # critical longer than the whole: the kubelet ignores it


def test_pods_go_to_the_highest_group_not_above_their_priority() -> None:
    groups = group_by_priority(shutdown_groups(30, 10), [
        pod("none", None), pod("negative", -5), pod("user", 1_000_000), pod("cluster", 2_000_000_000),
        pod("node", 2_000_001_000)])
    assert [[p["metadata"]["name"] for p in g.pods] for g in groups] == [  # type: ignore[index]
        ["none", "negative", "user"], ["cluster", "node"]]
