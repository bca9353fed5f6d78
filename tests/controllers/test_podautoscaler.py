"""The HorizontalPodAutoscaler controller against a real API server.

The targets, their ``/scale``, the HPAs (v2 and v1), events and RBAC are the real server's; the
controller runs in-process as its own ServiceAccount. The test plays the kubelet (pod status) and,
where a test needs usage figures, metrics-server: :class:`SetMetrics` is the controller's metrics
client with values the test sets (no metrics-server runs here; the real client's side, reading
``metrics.k8s.io`` through the API server, is exercised by the test of an unserved metrics API).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from prometheus_client import REGISTRY

from kybernetes.api.timeutil import format_rfc3339
from kybernetes.client.rest import Client
from kybernetes.controllers.base import ControllerContext
from kybernetes.controllers.podautoscaler import HorizontalController
from kybernetes.controllers.podautoscaler_plan import MetricError, PodMetric
from kybernetes.testing import ServerProcess
from tests.controllers.harness import events_for, namespace, namespaced_crd, run_controllers, wait_for

pytestmark = pytest.mark.integration

OPTIONS = {"horizontal-pod-autoscaler-sync-period": 0.3, "horizontal-pod-autoscaler-downscale-stabilization": 0.0}
LONG_AGO = format_rfc3339(1_700_000_000)


class SetMetrics:
    """metrics-server's (and a metrics adapter's) answers, as the test sets them: pod name -> CPU
    usage in millicores; external metric name -> its series' values (milli-units)."""

    usage: dict[str, int] = {}
    external: dict[str, list[int]] = {}
    objects: dict[tuple[str, str, str], int] = {}
    """(resource.group, name, metric) -> value (milli-units)."""

    async def pod_resource_metrics(self, resource: str, namespace: str, selector: str,
                                   container: str = "") -> tuple[dict[str, PodMetric], float]:
        now = time.time()
        return {name: PodMetric(v, now - 5, 15.0) for name, v in self.usage.items()}, now

    async def pod_custom_metrics(self, metric: str, namespace: str, selector: str,
                                 metric_selector: str) -> dict[str, PodMetric]:
        raise MetricError("unable to fetch metrics from custom metrics API: not set by this test")

    async def object_custom_metric(self, metric: str, namespace: str, group: str, plural: str, name: str,
                                   metric_selector: str) -> int:
        if (f"{plural}.{group}", name, metric) not in self.objects:
            raise MetricError("unable to fetch metrics from custom metrics API: not set by this test")
        return self.objects[f"{plural}.{group}", name, metric]

    async def external_metrics(self, metric: str, namespace: str, metric_selector: str) -> list[int]:
        if metric not in self.external:
            raise MetricError("no metrics returned from external metrics API")
        return self.external[metric]


class WithSetMetrics(HorizontalController):
    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx, metrics=SetMetrics())


def counted(name: str, **labels: str) -> float:
    """A sample of the controller's own metrics in this process (where it runs in these tests)."""
    return REGISTRY.get_sample_value(f"horizontal_pod_autoscaler_controller_{name}", labels) or 0.0


