"""The HorizontalPodAutoscaler controller's own metrics (``pkg/controller/podautoscaler/monitor``,
Kubernetes 1.32's names, help texts, labels and buckets).

- ``horizontal_pod_autoscaler_controller_reconciliations_total{action,error}`` and
  ``..._reconciliation_duration_seconds{action,error}``: one per reconcile of an HPA;
- ``horizontal_pod_autoscaler_controller_metric_computation_total{action,error,metric_type}`` and
  ``..._metric_computation_duration_seconds{...}``: one per metric of a reconcile.

``action`` is ``scale_up``, ``scale_down`` or ``none``; ``error`` is ``spec`` (the HPA's spec cannot
work: a malformed target apiVersion, an unknown metric type), ``internal`` (anything else that
failed) or ``none``.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from kybernetes.metrics import own_families

own_families("horizontal_pod_autoscaler_", "controller-manager")  # in kyb control-plane's process too

SCALE_UP, SCALE_DOWN, NONE = "scale_up", "scale_down", "none"
SPEC, INTERNAL = "spec", "internal"
_BUCKETS = [0.001 * 2**i for i in range(15)]  # ExponentialBuckets(0.001, 2, 15)
_ACTION_ERROR = ("The label 'action' should be either 'scale_down', 'scale_up', or 'none'. Also, the label 'error' "
                 "should be either 'spec', 'internal', or 'none'.")
_FIRST = (" Note that if both spec and internal errors happen during a reconciliation, the first one to occur is "
          "reported in `error` label.")
_METRIC = (" The label 'action' should be either 'scale_down', 'scale_up', or 'none'. The label 'error' should be "
           "either 'spec', 'internal', or 'none'. The label 'metric_type' corresponds to HPA.spec.metrics[*].type")

RECONCILIATIONS = Counter(
    "horizontal_pod_autoscaler_controller_reconciliations_total",
    f"Number of reconciliations of HPA controller. {_ACTION_ERROR}{_FIRST}", ["action", "error"])
RECONCILIATION_DURATION = Histogram(
    "horizontal_pod_autoscaler_controller_reconciliation_duration_seconds",
    f"The time(seconds) that the HPA controller takes to reconcile once. {_ACTION_ERROR}{_FIRST}",
    ["action", "error"], buckets=_BUCKETS)
METRIC_COMPUTATIONS = Counter(
    "horizontal_pod_autoscaler_controller_metric_computation_total",
    "Number of metric computations." + _METRIC.replace(" The label 'error'", " Also, the label 'error'", 1),
    ["action", "error", "metric_type"])
METRIC_COMPUTATION_DURATION = Histogram(
    "horizontal_pod_autoscaler_controller_metric_computation_duration_seconds",
    "The time(seconds) that the HPA controller takes to calculate one metric." + _METRIC,
    ["action", "error", "metric_type"], buckets=_BUCKETS)


def action(before: int, after: int) -> str:
    return SCALE_UP if after > before else SCALE_DOWN if after < before else NONE


def reconciled(action_label: str, error: str, seconds: float) -> None:
    RECONCILIATIONS.labels(action_label, error).inc()
    RECONCILIATION_DURATION.labels(action_label, error).observe(seconds)


def metric_computed(action_label: str, error: str, metric_type: str, seconds: float) -> None:
    METRIC_COMPUTATIONS.labels(action_label, error, metric_type).inc()
    METRIC_COMPUTATION_DURATION.labels(action_label, error, metric_type).observe(seconds)
