"""autoscaling: the HorizontalPodAutoscaler strategy (autoscaling/v2, the stored form), and
autoscaling/v1 HorizontalPodAutoscalers: the autoscaling/v2 objects in the older shape.

Both versions serve the same objects, stored as autoscaling/v2 (the preferred version, as in
Kubernetes 1.32). v1 knows one metric, a CPU utilization target; what else a v2 object holds
travels in annotations, as ``pkg/apis/autoscaling/v1/conversion.go`` does it, so a v1 client that
reads an object and writes it back loses nothing:

* ``autoscaling.alpha.kubernetes.io/metrics``: every spec metric but CPU utilization, as
  autoscaling/v1 ``MetricSpec`` JSON (the v2beta1 shape: ``targetAverageUtilization``, ...);
* ``autoscaling.alpha.kubernetes.io/current-metrics``: every status metric, as ``MetricStatus``;
* ``autoscaling.alpha.kubernetes.io/behavior``: ``spec.behavior``, as Kubernetes' *internal* Go
  type marshals it (``{"ScaleUp":{"StabilizationWindowSeconds":0,...}}``; read back
  case-insensitively, as Go's decoder does);
* ``autoscaling.alpha.kubernetes.io/conditions``: ``status.conditions``.

Reading a v1 object into v2 takes the annotations back out (a malformed one is ignored); a v1
object without metrics gets the CPU utilization default of 80%, as v1's implicit one was. Writes
through v2 drop these annotations (:func:`drop_round_trip_annotations`, called by the v2
strategy), so only the conversion ever sets them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from kybernetes.api import validation as v
from kybernetes.api.label_selectors import validate_label_selector_object
from kybernetes.api.validation import FieldError, Path
from kybernetes.api.validation.fields import (
    as_dict,
    as_list,
    is_int,
    names_msgs,
    path_segment_name_msgs,
    quantity_or_none,
    validate_nonneg,
)
from kybernetes.apiserver.registry.apps import spec_of
from kybernetes.apiserver.registry.conversion import Stored, View
from kybernetes.apiserver.registry.strategy import Obj, Strategy

V1 = "autoscaling/v1"
V2 = "autoscaling/v2"
METRICS = "autoscaling.alpha.kubernetes.io/metrics"
CURRENT_METRICS = "autoscaling.alpha.kubernetes.io/current-metrics"
BEHAVIOR = "autoscaling.alpha.kubernetes.io/behavior"
CONDITIONS = "autoscaling.alpha.kubernetes.io/conditions"
ROUND_TRIP_ANNOTATIONS = (METRICS, BEHAVIOR, CURRENT_METRICS, CONDITIONS)
DEFAULT_CPU_UTILIZATION = 80

_SOURCE_FIELDS = (("Object", "object"), ("Pods", "pods"), ("Resource", "resource"),
                  ("ContainerResource", "containerResource"), ("External", "external"))


def _d(x: Any) -> Obj:
    return x if isinstance(x, dict) else {}


def _put(out: Obj, key: str, value: Any) -> None:
    """Set an ``omitempty`` field: left out when Go would leave it out."""
    if value not in (None, "", [], {}):
        out[key] = value


def _go_json(value: Any) -> str:
    """Compact JSON as Go's encoding/json writes it (it escapes <, >, & and U+2028/9)."""
    text = orjson.dumps(value).decode()
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text


def _parse_list(text: Any) -> list[Obj] | None:
    try:
        value = orjson.loads(text)
    except (orjson.JSONDecodeError, TypeError):
        return None
    return value if isinstance(value, list) and all(isinstance(x, dict) for x in value) else None


def drop_round_trip_annotations(obj: Obj) -> None:
    """Remove the annotations only the v1 conversion may set (``DropRoundTripHorizontalPodAutoscalerAnnotations``)."""
    meta = _d(obj.get("metadata"))
    annotations = meta.get("annotations")
    if isinstance(annotations, dict) and any(k in annotations for k in ROUND_TRIP_ANNOTATIONS):
        kept = {k: x for k, x in annotations.items() if k not in ROUND_TRIP_ANNOTATIONS}
        if kept:
            meta["annotations"] = kept
        else:
            del meta["annotations"]


