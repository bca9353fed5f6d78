"""kube-apiserver's ``/metrics`` on a real server: scraped through kubectl and the official client,
parsed with prometheus-client's parser, checked against the requests the test made; RBAC decides
who may read it (nonResourceURL ``/metrics``), with Kubernetes' wording for those who may not."""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client, watch
from prometheus_client.parser import text_string_to_metric_families

from kybernetes.testing import ServerProcess

PODTEMPLATE = """apiVersion: v1
kind: PodTemplate
metadata:
  name: {name}
template:
  spec:
    containers:
    - name: c
      image: busybox
"""


def _families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def _scrape(server: ServerProcess, *args: str) -> dict[str, Any]:
    return _families(server.kubectl("get", "--raw", "/metrics", *args).stdout)


def _value(families: dict[str, Any], family: str, sample: str, **labels: str) -> float:
    """The sum of the ``sample`` series of ``family`` whose labels include ``labels`` (0 if none)."""
    f = families.get(family)
    if f is None:
        return 0.0
    return sum(s.value for s in f.samples if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()))


def _requests(families: dict[str, Any], **labels: str) -> float:
    return _value(families, "apiserver_request", "apiserver_request_total", **labels)


def _podtemplate_requests(families: dict[str, Any]) -> dict[tuple[str, str, str, str], float]:
    """podtemplates' request counts by (verb, scope, code, dry_run); group, version and component checked."""
    out: dict[tuple[str, str, str, str], float] = {}
    for s in families["apiserver_request"].samples:
        labels = s.labels
        if s.name == "apiserver_request_total" and labels["resource"] == "podtemplates":
            assert (labels["group"], labels["version"], labels["component"], labels["subresource"]) == (
                "", "v1", "apiserver", "")
            out[labels["verb"], labels["scope"], labels["code"], labels["dry_run"]] = s.value
    return out


def test_requests_show_up_with_kubernetes_labels(server: ServerProcess, namespace: str, api: Any) -> None:
    def counted(*kubectl_args: str, input: str | None = None) -> dict[tuple[str, str, str, str], float]:
        """What one kubectl command adds to podtemplates' request counts."""
        before = _podtemplate_requests(_scrape(server))
        server.kubectl(*kubectl_args, "-n", namespace, input=input, check=False)
        after = _podtemplate_requests(_scrape(server))
        return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}

    assert counted("create", "-f", "-", input=PODTEMPLATE.format(name="a")) == {
        ("POST", "resource", "201", ""): 1}
    assert counted("create", "--dry-run=server", "-f", "-", input=PODTEMPLATE.format(name="b")) == {
        ("POST", "resource", "201", "All"): 1}
    assert counted("get", "podtemplate", "a") == {("GET", "resource", "200", ""): 1}
    assert counted("get", "podtemplate", "missing") == {("GET", "resource", "404", ""): 1}
    assert counted("get", "podtemplates") == {("LIST", "namespace", "200", ""): 1}
    assert counted("get", "podtemplates", "--all-namespaces") == {("LIST", "cluster", "200", ""): 1}
    applied = counted("apply", "--server-side", "-f", "-", input=PODTEMPLATE.format(name="a"))
    assert applied[("APPLY", "resource", "200", "")] == 1
    watched = counted("get", "podtemplates", "--watch", "--request-timeout=1s")
    assert watched[("WATCH", "namespace", "200", "")] == 1
    # A watch from the official client gets the existing object as an event: one more event sent.
    events_before = _value(_scrape(server), "apiserver_watch_events", "apiserver_watch_events_total",
                           kind="PodTemplate", group="", version="v1")
    stream = watch.Watch().stream(client.CoreV1Api(api).list_namespaced_pod_template, namespace, timeout_seconds=1)
    assert [(e["type"], e["object"].metadata.name) for e in stream] == [("ADDED", "a")]
    assert _value(_scrape(server), "apiserver_watch_events", "apiserver_watch_events_total",
                  kind="PodTemplate", group="", version="v1") == events_before + 1
    assert counted("delete", "podtemplate", "a")[("DELETE", "resource", "200", "")] == 1
    # The official client reads the same endpoint (Accept: text/plain).
    resp = api.call_api("GET", api.configuration.host + "/metrics", header_params={"Accept": "text/plain"})
    resp.read()
    assert resp.status == 200 and resp.getheader("Content-Type").startswith("text/plain; version=0.0.4")
    after = _families(bytes(resp.data).decode())
    core = {"group": "", "version": "v1", "resource": "podtemplates", "component": "apiserver", "dry_run": ""}
    assert _requests(after, **core, verb="DELETE", scope="resource", code="200") == 1
    # The latency histogram counts each request once, in Kubernetes' buckets.
    get_labels = {k: v for k, v in core.items()} | {"verb": "GET", "scope": "resource", "subresource": ""}
    count = _value(after, "apiserver_request_duration_seconds", "apiserver_request_duration_seconds_count",
                   **get_labels)
    assert count == _requests(after, **get_labels)
    les = {s.labels["le"] for s in after["apiserver_request_duration_seconds"].samples if "le" in s.labels}
    assert {"0.005", "0.025", "60.0", "+Inf"} <= les and len(les) == 24
    # Other families a kube-apiserver dashboard reads.
    assert _value(after, "apiserver_storage_objects", "apiserver_storage_objects", resource="namespaces") >= 4
    assert _value(after, "etcd_requests", "etcd_requests_total", operation="create", type="podtemplates") >= 1
    assert _value(after, "authentication_attempts", "authentication_attempts", result="success") > 0
    assert _value(after, "authorization_attempts", "authorization_attempts_total", result="allowed") > 0
    assert _value(after, "apiserver_admission_step_admission_duration_seconds",
                  "apiserver_admission_step_admission_duration_seconds_count", type="admit", operation="CREATE") > 0
    assert {s.labels["request_kind"] for s in after["apiserver_current_inflight_requests"].samples} == {
        "readOnly", "mutating"}
    assert "process_cpu_seconds" in after  # the process's own metrics come along


