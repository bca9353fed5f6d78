"""The HorizontalPodAutoscaler controller (``pkg/controller/podautoscaler/horizontal.go``).

kube-controller-manager's ``horizontalpodautoscaling``: every HPA (read as ``autoscaling/v2``;
``autoscaling/v1`` objects are the same objects, converted by the API server) is reconciled once
per ``--horizontal-pod-autoscaler-sync-period`` (15 s), the first time one period after it is seen,
as Kubernetes' fixed-interval queue does. One reconcile:

1. read the target's ``/scale`` (any kind with a scale subresource, custom resources included:
   the kind is mapped to its resource through discovery); failure: ``AbleToScale`` False
   ``FailedGetScale`` and a Warning event;
2. a target at 0 replicas is not scaled (``ScalingActive`` False ``ScalingDisabled``); one above
   ``maxReplicas`` or below ``minReplicas`` is brought within them; otherwise each metric proposes
   a count (the replica calculation of :mod:`.podautoscaler_plan` on samples from
   :mod:`.podautoscaler_metrics`; ``Pods``, ``Object`` and ``External`` sources through
   :mod:`.podautoscaler_custom`) and the highest wins (``ScalingActive`` True
   ``ValidMetricFound``); if every metric failed, or some did and the rest would scale down,
   nothing is scaled and the first failure sets ``ScalingActive`` False;
3. the proposal is normalised (stabilization windows, policies, min/max: ``AbleToScale`` and
   ``ScalingLimited`` conditions) and, if it differs, written to ``/scale`` with a
   ``SuccessfulRescale`` event ("New size: N; reason: ...");
4. the status (currentReplicas, desiredReplicas, currentMetrics, lastScaleTime, conditions) is
   written when it changed.

Events are recorded as ``horizontal-pod-autoscaler``, Kubernetes' component name.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field

from kybernetes import errors
from kybernetes.api.label_selectors import LabelSelector, parse_label_selector
from kybernetes.api.obj import Obj
from kybernetes.api.quantity import cpu_millis
from kybernetes.api.timeutil import format_rfc3339
from kybernetes.controllers import podautoscaler_custom as custom
from kybernetes.controllers import podautoscaler_monitor as monitor
from kybernetes.controllers import podautoscaler_plan as plan
from kybernetes.controllers.base import Controller, ControllerContext
from kybernetes.controllers.discovery import APIResource, shared_discovery
from kybernetes.controllers.podautoscaler_custom import milli as _milli
from kybernetes.controllers.podautoscaler_metrics import MetricsClient, ResourceMetricsClient
from kybernetes.controllers.podautoscaler_plan import MetricError

log = logging.getLogger(__name__)

HPA_API = "autoscaling/v2"
HPA_PLURAL = "horizontalpodautoscalers"


@dataclass
class _Metrics:
    """What :meth:`HorizontalController._compute` found for all metrics together."""

    replicas: int = 0
    name: str = ""
    statuses: list[Obj] | None = None
    error: str = ""


@dataclass
class _Reconcile:
    """One reconcile's working copy of the HPA and what it learned."""

    hpa: Obj
    key: str
    now: str
    conditions: list[Obj] = field(default_factory=list)
    action: str = monitor.NONE
    error: str = monitor.NONE
    """The reconcile's labels for the controller's metrics; the first error is the one reported."""

    def failed(self, kind: str = monitor.INTERNAL) -> None:
        if self.error == monitor.NONE:
            self.error = kind

    @property
    def ns(self) -> str:
        return str(self.hpa["metadata"].get("namespace", ""))

    @property
    def spec(self) -> Obj:
        return self.hpa.get("spec") or {}

    def condition(self, ctype: str, status: str, reason: str, message: str) -> None:
        plan.set_condition(self.conditions, ctype, status, reason, message, self.now)


