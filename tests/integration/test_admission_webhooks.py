"""Admission webhooks on a real API server, with real HTTPS webhook servers the tests start.

Every webhook here is scoped to the test's own namespace (namespaceSelector on
``kubernetes.io/metadata.name``) or to objects labelled for the test, so that the shared server's
other tests never reach them; each test deletes its configurations.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kybernetes.testing import ServerProcess, free_port

from .webhookserver import CA, WebhookServer, host_address

pytestmark = pytest.mark.integration

GROUP_VERSION = "admissionregistration.k8s.io/v1"
CONFIGMAPS = [{"operations": ["*"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}]


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CA:
    return CA(tmp_path_factory.mktemp("webhook-ca"), ["127.0.0.1"])


@pytest.fixture(scope="module")
def hooks(ca: CA) -> Iterator[WebhookServer]:
    srv = WebhookServer(ca)
    try:
        yield srv
    finally:
        srv.stop()


class Configs:
    """Creates webhook configurations for one test and deletes them afterwards."""

    def __init__(self, server: ServerProcess, ca: CA, hooks: WebhookServer, namespace: str) -> None:
        self.server, self.ca, self.hooks, self.namespace = server, ca, hooks, namespace
        self.made: list[tuple[str, str]] = []

    def hook(self, name: str, path: str, *, rules: list[dict[str, Any]] | None = None, **fields: Any) -> dict[str, Any]:
        """A webhook calling ``path`` of the test server, for this test's namespace by default."""
        out: dict[str, Any] = {
            "name": f"{name}.webhooks.test.io", "sideEffects": "None", "admissionReviewVersions": ["v1"],
            "clientConfig": {"url": self.hooks.url(path.replace(" ", "%20")), "caBundle": self.ca.bundle},
            "rules": rules if rules is not None else CONFIGMAPS,
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": self.namespace}},
        }
        out.update(fields)
        return out

    def apply(self, kind: str, name: str, *webhooks: dict[str, Any], wait: bool = True) -> None:
        """Create the configuration; with ``wait``, with one more webhook for objects labelled
        ``probe=<name>`` and return once a dry-run probe reaches it (the configuration is then
        in the server's cache), with what the webhooks received so far forgotten."""
        full = f"{name}-{self.namespace}"[:63]
        hooks = list(webhooks)
        if wait:
            hooks.append(self.hook("probe", f"/probe-{name}", objectSelector={"matchLabels": {"probe": name}}))
        doc = {"apiVersion": GROUP_VERSION, "kind": kind, "metadata": {"name": full}, "webhooks": hooks}
        self.server.kubectl("create", "-f", "-", input=json.dumps(doc))
        self.made.append((kind.lower() + "s", full))
        if wait:
            def probe() -> bool:
                create(self.server, self.namespace, configmap("probe", {"probe": name}), "--dry-run=server")
                return bool(self.hooks.received[f"/probe-{name}"])
            eventually(probe)
            self.hooks.received.clear()

    def cleanup(self) -> None:
        for plural, name in self.made:
            self.server.kubectl("delete", f"{plural}.admissionregistration.k8s.io", name, "--ignore-not-found")


@pytest.fixture
def configs(server: ServerProcess, ca: CA, hooks: WebhookServer, namespace: str) -> Iterator[Configs]:
    c = Configs(server, ca, hooks, namespace)
    try:
        yield c
    finally:
        c.cleanup()
        hooks.received.clear()


