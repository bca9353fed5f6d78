"""The HorizontalPodAutoscaler's decisions, as pure computation (``pkg/controller/podautoscaler``).

Two parts, both free of the network and of informers, so they are tested with made-up metric
values and a fake clock:

* **Replica calculation** (``replica_calculator.go``): from the target's pods, their metric
  samples and the target, how many replicas the metric asks for. :func:`resource_replicas`
  (a ``Utilization`` target: percent of the pods' requests) and :func:`plain_replicas` (an
  ``AverageValue`` target: raw usage per pod). Kubernetes' rules: a change within the tolerance
  (0.1) is no change; pods being deleted or failed are left out; pending pods and, for CPU, pods
  not yet ready (or whose sample predates their readiness) are *unready*: left out, but counted
  as using 0 when the ratio says scale up; pods without a sample are *missing*: counted as using
  their full request (the target, if above 100%) on a scale-down and 0 on a scale-up; and if the
  recount would reverse the direction, nothing changes. Values are Kubernetes' milli-units
  (``Quantity.MilliValue``). A failure raises :class:`MetricError` with Kubernetes' message.

* **Normalisation** (``horizontal.go``): the desired count bounded by min/max and by how fast
  the target may move. :class:`Recommender` keeps, per HPA key, the recent recommendations (the
  stabilization windows) and scale events (the policies' periods), on an injected clock.
  Without ``spec.behavior`` it applies ``--horizontal-pod-autoscaler-downscale-stabilization`` and
  the legacy up-limit ``max(2 * current, 4)``; with one, the scale-up/scale-down windows, the
  ``Pods``/``Percent`` policies per period and ``selectPolicy`` ``Max``/``Min``/``Disabled``.
  Each answer comes with the ``AbleToScale`` and ``ScalingLimited`` reasons and messages
  Kubernetes sets.

:func:`set_condition` is ``setConditionInList``: a condition's ``lastTransitionTime`` moves only
when its status changes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kybernetes.api.obj import Obj
from kybernetes.api.quantity import cpu_millis
from kybernetes.api.timeutil import parse_epoch

INT32_MAX = 2**31 - 1
INT32_MIN = -(2**31)
SCALE_UP_LIMIT_FACTOR = 2.0
SCALE_UP_LIMIT_MINIMUM = 4.0


class MetricError(Exception):
    """A metric could not give a replica count; the text is Kubernetes' message."""


# --- replica calculation --------------------------------------------------------------------------


@dataclass(frozen=True)
class PodMetric:
    """One pod's sample: ``value`` in milli-units, taken at ``timestamp`` (POSIX) over ``window`` s."""

    value: int
    timestamp: float = 0.0
    window: float = 0.0


@dataclass(frozen=True)
class Tuning:
    """The controller's flags that the calculation reads (Kubernetes' defaults)."""

    tolerance: float = 0.1
    cpu_initialization_period: float = 300.0
    """``--horizontal-pod-autoscaler-cpu-initialization-period`` (5m)."""
    initial_readiness_delay: float = 30.0
    """``--horizontal-pod-autoscaler-initial-readiness-delay`` (30s)."""


@dataclass
class PodGroups:
    ready: int = 0
    unready: set[str] = field(default_factory=set)
    missing: set[str] = field(default_factory=set)
    ignored: set[str] = field(default_factory=set)


def _name(pod: Obj) -> str:
    return str((pod.get("metadata") or {}).get("name", ""))


def _ready_condition(pod: Obj) -> Obj | None:
    for c in (pod.get("status") or {}).get("conditions") or ():
        if isinstance(c, dict) and c.get("type") == "Ready":
            return c
    return None


def _cpu_unready(pod: Obj, metric: PodMetric, now: float, tuning: Tuning) -> bool:
    """Whether a CPU sample of a running pod must not count (``groupPods``)."""
    cond = _ready_condition(pod)
    start = parse_epoch((pod.get("status") or {}).get("startTime"))
    if cond is None or start is None:
        return True
    transition = parse_epoch(cond.get("lastTransitionTime")) or 0.0
    if start + tuning.cpu_initialization_period > now:
        # Still initialising: unready, or a sample that does not cover a full window since the change.
        return cond.get("status") == "False" or metric.timestamp < transition + metric.window
    # Unready and never ready since it started.
    return cond.get("status") == "False" and start + tuning.initial_readiness_delay > transition