# --- metrics: v2 <-> the v1 annotation shape --------------------------------------------------------


def _ident(metric: Obj) -> tuple[Any, Any]:
    return metric.get("name", ""), metric.get("selector")


def _source_to_v1(kind: str, src: Obj) -> Obj:
    target = _d(src.get("target"))
    out: Obj = {}
    if kind in ("Resource", "ContainerResource"):
        out["name"] = src.get("name", "")
        _put(out, "targetAverageUtilization", target.get("averageUtilization"))
        _put(out, "targetAverageValue", target.get("averageValue"))
        if kind == "ContainerResource":
            out["container"] = src.get("container", "")
        return out
    name, selector = _ident(_d(src.get("metric")))
    if kind == "Object":
        out["target"] = _d(src.get("describedObject"))
        out["metricName"] = name
        out["targetValue"] = target.get("value") or "0"
        _put(out, "selector", selector)
        _put(out, "averageValue", target.get("averageValue"))
    elif kind == "Pods":
        out.update(metricName=name, targetAverageValue=target.get("averageValue") or "0")
        _put(out, "selector", selector)
    else:  # External
        out["metricName"] = name
        _put(out, "metricSelector", selector)
        _put(out, "targetValue", target.get("value"))
        _put(out, "targetAverageValue", target.get("averageValue"))
    return out


def _source_to_v2(kind: str, src: Obj) -> Obj:
    if kind in ("Resource", "ContainerResource"):
        util, avg = src.get("targetAverageUtilization"), src.get("targetAverageValue")
        target: Obj = {"type": "Utilization" if util is not None else "AverageValue"}
        _put(target, "averageValue", avg)
        _put(target, "averageUtilization", util)
        out: Obj = {"name": src.get("name", "")}
        if kind == "ContainerResource":
            out["container"] = src.get("container", "")
        out["target"] = target
        return out
    metric: Obj = {"name": src.get("metricName", "")}
    if kind == "Object":
        _put(metric, "selector", src.get("selector"))
        avg = src.get("averageValue")
        target = {"type": "Value" if avg is None else "AverageValue", "value": src.get("targetValue") or "0"}
        _put(target, "averageValue", avg)
        return {"describedObject": _d(src.get("target")), "target": target, "metric": metric}
    if kind == "Pods":
        _put(metric, "selector", src.get("selector"))
        return {"metric": metric, "target": {"type": "AverageValue", "averageValue": src.get("targetAverageValue") or "0"}}
    _put(metric, "selector", src.get("metricSelector"))  # External
    value = src.get("targetValue")
    target = {"type": "AverageValue" if value is None else "Value"}
    _put(target, "value", value)
    _put(target, "averageValue", src.get("targetAverageValue"))
    return {"metric": metric, "target": target}


def _status_to_v1(kind: str, src: Obj) -> Obj:
    current = _d(src.get("current"))
    out: Obj = {}
    if kind in ("Resource", "ContainerResource"):
        out["name"] = src.get("name", "")
        _put(out, "currentAverageUtilization", current.get("averageUtilization"))
        out["currentAverageValue"] = current.get("averageValue") or "0"
        if kind == "ContainerResource":
            out["container"] = src.get("container", "")
        return out
    name, selector = _ident(_d(src.get("metric")))
    if kind == "Object":
        out.update(target=_d(src.get("describedObject")), metricName=name, currentValue=current.get("value") or "0")
        _put(out, "selector", selector)
        _put(out, "averageValue", current.get("averageValue"))
    elif kind == "Pods":
        out.update(metricName=name, currentAverageValue=current.get("averageValue") or "0")
        _put(out, "selector", selector)
    else:  # External
        out["metricName"] = name
        _put(out, "metricSelector", selector)
        out["currentValue"] = current.get("value") or "0"
        _put(out, "currentAverageValue", current.get("averageValue"))
    return out