def eventually(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Poll ``check`` until it returns something true (the configuration reaches the server's
    webhook cache through its watch, a moment after the write)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def configmap(name: str, labels: dict[str, str] | None = None) -> str:
    meta: dict[str, Any] = {"name": name, **({"labels": labels} if labels else {})}
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": "v"}})


def create(server: ServerProcess, namespace: str, body: str, *args: str) -> subprocess.CompletedProcess[str]:
    return server.kubectl("create", "-n", namespace, "-f", "-", *args, input=body, check=False)


# --- the configuration objects ---------------------------------------------------------------


def test_configurations_are_defaulted_as_kubernetes_does(server: ServerProcess, configs: Configs) -> None:
    service = {"service": {"name": "svc", "namespace": "default"}, "caBundle": configs.ca.bundle}
    configs.apply("MutatingWebhookConfiguration", "defaults",
                  configs.hook("m", "/allow", clientConfig=service, namespaceSelector=None), wait=False)
    out = json.loads(server.kubectl("get", "mutatingwebhookconfigurations", configs.made[0][1], "-o", "json").stdout)
    hook = out["webhooks"][0]
    assert hook["failurePolicy"] == "Fail" and hook["matchPolicy"] == "Equivalent"
    assert hook["timeoutSeconds"] == 10 and hook["reinvocationPolicy"] == "Never"
    assert hook["namespaceSelector"] == {} and hook["objectSelector"] == {}
    assert hook["rules"][0]["scope"] == "*" and hook["clientConfig"]["service"]["port"] == 443
    assert out["metadata"]["generation"] == 1
    table = server.kubectl("get", "mutatingwebhookconfigurations", configs.made[0][1]).stdout.split("\n")
    assert table[0].split() == ["NAME", "WEBHOOKS", "AGE"] and table[1].split()[1] == "1"


def test_invalid_configurations_get_kubernetes_422(server: ServerProcess, configs: Configs) -> None:
    bad = configs.hook("x", "/allow", sideEffects=None, timeoutSeconds=31, matchPolicy="Sometimes",
                       admissionReviewVersions=["v2"],
                       rules=[{"operations": ["CREATE", "*"], "apiGroups": [""], "apiVersions": ["v1"],
                               "resources": ["*", "pods"]}],
                       matchConditions=[{"name": "bad name!", "expression": "object.metadata.name =="}])
    del bad["sideEffects"]
    bad["name"] = "short.name"
    plain = configs.hook("dup", "/allow", clientConfig={"url": "http://127.0.0.1/x?y=1"})
    doc = {"apiVersion": GROUP_VERSION, "kind": "ValidatingWebhookConfiguration", "metadata": {"name": "bad"},
           "webhooks": [bad, plain, dict(plain)]}
    res = server.kubectl("create", "-f", "-", input=json.dumps(doc), check=False)
    assert res.returncode != 0
    err = res.stderr
    assert 'The ValidatingWebhookConfiguration "bad" is invalid' in err
    for text in (
        'webhooks[0].name: Invalid value: "short.name": should be a domain with at least three segments separated by dots',
        "webhooks[0].rules[0].operations: Invalid value:",
        "if '*' is present, must not specify other operations",
        "if '*' is present, must not specify other resources without subresources",
        'webhooks[0].matchPolicy: Unsupported value: "Sometimes": supported values: "Equivalent", "Exact"',
        "webhooks[0].sideEffects: Required value: must specify one of None, NoneOnDryRun",
        "webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 seconds",
        "webhooks[0].matchConditions[0].expression: Invalid value: \"object.metadata.name ==\": compilation failed",
        'webhooks[0].matchConditions[0].name: Invalid value: "bad name!"',
        'webhooks[0].admissionReviewVersions: Invalid value: []string{"v2"}: must include at least one of v1, v1beta1',
        "webhooks[1].clientConfig.url: Invalid value: \"http\": 'https' is the only allowed URL scheme; "
        "desired format: https://host[/path]",
        'webhooks[1].clientConfig.url: Invalid value: "y=1": query parameters are not permitted in the URL',
        'webhooks[2].name: Duplicate value: "dup.webhooks.test.io"',
    ):
        assert text in err, text


# --- calls, requests and answers -------------------------------------------------------------


def test_requests_carry_what_kubernetes_sends(server: ServerProcess, configs: Configs, hooks: WebhookServer,
                                              namespace: str) -> None:
    configs.apply("ValidatingWebhookConfiguration", "record", configs.hook("record", "/record"))
    assert create(server, namespace, configmap("seen")).returncode == 0
    server.kubectl("label", "-n", namespace, "configmap", "seen", "x=y")
    server.kubectl("delete", "-n", namespace, "configmap", "seen")
    create_req, update_req, delete_req = (r["request"] for r in hooks.received["/record"])
    assert list(create_req) == ["uid", "kind", "resource", "requestKind", "requestResource", "name", "namespace",
                                "operation", "userInfo", "object", "oldObject", "dryRun", "options"]
    assert create_req["kind"] == {"group": "", "version": "v1", "kind": "ConfigMap"}
    assert create_req["resource"] == {"group": "", "version": "v1", "resource": "configmaps"}
    assert create_req["requestKind"] == create_req["kind"]
    assert (create_req["name"], create_req["namespace"], create_req["operation"]) == ("seen", namespace, "CREATE")
    assert create_req["userInfo"]["username"] and "system:authenticated" in create_req["userInfo"]["groups"]
    assert create_req["object"]["data"] == {"k": "v"} and create_req["oldObject"] is None
    assert create_req["dryRun"] is False
    assert create_req["options"] == {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1",
                                     "fieldManager": "kubectl-create"}
    assert update_req["operation"] == "UPDATE" and update_req["options"]["kind"] == "UpdateOptions"
    assert update_req["object"]["metadata"]["labels"] == {"x": "y"} and "labels" not in update_req["oldObject"]["metadata"]
    assert delete_req["operation"] == "DELETE" and delete_req["object"] is None
    assert delete_req["oldObject"]["metadata"]["name"] == "seen" and delete_req["options"]["kind"] == "DeleteOptions"
    assert len({create_req["uid"], update_req["uid"], delete_req["uid"]}) == 3


def test_v1beta1_reviews_for_webhooks_that_ask_for_them(server: ServerProcess, configs: Configs,
                                                        hooks: WebhookServer, namespace: str) -> None:
    configs.apply("ValidatingWebhookConfiguration", "beta",
                  configs.hook("beta", "/beta", admissionReviewVersions=["v1beta1", "v1"]))
    assert create(server, namespace, configmap("old-style")).returncode == 0
    (review,) = hooks.received["/beta"]
    assert review["apiVersion"] == "admission.k8s.io/v1beta1" and review["request"]["name"] == "old-style"


def test_denial_in_kubernetes_words(server: ServerProcess, configs: Configs, hooks: WebhookServer,
                                    namespace: str, api: Any) -> None:
    configs.apply("ValidatingWebhookConfiguration", "deny",
                  configs.hook("deny", "/deny/message=names must be nicer/code=403",
                               objectSelector={"matchLabels": {"deny": "yes"}}))
    res = create(server, namespace, configmap("bad", {"deny": "yes"}))
    assert res.returncode != 0
    # The webhook's Status has no reason, so neither has the answer (kubectl then names none).
    assert ('Error from server: error when creating "STDIN": admission webhook '
            '"deny.webhooks.test.io" denied the request: names must be nicer') in res.stderr
    assert create(server, namespace, configmap("fine")).returncode == 0  # objectSelector: not called
    from kubernetes import client

    with pytest.raises(client.ApiException) as caught:
        client.CoreV1Api(api).create_namespaced_config_map(namespace, json.loads(configmap("b2", {"deny": "yes"})))
    assert caught.value.status == 403
    body = json.loads(caught.value.body)
    assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": 'admission webhook "deny.webhooks.test.io" denied the request: names must be nicer',
                    "code": 403}