def group_pods(pods: Iterable[Obj], metrics: Mapping[str, PodMetric], resource: str, now: float,
               tuning: Tuning) -> PodGroups:
    """Kubernetes' ``groupPods``: ready count and the unready, missing and ignored pods' names."""
    out = PodGroups()
    for pod in pods:
        name, status = _name(pod), pod.get("status") or {}
        if (pod.get("metadata") or {}).get("deletionTimestamp") or status.get("phase") == "Failed":
            out.ignored.add(name)
        elif status.get("phase") == "Pending":
            out.unready.add(name)
        elif name not in metrics:
            out.missing.add(name)
        elif resource == "cpu" and _cpu_unready(pod, metrics[name], now, tuning):
            out.unready.add(name)
        else:
            out.ready += 1
    return out


def pod_requests(pods: Iterable[Obj], container: str, resource: str) -> dict[str, int]:
    """Each pod's request of ``resource`` in milli-units, over its containers and sidecars (restartable
    init containers), or only ``container``; :class:`MetricError` if one has none."""
    out: dict[str, int] = {}
    for pod in pods:
        spec = pod.get("spec") or {}
        containers = list(spec.get("containers") or [])
        containers += [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
        total = 0
        for c in containers:
            if container and c.get("name") != container:
                continue
            requests = (c.get("resources") or {}).get("requests") or {}
            if resource not in requests:
                raise MetricError(f"missing request for {resource} in container {c.get('name', '')} "
                                  f"of Pod {_name(pod)}")
            total += cpu_millis(requests[resource])
        out[_name(pod)] = total
    return out


def utilization_ratio(metrics: Mapping[str, PodMetric], requests: Mapping[str, int],
                      target: int) -> tuple[float, int, int]:
    """(usage ratio, utilization %, average raw value) over pods with both (``GetResourceUtilizationRatio``)."""
    used = requested = entries = 0
    for name, m in metrics.items():
        if name in requests:  # a sample of an unknown pod is extraneous
            used += m.value
            requested += requests[name]
            entries += 1
    if requested == 0:
        raise MetricError("no metrics returned matched known pods")
    utilization = used * 100 // requested
    return utilization / target, utilization, used // entries


def usage_ratio(metrics: Mapping[str, PodMetric], target: int) -> tuple[float, int]:
    """(usage ratio, average value) (``GetMetricUsageRatio``)."""
    average = sum(m.value for m in metrics.values()) // len(metrics)
    return average / target, average


def _reversed(before: float, after: float) -> bool:
    return (before < 1.0 < after) or (before > 1.0 > after)


def resource_replicas(current: int, target_utilization: int, resource: str, pods: list[Obj],
                      metrics: Mapping[str, PodMetric], now: float, tuning: Tuning,
                      container: str = "") -> tuple[int, int, int]:
    """(replicas, utilization %, average raw value) for a ``Utilization`` target (``GetResourceReplicas``)."""
    if not pods:
        raise MetricError("no pods returned by selector while calculating replica count")
    groups = group_pods(pods, metrics, resource, now, tuning)
    samples = {k: m for k, m in metrics.items() if k not in groups.ignored and k not in groups.unready}
    requests = pod_requests(pods, container, resource)
    if not samples:
        raise MetricError("did not receive metrics for targeted pods (pods might be unready)")
    ratio, utilization, raw = utilization_ratio(samples, requests, target_utilization)
    with_unready = bool(groups.unready) and ratio > 1.0
    if not with_unready and not groups.missing:
        if abs(1.0 - ratio) <= tuning.tolerance:
            return current, utilization, raw
        return math.ceil(ratio * groups.ready), utilization, raw
    if groups.missing:
        if ratio < 1.0:
            # On a scale-down a missing pod uses its whole request, or the target if that is above 100%.
            fallback = max(100, target_utilization)
            samples.update({k: PodMetric(requests[k] * fallback // 100) for k in groups.missing})
        elif ratio > 1.0:
            samples.update({k: PodMetric(0) for k in groups.missing})
    if with_unready:
        samples.update({k: PodMetric(0) for k in groups.unready})
    new_ratio, _, _ = utilization_ratio(samples, requests, target_utilization)
    if abs(1.0 - new_ratio) <= tuning.tolerance or _reversed(ratio, new_ratio):
        return current, utilization, raw
    replicas = math.ceil(new_ratio * len(samples))
    if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
        return current, utilization, raw
    return replicas, utilization, raw


def plain_replicas(current: int, target: int, resource: str, pods: list[Obj],
                   metrics: Mapping[str, PodMetric], now: float, tuning: Tuning) -> tuple[int, int]:
    """(replicas, average value) for an ``AverageValue`` target (``calcPlainMetricReplicas``)."""
    if not pods:
        raise MetricError("no pods returned by selector while calculating replica count")
    groups = group_pods(pods, metrics, resource, now, tuning)
    samples = {k: m for k, m in metrics.items() if k not in groups.ignored and k not in groups.unready}
    if not samples:
        raise MetricError("did not receive metrics for targeted pods (pods might be unready)")
    ratio, usage = usage_ratio(samples, target)
    with_unready = bool(groups.unready) and ratio > 1.0
    if not with_unready and not groups.missing:
        if abs(1.0 - ratio) <= tuning.tolerance:
            return current, usage
        return math.ceil(ratio * groups.ready), usage
    if groups.missing:
        fill = target if ratio < 1.0 else 0
        samples.update({k: PodMetric(fill) for k in groups.missing})
    if with_unready:
        samples.update({k: PodMetric(0) for k in groups.unready})
    new_ratio, _ = usage_ratio(samples, target)
    if abs(1.0 - new_ratio) <= tuning.tolerance or _reversed(ratio, new_ratio):
        return current, usage
    replicas = math.ceil(new_ratio * len(samples))
    if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
        return current, usage
    return replicas, usage


def ready_pods(pods: list[Obj]) -> int:
    """Running and ready pods (``getReadyPodsCount``)."""
    if not pods:
        raise MetricError("no pods returned by selector while calculating replica count")
    return sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Running"
               and (_ready_condition(p) or {}).get("status") == "True")


def usage_ratio_replicas(current: int, ratio: float, pods: list[Obj], tuning: Tuning) -> int:
    """Replicas for one value against its target (``getUsageRatioReplicaCount``): object and external
    ``Value`` targets. From 0 replicas the ratio alone decides, without the tolerance."""
    if current == 0:
        return math.ceil(ratio)
    if abs(1.0 - ratio) <= tuning.tolerance:
        return current
    try:
        ready = ready_pods(pods)
    except MetricError as e:
        raise MetricError(f"unable to calculate ready pods: {e}") from None
    return math.ceil(ratio * ready)


def per_pod_replicas(status_replicas: int, total: int, target: int, tuning: Tuning) -> tuple[int, int]:
    """(replicas, average per replica) for a total against a per-pod ``AverageValue`` target
    (``GetObjectPerPodMetricReplicas``, ``GetExternalPerPodMetricReplicas``)."""
    replicas = status_replicas
    ratio = total / (target * status_replicas) if status_replicas else math.inf
    if abs(1.0 - ratio) > tuning.tolerance:
        replicas = math.ceil(total / target)
    return replicas, (math.ceil(total / status_replicas) if status_replicas else 0)


def go_label_selector(selector: Any) -> str:
    """A ``metav1.LabelSelector`` as Go's ``%+v`` prints it (its generated ``String()``): Kubernetes puts
    it in the names of object and external metrics, hence in events ("external metric q(nil) above target")."""
    if not isinstance(selector, dict):
        return "nil"
    labels = selector.get("matchLabels") or {}
    shown = "".join(f"{k}: {labels[k]}," for k in sorted(labels))
    exprs = "".join(f"LabelSelectorRequirement{{Key:{e.get('key', '')},Operator:{e.get('operator', '')},"
                    f"Values:[{' '.join(e.get('values') or [])}],}},"
                    for e in selector.get("matchExpressions") or [] if isinstance(e, dict))
    return (f"&LabelSelector{{MatchLabels:map[string]string{{{shown}}},"
            f"MatchExpressions:[]LabelSelectorRequirement{{{exprs}}},}}")


# --- behavior -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    type: str  # "Pods" or "Percent"
    value: int
    period: int


@dataclass(frozen=True)
class Rules:
    """One direction's ``HPAScalingRules``, defaults applied."""

    window: int
    select: str  # "Max", "Min" or "Disabled"
    policies: tuple[Policy, ...]

    @property
    def longest_period(self) -> int:
        return max((p.period for p in self.policies), default=0)


def _rules(given: Any, window: int, policies: tuple[Policy, ...]) -> Rules:
    given = given if isinstance(given, dict) else {}
    if isinstance(given.get("stabilizationWindowSeconds"), int):
        window = given["stabilizationWindowSeconds"]
    listed = given.get("policies")
    if isinstance(listed, list) and listed:
        policies = tuple(Policy(str(p.get("type", "")), int(p.get("value", 0)), int(p.get("periodSeconds", 0)))
                         for p in listed if isinstance(p, dict))
    return Rules(window, str(given.get("selectPolicy") or "Max"), policies)


def behavior_rules(behavior: Obj, downscale_window: int) -> tuple[Rules, Rules]:
    """(scaleUp, scaleDown) with Kubernetes' defaults; a scale-down without a window takes the
    controller's ``--horizontal-pod-autoscaler-downscale-stabilization`` (``maybeInitScaleDownStabilizationWindow``)."""
    up = _rules(behavior.get("scaleUp"), 0, (Policy("Pods", 4, 15), Policy("Percent", 100, 15)))
    down = _rules(behavior.get("scaleDown"), downscale_window, (Policy("Percent", 100, 15),))
    return up, down


@dataclass(frozen=True)
class Decision:
    """A normalised count and the two conditions it sets (``AbleToScale`` True, ``ScalingLimited``)."""

    replicas: int
    able_reason: str
    able_message: str
    limited: bool
    limited_reason: str
    limited_message: str


@dataclass
class _ScaleEvent:
    change: int
    at: float
    outdated: bool = False


WITHIN_RANGE = ("DesiredWithinRange", "the desired count is within the acceptable range")
TOO_MANY = ("TooManyReplicas", "the desired replica count is more than the maximum replica count")
TOO_FEW = ("TooFewReplicas", "the desired replica count is less than the minimum replica count")
UP_LIMIT = ("ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate")
DOWN_LIMIT = ("ScaleDownLimit", "the desired replica count is decreasing faster than the maximum scale rate")
READY = ("ReadyForNewScale", "recommended size matches current size")
UP_STABILIZED = ("ScaleUpStabilized",
                 "recent recommendations were lower than current one, applying the lowest recent recommendation")
DOWN_STABILIZED = ("ScaleDownStabilized",
                   "recent recommendations were higher than current one, applying the highest recent recommendation")


def convert_with_rules(current: int, desired: int, min_replicas: int, max_replicas: int) -> tuple[int, str, str]:
    """Bound ``desired`` without a behavior (``convertDesiredReplicasWithRules``)."""
    up_limit = int(max(SCALE_UP_LIMIT_FACTOR * current, SCALE_UP_LIMIT_MINIMUM))
    maximum, limit = (up_limit, UP_LIMIT) if max_replicas > up_limit else (max_replicas, TOO_MANY)
    if desired < min_replicas:
        return min_replicas, *TOO_FEW
    if desired > maximum:
        return maximum, *limit
    return desired, *WITHIN_RANGE


class Recommender:
    """The memory of the HPA controller, per HPA key: recent recommendations and scale events.

    ``clock`` gives seconds (any epoch); every time here comes from it. Not thread-safe, and
    needs none: the controller calls it from one event loop.
    """

    def __init__(self, clock: Callable[[], float], downscale_window: float) -> None:
        self.clock = clock
        self.downscale_window = downscale_window
        self._recommendations: dict[str, list[tuple[int, float]]] = {}
        self._up_events: dict[str, list[_ScaleEvent]] = {}
        self._down_events: dict[str, list[_ScaleEvent]] = {}

    def record_initial(self, key: str, current: int) -> None:
        """Seed the window with the current count the first time ``key`` is seen."""
        self._recommendations.setdefault(key, [(current, self.clock())])

    def forget(self, key: str) -> None:
        for memory in (self._recommendations, self._up_events, self._down_events):
            memory.pop(key, None)

    def _record(self, key: str, desired: int, replace: int | None) -> None:
        entry = (desired, self.clock())
        recs = self._recommendations.setdefault(key, [])
        if replace is None:
            recs.append(entry)
        else:
            recs[replace] = entry  # reuse an outdated slot, as Kubernetes does

    # -- without spec.behavior -----------------------------------------------------------------

    def normalize(self, key: str, current: int, desired: int, min_replicas: int, max_replicas: int) -> Decision:
        """``normalizeDesiredReplicas``: the highest recommendation of the downscale window, bounded."""
        now = self.clock()
        cutoff = now - self.downscale_window
        highest, old = desired, None
        for i, (rec, at) in enumerate(self._recommendations.get(key, [])):
            if at < cutoff:
                old = i
            elif rec > highest:
                highest = rec
        self._record(key, desired, old)
        able = DOWN_STABILIZED if highest != desired else READY
        replicas, reason, message = convert_with_rules(current, highest, min_replicas, max_replicas)
        return Decision(replicas, *able, replicas != highest, reason, message)

    # -- with spec.behavior --------------------------------------------------------------------

    def normalize_with_behavior(self, key: str, current: int, desired: int, min_replicas: int,
                                max_replicas: int, up: Rules, down: Rules) -> Decision:
        """``normalizeDesiredReplicasWithBehaviors``: stabilize within the windows, then limit the rate."""
        stabilized, able = self._stabilize(key, current, desired, up.window, down.window)
        if stabilized == desired:
            able = READY
        replicas, reason, message = self._limit_rate(key, current, stabilized, min_replicas, max_replicas, up, down)
        return Decision(replicas, *able, replicas != stabilized, reason, message)

    def _stabilize(self, key: str, current: int, desired: int, up_window: int,
                   down_window: int) -> tuple[int, tuple[str, str]]:
        now = self.clock()
        up_cutoff, down_cutoff = now - up_window, now - down_window
        up_rec = down_rec = desired
        old = None
        for i, (rec, at) in enumerate(self._recommendations.get(key, [])):
            if at > up_cutoff:
                up_rec = min(rec, up_rec)
            if at > down_cutoff:
                down_rec = max(rec, down_rec)
            if at < up_cutoff and at < down_cutoff:
                old = i
        recommendation = min(max(current, up_rec), down_rec)
        self._record(key, desired, old)
        return recommendation, (UP_STABILIZED if desired >= current else DOWN_STABILIZED)

    def _changed_within(self, events: list[_ScaleEvent], period: int) -> int:
        cutoff = self.clock() - period
        return sum(e.change for e in events if e.at > cutoff)

    def _period_start(self, key: str, current: int, period: int) -> int:
        added = self._changed_within(self._up_events.get(key, []), period)
        removed = self._changed_within(self._down_events.get(key, []), period)
        return current - added + removed

    def scale_up_limit(self, key: str, current: int, rules: Rules) -> int:
        """The most replicas the policies allow now (``calculateScaleUpLimitWithScalingRules``)."""
        if rules.select == "Disabled":
            return current
        pick, result = (min, INT32_MAX) if rules.select == "Min" else (max, INT32_MIN)
        for p in rules.policies:
            start = self._period_start(key, current, p.period)
            proposed = start + p.value if p.type == "Pods" else math.ceil(start * (1 + p.value / 100))
            result = pick(result, proposed)
        return result

    def scale_down_limit(self, key: str, current: int, rules: Rules) -> int:
        """The fewest replicas the policies allow now (``calculateScaleDownLimitWithBehaviors``)."""
        if rules.select == "Disabled":
            return current
        pick, result = (max, INT32_MIN) if rules.select == "Min" else (min, INT32_MAX)
        for p in rules.policies:
            start = self._period_start(key, current, p.period)
            proposed = start - p.value if p.type == "Pods" else int(start * (1 - p.value / 100))
            result = pick(result, proposed)
        return result

    def _limit_rate(self, key: str, current: int, desired: int, min_replicas: int, max_replicas: int,
                    up: Rules, down: Rules) -> tuple[int, str, str]:
        if desired > current:
            up_limit = max(self.scale_up_limit(key, current, up), current)
            maximum, limit = (up_limit, UP_LIMIT) if max_replicas > up_limit else (max_replicas, TOO_MANY)
            if desired > maximum:
                return maximum, *limit
        elif desired < current:
            down_limit = min(self.scale_down_limit(key, current, down), current)
            minimum, limit = (down_limit, DOWN_LIMIT) if min_replicas < down_limit else (min_replicas, TOO_FEW)
            if desired < minimum:
                return minimum, *limit
        return desired, *WITHIN_RANGE

    def store_scale_event(self, key: str, rules: tuple[Rules, Rules] | None, before: int, after: int) -> None:
        """Remember a rescale for the policies' periods (``storeScaleEvent``; nothing without a behavior)."""
        if rules is None:
            return
        up, down = rules
        scaling_up = after > before
        memory = self._up_events if scaling_up else self._down_events
        events = memory.setdefault(key, [])
        cutoff = self.clock() - (up if scaling_up else down).longest_period
        old = None
        for i, e in enumerate(events):
            if e.at < cutoff:
                e.outdated = True
            if e.outdated:
                old = i
        event = _ScaleEvent(abs(after - before), self.clock())
        if old is None:
            events.append(event)
        else:
            events[old] = event


# --- conditions -----------------------------------------------------------------------------------


def set_condition(conditions: list[Obj], ctype: str, status: str, reason: str, message: str,
                  now: str) -> list[Obj]:
    """``setConditionInList``: set one condition, its transition time moved only when its status changes."""
    for c in conditions:
        if c.get("type") == ctype:
            if c.get("status") != status:
                c["lastTransitionTime"] = now
            c.update(status=status, reason=reason, message=message)
            return conditions
    conditions.append({"type": ctype, "status": status, "lastTransitionTime": now,
                       "reason": reason, "message": message})
    return conditions