def _status_to_v2(kind: str, src: Obj) -> Obj:
    if kind in ("Resource", "ContainerResource"):
        current: Obj = {"averageValue": src.get("currentAverageValue") or "0"}
        _put(current, "averageUtilization", src.get("currentAverageUtilization"))
        out: Obj = {"name": src.get("name", "")}
        if kind == "ContainerResource":
            out["container"] = src.get("container", "")
        out["current"] = current
        return out
    selector_key = "metricSelector" if kind == "External" else "selector"
    metric: Obj = {"name": src.get("metricName", "")}
    _put(metric, "selector", src.get(selector_key))
    if kind == "Pods":
        return {"metric": metric, "current": {"averageValue": src.get("currentAverageValue") or "0"}}
    value_key, avg_key = ("currentValue", "averageValue") if kind == "Object" else ("currentValue", "currentAverageValue")
    current = {"value": src.get(value_key) or "0"}
    _put(current, "averageValue", src.get(avg_key))
    if kind == "Object":
        return {"metric": metric, "current": current, "describedObject": _d(src.get("target"))}
    return {"metric": metric, "current": current}


def _each_source(metrics: list[Obj], convert: Callable[[str, Obj], Obj]) -> list[Obj]:
    """Metric specs or statuses with each one's source (object, pods, ...) converted."""
    out = []
    for m in metrics:
        item: Obj = {"type": m.get("type", "")}
        for kind, field in _SOURCE_FIELDS:
            if isinstance(m.get(field), dict):
                item[field] = convert(kind, m[field])
        out.append(item)
    return out


def _is_cpu(metric: Obj, part: str) -> bool:
    res = _d(metric.get("resource"))
    return metric.get("type") == "Resource" and bool(metric.get("resource")) and res.get("name") == "cpu" \
        and _d(res.get(part)).get("averageUtilization") is not None


# --- behavior: v2 <-> the internal Go JSON of the annotation -----------------------------------------

_RULES = (("stabilizationWindowSeconds", "StabilizationWindowSeconds"), ("selectPolicy", "SelectPolicy"))
_POLICY = (("type", "Type"), ("value", "Value"), ("periodSeconds", "PeriodSeconds"))


def _behavior_to_annotation(behavior: Obj) -> str:
    def rules(r: Any) -> Obj | None:
        if not isinstance(r, dict):
            return None
        out: Obj = {go: r.get(name) for name, go in _RULES}
        policies = r.get("policies")
        out["Policies"] = [{go: _d(p).get(name, "" if name == "type" else 0) for name, go in _POLICY}
                           for p in policies] if isinstance(policies, list) else None
        return out

    return _go_json({"ScaleUp": rules(behavior.get("scaleUp")), "ScaleDown": rules(behavior.get("scaleDown"))})


def _fold(d: Obj) -> Obj:
    return {k.lower(): x for k, x in d.items()} if isinstance(d, dict) else {}


def _behavior_from_annotation(text: Any) -> Obj | None:
    """spec.behavior from the annotation; None unless it is well-formed and not empty."""
    try:
        raw = _fold(orjson.loads(text))
    except (orjson.JSONDecodeError, TypeError):
        return None
    out: Obj = {}
    for name, go in (("scaleUp", "ScaleUp"), ("scaleDown", "ScaleDown")):
        r = raw.get(go.lower())
        if r is None:
            continue
        if not isinstance(r, dict):
            return None
        r = _fold(r)
        rules: Obj = {}
        for field, gofield in _RULES:
            _put(rules, field, r.get(gofield.lower()))
        if r.get("policies") is not None:
            if not isinstance(r["policies"], list) or not all(isinstance(p, dict) for p in r["policies"]):
                return None
            rules["policies"] = [{field: _fold(p).get(gofield.lower()) for field, gofield in _POLICY}
                                 for p in r["policies"]]
        out[name] = rules
    return out or None


