"""kube-apiserver's admission metrics (``k8s.io/apiserver/pkg/admission/metrics``, Kubernetes 1.32).

Contract: with the API server's metrics on, every run of a phase of the admission chain is one
``apiserver_admission_step_admission_duration_seconds`` observation {type: admit or validate,
operation: CREATE/UPDATE/DELETE/CONNECT, rejected: whether it refused}, and every plugin call in it
one ``apiserver_admission_controller_admission_duration_seconds`` observation {name: the plugin,
type, operation, rejected}, with Kubernetes' buckets (5 ms to 2.5 s). A refusal is any
:class:`~kybernetes.errors.StatusError` a plugin raises; it still propagates unchanged.

Every admission webhook call (:mod:`.webhook.dispatch`) is one
``apiserver_admission_webhook_admission_duration_seconds`` observation {name: the webhook, type:
``admit`` for a mutating one, ``validating`` for a validating one (Kubernetes' own values),
operation, rejected} with buckets 5 ms to 25 s, and one ``apiserver_admission_webhook_request_total``
{..., code: 200, the denial's code, the failed call's code, or 0 for an error of the API server's
own; at most 600}; a call that refused the request is also one
``apiserver_admission_webhook_rejection_count`` {name, type, operation, error_type:
``no_error`` (denied), ``calling_webhook_error`` (failed under ``failurePolicy: Fail``) or
``apiserver_internal_error``, rejection_code: the request's code, 0 for an internal error}, and a call that failed
open one ``apiserver_admission_webhook_fail_open_count`` {name, type}.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from time import perf_counter
from typing import TYPE_CHECKING, Any

from prometheus_client.registry import Collector

from kybernetes import errors
from kybernetes.metrics.accumulate import HistogramState, counter_family, histogram_family

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from kybernetes.apiserver.admission.chain import Attributes

ADMISSION_BUCKETS = (0.005, 0.025, 0.1, 0.5, 1.0, 2.5)
WEBHOOK_BUCKETS = (0.005, 0.025, 0.1, 0.5, 1.0, 2.5, 10, 25)
NO_ERROR = "no_error"
CALLING_WEBHOOK_ERROR = "calling_webhook_error"
APISERVER_INTERNAL_ERROR = "apiserver_internal_error"


class AdmissionMetrics(Collector):
    """The admission chain's step and per-plugin latencies."""

    def __init__(self) -> None:
        self._steps: dict[tuple[str, str, str], HistogramState] = {}
        self._controllers: dict[tuple[str, str, str, str], HistogramState] = {}
        self._webhooks: dict[tuple[str, str, str, str], HistogramState] = {}
        self._webhook_requests: dict[tuple[str, str, str, str, str], int] = {}
        self._rejections: dict[tuple[str, str, str, str, str], int] = {}
        self._fail_open: dict[tuple[str, str], int] = {}

    def webhook_call(self, name: str, step: str, operation: str, seconds: float, code: int,
                     rejection: str | None = None, *, failed_open: bool = False) -> None:
        """One webhook call (``ObserveWebhook``): ``step`` ``admit`` or ``validating``; ``rejection``
        the error type when it refused the request (``ObserveWebhookRejection``, with ``code`` as
        rejection code but for an internal error's 0); ``failed_open`` when it failed under ``Ignore``."""
        rejected = "false" if rejection is None else "true"
        code = min(code, 600)
        self._observe(self._webhooks, (name, step, operation, rejected), seconds, WEBHOOK_BUCKETS)
        key = (name, step, operation, str(code), rejected)
        self._webhook_requests[key] = self._webhook_requests.get(key, 0) + 1
        if rejection is not None:
            rkey = (name, step, operation, rejection, str(0 if rejection == APISERVER_INTERNAL_ERROR else code))
            self._rejections[rkey] = self._rejections.get(rkey, 0) + 1
        if failed_open:
            self._fail_open[name, step] = self._fail_open.get((name, step), 0) + 1

    async def run_step(self, validating: bool, plugins: Sequence[tuple[str, Any]], attrs: Attributes) -> None:
        """Call each plugin's ``validate`` (or ``admit``) in order, timing each and the whole step."""
        step = "validate" if validating else "admit"
        t_step = perf_counter()
        rejected = "false"
        try:
            for name, plugin in plugins:
                t0 = perf_counter()
                try:
                    await (plugin.validate(attrs) if validating else plugin.admit(attrs))
                except errors.StatusError:
                    self._observe(self._controllers, (name, step, attrs.operation, "true"), perf_counter() - t0)
                    raise
                self._observe(self._controllers, (name, step, attrs.operation, "false"), perf_counter() - t0)
        except errors.StatusError:
            rejected = "true"
            raise
        finally:
            self._observe(self._steps, (step, attrs.operation, rejected), perf_counter() - t_step)

    @staticmethod
    def _observe(table: dict[Any, HistogramState], key: Any, seconds: float,
                 bounds: tuple[float, ...] = ADMISSION_BUCKETS) -> None:
        h = table.get(key)
        if h is None:
            h = table[key] = HistogramState(bounds)
        h.observe(seconds)

    def collect(self) -> Iterator[Metric]:
        yield histogram_family(
            "apiserver_admission_step_admission_duration_seconds",
            "Admission sub-step latency histogram in seconds, broken out for each operation and API resource and "
            "step type (validate or admit).", ("type", "operation", "rejected"), list(self._steps.items()))
        yield histogram_family(
            "apiserver_admission_controller_admission_duration_seconds",
            "Admission controller latency histogram in seconds, identified by name and broken out for each "
            "operation and API resource and type (validate or admit).",
            ("name", "type", "operation", "rejected"), list(self._controllers.items()))
        yield histogram_family(
            "apiserver_admission_webhook_admission_duration_seconds",
            "Admission webhook latency histogram in seconds, identified by name and broken out for each operation "
            "and API resource and type (validate or admit).",
            ("name", "type", "operation", "rejected"), list(self._webhooks.items()))
        yield counter_family(
            "apiserver_admission_webhook_request_total",
            "Admission webhook request total, identified by name and broken out for each admission type (validating "
            "or mutating) and operation. Additional labels specify whether the request was rejected or not and an "
            "HTTP status code. Codes greater than 600 are truncated to 600, to keep the metrics cardinality bounded.",
            ("name", "type", "operation", "code", "rejected"), list(self._webhook_requests.items()))
        yield counter_family(
            "apiserver_admission_webhook_rejection_count",
            "Admission webhook rejection count, identified by name and broken out for each admission type "
            "(validating or admit) and operation. Additional labels specify an error type (calling_webhook_error or "
            "apiserver_internal_error if an error occurred; no_error otherwise) and optionally a non-zero rejection "
            "code if the webhook rejects the request with an HTTP status code (honored by the apiserver when the code "
            "is greater or equal to 400). Codes greater than 600 are truncated to 600, to keep the metrics "
            "cardinality bounded.",
            ("name", "type", "operation", "error_type", "rejection_code"), list(self._rejections.items()),
            legacy_name=True)
        yield counter_family(
            "apiserver_admission_webhook_fail_open_count",
            "Admission webhook fail open count, identified by name and broken out for each admission type "
            "(validating or mutating).", ("name", "type"), list(self._fail_open.items()), legacy_name=True)
