"""The HPA's pure decisions: replica calculation (made-up samples) and normalisation (a fake clock).

Cases follow Kubernetes' ``replica_calculator_test.go`` and ``horizontal_test.go``; the expected
numbers are worked out by hand from their rules in each test's comment.
"""

from __future__ import annotations

from typing import Any

import pytest

from kybernetes.api.timeutil import format_rfc3339
from kybernetes.controllers import podautoscaler_plan as plan
from kybernetes.controllers.podautoscaler_plan import MetricError, PodMetric, Policy, Rules

NOW = 1_800_000_000.0
LONG_AGO = NOW - 3600  # started well before the CPU initialization period
TUNING = plan.Tuning()


def pod(name: str, cpu: str = "1", *, phase: str = "Running", ready: str = "True", started: float = LONG_AGO,
        ready_since: float = LONG_AGO, memory: str | None = None, **meta: Any) -> dict[str, Any]:
    requests: dict[str, str] = {"cpu": cpu} if cpu else {}
    if memory:
        requests["memory"] = memory
    return {"metadata": {"name": name, **meta},
            "spec": {"containers": [{"name": "c", "resources": {"requests": requests}}]},
            "status": {"phase": phase, "startTime": format_rfc3339(started),
                       "conditions": [{"type": "Ready", "status": ready,
                                       "lastTransitionTime": format_rfc3339(ready_since)}]}}


def samples(**milli: int) -> dict[str, PodMetric]:
    return {name: PodMetric(v, NOW - 10, 30.0) for name, v in milli.items()}


# --- Utilization targets ------------------------------------------------------------------------------


def test_scale_up_by_utilization() -> None:
    # 1500m used of 3000m requested = 50%; target 30% -> ratio 1.667 x 3 ready pods -> 5.
    pods = [pod("a"), pod("b"), pod("c")]
    assert plan.resource_replicas(3, 30, "cpu", pods, samples(a=300, b=500, c=700), NOW, TUNING) == (5, 50, 500)


def test_scale_down_by_utilization() -> None:
    # 500m of 5000m = 10% against 50% -> ratio 0.2 x 5 -> 1.
    pods = [pod(n) for n in "abcde"]
    got = plan.resource_replicas(5, 50, "cpu", pods, samples(a=100, b=100, c=100, d=100, e=100), NOW, TUNING)
    assert got == (1, 10, 100)


def test_a_change_within_the_tolerance_is_no_change() -> None:
    # 54% against 50%: ratio 1.08, within 0.1 of 1.
    pods = [pod("a"), pod("b")]
    assert plan.resource_replicas(2, 50, "cpu", pods, samples(a=540, b=540), NOW, TUNING)[0] == 2
    # The tolerance is a flag: at 0.05 the same ratio scales (ceil(1.08 x 2) = 3).
    tight = plan.Tuning(tolerance=0.05)
    assert plan.resource_replicas(2, 50, "cpu", pods, samples(a=540, b=540), NOW, tight)[0] == 3


def test_unready_pods_count_as_idle_on_a_scale_up() -> None:
    # a is unready: left out, 1200m of 2000m = 60% (ratio 2); on a scale-up a counts as 0:
    # 1200 of 3000 = 40%, ratio 1.333 x 3 pods -> 4 (not 6). Utilization reported: 60.
    pods = [pod("a", ready="False"), pod("b"), pod("c")]
    assert plan.resource_replicas(3, 30, "cpu", pods, samples(a=300, b=500, c=700), NOW, TUNING) == (4, 60, 600)


def test_pending_pods_are_unready_and_never_ready_pods_too() -> None:
    pods = [pod("a", phase="Pending"), pod("b"), pod("c")]
    groups = plan.group_pods(pods, samples(b=1, c=1), "cpu", NOW, TUNING)
    assert (groups.ready, groups.unready, groups.missing) == (2, {"a"}, set())
    # Started 10 s ago (within the initialization period) with a sample older than one window
    # after it became ready: not counted yet.
    young = pod("y", started=NOW - 10, ready_since=NOW - 5)
    assert plan.group_pods([young], samples(y=1), "cpu", NOW, TUNING).unready == {"y"}
    # Past the initialization period, unready and never ready since it started (its readiness
    # changed within the initial readiness delay): unready. Ready once, later unready: counted.
    never = pod("n", ready="False", started=LONG_AGO, ready_since=LONG_AGO + 10)
    was = pod("w", ready="False", started=LONG_AGO, ready_since=LONG_AGO + 600)
    groups = plan.group_pods([never, was], samples(n=1, w=1), "cpu", NOW, TUNING)
    assert groups.unready == {"n"} and groups.ready == 1
    # Only CPU samples are judged by readiness.
    assert plan.group_pods([never], samples(n=1), "memory", NOW, TUNING).ready == 1