# --- the objects -----------------------------------------------------------------------------------


def to_v1(hpa: Obj) -> Obj:
    """An autoscaling/v2 HPA as autoscaling/v1 (``Convert_autoscaling_HorizontalPodAutoscaler_To_v1_...``)."""
    spec, status = _d(hpa.get("spec")), _d(hpa.get("status"))
    metrics = [m for m in spec.get("metrics") or [] if isinstance(m, dict)]
    meta = dict(_d(hpa.get("metadata")))
    out: Obj = {"kind": "HorizontalPodAutoscaler", "apiVersion": V1, "metadata": meta}
    drop_round_trip_annotations(out)
    annotations: dict[str, str] = {}
    other = [m for m in metrics if not _is_cpu(m, "target")]
    if other:
        annotations[METRICS] = _go_json(_each_source(other, _source_to_v1))
    current_metrics = [m for m in status.get("currentMetrics") or [] if isinstance(m, dict)]
    if current_metrics:
        annotations[CURRENT_METRICS] = _go_json(_each_source(current_metrics, _status_to_v1))
    if isinstance(spec.get("behavior"), dict):
        annotations[BEHAVIOR] = _behavior_to_annotation(spec["behavior"])
    conditions = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
    if conditions:
        annotations[CONDITIONS] = _go_json([{"type": c.get("type", ""), "status": c.get("status", ""),
                                             "lastTransitionTime": c.get("lastTransitionTime"),
                                             **{k: c[k] for k in ("reason", "message") if c.get(k)}}
                                            for c in conditions])
    if annotations:
        meta["annotations"] = {**_d(meta.get("annotations")), **annotations}

    v1_spec: Obj = {"scaleTargetRef": spec.get("scaleTargetRef", {})}
    _put(v1_spec, "minReplicas", spec.get("minReplicas"))
    v1_spec["maxReplicas"] = spec.get("maxReplicas", 0)
    cpu = next((m for m in metrics if m.get("type") == "Resource" and bool(m.get("resource"))
                and _d(m.get("resource")).get("name") == "cpu"), None)
    if cpu is not None:
        _put(v1_spec, "targetCPUUtilizationPercentage", _d(_d(cpu["resource"]).get("target")).get("averageUtilization"))
    out["spec"] = v1_spec

    v1_status: Obj = {}
    _put(v1_status, "observedGeneration", status.get("observedGeneration"))
    _put(v1_status, "lastScaleTime", status.get("lastScaleTime"))
    v1_status["currentReplicas"] = status.get("currentReplicas", 0)
    v1_status["desiredReplicas"] = status.get("desiredReplicas", 0)
    for m in current_metrics:  # the last CPU utilization wins, as in Kubernetes
        if _is_cpu(m, "current"):
            v1_status["currentCPUUtilizationPercentage"] = m["resource"]["current"]["averageUtilization"]
    out["status"] = v1_status
    return out


