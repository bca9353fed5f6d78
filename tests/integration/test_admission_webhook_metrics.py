"""Admission webhook metrics on a real server: real HTTPS webhooks (allowing, denying, failing
closed and open, mutating) called by ordinary creates, then ``/metrics`` scraped through kubectl
and parsed with prometheus-client's parser. Names, labels and values as kube-apiserver 1.32's
(``k8s.io/apiserver/pkg/admission/metrics``, the webhook dispatchers)."""

from __future__ import annotations

from typing import Any

import pytest

from kybernetes.testing import ServerProcess

from . import test_admission_webhooks as webhooks
from .test_admission_webhooks import Configs, configmap, create
from .test_apiserver_metrics import _scrape

pytestmark = pytest.mark.integration

# The webhook tests' fixtures: their CA, HTTPS webhook server and configurations cleaned up afterwards.
ca, hooks, configs = webhooks.ca, webhooks.hooks, webhooks.configs

_DURATION = "apiserver_admission_webhook_admission_duration_seconds"


def _webhook_series(families: dict[str, Any], prefix: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The webhook families' samples of webhooks named ``prefix*``, by (sample name, sorted labels)."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in ("apiserver_admission_webhook_request", "apiserver_admission_webhook_rejection_count",
                   "apiserver_admission_webhook_fail_open_count", _DURATION):
        for s in families[family].samples:
            if s.labels["name"].startswith(prefix) and s.name != f"{_DURATION}_bucket":
                out[s.name, tuple(sorted(s.labels.items()))] = s.value
    return out


def _delta(before: dict[Any, float], after: dict[Any, float]) -> dict[Any, float]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


def _hook(configs: Configs, name: str, path: str, **fields: Any) -> dict[str, Any]:
    """A webhook named ``metrics-<name>...`` for this test's configmaps labelled ``m=<name>``."""
    return configs.hook(f"metrics-{name}", path, objectSelector={"matchLabels": {"m": name}}, **fields)


def test_webhook_calls_are_counted_as_kubernetes_counts_them(server: ServerProcess, configs: Configs,
                                                             namespace: str) -> None:
    configs.apply("ValidatingWebhookConfiguration", "metrics-v",
                  _hook(configs, "allow", "/allow"),
                  _hook(configs, "deny", "/deny/message=nope/code=409"),
                  _hook(configs, "broken", "/error", failurePolicy="Fail"),
                  _hook(configs, "open", "/garbage", failurePolicy="Ignore"))
    configs.apply("MutatingWebhookConfiguration", "metrics-m", _hook(configs, "allow", "/label/key=k/value=v"),
                  _hook(configs, "mopen", "/garbage", failurePolicy="Ignore"))
    before = _webhook_series(_scrape(server), "metrics-")
    assert create(server, namespace, configmap("a", {"m": "allow"})).returncode == 0
    denied = create(server, namespace, configmap("d", {"m": "deny"}))
    assert 'admission webhook "metrics-deny.webhooks.test.io" denied the request: nope' in denied.stderr
    broken = create(server, namespace, configmap("b", {"m": "broken"}))
    assert 'failed calling webhook "metrics-broken.webhooks.test.io"' in broken.stderr
    assert create(server, namespace, configmap("o", {"m": "open"})).returncode == 0
    assert create(server, namespace, configmap("mo", {"m": "mopen"})).returncode == 0
    delta = _webhook_series(_scrape(server), "metrics-")

    def one(sample: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
        return sample, tuple(sorted({**labels, "operation": "CREATE"}.items()))

    allow, deny = "metrics-allow.webhooks.test.io", "metrics-deny.webhooks.test.io"
    broken_, open_ = "metrics-broken.webhooks.test.io", "metrics-open.webhooks.test.io"
    mopen = "metrics-mopen.webhooks.test.io"
    expected = {
        one("apiserver_admission_webhook_request_total", name=allow, type="admit", code="200", rejected="false"): 1,
        one("apiserver_admission_webhook_request_total", name=allow, type="validating", code="200",
            rejected="false"): 1,
        one("apiserver_admission_webhook_request_total", name=deny, type="validating", code="409",
            rejected="true"): 1,
        one("apiserver_admission_webhook_request_total", name=broken_, type="validating", code="500",
            rejected="true"): 1,
        # A body that is no JSON: no HTTP error to report, the validating dispatcher's 400.
        one("apiserver_admission_webhook_request_total", name=open_, type="validating", code="400",
            rejected="false"): 1,
        # ... where the mutating dispatcher says 503, as Kubernetes' do.
        one("apiserver_admission_webhook_request_total", name=mopen, type="admit", code="503", rejected="false"): 1,
        one("apiserver_admission_webhook_rejection_count", name=deny, type="validating", error_type="no_error",
            rejection_code="409"): 1,
        one("apiserver_admission_webhook_rejection_count", name=broken_, type="validating",
            error_type="calling_webhook_error", rejection_code="500"): 1,
    }
    counted = _delta(before, delta)
    for key, n in expected.items():
        assert counted.get(key) == n, (key, counted)
    fail_open = [k for k in counted if k[0] == "apiserver_admission_webhook_fail_open_count"]
    assert sorted(fail_open) == [
        ("apiserver_admission_webhook_fail_open_count", (("name", mopen), ("type", "admit"))),
        ("apiserver_admission_webhook_fail_open_count", (("name", open_), ("type", "validating")))]
    assert counted[one(f"{_DURATION}_count", name=allow, type="admit", rejected="false")] == 1
    assert counted[one(f"{_DURATION}_count", name=deny, type="validating", rejected="true")] == 1
    assert counted[one(f"{_DURATION}_sum", name=allow, type="admit", rejected="false")] > 0
    families = _scrape(server)
    assert families["apiserver_admission_webhook_rejection_count"].type == "unknown"  # no _total, as Kubernetes'
    bounds = {s.labels["le"] for s in families[_DURATION].samples if s.name.endswith("_bucket")}
    assert bounds == {"0.005", "0.025", "0.1", "0.5", "1.0", "2.5", "10.0", "25.0", "+Inf"}