def test_deleted_and_failed_pods_are_ignored() -> None:
    pods = [pod("a", deletionTimestamp=format_rfc3339(NOW)), pod("b", phase="Failed"), pod("c"), pod("d")]
    # a and b's samples are dropped: 1000m of 2000m = 50% against 25% -> ratio 2 x 2 -> 4.
    assert plan.resource_replicas(2, 25, "cpu", pods, samples(a=5000, b=5000, c=500, d=500), NOW, TUNING)[0] == 4


def test_missing_pods_use_their_whole_request_on_a_scale_down() -> None:
    # d has no sample. 300m of 3000m = 10% against 50% (ratio 0.2); d counted at 100% of its
    # request: 1300 of 4000 = 32%, ratio 0.64 x 4 -> 3 (not 1).
    pods = [pod(n) for n in "abcd"]
    assert plan.resource_replicas(4, 50, "cpu", pods, samples(a=100, b=100, c=100), NOW, TUNING)[0] == 3
    # With a target above 100%, a missing pod counts at the target: 300 + 2000 of 4000 = 57% of
    # 200% -> ratio 0.285 x 4 -> 2.
    assert plan.resource_replicas(4, 200, "cpu", pods, samples(a=100, b=100, c=100), NOW, TUNING)[0] == 2


def test_missing_pods_use_nothing_on_a_scale_up() -> None:
    # 3000m of 3000m = 100% against 50% (ratio 2); d at 0: 3000 of 4000 = 75%, ratio 1.5 x 4 -> 6.
    pods = [pod(n) for n in "abcd"]
    assert plan.resource_replicas(4, 50, "cpu", pods, samples(a=1000, b=1000, c=1000), NOW, TUNING)[0] == 6


def test_no_change_when_the_recount_reverses_the_direction() -> None:
    # 1200 of 2000 = 60% against 55% (ratio 1.09: no change alone, but a pod is missing so the
    # recount runs): c at 0 -> 1200 of 3000 = 40%, ratio 0.727: a scale-down from a scale-up: no change.
    pods = [pod(n) for n in "abc"]
    assert plan.resource_replicas(3, 55, "cpu", pods, samples(a=600, b=600), NOW, TUNING)[0] == 3


@pytest.mark.parametrize(("pods", "metrics", "message"), [
    ([], samples(a=1), "no pods returned by selector while calculating replica count"),
    ([pod("a", cpu="")], samples(a=1), "missing request for cpu in container c of Pod a"),
    ([pod("a", phase="Pending")], samples(a=1), "did not receive metrics for targeted pods (pods might be unready)"),
    ([pod("a")], samples(zzz=1), "no metrics returned matched known pods"),
])
def test_errors_carry_kubernetes_messages(pods: list[Any], metrics: dict[str, PodMetric], message: str) -> None:
    with pytest.raises(MetricError) as e:
        plan.resource_replicas(1, 50, "cpu", pods, metrics, NOW, TUNING)
    assert str(e.value) == message