def to_v2(hpa: Obj) -> Obj:
    """An autoscaling/v1 HPA as autoscaling/v2 (``Convert_v1_HorizontalPodAutoscaler_To_autoscaling_...``)."""
    spec, status = _d(hpa.get("spec")), _d(hpa.get("status"))
    annotations = _d(_d(hpa.get("metadata")).get("annotations"))
    out: Obj = {"kind": "HorizontalPodAutoscaler", "apiVersion": V2, "metadata": dict(_d(hpa.get("metadata")))}
    drop_round_trip_annotations(out)

    metrics: list[Obj] = []
    other = _parse_list(annotations[METRICS]) if METRICS in annotations else None
    if other is not None:
        metrics = _each_source(other, _source_to_v2)
    if spec.get("targetCPUUtilizationPercentage") is not None:
        metrics.append({"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": spec["targetCPUUtilizationPercentage"]}}})
    if not metrics:
        metrics = [{"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": DEFAULT_CPU_UTILIZATION}}}]
    v2_spec: Obj = {"scaleTargetRef": spec.get("scaleTargetRef", {})}
    _put(v2_spec, "minReplicas", spec.get("minReplicas"))
    v2_spec["maxReplicas"] = spec.get("maxReplicas", 0)
    v2_spec["metrics"] = metrics
    behavior = _behavior_from_annotation(annotations[BEHAVIOR]) if BEHAVIOR in annotations else None
    _put(v2_spec, "behavior", behavior)
    out["spec"] = v2_spec

    v2_status: Obj = {}
    _put(v2_status, "observedGeneration", status.get("observedGeneration"))
    _put(v2_status, "lastScaleTime", status.get("lastScaleTime"))
    if status.get("currentReplicas"):  # an int32 with omitempty: 0 is left out
        v2_status["currentReplicas"] = status["currentReplicas"]
    v2_status["desiredReplicas"] = status.get("desiredReplicas", 0)
    current = _parse_list(annotations[CURRENT_METRICS]) if CURRENT_METRICS in annotations else None
    if current is not None:
        _put(v2_status, "currentMetrics", _each_source(current, _status_to_v2))
    elif status.get("currentCPUUtilizationPercentage") is not None:
        v2_status["currentMetrics"] = [{"type": "Resource", "resource": {"name": "cpu", "current": {
            "averageUtilization": status["currentCPUUtilizationPercentage"]}}}]
    conditions = _parse_list(annotations[CONDITIONS]) if CONDITIONS in annotations else None
    _put(v2_status, "conditions", conditions)
    out["status"] = v2_status
    return out


STORED = Stored(("autoscaling", "horizontalpodautoscalers"), V2, (View(V1, to_v2, to_v1),))

# --- autoscaling/v2 HorizontalPodAutoscaler ----------------------------------------------------

METRIC_SOURCE_TYPES = ("ContainerResource", "External", "Object", "Pods", "Resource")
_SOURCE_FIELD = {"ContainerResource": "containerResource", "External": "external", "Object": "object",
                 "Pods": "pods", "Resource": "resource"}
SELECT_POLICIES = ("Disabled", "Max", "Min")
SCALING_POLICY_TYPES = ("Percent", "Pods")
MAX_STABILIZATION_WINDOW = 3600
MAX_PERIOD_SECONDS = 1800
DEFAULT_CPU_UTILIZATION = 80


def _scale_up_rules() -> dict[str, Any]:
    return {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
        {"type": "Pods", "value": 4, "periodSeconds": 15},
        {"type": "Percent", "value": 100, "periodSeconds": 15},
    ]}