class HorizontalController(Controller):
    name = "horizontalpodautoscaling"
    service_account = "horizontal-pod-autoscaler"
    queue_name = "horizontalpodautoscaler"  # kube-controller-manager's name for the queue
    workers = 5  # --concurrent-horizontal-pod-autoscaler-syncs

    def __init__(self, ctx: ControllerContext, metrics: MetricsClient | None = None) -> None:
        super().__init__(ctx)
        self.recorder = ctx.recorder("horizontal-pod-autoscaler")  # Kubernetes' event source
        self.sync_period = float(ctx.option("horizontal-pod-autoscaler-sync-period", 15.0))
        self.downscale_window = float(ctx.option("horizontal-pod-autoscaler-downscale-stabilization", 300.0))
        self.tuning = plan.Tuning(
            tolerance=float(ctx.option("horizontal-pod-autoscaler-tolerance", 0.1)),
            cpu_initialization_period=float(ctx.option("horizontal-pod-autoscaler-cpu-initialization-period", 300.0)),
            initial_readiness_delay=float(ctx.option("horizontal-pod-autoscaler-initial-readiness-delay", 30.0)))
        self.recommender = plan.Recommender(ctx.clock.now, self.downscale_window)
        self.metrics: MetricsClient = metrics or ResourceMetricsClient(self.client)
        self.discovery = shared_discovery(ctx.client)
        self._selectors: dict[str, LabelSelector] = {}
        self.hpas = self.informer(HPA_API, HPA_PLURAL)
        self.pods = self.informer("v1", "pods")
        self.hpas.add_handler(on_add=self._enqueue_later, on_update=lambda old, new: self._enqueue_later(new),
                              on_delete=self._deleted)

    def _enqueue_later(self, hpa: Obj) -> None:
        # Kubernetes' queue hands each HPA out once per sync period, the first time too.
        self.enqueue_after(hpa, self.sync_period)

    def _deleted(self, hpa: Obj) -> None:
        key = f"{hpa['metadata'].get('namespace', '')}/{hpa['metadata'].get('name', '')}"
        self.recommender.forget(key)
        self._selectors.pop(key, None)

    async def sync(self, key: str) -> None:
        cached = self.hpas.store.get(key)
        if cached is None:
            self.recommender.forget(key)
            self._selectors.pop(key, None)
            return
        r = _Reconcile(copy.deepcopy(cached), key, format_rfc3339())
        start = time.perf_counter()
        try:
            await self._reconcile(r)
        except errors.StatusError as e:
            r.failed()
            log.warning("horizontal pod autoscaler %s: %s", key, e.message)
        except BaseException:
            r.failed()
            raise
        finally:
            monitor.reconciled(r.action, r.error, time.perf_counter() - start)
            self.queue.add_after(key, self.sync_period)

    # --- one reconcile ----------------------------------------------------------------------------

    async def _reconcile(self, r: _Reconcile) -> None:
        hpa, spec = r.hpa, r.spec
        original = copy.deepcopy(hpa.get("status") or {})
        r.conditions = copy.deepcopy((hpa.get("status") or {}).get("conditions") or [])
        ref = spec.get("scaleTargetRef") or {}
        found = await self._scale(r, ref)
        if found is None:  # only the conditions change
            await self._write_status(r, original, self._status(r, original.get("currentReplicas", 0),
                                                               original.get("desiredReplicas", 0),
                                                               original.get("currentMetrics"), False))
            return
        target, scale = found
        r.condition("AbleToScale", "True", "SucceededGetScale", "the HPA controller was able to get the target's current scale")
        current = int((scale.get("spec") or {}).get("replicas") or 0)
        self.recommender.record_initial(r.key, current)
        min_replicas = spec.get("minReplicas")
        min_replicas = 1 if min_replicas is None else int(min_replicas)
        max_replicas = int(spec.get("maxReplicas") or 0)
        statuses: list[Obj] | None = None
        desired, reason, rescale = 0, "", True
        if current == 0 and min_replicas != 0:
            rescale = False
            r.condition("ScalingActive", "False", "ScalingDisabled", "scaling is disabled since the replica count of the target is zero")
        elif current > max_replicas:
            reason, desired = "Current number of replicas above Spec.MaxReplicas", max_replicas
        elif current < min_replicas:
            reason, desired = "Current number of replicas below Spec.MinReplicas", min_replicas
        else:
            found_metrics = await self._compute(r, scale)
            statuses = found_metrics.statuses
            if found_metrics.error:
                r.failed()  # some metric failed, even if the others scale
            if found_metrics.replicas < 0:
                await self._write_status(r, original, self._status(r, current, original.get("desiredReplicas", 0),
                                                                   statuses, False))
                self.recorder.event(hpa, "Warning", "FailedComputeMetricsReplicas", found_metrics.error)
                return
            desired = max(found_metrics.replicas, 0)
            if desired > current:
                reason = f"{found_metrics.name} above target"
            elif desired < current:
                reason = "All metrics below target"
            desired = self._normalize(r, current, desired, min_replicas, max_replicas)
            rescale = desired != current
        if rescale and not await self._rescale(r, target, scale, current, desired, reason):
            await self._write_status(r, original, self._status(r, current, original.get("desiredReplicas", 0),
                                                               statuses, False))
            return
        await self._write_status(r, original, self._status(r, current, desired if rescale else current,
                                                           statuses, rescale))

    async def _rescale(self, r: _Reconcile, target: APIResource, scale: Obj, current: int, desired: int,
                       reason: str) -> bool:
        """Write ``desired`` to the target's ``/scale``; whether it was written (conditions and events set)."""
        scale["spec"] = {**(scale.get("spec") or {}), "replicas": desired}
        try:
            await self.client.update(target.api_version, target.plural, scale, r.ns, subresource="scale")
        except errors.StatusError as e:
            r.failed()
            self.recorder.event(r.hpa, "Warning", "FailedRescale",
                                f"New size: {desired}; reason: {reason}; error: {e.message}")
            r.condition("AbleToScale", "False", "FailedUpdateScale",
                        f"the HPA controller was unable to update the target scale: {e.message}")
            return False
        r.condition("AbleToScale", "True", "SucceededRescale",
                    f"the HPA controller was able to update the target scale to {desired}")
        self.recorder.event(r.hpa, "Normal", "SuccessfulRescale", f"New size: {desired}; reason: {reason}")
        self.recommender.store_scale_event(r.key, self._rules(r.spec), current, desired)
        r.action = monitor.action(current, desired)
        log.info("rescaled %s/%s from %d to %d: %s", r.ns, r.hpa["metadata"]["name"], current, desired, reason)
        return True

    async def _scale(self, r: _Reconcile, ref: Obj) -> tuple[APIResource, Obj] | None:
        """The target's resource and Scale; None after recording why it could not be read."""
        api_version, kind, name = str(ref.get("apiVersion", "")), str(ref.get("kind", "")), str(ref.get("name", ""))
        group = api_version.rpartition("/")[0]
        message = ""
        if api_version.count("/") > 1:
            message = f"unexpected GroupVersion string: {api_version}"
            r.failed(monitor.SPEC)
        else:
            target = await self.discovery.resolve(api_version, kind)
            if target is None:
                message = f'no matches for kind "{kind}" in group "{group}"'
            else:
                try:
                    return target, await self.client.get(target.api_version, target.plural, name, r.ns,
                                                         subresource="scale")
                except errors.StatusError as e:
                    message = e.message
        r.failed()
        self.recorder.event(r.hpa, "Warning", "FailedGetScale", message)
        r.condition("AbleToScale", "False", "FailedGetScale",
                    f"the HPA controller was unable to get the target's current scale: {message}")
        return None

    def _rules(self, spec: Obj) -> tuple[plan.Rules, plan.Rules] | None:
        behavior = spec.get("behavior")
        return plan.behavior_rules(behavior, int(self.downscale_window)) if isinstance(behavior, dict) else None

    def _normalize(self, r: _Reconcile, current: int, desired: int, min_replicas: int, max_replicas: int) -> int:
        rules = self._rules(r.spec)
        if rules is None:
            d = self.recommender.normalize(r.key, current, desired, min_replicas, max_replicas)
        else:
            d = self.recommender.normalize_with_behavior(r.key, current, desired, min_replicas, max_replicas, *rules)
        r.condition("AbleToScale", "True", d.able_reason, d.able_message)
        r.condition("ScalingLimited", "True" if d.limited else "False", d.limited_reason, d.limited_message)
        return d.replicas

    # --- metrics ----------------------------------------------------------------------------------

    def _selector(self, r: _Reconcile, text: str) -> tuple[LabelSelector, list[Obj]]:
        """The scale's selector and the pods it selects (``validateAndParseSelector``); MetricError
        (with the event recorded and the condition set) if it cannot be used."""
        if not text:
            self.recorder.event(r.hpa, "Warning", "SelectorRequired", "selector is required")
            r.condition("ScalingActive", "False", "InvalidSelector", "the HPA target's scale is missing a selector")
            raise MetricError("selector is required")
        try:
            selector = parse_label_selector(text)
        except errors.StatusError as e:
            message = f"couldn't convert selector into a corresponding internal selector object: {e.message}"
            self.recorder.event(r.hpa, "Warning", "InvalidSelector", message)
            r.condition("ScalingActive", "False", "InvalidSelector", message)
            raise MetricError(message) from None
        self._selectors[r.key] = selector
        pods = [p for p in self.pods.store.by_index("namespace", r.ns)
                if selector.matches((p.get("metadata") or {}).get("labels") or {})]
        controlling = sorted(k for k, s in self._selectors.items() if k.startswith(f"{r.ns}/") and any(
            s.matches((p.get("metadata") or {}).get("labels") or {}) for p in pods))
        if len(controlling) > 1:
            keys = " ".join("{" + k.split("/", 1)[1] + " " + r.ns + "}" for k in controlling)
            message = f"pods by selector {text} are controlled by multiple HPAs: [{keys}]"
            self.recorder.event(r.hpa, "Warning", "AmbiguousSelector", message)
            r.condition("ScalingActive", "False", "AmbiguousSelector", message)
            raise MetricError(message)
        return selector, pods

    async def _compute(self, r: _Reconcile, scale: Obj) -> _Metrics:
        """``computeReplicasForMetrics``: the highest proposal; replicas -1 when nothing may be scaled."""
        try:
            selector, pods = self._selector(r, str((scale.get("status") or {}).get("selector") or ""))
        except MetricError as e:
            return _Metrics(-1, error=str(e))
        spec_replicas = int((scale.get("spec") or {}).get("replicas") or 0)
        target = custom.Target(r.ns, spec_replicas, int((scale.get("status") or {}).get("replicas") or 0),
                               str(selector), pods)
        specs = [m for m in r.spec.get("metrics") or [] if isinstance(m, dict)]
        out = _Metrics(statuses=[{"type": ""} for _ in specs])
        invalid, first_error, first_condition = 0, "", ("", "")
        before = int((r.hpa.get("status") or {}).get("currentReplicas") or 0)
        for i, metric in enumerate(specs):
            start = time.perf_counter()
            try:
                replicas, name, status = await self._compute_one(r, metric, target)
            except _MetricFailed as e:
                monitor.metric_computed(monitor.NONE, e.kind, str(metric.get("type", "")), time.perf_counter() - start)
                if not invalid:
                    first_error, first_condition = e.error, (e.reason, e.message)
                invalid += 1
                continue
            monitor.metric_computed(monitor.action(before, replicas), monitor.NONE, str(metric.get("type", "")),
                                    time.perf_counter() - start)
            assert out.statuses is not None
            out.statuses[i] = status
            if out.replicas == 0 or replicas > out.replicas:
                out.replicas, out.name = replicas, name
        if invalid:
            out.error = f"invalid metrics ({invalid} invalid out of {len(specs)}), first error is: {first_error}"
        if invalid >= len(specs) or (invalid and out.replicas < spec_replicas):
            r.condition("ScalingActive", "False", *first_condition)
            out.replicas = -1
            return out
        r.condition("ScalingActive", "True", "ValidMetricFound",
                    f"the HPA was able to successfully calculate a replica count from {out.name}")
        return out

    async def _compute_one(self, r: _Reconcile, metric: Obj, t: custom.Target) -> tuple[int, str, Obj]:
        kind = metric.get("type")
        current, selector, pods = t.spec_replicas, t.selector, t.pods
        if kind in ("Resource", "ContainerResource"):
            field_name = "resource" if kind == "Resource" else "containerResource"
            source = metric.get(field_name) or {}
            container = str(source.get("container", "")) if kind == "ContainerResource" else ""
            reason = "FailedGetResourceMetric" if kind == "Resource" else "FailedGetContainerResourceMetric"
            try:
                replicas, name, current_value = await self._resource(r, source, container, current, selector, pods)
            except MetricError as e:
                raise self._failed(r, reason, str(e), f"failed to get {container} container metric value: {e}"
                                   if container else f"failed to get {source.get('name', '')} resource metric value: {e}")
            status: Obj = {"name": source.get("name", "")}
            if container:
                status["container"] = container
            status["current"] = current_value
            return replicas, name, {"type": kind, field_name: status}
        if kind not in ("Pods", "Object", "External"):
            message = f'unknown metric source type "{kind}"'
            raise self._failed(r, "InvalidMetricSourceType", message, message, monitor.SPEC)
        try:
            return await custom.compute(str(kind), metric, t, self.metrics, self.discovery.resolve, self.tuning)
        except custom.Failure as e:
            raise self._failed(r, e.reason, e.detail, e.error) from None

    async def _resource(self, r: _Reconcile, source: Obj, container: str, current: int, selector: str,
                        pods: list[Obj]) -> tuple[int, str, Obj]:
        """``computeStatusForResourceMetricGeneric``: (replicas, metric description, current value)."""
        resource, target = str(source.get("name", "")), source.get("target") or {}
        if target.get("averageValue") is not None:
            try:
                samples = await self._samples(resource, r.ns, selector, container)
                replicas, usage = plan.plain_replicas(current, cpu_millis(target["averageValue"]), resource, pods,
                                                      samples, time.time(), self.tuning)
            except MetricError as e:
                raise MetricError(f"failed to get {resource} usage: {e}") from None
            return replicas, f"{resource} resource", {"averageValue": _milli(usage)}
        if target.get("averageUtilization") is None:
            raise MetricError("invalid resource metric source: neither an average utilization target nor an "
                              "average value (usage) target was set")
        try:
            samples = await self._samples(resource, r.ns, selector, container)
            replicas, utilization, raw = plan.resource_replicas(current, int(target["averageUtilization"]), resource,
                                                                pods, samples, time.time(), self.tuning, container)
        except MetricError as e:
            raise MetricError(f"failed to get {resource} utilization: {e}") from None
        what = "container resource" if container else "resource"
        return (replicas, f"{resource} {what} utilization (percentage of request)",
                {"averageValue": _milli(raw), "averageUtilization": utilization})

    async def _samples(self, resource: str, ns: str, selector: str, container: str) -> dict[str, plan.PodMetric]:
        try:
            samples, _ = await self.metrics.pod_resource_metrics(resource, ns, selector, container)
        except MetricError as e:
            raise MetricError(f"unable to get metrics for resource {resource}: {e}") from None
        return samples

    def _failed(self, r: _Reconcile, reason: str, detail: str, error: str,
                kind: str = monitor.INTERNAL) -> _MetricFailed:
        """``getUnableComputeReplicaCountCondition``: the event now, the condition for later."""
        self.recorder.event(r.hpa, "Warning", reason, detail)
        return _MetricFailed(reason, f"the HPA was unable to compute the replica count: {detail}", error, kind)

    # --- status -----------------------------------------------------------------------------------

    def _status(self, r: _Reconcile, current: int, desired: int, statuses: list[Obj] | None, rescaled: bool) -> Obj:
        old = r.hpa.get("status") or {}
        status: Obj = {}
        if old.get("observedGeneration") is not None:
            status["observedGeneration"] = old["observedGeneration"]
        last = r.now if rescaled else old.get("lastScaleTime")
        if last:
            status["lastScaleTime"] = last
        if current:
            status["currentReplicas"] = current
        status["desiredReplicas"] = desired
        if statuses:
            status["currentMetrics"] = statuses
        if r.conditions:
            status["conditions"] = r.conditions
        return status

    async def _write_status(self, r: _Reconcile, original: Obj, status: Obj) -> None:
        if status == original:
            return
        hpa = {**r.hpa, "status": status}
        try:
            await self.client.update(HPA_API, HPA_PLURAL, hpa, r.ns, subresource="status")
        except errors.StatusError as e:
            r.failed()
            self.recorder.event(r.hpa, "Warning", "FailedUpdateStatus", e.message)
            raise


class _MetricFailed(Exception):
    def __init__(self, reason: str, message: str, error: str, kind: str) -> None:
        super().__init__(error)
        self.reason, self.message, self.error, self.kind = reason, message, error, kind


CONTROLLERS = [HorizontalController]

__all__ = ["CONTROLLERS", "HorizontalController"]