def test_dry_run_calls_webhooks_without_side_effects(server: ServerProcess, configs: Configs, hooks: WebhookServer,
                                                     namespace: str) -> None:
    configs.apply("ValidatingWebhookConfiguration", "dry", configs.hook("dry", "/dry", sideEffects="NoneOnDryRun"))
    assert create(server, namespace, configmap("only-dry"), "--dry-run=server").returncode == 0
    req = hooks.received["/dry"][-1]["request"]
    assert req["dryRun"] is True and req["options"]["dryRun"] == ["All"]
    assert server.kubectl("get", "-n", namespace, "configmap", "only-dry", check=False).returncode != 0


def test_warnings_reach_the_client(server: ServerProcess, configs: Configs, hooks: WebhookServer,
                                   namespace: str) -> None:
    configs.apply("ValidatingWebhookConfiguration", "warn", configs.hook("warn", "/warn/w=mind the gap"))
    res = create(server, namespace, configmap("warned"))
    assert res.returncode == 0 and "Warning: mind the gap" in res.stderr


def test_mutations_apply_in_order_and_reinvoke_if_needed(server: ServerProcess, configs: Configs,
                                                         hooks: WebhookServer, namespace: str) -> None:
    # Configurations run by name: a (IfNeeded, records), b (adds a label), c (records).
    configs.apply("MutatingWebhookConfiguration", "a", configs.hook("a", "/record-a", reinvocationPolicy="IfNeeded"))
    configs.apply("MutatingWebhookConfiguration", "b", configs.hook("b", "/label/key=team/value=blue"))
    configs.apply("MutatingWebhookConfiguration", "c", configs.hook("c", "/record-c"))
    assert create(server, namespace, configmap("mutated")).returncode == 0
    got = json.loads(server.kubectl("get", "-n", namespace, "configmap", "mutated", "-o", "json").stdout)
    assert got["metadata"]["labels"] == {"team": "blue"}
    first_a, second_a = (r["request"]["object"] for r in hooks.received["/record-a"])
    assert "labels" not in first_a["metadata"] and second_a["metadata"]["labels"] == {"team": "blue"}
    assert len(hooks.received["/label"]) == 1  # reinvocationPolicy Never
    assert [r["request"]["object"]["metadata"].get("labels") for r in hooks.received["/record-c"]] == [{"team": "blue"}]