def test_requests_include_sidecars_and_can_be_one_containers() -> None:
    p = pod("a", cpu="200m")
    p["spec"]["containers"].append({"name": "d", "resources": {"requests": {"cpu": "300m"}}})
    p["spec"]["initContainers"] = [{"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "1"}}},
                                   {"name": "init", "resources": {"requests": {"cpu": "5"}}}]
    assert plan.pod_requests([p], "", "cpu") == {"a": 1500}
    assert plan.pod_requests([p], "d", "cpu") == {"a": 300}


# --- AverageValue targets -----------------------------------------------------------------------------


def test_average_value_targets() -> None:
    mi = 1024 * 1024 * 1000  # 1Mi in milli-units
    pods = [pod(n, memory="1Gi") for n in "ab"]
    # 300Mi average against 100Mi: ratio 3 x 2 -> 6.
    assert plan.plain_replicas(2, 100 * mi, "memory", pods, samples(a=200 * mi, b=400 * mi), NOW, TUNING) == (6, 300 * mi)
    # A missing pod on a scale-down counts at the target: (10 + 100) / 2 = 55 against 100 -> 2 x 0.55 -> 2: no change.
    assert plan.plain_replicas(2, 100 * mi, "memory", pods, samples(a=10 * mi), NOW, TUNING)[0] == 2


# --- normalisation ------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_without_behavior_scale_down_waits_for_the_stabilization_window() -> None:
    clock = Clock()
    rec = plan.Recommender(clock, downscale_window=300)
    rec.record_initial("ns/h", 5)
    d = rec.normalize("ns/h", 5, 2, 1, 10)
    assert (d.replicas, d.able_reason, d.limited) == (5, "ScaleDownStabilized", False)
    assert d.able_message == "recent recommendations were higher than current one, applying the highest recent recommendation"
    clock.t += 299
    assert rec.normalize("ns/h", 5, 2, 1, 10).replicas == 5
    clock.t += 2  # the initial 5 is now older than the window; the 2s are not
    d = rec.normalize("ns/h", 5, 2, 1, 10)
    assert (d.replicas, d.able_reason, d.limited_reason) == (2, "ReadyForNewScale", "DesiredWithinRange")


def test_without_behavior_scale_up_is_limited_to_twice_or_four() -> None:
    rec = plan.Recommender(Clock(), downscale_window=0)
    d = rec.normalize("k", 1, 10, 1, 20)
    assert (d.replicas, d.limited, d.limited_reason) == (4, True, "ScaleUpLimit")
    assert d.limited_message == "the desired replica count is increasing faster than the maximum scale rate"
    d = rec.normalize("k", 1, 10, 1, 3)
    assert (d.replicas, d.limited_reason) == (3, "TooManyReplicas")
    d = rec.normalize("other", 5, 0, 2, 10)
    assert (d.replicas, d.limited_reason) == (2, "TooFewReplicas")


def test_behavior_defaults_and_the_flag_window() -> None:
    up, down = plan.behavior_rules({}, downscale_window=120)
    assert up == Rules(0, "Max", (Policy("Pods", 4, 15), Policy("Percent", 100, 15)))
    assert down == Rules(120, "Max", (Policy("Percent", 100, 15),))
    _, down = plan.behavior_rules({"scaleDown": {"stabilizationWindowSeconds": 0, "selectPolicy": "Min",
                                                 "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}}, 120)
    assert down == Rules(0, "Min", (Policy("Pods", 1, 60),))


def test_scale_up_policies_by_select_policy_and_period() -> None:
    clock = Clock()
    rec = plan.Recommender(clock, downscale_window=0)
    up, down = plan.behavior_rules({}, 0)
    # Max of (2 + 4 pods, 2 + 100%) = 6.
    d = rec.normalize_with_behavior("k", 2, 20, 1, 50, up, down)
    assert (d.replicas, d.limited_reason) == (6, "ScaleUpLimit")
    rec.store_scale_event("k", (up, down), 2, 6)
    clock.t += 5  # within the 15 s period the 4 pods added count: the period started at 2
    assert rec.normalize_with_behavior("k", 6, 20, 1, 50, up, down).replicas == 6
    clock.t += 11  # the period is over: max(6 + 4, 6 x 2) = 12
    assert rec.normalize_with_behavior("k", 6, 20, 1, 50, up, down).replicas == 12
    low = Rules(0, "Min", up.policies)
    assert plan.Recommender(clock, 0).normalize_with_behavior("k", 2, 20, 1, 50, low, down).replicas == 4
    off = Rules(0, "Disabled", up.policies)
    d = plan.Recommender(clock, 0).normalize_with_behavior("k", 2, 20, 1, 50, off, down)
    assert (d.replicas, d.limited_reason) == (2, "ScaleUpLimit")


def test_scale_down_policies_and_min() -> None:
    rec = plan.Recommender(Clock(), downscale_window=0)
    up, _ = plan.behavior_rules({}, 0)
    down = Rules(0, "Max", (Policy("Percent", 50, 60), Policy("Pods", 1, 60)))
    # Max selects the biggest change: int(10 x 0.5) = 5 rather than 10 - 1.
    d = rec.normalize_with_behavior("k", 10, 1, 1, 20, up, down)
    assert (d.replicas, d.limited_reason) == (5, "ScaleDownLimit")
    assert d.limited_message == "the desired replica count is decreasing faster than the maximum scale rate"
    d = plan.Recommender(Clock(), 0).normalize_with_behavior("k", 10, 1, 1, 20, up, Rules(0, "Min", down.policies))
    assert d.replicas == 9
    d = plan.Recommender(Clock(), 0).normalize_with_behavior("k", 10, 1, 8, 20, up, down)
    assert (d.replicas, d.limited_reason) == (8, "TooFewReplicas")


def test_behavior_stabilization_windows_both_ways() -> None:
    clock = Clock()
    rec = plan.Recommender(clock, downscale_window=0)
    up = Rules(60, "Max", (Policy("Percent", 900, 15),))
    down = Rules(60, "Max", (Policy("Percent", 100, 15),))
    rec.record_initial("k", 3)
    clock.t += 10
    d = rec.normalize_with_behavior("k", 3, 8, 1, 20, up, down)  # the 3 of 10 s ago holds it
    assert (d.replicas, d.able_reason) == (3, "ScaleUpStabilized")
    assert d.able_message == "recent recommendations were lower than current one, applying the lowest recent recommendation"
    clock.t += 55  # the 3 has left the window; the 8 is the lowest recent one
    d = rec.normalize_with_behavior("k", 3, 9, 1, 20, up, down)
    assert (d.replicas, d.able_reason) == (8, "ScaleUpStabilized")
    clock.t += 61
    d = rec.normalize_with_behavior("k", 8, 2, 1, 20, up, down)  # the 9 of 61 s ago is gone
    assert (d.replicas, d.able_reason) == (2, "ReadyForNewScale")


def test_forget_drops_a_keys_memory() -> None:
    rec = plan.Recommender(Clock(), downscale_window=300)
    rec.record_initial("k", 9)
    rec.forget("k")
    assert rec.normalize("k", 9, 3, 1, 10).replicas == 3


def test_set_condition_moves_the_transition_time_only_on_a_status_change() -> None:
    conds: list[dict[str, Any]] = []
    plan.set_condition(conds, "AbleToScale", "True", "A", "a", "T1")
    plan.set_condition(conds, "AbleToScale", "True", "B", "b", "T2")
    assert conds == [{"type": "AbleToScale", "status": "True", "lastTransitionTime": "T1", "reason": "B", "message": "b"}]
    plan.set_condition(conds, "AbleToScale", "False", "C", "c", "T3")
    assert conds[0]["lastTransitionTime"] == "T3"


# --- object and external targets ------------------------------------------------------------------------


def test_value_targets_scale_the_ready_pods_and_start_from_zero() -> None:
    pods = [pod("a"), pod("b"), pod("c", ready="False")]
    # ratio 3 x 2 ready pods -> 6; within the tolerance -> as is; from 0 replicas the ratio alone.
    assert plan.usage_ratio_replicas(3, 3.0, pods, TUNING) == 6
    assert plan.usage_ratio_replicas(3, 1.05, pods, TUNING) == 3
    assert plan.usage_ratio_replicas(0, 2.5, [], TUNING) == 3
    with pytest.raises(MetricError) as e:
        plan.usage_ratio_replicas(3, 3.0, [], TUNING)
    assert str(e.value) == "unable to calculate ready pods: no pods returned by selector while calculating replica count"


def test_average_value_targets_divide_the_total() -> None:
    # 30 in all against 5 per pod: 6 replicas; the average over the 3 there now is 10.
    assert plan.per_pod_replicas(3, 30_000, 5_000, TUNING) == (6, 10_000)
    # 16 against 5 per pod over 3 replicas: ratio 1.07, within the tolerance.
    assert plan.per_pod_replicas(3, 16_000, 5_000, TUNING) == (3, 5334)


def test_selectors_print_as_go_prints_them() -> None:
    assert plan.go_label_selector(None) == "nil"
    assert plan.go_label_selector({"matchLabels": {"b": "2", "a": "1"}, "matchExpressions": [
        {"key": "k", "operator": "In", "values": ["x", "y"]}]}) == (
        "&LabelSelector{MatchLabels:map[string]string{a: 1,b: 2,},MatchExpressions:[]LabelSelectorRequirement{"
        "LabelSelectorRequirement{Key:k,Operator:In,Values:[x y],},},}")