def deployment(name: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                         {"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "1"}}}]}}}}


def hpa(name: str, target: dict[str, Any], min_replicas: int, max_replicas: int, cpu: int = 50,
        **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": name},
            "spec": {"scaleTargetRef": target, "minReplicas": min_replicas, "maxReplicas": max_replicas,
                     "metrics": [{"type": "Resource", "resource": {
                         "name": "cpu", "target": {"type": "Utilization", "averageUtilization": cpu}}}], **spec}}


DEPLOYMENT_REF = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}


async def running_pods(client: Client, ns: str, app: str, n: int) -> list[str]:
    """Play kubelet: ``n`` pods of ``app``, running and ready for an hour, requesting 1 CPU each."""
    names = []
    for i in range(n):
        body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{app}-{i}", "labels": {"app": app}},
                "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "1"}}}]}}
        pod = await client.create("v1", "pods", body, ns)
        await client.patch("v1", "pods", pod["metadata"]["name"], {"status": {
            "phase": "Running", "startTime": LONG_AGO,
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": LONG_AGO}]}}, ns,
            subresource="status")
        names.append(pod["metadata"]["name"])
    return names


async def replicas_of(client: Client, ns: str, n: int, api: str = "apps/v1", plural: str = "deployments",
                      name: str = "web") -> bool:
    return bool((await client.get(api, plural, name, ns))["spec"].get("replicas") == n)


async def hpa_status(client: Client, ns: str, name: str = "web") -> dict[str, Any]:
    return dict((await client.get("autoscaling/v2", "horizontalpodautoscalers", name, ns)).get("status") or {})


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    return {c["type"]: (c["status"], c["reason"], c["message"]) for c in status.get("conditions") or []}


async def event_messages(client: Client, ns: str, reason: str, name: str = "web") -> list[str]:
    return [e["message"] for e in await events_for(client, ns, name)
            if e.get("reason") == reason and (e.get("source") or {}).get("component") == "horizontal-pod-autoscaler"]


@pytest.mark.parametrize(("kind", "plural"), [
    ("Deployment", "deployments"), ("ReplicaSet", "replicasets"), ("StatefulSet", "statefulsets")])
async def test_min_replicas_is_enforced_through_the_scale_subresource(srv: ServerProcess, kind: str,
                                                                      plural: str) -> None:
    async with run_controllers(srv, HorizontalController, options=OPTIONS) as env:
        client = env.client
        ns = await namespace(client, "hpa-min")
        target = {**deployment("web", 1), "kind": kind}
        await client.create("apps/v1", plural, target, ns)
        ref = {"apiVersion": "apps/v1", "kind": kind, "name": "web"}
        await client.create("autoscaling/v2", "horizontalpodautoscalers", hpa("web", ref, 2, 5), ns)
        await wait_for(lambda: replicas_of(client, ns, 2, plural=plural), what=f"the {kind} scaled to minReplicas")
        status = await wait_for(lambda: _with(hpa_status(client, ns), "lastScaleTime"), what="status")
        assert status["desiredReplicas"] == 2 and status["currentReplicas"] == 1
        assert conditions(status)["AbleToScale"] == (
            "True", "SucceededRescale", "the HPA controller was able to update the target scale to 2")
        msgs = await wait_for(lambda: event_messages(client, ns, "SuccessfulRescale"), what="the event")
        assert msgs == ["New size: 2; reason: Current number of replicas below Spec.MinReplicas"]


async def _with(status: Any, field: str) -> dict[str, Any] | None:
    got = await status
    return got if got.get(field) else None


async def test_scales_up_and_down_by_cpu_utilization(srv: ServerProcess) -> None:
    async with run_controllers(srv, WithSetMetrics, options=OPTIONS) as env:
        client = env.client
        ns = await namespace(client, "hpa-cpu")
        await client.create("apps/v1", "deployments", deployment("web", 2), ns)
        pods = await running_pods(client, ns, "web", 2)
        ups = counted("reconciliations_total", action="scale_up", error="none")
        computed_up = counted("metric_computation_total", action="scale_up", error="none", metric_type="Resource")
        SetMetrics.usage = {pods[0]: 900, pods[1]: 900}  # 90% of the requests against 50%: ceil(1.8 x 2) = 4
        await client.create("autoscaling/v2", "horizontalpodautoscalers", hpa("web", DEPLOYMENT_REF, 1, 10), ns)
        await wait_for(lambda: replicas_of(client, ns, 4), what="a scale-up to 4")
        msgs = await wait_for(lambda: event_messages(client, ns, "SuccessfulRescale"), what="the event")
        assert msgs == ["New size: 4; reason: cpu resource utilization (percentage of request) above target"]
        assert counted("reconciliations_total", action="scale_up", error="none") == ups + 1
        assert counted("metric_computation_total", action="scale_up", error="none",
                       metric_type="Resource") >= computed_up + 1
        assert counted("reconciliation_duration_seconds_count", action="scale_up", error="none") >= 1
        status = await wait_for(lambda: _with(hpa_status(client, ns), "currentMetrics"), what="current metrics")
        assert status["currentMetrics"] == [{"type": "Resource", "resource": {
            "name": "cpu", "current": {"averageValue": "900m", "averageUtilization": 90}}}]
        assert conditions(status)["ScalingActive"] == (
            "True", "ValidMetricFound",
            "the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)")

        SetMetrics.usage = {pods[0]: 100, pods[1]: 100}  # 10%: ceil(0.2 x 2) = 1
        await wait_for(lambda: replicas_of(client, ns, 1), what="a scale-down to 1")
        async def rescaled_down() -> bool:
            return "New size: 1; reason: All metrics below target" in await event_messages(client, ns, "SuccessfulRescale")
        await wait_for(rescaled_down, what="the scale-down's event")

        # A target that goes away: AbleToScale False; the rest of the status stays as it was.
        before = await wait_for(lambda: _with(hpa_status(client, ns), "currentMetrics"), what="status")
        await client.delete("apps/v1", "deployments", "web", ns)

        async def lost() -> Any:
            status = await hpa_status(client, ns)
            return status if conditions(status)["AbleToScale"][1] == "FailedGetScale" else None
        after = await wait_for(lost, what="AbleToScale FailedGetScale")
        assert after["currentMetrics"] == before["currentMetrics"] and after["desiredReplicas"] == 1


async def test_behavior_policies_limit_the_rate(srv: ServerProcess) -> None:
    behavior = {"scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 1800}]}}
    async with run_controllers(srv, WithSetMetrics, options=OPTIONS) as env:
        client = env.client
        ns = await namespace(client, "hpa-behavior")
        await client.create("apps/v1", "deployments", deployment("web", 2), ns)
        pods = await running_pods(client, ns, "web", 2)
        SetMetrics.usage = {pods[0]: 1000, pods[1]: 1000}  # asks for 4; one pod per half hour is allowed
        await client.create("autoscaling/v2", "horizontalpodautoscalers",
                            hpa("web", DEPLOYMENT_REF, 1, 10, behavior=behavior), ns)
        await wait_for(lambda: replicas_of(client, ns, 3), what="one pod added")

        async def limited() -> Any:  # a later sync, which found 3, still asks for 4 and is held at 3
            status = await hpa_status(client, ns)
            got = conditions(status).get("ScalingLimited")
            return got if status.get("currentReplicas") == 3 and got and got[1] == "ScaleUpLimit" else None
        assert await wait_for(limited, what="ScalingLimited") == (
            "True", "ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate")
        assert await replicas_of(client, ns, 3)


async def test_scales_a_custom_resource_through_its_scale_subresource(srv: ServerProcess) -> None:
    crd = namespaced_crd("widgets", "Widget", "hpa.example.com")
    crd["spec"]["versions"][0]["subresources"] = {"scale": {
        "specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector"}, "status": {}}
    async with run_controllers(srv, HorizontalController, options=OPTIONS) as env:
        client = env.client
        await client.create("apiextensions.k8s.io/v1", "customresourcedefinitions", crd)
        ns = await namespace(client, "hpa-cr")

        async def create() -> Any:
            try:
                return await client.create("hpa.example.com/v1", "widgets", {
                    "apiVersion": "hpa.example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
                    "spec": {"replicas": 7}}, ns)
            except Exception:
                await asyncio.sleep(0.1)
                return None
        await wait_for(create, what="the CRD served")
        ref = {"apiVersion": "hpa.example.com/v1", "kind": "Widget", "name": "w"}
        await client.create("autoscaling/v2", "horizontalpodautoscalers", hpa("w", ref, 1, 3), ns)
        await wait_for(lambda: replicas_of(client, ns, 3, "hpa.example.com/v1", "widgets", "w"),
                       what="the Widget scaled to maxReplicas")
        assert await wait_for(lambda: event_messages(client, ns, "SuccessfulRescale", "w"), what="the event") == [
            "New size: 3; reason: Current number of replicas above Spec.MaxReplicas"]


async def _active(client: Client, ns: str, name: str) -> Any:
    return conditions(await hpa_status(client, ns, name)).get("ScalingActive")


async def test_failures_set_kubernetes_conditions_and_events(srv: ServerProcess) -> None:
    async with run_controllers(srv, HorizontalController, options=OPTIONS) as env:
        client = env.client
        ns = await namespace(client, "hpa-fail")
        missing = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "nope"}
        await client.create("autoscaling/v2", "horizontalpodautoscalers", hpa("nope", missing, 1, 3), ns)

        async def able(name: str) -> Any:
            return conditions(await hpa_status(client, ns, name)).get("AbleToScale")
        assert await wait_for(lambda: able("nope"), what="AbleToScale") == (
            "False", "FailedGetScale",
            'the HPA controller was unable to get the target\'s current scale: deployments.apps "nope" not found')

        # A target within its bounds needs metrics; this server serves no metrics.k8s.io.
        await client.create("apps/v1", "deployments", deployment("web", 2), ns)
        await running_pods(client, ns, "web", 2)
        await client.create("autoscaling/v2", "horizontalpodautoscalers", hpa("web", DEPLOYMENT_REF, 1, 3), ns)

        async def active() -> Any:
            return conditions(await hpa_status(client, ns)).get("ScalingActive")
        detail = ("failed to get cpu utilization: unable to get metrics for resource cpu: unable to fetch metrics "
                  "from resource metrics API: the server could not find the requested resource (get pods.metrics.k8s.io)")
        assert await wait_for(active, what="ScalingActive") == (
            "False", "FailedGetResourceMetric", f"the HPA was unable to compute the replica count: {detail}")
        # Nor does it serve custom metrics.
        await client.create("apps/v1", "deployments", deployment("rps", 1), ns)
        pods_metric = hpa("rps", {**DEPLOYMENT_REF, "name": "rps"}, 1, 3)
        pods_metric["spec"]["metrics"] = [{"type": "Pods", "pods": {
            "metric": {"name": "rps"}, "target": {"type": "AverageValue", "averageValue": "1"}}}]
        await client.create("autoscaling/v2", "horizontalpodautoscalers", pods_metric, ns)
        assert await wait_for(lambda: _active(client, ns, "rps"), what="the Pods metric's condition") == (
            "False", "FailedGetPodsMetric", "the HPA was unable to compute the replica count: unable to get metric rps: "
            "unable to fetch metrics from custom metrics API: no custom metrics API (custom.metrics.k8s.io) registered")
        assert detail in await wait_for(lambda: event_messages(client, ns, "FailedGetResourceMetric"), what="event")
        assert await wait_for(lambda: event_messages(client, ns, "FailedComputeMetricsReplicas"), what="event") == [
            f"invalid metrics (1 invalid out of 1), first error is: failed to get cpu resource metric value: {detail}"]
        status = await hpa_status(client, ns)
        assert status["currentMetrics"] == [{"type": ""}] and status["currentReplicas"] == 2
        assert counted("reconciliations_total", action="none", error="internal") >= 2
        assert counted("metric_computation_total", action="none", error="internal", metric_type="Resource") >= 1
        assert await replicas_of(client, ns, 2)


async def test_kubectl_autoscale_and_get_hpa(srv: ServerProcess) -> None:
    async with run_controllers(srv, WithSetMetrics, options=OPTIONS) as env:
        client = env.client
        ns = await namespace(client, "hpa-kubectl")

        async def kubectl(*args: str, input: str | None = None) -> str:
            # In a thread: the controller runs on this event loop.
            return (await asyncio.to_thread(srv.kubectl, "-n", ns, *args, input=input)).stdout

        await client.create("apps/v1", "deployments", deployment("web", 2), ns)
        pods = await running_pods(client, ns, "web", 2)
        SetMetrics.usage = {pods[0]: 240, pods[1]: 240}  # 24% against 50%: within bounds, ceil(0.48 x 2) = 1
        out = await kubectl("autoscale", "deployment", "web", "--cpu-percent=50", "--min=1", "--max=5")
        assert out.strip() == "horizontalpodautoscaler.autoscaling/web autoscaled"
        await wait_for(lambda: replicas_of(client, ns, 1), what="a scale-down to 1")

        async def settled() -> bool:  # the next sync reads the new size back from /scale
            status = await hpa_status(client, ns)
            return bool(status.get("currentMetrics") and status.get("currentReplicas") == 1)
        await wait_for(settled, what="the status after the scale-down")
        header, row = (await kubectl("get", "hpa")).splitlines()
        assert header.split() == ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"]
        assert row.split()[:7] == ["web", "Deployment/web", "cpu:", "24%/50%", "1", "5", "1"]
        _, row = (await kubectl("get", "hpa.v1.autoscaling")).splitlines()  # the same table through v1
        assert row.split()[:7] == ["web", "Deployment/web", "cpu:", "24%/50%", "1", "5", "1"]

        # The same object through autoscaling/v1: the CPU target and current value, and the v2-only
        # status in Kubernetes' round-trip annotations.
        v1 = await client.get("autoscaling/v1", "horizontalpodautoscalers", "web", ns)
        assert v1["spec"]["targetCPUUtilizationPercentage"] == 50
        assert v1["status"]["currentCPUUtilizationPercentage"] == 24 and v1["status"]["desiredReplicas"] == 1
        assert "AbleToScale" in v1["metadata"]["annotations"]["autoscaling.alpha.kubernetes.io/conditions"]

        # An HPA written as autoscaling/v1 is autoscaled just the same.
        await client.create("apps/v1", "deployments", deployment("old", 1), ns)
        await kubectl("apply", "-f", "-", input=(
            "apiVersion: autoscaling/v1\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: old\nspec:\n"
            "  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: old}\n"
            "  minReplicas: 3\n  maxReplicas: 4\n  targetCPUUtilizationPercentage: 70\n"))
        await wait_for(lambda: replicas_of(client, ns, 3, name="old"), what="the v1 HPA's minReplicas")
        v2 = await client.get("autoscaling/v2", "horizontalpodautoscalers", "old", ns)
        assert v2["spec"]["metrics"] == [{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]


async def test_external_metrics_scale_and_a_failing_metric_does_not_stop_a_scale_up(srv: ServerProcess) -> None:
    selector = {"matchLabels": {"queue": "jobs"}}
    metrics = [{"type": "External", "external": {"metric": {"name": "queue_depth", "selector": selector},
                                                 "target": {"type": "Value", "value": "10"}}},
               {"type": "Pods", "pods": {"metric": {"name": "rps"},
                                         "target": {"type": "AverageValue", "averageValue": "1"}}}]
    async with run_controllers(srv, WithSetMetrics, options=OPTIONS) as env:
        client = env.client
        ns = await namespace(client, "hpa-external")
        await client.create("apps/v1", "deployments", deployment("web", 2), ns)
        await running_pods(client, ns, "web", 2)
        SetMetrics.external = {"queue_depth": [25_000, 5_000]}  # 30 against 10: ratio 3 x 2 ready pods = 6
        body = hpa("web", DEPLOYMENT_REF, 1, 10)
        body["spec"]["metrics"] = metrics
        await client.create("autoscaling/v2", "horizontalpodautoscalers", body, ns)
        # Without a behavior a scale-up is limited to max(2 x 2, 4) = 4.
        await wait_for(lambda: replicas_of(client, ns, 4), what="a scale-up to 4")
        described = ("external metric queue_depth(&LabelSelector{MatchLabels:map[string]string{queue: jobs,},"
                     "MatchExpressions:[]LabelSelectorRequirement{},})")
        assert await wait_for(lambda: event_messages(client, ns, "SuccessfulRescale"), what="the event") == [
            f"New size: 4; reason: {described} above target"]
        assert "unable to get metric rps: unable to fetch metrics from custom metrics API: not set by this test" in \
            await wait_for(lambda: event_messages(client, ns, "FailedGetPodsMetric"), what="the Pods metric's event")
        status = await wait_for(lambda: _with(hpa_status(client, ns), "currentMetrics"), what="current metrics")
        assert status["currentMetrics"] == [
            {"type": "External", "external": {"metric": {"name": "queue_depth", "selector": selector},
                                              "current": {"value": "30"}}},
            {"type": ""}]
        conds = conditions(status)
        assert conds["ScalingActive"] == (
            "True", "ValidMetricFound", f"the HPA was able to successfully calculate a replica count from {described}")
        assert conds["ScalingLimited"] == (
            "True", "ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate")
        # kubectl's TARGETS column for an external Value target.
        out = (await asyncio.to_thread(srv.kubectl, "get", "hpa", "-n", ns)).stdout
        assert "30/10, <unknown>/1" in out, out


async def test_two_hpas_on_the_same_pods_are_ambiguous(srv: ServerProcess) -> None:
    async with run_controllers(srv, WithSetMetrics, options=OPTIONS) as env:
        client = env.client
        ns = await namespace(client, "hpa-ambiguous")
        await client.create("apps/v1", "deployments", deployment("web", 2), ns)
        pods = await running_pods(client, ns, "web", 2)
        SetMetrics.usage = {pods[0]: 900, pods[1]: 900}
        for name in ("a", "b"):
            await client.create("autoscaling/v2", "horizontalpodautoscalers", hpa(name, DEPLOYMENT_REF, 1, 10), ns)
        # (The first to reconcile may act once before the other has claimed the pods, as in Kubernetes.)
        want = ("False", "AmbiguousSelector",
                f"pods by selector app=web are controlled by multiple HPAs: [{{a {ns}}} {{b {ns}}}]")

        async def both() -> bool:
            return [await _active(client, ns, n) for n in ("a", "b")] == [want, want]
        await wait_for(both, what="both HPAs' ScalingActive AmbiguousSelector")
        assert want[2] in await wait_for(lambda: event_messages(client, ns, "AmbiguousSelector", "b"), what="event")


async def test_an_object_metric_of_the_target_itself(srv: ServerProcess) -> None:
    metric = {"type": "Object", "object": {"describedObject": DEPLOYMENT_REF, "metric": {"name": "requests"},
                                           "target": {"type": "Value", "value": "10"}}}
    async with run_controllers(srv, WithSetMetrics, options=OPTIONS) as env:
        client = env.client
        ns = await namespace(client, "hpa-object")
        await client.create("apps/v1", "deployments", deployment("web", 2), ns)
        await running_pods(client, ns, "web", 2)
        SetMetrics.objects = {("deployments.apps", "web", "requests"): 15_000}  # 15 against 10 -> 1.5 x 2 = 3
        body = hpa("web", DEPLOYMENT_REF, 1, 10)
        body["spec"]["metrics"] = [metric]
        await client.create("autoscaling/v2", "horizontalpodautoscalers", body, ns)
        await wait_for(lambda: replicas_of(client, ns, 3), what="a scale-up to 3")
        assert await wait_for(lambda: event_messages(client, ns, "SuccessfulRescale"), what="the event") == [
            "New size: 3; reason: Deployment metric requests above target"]
        status = await wait_for(lambda: _with(hpa_status(client, ns), "currentMetrics"), what="current metrics")
        assert status["currentMetrics"] == [{"type": "Object", "object": {
            "describedObject": DEPLOYMENT_REF, "metric": {"name": "requests"}, "current": {"value": "15"}}}]


async def test_a_refused_rescale_is_reported(srv: ServerProcess) -> None:
    crd = namespaced_crd("gadgets", "Gadget", "hpa.example.com")
    version = crd["spec"]["versions"][0]
    version["schema"] = {"openAPIV3Schema": {"type": "object", "properties": {
        "spec": {"type": "object", "properties": {"replicas": {"type": "integer", "maximum": 2}}},
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}
    version["subresources"] = {"scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas",
                                         "labelSelectorPath": ".status.selector"}, "status": {}}
    async with run_controllers(srv, HorizontalController, options=OPTIONS) as env:
        client = env.client
        await client.create("apiextensions.k8s.io/v1", "customresourcedefinitions", crd)
        ns = await namespace(client, "hpa-refused")

        async def create() -> Any:
            try:
                return await client.create("hpa.example.com/v1", "gadgets", {
                    "apiVersion": "hpa.example.com/v1", "kind": "Gadget", "metadata": {"name": "g"},
                    "spec": {"replicas": 1}}, ns)
            except Exception:
                await asyncio.sleep(0.1)
                return None
        await wait_for(create, what="the CRD served")
        ref = {"apiVersion": "hpa.example.com/v1", "kind": "Gadget", "name": "g"}
        await client.create("autoscaling/v2", "horizontalpodautoscalers", hpa("g", ref, 3, 5), ns)

        async def able() -> Any:
            got = conditions(await hpa_status(client, ns, "g")).get("AbleToScale")
            return got if got and got[1] == "FailedUpdateScale" else None
        status, _, message = await wait_for(able, what="AbleToScale FailedUpdateScale")
        assert status == "False" and message.startswith("the HPA controller was unable to update the target scale: ")
        assert "spec.replicas" in message
        (event,) = await wait_for(lambda: event_messages(client, ns, "FailedRescale", "g"), what="the event")
        assert event.startswith("New size: 3; reason: Current number of replicas below Spec.MinReplicas; error: ")
        assert await replicas_of(client, ns, 1, "hpa.example.com/v1", "gadgets", "g")