def test_an_injected_sidecar_gets_the_token_mount_in_the_second_round(server: ServerProcess, configs: Configs,
                                                                      namespace: str) -> None:
    pods = [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}]
    configs.apply("MutatingWebhookConfiguration", "inject", configs.hook("inject", "/sidecar", rules=pods))
    pod = {**POD, "metadata": {"name": "injected"}}
    assert create(server, namespace, json.dumps(pod)).returncode == 0
    got = json.loads(server.kubectl("get", "-n", namespace, "pod", "injected", "-o", "json").stdout)["spec"]
    assert [c["name"] for c in got["containers"]] == ["c", "sidecar"]
    token_volumes = [v["name"] for v in got["volumes"] if v["name"].startswith("kube-api-access-")]
    assert len(token_volumes) == 1
    for c in got["containers"]:  # the ServiceAccount plugin mounted the sidecar too, in the second round
        assert [m["name"] for m in c["volumeMounts"]
                if m["mountPath"] == "/var/run/secrets/kubernetes.io/serviceaccount"] == token_volumes


@pytest.mark.parametrize(("path", "why"), [
    ("/garbage", "failed to call webhook: couldn't get version/kind; json parse error: "),
    ("/wrong-uid", 'received invalid webhook response: expected response.uid='),
    ("/error", 'failed to call webhook: an error on the server ("boom") has prevented the request from succeeding'),
])
def test_bad_answers_get_the_failure_policy(server: ServerProcess, configs: Configs, hooks: WebhookServer,
                                            namespace: str, path: str, why: str) -> None:
    configs.apply("ValidatingWebhookConfiguration", "ignore", configs.hook("ignore", path, failurePolicy="Ignore"))
    configs.apply("ValidatingWebhookConfiguration", "fail",
                  configs.hook("fail", path, objectSelector={"matchLabels": {"strict": "yes"}}))
    assert create(server, namespace, configmap("lenient")).returncode == 0
    res = create(server, namespace, configmap("strict", {"strict": "yes"}))
    assert res.returncode != 0
    assert ('Error from server (InternalError): error when creating "STDIN": Internal error occurred: '
            'failed calling webhook "fail.webhooks.test.io": ') in res.stderr
    assert why in res.stderr


def test_timeouts_and_unreachable_webhooks(server: ServerProcess, configs: Configs, hooks: WebhookServer,
                                           namespace: str) -> None:
    closed = f"https://127.0.0.1:{free_port()}/nothing"
    configs.apply("ValidatingWebhookConfiguration", "slow",
                  configs.hook("slow", "/slow/seconds=5", timeoutSeconds=1, failurePolicy="Ignore"),
                  configs.hook("down", "/x", objectSelector={"matchLabels": {"down": "yes"}},
                               clientConfig={"url": closed, "caBundle": configs.ca.bundle}),
                  configs.hook("timeout", "/slow/seconds=5", timeoutSeconds=1,
                               objectSelector={"matchLabels": {"timeout": "yes"}}))
    started = time.monotonic()
    assert create(server, namespace, configmap("late")).returncode == 0
    assert time.monotonic() - started < 4.5  # the slow webhook was given up on after its 1 s
    res = create(server, namespace, configmap("down", {"down": "yes"}))
    assert res.returncode != 0 and 'failed calling webhook "down.webhooks.test.io": failed to call webhook: ' \
        f'Post "{closed}?timeout=10s": ' in res.stderr
    res = create(server, namespace, configmap("timeout", {"timeout": "yes"}))
    assert res.returncode != 0 and "context deadline exceeded" in res.stderr and "?timeout=1s" in res.stderr


def test_tls_is_verified_against_the_ca_bundle(server: ServerProcess, configs: Configs, tmp_path: Path,
                                               namespace: str) -> None:
    other = CA(tmp_path, ["127.0.0.1"], cn="another-ca")
    hook = configs.hook("tls", "/allow")
    hook["clientConfig"]["caBundle"] = other.bundle
    configs.apply("ValidatingWebhookConfiguration", "tls", hook)
    res = create(server, namespace, configmap("tls"))
    assert res.returncode != 0
    assert 'failed calling webhook "tls.webhooks.test.io"' in res.stderr and "certificate" in res.stderr