def test_metrics_need_rbac(server: ServerProcess, namespace: str, api: Any) -> None:
    user = "metrics-reader-" + namespace[-20:]
    no_opinion = _value(_scrape(server), "authorization_attempts", "authorization_attempts_total", result="no-opinion")
    denied = server.kubectl("get", "--raw", "/metrics", f"--as={user}", check=False)
    assert denied.returncode != 0
    assert f'Error from server (Forbidden): forbidden: User "{user}" cannot get path "/metrics"' in denied.stderr
    resp = api.call_api("GET", api.configuration.host + "/metrics", header_params={"Impersonate-User": user})
    resp.read()
    assert resp.status == 403
    status = json.loads(bytes(resp.data))
    assert (status["code"], status["reason"], status["message"]) == (
        403, "Forbidden", f'forbidden: User "{user}" cannot get path "/metrics"')
    assert status["details"] == {}
    # RBAC refuses by having no opinion (Kubernetes' result label then says so), and the refusal is
    # the authorization filter's, not a handler's: no 403 request is counted.
    families = _scrape(server)
    assert _value(families, "authorization_attempts", "authorization_attempts_total",
                  result="no-opinion") >= no_opinion + 2
    refused = server.kubectl("get", "-n", namespace, "podtemplates", f"--as={user}", check=False)
    assert "cannot list resource" in refused.stderr
    assert _requests(_scrape(server), resource="podtemplates", code="403") == 0
    # Bound to Kubernetes' system:monitoring role, the user may scrape.
    server.kubectl("create", "clusterrolebinding", user, "--clusterrole=system:monitoring", f"--user={user}")
    try:
        server.wait_allowed("get", "/metrics", user)
        families = _families(server.kubectl("get", "--raw", "/metrics", f"--as={user}").stdout)
        assert "apiserver_request" in families
    finally:
        server.kubectl("delete", "clusterrolebinding", user)


def test_priority_and_fairness_series(server: ServerProcess, namespace: str) -> None:
    """Ordinary requests show up under the FlowSchema and priority level that classified them:
    an ordinary user's under global-default, an admin's (system:masters) under exempt."""
    dispatched = ("apiserver_flowcontrol_dispatched_requests", "apiserver_flowcontrol_dispatched_requests_total")
    default = {"priority_level": "global-default", "flow_schema": "global-default"}
    before = _value(_scrape(server), *dispatched, **default)
    user = "apf-user-" + namespace[-20:]
    for _ in range(3):  # refused by RBAC, which comes after API Priority and Fairness, as in Kubernetes
        assert server.kubectl("get", "-n", namespace, "podtemplates", f"--as={user}", check=False).returncode != 0
    families = _scrape(server)
    assert _value(families, *dispatched, **default) >= before + 3
    exempt = {"priority_level": "exempt", "flow_schema": "exempt"}
    # The scrape itself is an admin's request executing while the metrics are rendered.
    assert _value(families, "apiserver_flowcontrol_current_executing_requests",
                  "apiserver_flowcontrol_current_executing_requests", **exempt) >= 1
    assert _value(families, "apiserver_flowcontrol_current_inqueue_requests",
                  "apiserver_flowcontrol_current_inqueue_requests", **default) == 0
    wait = "apiserver_flowcontrol_request_wait_duration_seconds"
    assert _value(families, wait, f"{wait}_count", **default, execute="true") == _value(families, *dispatched, **default)
    les = {s.labels["le"] for s in families[wait].samples if "le" in s.labels}
    assert les == {"0.0", "0.005", "0.02", "0.05", "0.1", "0.2", "0.5", "1.0", "2.0", "5.0", "10.0", "30.0", "+Inf"}
    assert families["apiserver_flowcontrol_rejected_requests"].type == "counter"
