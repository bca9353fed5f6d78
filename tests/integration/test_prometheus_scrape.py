"""The Prometheus proof: Debian's Prometheus scrapes a kyb server's ``/metrics`` as a
ServiceAccount bound to ``system:monitoring`` and answers PromQL for the request rate by verb (the
query docs/observability.md shows).

The scrape job is the standard ``kubernetes-apiservers`` one of Prometheus' example configuration
for Kubernetes (HTTPS, the cluster CA, the ServiceAccount's bearer token, path ``/metrics``), with a
static target in place of ``kubernetes_sd_configs`` (``role: endpoints``, keep
``default/kubernetes:https``), for two reasons: Debian builds its prometheus without Kubernetes
service discovery (2.42+ds rejects the config: "field kubernetes_sd_configs not found in type
config.ScrapeConfig"), and a server on loopback publishes no Endpoints for the ``kubernetes``
Service (an endpoint may not be a loopback address). The target carries the labels the discovery
would have given it (namespace, service), so queries written for the real job work unchanged.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kybernetes.testing import ServerProcess, free_port

PROMETHEUS = "/usr/bin/prometheus"

REQUEST_RATE_BY_VERB = 'sum by (verb) (rate(apiserver_request_total{job="kubernetes-apiservers"}[1m]))'

RBAC = """apiVersion: v1
kind: ServiceAccount
metadata:
  name: prometheus
  namespace: {ns}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {ns}-prometheus-discovery
rules:
- apiGroups: [""]
  resources: [services, endpoints]
  verbs: [get, list, watch]  # what kubernetes_sd_configs would need (the token is a real Prometheus one)
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {ns}-prometheus-discovery
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {ns}-prometheus-discovery}}
subjects: [{{kind: ServiceAccount, name: prometheus, namespace: {ns}}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {ns}-prometheus-monitoring
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:monitoring}}
subjects: [{{kind: ServiceAccount, name: prometheus, namespace: {ns}}}]
"""

CONFIG = """global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
- job_name: kubernetes-apiservers
  scheme: https
  tls_config: {{ca_file: {ca}}}
  authorization: {{credentials_file: {token}}}
  static_configs:
  - targets: [{address}]
    labels: {{namespace: default, service: kubernetes}}
"""


def _require_prometheus() -> None:
    if not os.path.exists(PROMETHEUS):
        if os.environ.get("CI"):
            pytest.fail("Debian's prometheus package is required on CI (scripts/setup.sh installs it)")
        pytest.skip("prometheus is not installed on this machine (scripts/setup.sh installs it)")


@pytest.fixture
def prometheus(server: ServerProcess, namespace: str, tmp_path: Path) -> Iterator[str]:
    """A Prometheus of the test's own on a loopback port, scraping ``server``; its base URL."""
    _require_prometheus()
    server.kubectl("apply", "-f", "-", input=RBAC.format(ns=namespace))
    token = server.kubectl("create", "token", "prometheus", "-n", namespace, "--duration=1h").stdout.strip()
    (tmp_path / "token").write_text(token)
    address = server.url.removeprefix("https://")
    (tmp_path / "prometheus.yml").write_text(CONFIG.format(
        ca=server.data_dir / "tls" / "ca.crt", token=tmp_path / "token", address=address))
    port = free_port()
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115 (the child holds it)
    proc = subprocess.Popen(
        [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}", "--web.console.templates=/nonexistent",
         "--web.console.libraries=/nonexistent"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: proc.poll() is not None or _get(base + "/-/ready", raw=True) is not None, 30,
              "Prometheus to be ready", tmp_path / "prometheus.log")
        assert proc.poll() is None, (tmp_path / "prometheus.log").read_text(errors="replace")[-3000:]
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for kind, name in (("clusterrolebinding", "discovery"), ("clusterrolebinding", "monitoring"),
                           ("clusterrole", "discovery")):
            server.kubectl("delete", kind, f"{namespace}-prometheus-{name}", check=False)
        shutil.rmtree(tmp_path / "tsdb", ignore_errors=True)


def _get(url: str, raw: bool = False) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            body = resp.read()
    except OSError:
        return None
    return body if raw else json.loads(body)


def _query(base: str, promql: str) -> list[dict[str, Any]]:
    answer = _get(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
    if answer is None or answer.get("status") != "success":
        return []
    return list(answer["data"]["result"])


def _wait(ok: Any, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{tail}")
        time.sleep(0.5)


def test_prometheus_discovers_and_scrapes_the_api_server(server: ServerProcess, namespace: str,
                                                         prometheus: str) -> None:
    def target_up() -> bool:
        targets = (_get(prometheus + "/api/v1/targets") or {}).get("data", {}).get("activeTargets", [])
        return any(t["labels"].get("job") == "kubernetes-apiservers" and t["health"] == "up" for t in targets)

    _wait(target_up, 60, "the API server's target to be up (scraped over HTTPS with the bearer token)")
    [target] = [t for t in _get(prometheus + "/api/v1/targets")["data"]["activeTargets"]
                if t["labels"]["job"] == "kubernetes-apiservers"]
    assert target["scrapeUrl"] == f"{server.url}/metrics"
    # Requests the rate must show: creates (POST) and reads (GET, LIST) while Prometheus scrapes.
    for i in range(5):
        server.kubectl("create", "configmap", f"rate-{i}", "-n", namespace, "--from-literal=k=v")
        server.kubectl("get", "configmap", f"rate-{i}", "-n", namespace)
        server.kubectl("get", "configmaps", "-n", namespace)
        time.sleep(0.5)  # spread over several scrapes (1 s apart): rate needs two samples

    def rates() -> dict[str, float]:
        return {r["metric"].get("verb", ""): float(r["value"][1]) for r in _query(prometheus, REQUEST_RATE_BY_VERB)}

    _wait(lambda: all(rates().get(v, 0) > 0 for v in ("POST", "GET", "LIST")), 60,
          "a non-zero request rate for POST, GET and LIST")
    created = _query(prometheus, 'apiserver_request_total{job="kubernetes-apiservers",verb="POST",'
                                 'resource="configmaps",code="201"}')
    assert created and float(created[0]["value"][1]) >= 5