# --- matching ----------------------------------------------------------------------------------


def test_namespace_and_object_selectors(server: ServerProcess, configs: Configs, hooks: WebhookServer,
                                        namespace: str) -> None:
    server.kubectl("label", "ns", namespace, "env=prod")
    configs.apply("ValidatingWebhookConfiguration", "sel",
                  configs.hook("ns", "/ns", namespaceSelector={"matchLabels": {"env": "prod"}}),
                  configs.hook("obj", "/obj", objectSelector={"matchExpressions": [
                      {"key": "pick", "operator": "In", "values": ["me"]}]}))
    assert create(server, namespace, configmap("one")).returncode == 0
    assert create(server, namespace, configmap("two", {"pick": "me"})).returncode == 0
    assert [r["request"]["name"] for r in hooks.received["/ns"]] == ["one", "two"]
    assert [r["request"]["name"] for r in hooks.received["/obj"]] == ["two"]
    server.kubectl("label", "ns", namespace, "env-")

    def unselected() -> bool:
        hooks.received["/ns"].clear()
        create(server, namespace, configmap("x"), "--dry-run=server")
        return not hooks.received["/ns"]
    eventually(unselected)


POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
       "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def test_rules_subresources_and_scope(server: ServerProcess, configs: Configs, hooks: WebhookServer,
                                      namespace: str) -> None:
    status_only = [{"operations": ["UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods/status"]}]
    cluster_any = [{"operations": ["CREATE"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"],
                    "scope": "Cluster"}]
    namespaced_any = [{"operations": ["CREATE"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*/*"],
                       "scope": "Namespaced"}]
    configs.apply("ValidatingWebhookConfiguration", "rules", configs.hook("status", "/status", rules=status_only),
                  configs.hook("cluster", "/cluster", rules=cluster_any),
                  configs.hook("namespaced", "/namespaced", rules=namespaced_any))
    assert create(server, namespace, json.dumps(POD)).returncode == 0
    assert [r["request"]["name"] for r in hooks.received["/namespaced"]] == ["p"]
    assert not hooks.received["/status"] and not hooks.received["/cluster"]
    server.kubectl("patch", "-n", namespace, "pod", "p", "--subresource=status", "--type=merge",
                   "-p", '{"status":{"message":"hello"}}')
    (req,) = (r["request"] for r in hooks.received["/status"])
    assert (req["subResource"], req["requestSubResource"], req["operation"]) == ("status", "status", "UPDATE")
    assert req["kind"]["kind"] == "Pod"


HPA = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
       "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 1, "maxReplicas": 3}}


def test_match_policy_equivalent_calls_with_the_matched_version(server: ServerProcess, configs: Configs,
                                                                hooks: WebhookServer, namespace: str) -> None:
    v1_only = [{"operations": ["CREATE"], "apiGroups": ["autoscaling", ""], "apiVersions": ["v1"],
                "resources": ["horizontalpodautoscalers", "configmaps"]}]
    configs.apply("ValidatingWebhookConfiguration", "policy",
                  configs.hook("equivalent", "/equivalent", rules=v1_only),
                  configs.hook("exact", "/exact", rules=v1_only, matchPolicy="Exact"))
    assert create(server, namespace, json.dumps(HPA)).returncode == 0
    assert not hooks.received["/exact"]
    (req,) = (r["request"] for r in hooks.received["/equivalent"])
    assert req["kind"] == {"group": "autoscaling", "version": "v1", "kind": "HorizontalPodAutoscaler"}
    assert req["resource"]["version"] == "v1" and req["requestResource"]["version"] == "v2"
    assert req["requestKind"]["version"] == "v2" and req["object"]["apiVersion"] == "autoscaling/v1"
    assert req["object"]["spec"]["maxReplicas"] == 3


def test_match_conditions(server: ServerProcess, configs: Configs, hooks: WebhookServer, namespace: str) -> None:
    configs.apply("ValidatingWebhookConfiguration", "cel", configs.hook("cel", "/cel", matchConditions=[
        {"name": "named", "expression": "object.metadata.name.startsWith('cel-')"},
        {"name": "by-user", "expression": "request.userInfo.username != ''"}]),
        configs.hook("broken", "/broken", objectSelector={"matchLabels": {"broken": "yes"}},
                     matchConditions=[{"name": "missing", "expression": "object.spec.nothing == 1"}]))
    assert create(server, namespace, configmap("cel-yes")).returncode == 0
    assert create(server, namespace, configmap("other")).returncode == 0
    assert [r["request"]["name"] for r in hooks.received["/cel"]] == ["cel-yes"]
    res = create(server, namespace, configmap("broken", {"broken": "yes"}))
    assert res.returncode != 0 and 'configmaps "broken" is forbidden: ' in res.stderr
    assert not hooks.received["/broken"]


# --- concurrency -------------------------------------------------------------------------------


def test_validating_webhooks_are_called_concurrently(server: ServerProcess, configs: Configs,
                                                     hooks: WebhookServer, namespace: str) -> None:
    # Each of the two answers only once the other has been called: in sequence, both would fail.
    configs.apply("ValidatingWebhookConfiguration", "pair",
                  configs.hook("one", "/barrier", objectSelector={"matchLabels": {"pair": "yes"}}),
                  configs.hook("two", "/barrier", objectSelector={"matchLabels": {"pair": "yes"}}))
    hooks.barrier.reset()
    res = create(server, namespace, configmap("paired", {"pair": "yes"}))
    assert res.returncode == 0, res.stderr


def test_a_slow_webhook_blocks_no_unrelated_request(server: ServerProcess, configs: Configs, hooks: WebhookServer,
                                                    namespace: str) -> None:
    configs.apply("ValidatingWebhookConfiguration", "hold",
                  configs.hook("hold", "/hold", timeoutSeconds=30, objectSelector={"matchLabels": {"hold": "yes"}}))
    hooks.release.clear()
    hooks.arrived.clear()
    held = threading.Thread(target=create, args=(server, namespace, configmap("held", {"hold": "yes"})))
    held.start()
    assert hooks.arrived.wait(15)
    try:
        assert create(server, namespace, configmap("free")).returncode == 0
        assert held.is_alive()  # still waiting for its webhook while the other request went through
    finally:
        hooks.release.set()
        held.join(30)


# --- clientConfig.service ----------------------------------------------------------------------


def test_service_reference_is_resolved_to_a_ready_endpoint(server: ServerProcess, configs: Configs,
                                                           tmp_path: Path, namespace: str) -> None:
    address = host_address()
    if not address:
        if __import__("os").environ.get("CI"):
            pytest.fail("no global IPv4 address on this machine")
        pytest.skip("this machine has no global IPv4 address for an EndpointSlice (loopback is refused)")
    ca = CA(tmp_path, [f"hooks.{namespace}.svc"], cn="service-ca")
    srv = WebhookServer(ca, host=address)
    try:
        service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hooks"},
                   "spec": {"ports": [{"name": "https", "port": 8443, "targetPort": 9999}]}}
        ready = {"addresses": [address], "conditions": {"ready": True}}
        unready = {"addresses": ["192.0.2.250"], "conditions": {"ready": False}}
        eps = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
               "metadata": {"name": "hooks-1", "labels": {"kubernetes.io/service-name": "hooks"}},
               "addressType": "IPv4", "ports": [{"name": "https", "port": srv.port}], "endpoints": [unready, ready]}
        for doc in (service, eps):
            assert create(server, namespace, json.dumps(doc)).returncode == 0
        hook = configs.hook("svc", "/deny", objectSelector={"matchLabels": {"svc": "yes"}},
                            clientConfig={"service": {"namespace": namespace, "name": "hooks", "port": 8443,
                                                      "path": "/deny"}, "caBundle": ca.bundle})
        configs.apply("ValidatingWebhookConfiguration", "svc", hook)
        res = create(server, namespace, configmap("via", {"svc": "yes"}))
        assert res.returncode != 0 and 'admission webhook "svc.webhooks.test.io" denied the request' in res.stderr
        (req,) = (r["request"] for r in srv.received["/deny"])
        assert req["name"] == "via"
        server.kubectl("delete", "-n", namespace, "endpointslice", "hooks-1")
        res = create(server, namespace, configmap("gone", {"svc": "yes"}))
        assert ('failed calling webhook "svc.webhooks.test.io": failed to call webhook: Post '
                f'"https://hooks.{namespace}.svc:8443/deny?timeout=10s": no endpoints available for service '
                '"hooks"') in res.stderr
    finally:
        srv.stop()