def _scale_down_rules() -> dict[str, Any]:
    # No stabilization window: the controller's --horizontal-pod-autoscaler-downscale-stabilization applies.
    return {"selectPolicy": "Max", "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}


def _merge_rules(given: Any, defaults: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(given, dict):
        return defaults
    for f in ("selectPolicy", "stabilizationWindowSeconds", "policies"):
        if given.get(f) is not None:
            defaults[f] = given[f]
    return defaults


def _validate_cross_version_ref(ref: Any, path: Path) -> list[FieldError]:
    ref = as_dict(ref)
    errs: list[FieldError] = []
    for f in ("kind", "name"):
        if not ref.get(f):
            errs.append(v.required(path.child(f)))
        else:
            errs += names_msgs(ref[f], path.child(f), path_segment_name_msgs)
    return errs


def _validate_metric_target(target: dict[str, Any], path: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    kind = target.get("type")
    if not kind:
        errs.append(v.required(path.child("type"), "must specify a metric target type"))
    if kind not in ("Utilization", "Value", "AverageValue"):
        errs.append(v.invalid(path.child("type"), kind or "", "must be either Utilization, Value, or AverageValue"))
    for f in ("value", "averageValue"):
        if target.get(f) is not None:
            qty = quantity_or_none(target[f])
            if qty is None or qty <= 0:
                errs.append(v.invalid(path.child(f), target[f], "must be positive"))
    util = target.get("averageUtilization")
    if util is not None and (not is_int(util) or util < 1):
        errs.append(v.invalid(path.child("averageUtilization"), util, "must be greater than 0"))
    return errs


def _validate_metric_source(kind: str, src: dict[str, Any], path: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    target = as_dict(src.get("target"))
    tp = path.child("target")
    if kind in ("Resource", "ContainerResource"):
        if not src.get("name"):
            errs.append(v.required(path.child("name"), "must specify a resource name"))
        if kind == "ContainerResource" and not src.get("container"):
            errs.append(v.required(path.child("container"), "must specify a container"))
        errs += _validate_metric_target(target, tp)
        if target.get("averageUtilization") is None and target.get("averageValue") is None:
            errs.append(v.required(tp.child("averageUtilization"), "must set either a target raw value or a target utilization"))
        if target.get("averageUtilization") is not None and target.get("averageValue") is not None:
            errs.append(v.forbidden(tp.child("averageValue"), "may not set both a target raw value and a target utilization"))
        return errs
    metric = as_dict(src.get("metric"))
    if not metric.get("name"):
        errs.append(v.required(path.child("metric", "name"), "must specify a metric name"))
    if metric.get("selector") is not None:
        errs += validate_label_selector_object(metric["selector"], path.child("metric", "selector"))
    errs += _validate_metric_target(target, tp)
    if kind == "Object":
        errs += _validate_cross_version_ref(src.get("describedObject"), path.child("describedObject"))
        if target.get("value") is None and target.get("averageValue") is None:
            errs.append(v.required(tp.child("averageValue"), "must set either a target value or averageValue"))
    elif kind == "Pods":
        if target.get("averageValue") is None:
            errs.append(v.required(tp.child("averageValue"), "must specify a positive target averageValue"))
    elif kind == "External":
        if target.get("value") is None and target.get("averageValue") is None:
            errs.append(v.required(tp.child("averageValue"), "must set either a target value for metric or a per-pod target"))
        if target.get("value") is not None and target.get("averageValue") is not None:
            errs.append(v.forbidden(tp.child("value"), "may not set both a target value for metric and a per-pod target"))
    return errs


def _validate_metric(metric: dict[str, Any], path: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    kind = metric.get("type")
    if not kind:
        errs.append(v.required(path.child("type"), "must specify a metric source type"))
    if kind not in METRIC_SOURCE_TYPES:
        errs.append(v.not_supported(path.child("type"), kind or "", METRIC_SOURCE_TYPES))
        return errs
    expected = _SOURCE_FIELD[kind]
    present = [f for f in _SOURCE_FIELD.values() if metric.get(f) is not None]
    if metric.get(expected) is None:
        errs.append(v.required(path.child(expected), "must populate information for the given metric source"))
    else:
        errs += _validate_metric_source(kind, as_dict(metric[expected]), path.child(expected))
    errs += [v.forbidden(path.child(f), "must populate the given metric source only") for f in present if f != expected]
    return errs


def _validate_scaling_rules(rules: Any, path: Path) -> list[FieldError]:
    if not isinstance(rules, dict):
        return []
    errs: list[FieldError] = []
    window = rules.get("stabilizationWindowSeconds")
    if is_int(window):
        if window < 0:
            errs.append(v.invalid(path.child("stabilizationWindowSeconds"), window, "must be greater than or equal to zero"))
        elif window > MAX_STABILIZATION_WINDOW:
            errs.append(v.invalid(path.child("stabilizationWindowSeconds"), window,
                                  f"must be less than or equal to {MAX_STABILIZATION_WINDOW}"))
    policy = rules.get("selectPolicy")
    if policy is not None and policy not in SELECT_POLICIES:
        errs.append(v.not_supported(path.child("selectPolicy"), policy, SELECT_POLICIES))
    policies = as_list(rules.get("policies"))
    if not policies:
        errs.append(v.required(path.child("policies"), "must specify at least one Policy"))
    for i, item in enumerate(policies):
        item, ip = as_dict(item), path.child("policies").index(i)
        if item.get("type") not in SCALING_POLICY_TYPES:
            errs.append(v.not_supported(ip.child("type"), item.get("type") or "", SCALING_POLICY_TYPES))
        value, period = item.get("value", 0), item.get("periodSeconds", 0)
        if not is_int(value) or value <= 0:
            errs.append(v.invalid(ip.child("value"), value, "must be greater than zero"))
        if not is_int(period) or period <= 0:
            errs.append(v.invalid(ip.child("periodSeconds"), period, "must be greater than zero"))
        elif period > MAX_PERIOD_SECONDS:
            errs.append(v.invalid(ip.child("periodSeconds"), period, f"must be less than or equal to {MAX_PERIOD_SECONDS}"))
    return errs


class HorizontalPodAutoscalerStrategy(Strategy):
    kind = "HorizontalPodAutoscaler"
    has_status = True
    tracks_generation = False  # the HPA strategy never sets metadata.generation

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"desiredReplicas": 0}
        drop_round_trip_annotations(obj)

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_update(new, old)
        drop_round_trip_annotations(new)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_status_update(new, old)
        drop_round_trip_annotations(new)

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        if spec.get("minReplicas") is None:
            spec["minReplicas"] = 1
        if not spec.get("metrics"):
            spec["metrics"] = [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": DEFAULT_CPU_UTILIZATION}}}]
        behavior = spec.get("behavior")
        if isinstance(behavior, dict):
            behavior["scaleUp"] = _merge_rules(behavior.get("scaleUp"), _scale_up_rules())
            behavior["scaleDown"] = _merge_rules(behavior.get("scaleDown"), _scale_down_rules())

    def validate(self, obj: Obj) -> list[FieldError]:
        spec, p = spec_of(obj), Path("spec")
        errs: list[FieldError] = []
        min_r, max_r = spec.get("minReplicas"), spec.get("maxReplicas", 0)
        if min_r is not None and (not is_int(min_r) or min_r < 1):
            errs.append(v.invalid(p.child("minReplicas"), min_r, "must be greater than or equal to 1"))
        if not is_int(max_r) or max_r < 1:
            errs.append(v.invalid(p.child("maxReplicas"), max_r, "must be greater than 0"))
        if is_int(min_r) and is_int(max_r) and max_r < min_r:
            errs.append(v.invalid(p.child("maxReplicas"), max_r, "must be greater than or equal to `minReplicas`"))
        errs += _validate_cross_version_ref(spec.get("scaleTargetRef"), p.child("scaleTargetRef"))
        for i, metric in enumerate(as_list(spec.get("metrics"))):
            errs += _validate_metric(as_dict(metric), p.child("metrics").index(i))
        behavior = spec.get("behavior")
        if isinstance(behavior, dict):
            errs += _validate_scaling_rules(behavior.get("scaleUp"), p.child("behavior", "scaleUp"))
            errs += _validate_scaling_rules(behavior.get("scaleDown"), p.child("behavior", "scaleDown"))
        return errs

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        status, p = as_dict(new.get("status")), Path("status")
        errs: list[FieldError] = []
        for f in ("currentReplicas", "desiredReplicas", "observedGeneration"):
            errs += validate_nonneg(status.get(f), p.child(f))
        return errs


STRATEGIES: dict[tuple[str, str], Strategy] = {
    ("autoscaling", "HorizontalPodAutoscaler"): HorizontalPodAutoscalerStrategy(),
}

__all__ = ["CURRENT_METRICS", "METRICS", "ROUND_TRIP_ANNOTATIONS", "STORED", "STRATEGIES", "drop_round_trip_annotations",
           "to_v1", "to_v2"]
