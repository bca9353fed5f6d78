"""The API server's metrics machinery: Kubernetes' reported verbs and scopes, the hot-path
accumulators' exposition, the store's resource labels and the admission step metrics."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from kybernetes import errors
from kybernetes.api.resources import Catalogue
from kybernetes.apiserver.admission.chain import Attributes, Chain, Handler
from kybernetes.apiserver.admission.metrics import AdmissionMetrics
from kybernetes.apiserver.metrics import APIServerMetrics, compress_username, reported_verb, route_scope
from kybernetes.apiserver.registry.request import User
from kybernetes.apiserver.storagemetrics import StorageMetrics
from kybernetes.apiserver.transport.requestinfo import request_info
from kybernetes.apiserver.transport.requests import parse_resource_path
from kybernetes.metrics.accumulate import HistogramState, counter_family


def _request(method: str, path: str, query: str = "", content_type: str = "") -> Any:
    """The parts of a Request the metrics read (method, query, headers)."""
    pairs = [tuple(p.split("=", 1)) for p in query.split("&") if p] if query else []
    headers = CIMultiDict({"Content-Type": content_type} if content_type else {})
    return SimpleNamespace(method=method, path=path, query_string=query, query=MultiDictProxy(MultiDict(pairs)),
                           headers=CIMultiDictProxy(headers))


def _labels(method: str, path: str, query: str = "", content_type: str = "") -> tuple[str, str]:
    req = _request(method, path, query, content_type)
    rp = parse_resource_path(path)
    info = request_info(method, path, rp, req.query if query else None)
    scope = route_scope(rp, info)
    return reported_verb(req, info, scope), scope


@pytest.mark.parametrize(("method", "path", "query", "content_type", "expected"), [
    ("POST", "/api/v1/namespaces/ns/configmaps", "", "", ("POST", "resource")),
    ("GET", "/api/v1/namespaces/ns/configmaps/x", "", "", ("GET", "resource")),
    ("HEAD", "/api/v1/namespaces/ns/configmaps/x", "", "", ("GET", "resource")),
    ("GET", "/api/v1/namespaces/ns/configmaps", "", "", ("LIST", "namespace")),
    ("GET", "/api/v1/configmaps", "", "", ("LIST", "cluster")),
    ("GET", "/api/v1/nodes", "", "", ("LIST", "cluster")),
    # A list narrowed to one name by field selector keeps the list route's scope.
    ("GET", "/api/v1/namespaces/ns/pods", "fieldSelector=metadata.name%3Dweb", "", ("LIST", "namespace")),
    ("GET", "/api/v1/namespaces/ns/pods", "watch=true", "", ("WATCH", "namespace")),
    ("GET", "/api/v1/namespaces/ns/pods", "watch=1", "", ("WATCH", "namespace")),
    ("GET", "/api/v1/namespaces/ns/pods", "watch=false", "", ("LIST", "namespace")),
    ("GET", "/api/v1/watch/namespaces/ns/pods", "", "", ("WATCH", "namespace")),
    ("GET", "/api/v1/namespaces/ns/pods/web", "watch=true", "", ("WATCH", "resource")),
    ("PUT", "/apis/apps/v1/namespaces/ns/deployments/d", "", "", ("PUT", "resource")),
    ("PATCH", "/apis/apps/v1/namespaces/ns/deployments/d", "", "application/merge-patch+json", ("PATCH", "resource")),
    ("PATCH", "/apis/apps/v1/namespaces/ns/deployments/d", "", "application/apply-patch+yaml", ("APPLY", "resource")),
    ("DELETE", "/api/v1/namespaces/ns/configmaps/x", "", "", ("DELETE", "resource")),
    ("DELETE", "/api/v1/namespaces/ns/configmaps", "", "", ("DELETE", "namespace")),
    ("GET", "/api/v1/namespaces/ns/pods/web/log", "", "", ("CONNECT", "resource")),
    ("POST", "/api/v1/namespaces/ns/pods/web/exec", "", "", ("CONNECT", "resource")),
    ("GET", "/api/v1/namespaces/ns", "", "", ("GET", "resource")),
    ("OPTIONS", "/api/v1/namespaces/ns/configmaps", "", "", ("other", "namespace")),
])
def test_reported_verb_and_scope_are_kubernetes(method: str, path: str, query: str, content_type: str,
                                                expected: tuple[str, str]) -> None:
    assert _labels(method, path, query, content_type) == expected


def test_compress_username() -> None:
    assert compress_username("kubelet") == "kubelet"
    assert compress_username("system:serviceaccount:kube-system:default") == "system:serviceaccount:kube-system:default"
    assert compress_username("jane@example.com") == "email_id"
    assert compress_username("system:admin") == "other"


def _scrape(*collectors: Any) -> dict[str, Any]:
    registry = CollectorRegistry()
    for c in collectors:
        registry.register(c)
    return {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}


def test_histogram_state_buckets_are_prometheus_le() -> None:
    h = HistogramState((0.005, 0.025))
    for v in (0.001, 0.005, 0.01, 1.0):
        h.observe(v)
    assert h.cumulative() == [("0.005", 2), ("0.025", 3), ("+Inf", 4)]
    assert h.count == 4 and h.sum == pytest.approx(1.016)


def test_legacy_counter_keeps_kubernetes_sample_name() -> None:
    class C:
        def collect(self) -> Any:
            yield counter_family("authentication_attempts", "Counter of authenticated attempts.", ("result",),
                                 [(("success",), 3)], legacy_name=True)

    registry = CollectorRegistry()
    registry.register(C())  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    assert 'authentication_attempts{result="success"} 3.0' in text
    assert "authentication_attempts_total" not in text


def test_request_metrics_count_codes_and_leave_out_filter_refusals() -> None:
    from kybernetes.apiserver.authz.authorizer import Attributes as AuthzAttributes
    from kybernetes.apiserver.authz.authorizer import forbidden

    m = APIServerMetrics(frozenset({"", "apps"}))

    async def run() -> None:
        req = _request("POST", "/api/v1/namespaces/ns/configmaps", "dryRun=All")
        rp = parse_resource_path(req.path)
        info = request_info("POST", req.path, rp)

        async def created() -> Any:
            return SimpleNamespace(status=201, body=b"{}")

        async def refused() -> Any:
            raise forbidden(AuthzAttributes.of(User("jane"), info))

        async def conflict() -> Any:
            raise errors.Conflict("x")

        await m.serve(req, rp, info, created)
        with pytest.raises(errors.Forbidden):
            await m.serve(req, rp, info, refused)
        with pytest.raises(errors.Conflict):
            await m.serve(req, rp, info, conflict)
        cr = _request("POST", "/apis/example.com/v1/namespaces/ns/widgets")
        cr_rp = parse_resource_path(cr.path)
        await m.serve(cr, cr_rp, request_info("POST", cr.path, cr_rp), created)

    asyncio.run(run())
    families = _scrape(m)
    samples = {(s.labels["code"], s.labels["dry_run"], s.labels["component"]): s.value
               for s in families["apiserver_request"].samples}
    assert samples == {("201", "All", "apiserver"): 1, ("409", "All", "apiserver"): 1,
                       ("201", "", "apiextensions-apiserver"): 1}
    counts = [s for s in families["apiserver_request_duration_seconds"].samples if s.name.endswith("_count")]
    assert sorted(s.value for s in counts) == [1, 2]


def test_storage_metrics_label_keys_by_resource() -> None:
    s = StorageMetrics(Catalogue.builtin())
    assert s.resource_of("/registry/pods/default/web") == "pods"
    assert s.resource_of("/registry/pods/") == "pods"
    assert s.resource_of("/registry/namespaces/default") == "namespaces"
    assert s.resource_of("/registry/deployments/default/d") == "deployments.apps"
    assert s.resource_of("/registry/services/specs/default/kubernetes") == "services"


def test_admission_metrics_time_each_plugin_and_the_step() -> None:
    class Deny(Handler):
        async def validate(self, attrs: Attributes) -> None:
            raise errors.Forbidden("no")

    class Allow(Handler):
        async def validate(self, attrs: Attributes) -> None:
            return None

    chain = Chain([("Allow", Allow()), ("Deny", Deny())])
    chain.metrics = AdmissionMetrics()
    attrs = Attributes("CREATE", "", "v1", "pods", "Pod", "ns", "p", {}, None, User("u"))
    with pytest.raises(errors.Forbidden):
        asyncio.run(chain.validate(attrs))
    families = _scrape(chain.metrics)
    step = [s for s in families["apiserver_admission_step_admission_duration_seconds"].samples
            if s.name.endswith("_count")]
    assert [(s.labels, s.value) for s in step] == [
        ({"type": "validate", "operation": "CREATE", "rejected": "true"}, 1)]
    controllers = {(s.labels["name"], s.labels["rejected"]) for s in
                   families["apiserver_admission_controller_admission_duration_seconds"].samples}
    assert controllers == {("Allow", "false"), ("Deny", "true")}


def test_webhook_metrics_truncate_codes_and_give_no_rejection_code_to_internal_errors() -> None:
    m = AdmissionMetrics()
    m.webhook_call("w", "validating", "DELETE", 0.01, 0, "apiserver_internal_error")
    m.webhook_call("w", "validating", "CREATE", 0.01, 700, "no_error")  # a denial with an odd code
    m.webhook_call("w", "validating", "CREATE", 0.01, 503, "calling_webhook_error")
    m.webhook_call("w", "admit", "UPDATE", 0.01, 503, failed_open=True)
    m.webhook_call("w", "admit", "UPDATE", 12.0, 200)
    families = _scrape(m)
    requests = {(s.labels["type"], s.labels["code"], s.labels["rejected"]): s.value
                for s in families["apiserver_admission_webhook_request"].samples if s.name.endswith("_total")}
    assert requests == {("validating", "600", "true"): 1, ("validating", "503", "true"): 1, ("validating", "0", "true"): 1,
                        ("admit", "503", "false"): 1, ("admit", "200", "false"): 1}
    rejections = {(s.name, s.labels["error_type"], s.labels["rejection_code"]): s.value
                  for s in families["apiserver_admission_webhook_rejection_count"].samples}
    assert rejections == {("apiserver_admission_webhook_rejection_count", "no_error", "600"): 1,
                          ("apiserver_admission_webhook_rejection_count", "calling_webhook_error", "503"): 1,
                          ("apiserver_admission_webhook_rejection_count", "apiserver_internal_error", "0"): 1}
    assert [(s.labels, s.value) for s in families["apiserver_admission_webhook_fail_open_count"].samples] == [
        ({"name": "w", "type": "admit"}, 1)]
    slow = {s.labels["le"]: s.value for s in families["apiserver_admission_webhook_admission_duration_seconds"].samples
            if s.name.endswith("_bucket") and s.labels["type"] == "admit"}
    assert (slow["10.0"], slow["25.0"]) == (1, 2)  # the 12 s call lands between Kubernetes' 10 s and 25 s bounds
