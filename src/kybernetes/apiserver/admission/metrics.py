"""kube-apiserver's admission metrics (``k8s.io/apiserver/pkg/admission/metrics``, Kubernetes 1.32).

Contract: with the API server's metrics on, every run of a phase of the admission chain is one
``apiserver_admission_step_admission_duration_seconds`` observation {type: admit or validate,
operation: CREATE/UPDATE/DELETE/CONNECT, rejected: whether it refused}, and every plugin call in it
one ``apiserver_admission_controller_admission_duration_seconds`` observation {name: the plugin,
type, operation, rejected}, with Kubernetes' buckets (5 ms to 2.5 s). A refusal is any
:class:`~kybernetes.errors.StatusError` a plugin raises; it still propagates unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from time import perf_counter
from typing import TYPE_CHECKING, Any

from prometheus_client.registry import Collector

from kybernetes import errors
from kybernetes.metrics.accumulate import HistogramState, histogram_family

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from kybernetes.apiserver.admission.chain import Attributes

ADMISSION_BUCKETS = (0.005, 0.025, 0.1, 0.5, 1.0, 2.5)


class AdmissionMetrics(Collector):
    """The admission chain's step and per-plugin latencies."""

    def __init__(self) -> None:
        self._steps: dict[tuple[str, str, str], HistogramState] = {}
        self._controllers: dict[tuple[str, str, str, str], HistogramState] = {}

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
    def _observe(table: dict[Any, HistogramState], key: Any, seconds: float) -> None:
        h = table.get(key)
        if h is None:
            h = table[key] = HistogramState(ADMISSION_BUCKETS)
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
