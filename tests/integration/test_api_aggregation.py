"""API aggregation on a real API server, with a real aggregated API server (``aggregatedserver``).

The server of this module checks APIService availability every second (``--apiservice-resync-period``)
so that a backend going away shows within the tests' patience. The aggregated server listens on
this machine's own address, reached through a Service with a manual EndpointSlice, and trusts the
front-proxy CA the API server publishes. The tests run in order: the last one takes the backend down.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kybernetes.testing import ServerProcess

from .aggregatedserver import GROUP, VERSION, AggregatedServer, host_address
from .webhookserver import CA

pytestmark = pytest.mark.integration

NAMESPACE = "metrics-test"
APISERVICE = f"{VERSION}.{GROUP}"


def eventually(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    s = ServerProcess.start(tmp_path_factory.mktemp("kyb-aggregation"), "--apiservice-resync-period", "1")
    try:
        yield s
    finally:
        s.stop()


def _trust(srv: ServerProcess) -> dict[str, str]:
    out = srv.kubectl("get", "configmap", "-n", "kube-system", "extension-apiserver-authentication", "-o", "json")
    return dict(json.loads(out.stdout)["data"])


@pytest.fixture(scope="module")
def backend(srv: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AggregatedServer]:
    address = host_address()
    if not address:
        if os.environ.get("CI"):
            pytest.fail("no global IPv4 address on this machine")
        pytest.skip("this machine has no global IPv4 address for an EndpointSlice (loopback is refused)")
    trust = _trust(srv)
    ca = CA(tmp_path_factory.mktemp("aggregated-ca"), [f"metrics-api.{NAMESPACE}.svc"], cn="aggregated-ca")
    server = AggregatedServer(address, ca.cert_path, ca.key_path, trust["requestheader-client-ca-file"],
                              json.loads(trust["requestheader-allowed-names"]))
    docs = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "metrics-api", "namespace": NAMESPACE},
         "spec": {"ports": [{"name": "https", "port": 443, "targetPort": 4443}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "metrics-api-1", "namespace": NAMESPACE,
                      "labels": {"kubernetes.io/service-name": "metrics-api"}},
         "addressType": "IPv4", "ports": [{"name": "https", "port": server.port}],
         "endpoints": [{"addresses": [address], "conditions": {"ready": True}}]},
        {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": APISERVICE},
         "spec": {"group": GROUP, "version": VERSION, "groupPriorityMinimum": 100, "versionPriority": 100,
                  "service": {"namespace": NAMESPACE, "name": "metrics-api"}, "caBundle": ca.bundle}},
    ]
    for doc in docs:
        srv.kubectl("create", "-f", "-", input=json.dumps(doc))
    try:
        yield server
    finally:
        server.stop()


def _available(srv: ServerProcess, name: str = APISERVICE) -> dict[str, Any]:
    obj = json.loads(srv.kubectl("get", "apiservice", name, "-o", "json").stdout)
    conds = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conds if c["type"] == "Available"), {})


def test_the_front_proxy_trust_is_published(srv: ServerProcess) -> None:
    trust = _trust(srv)
    assert json.loads(trust["requestheader-allowed-names"]) == ["front-proxy-client"]
    assert json.loads(trust["requestheader-username-headers"]) == ["X-Remote-User"]
    assert json.loads(trust["requestheader-group-headers"]) == ["X-Remote-Group"]
    assert json.loads(trust["requestheader-extra-headers-prefix"]) == ["X-Remote-Extra-"]
    assert trust["requestheader-client-ca-file"].startswith("-----BEGIN CERTIFICATE-----")
    assert trust["client-ca-file"] == (srv.data_dir / "tls" / "ca.crt").read_text()
    assert trust["requestheader-client-ca-file"] != trust["client-ca-file"]


def test_built_in_groups_have_local_available_apiservices(srv: ServerProcess) -> None:
    lines = srv.kubectl("get", "apiservices").stdout.splitlines()
    assert lines[0].split() == ["NAME", "SERVICE", "AVAILABLE", "AGE"]
    rows = {line.split()[0]: line.split()[1:3] for line in lines[1:]}
    for name in ("v1.", "v1.apps", "v2.autoscaling", "v1.apiregistration.k8s.io", "v1.flowcontrol.apiserver.k8s.io"):
        assert rows[name] == ["Local", "True"], name
    obj = json.loads(srv.kubectl("get", "apiservice", "v1.apps", "-o", "json").stdout)
    assert obj["spec"] == {"group": "apps", "version": "v1", "groupPriorityMinimum": 17800, "versionPriority": 15}
    assert _available(srv, "v1.apps")["reason"] == "Local"


def test_custom_resource_groups_get_local_apiservices(srv: ServerProcess) -> None:
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "widgets.crd.example.com"},
           "spec": {"group": "crd.example.com", "scope": "Namespaced",
                    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                    "versions": [{"name": "v1", "served": True, "storage": True,
                                  "schema": {"openAPIV3Schema": {"type": "object"}}}]}}
    srv.kubectl("create", "-f", "-", input=json.dumps(crd))
    cond = eventually(lambda: srv.kubectl("get", "apiservice", "v1.crd.example.com", check=False).returncode == 0
                      and _available(srv, "v1.crd.example.com"))
    assert cond["reason"] == "Local"
    obj = json.loads(srv.kubectl("get", "apiservice", "v1.crd.example.com", "-o", "json").stdout)
    assert obj["spec"] == {"group": "crd.example.com", "version": "v1", "groupPriorityMinimum": 1000,
                           "versionPriority": 100}
    srv.kubectl("delete", "crd", "widgets.crd.example.com")
    eventually(lambda: srv.kubectl("get", "apiservice", "v1.crd.example.com", check=False).returncode != 0)


def test_apiservice_validation_is_kubernetes(srv: ServerProcess) -> None:
    bad = {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": "wrong"},
           "spec": {"group": "x.example.com", "version": "v1", "groupPriorityMinimum": 0, "versionPriority": 1,
                    "service": {"namespace": "default", "name": "x"}, "insecureSkipTLSVerify": True,
                    "caBundle": base64.b64encode(b"pem").decode()}}
    res = srv.kubectl("create", "-f", "-", input=json.dumps(bad), check=False)
    assert res.returncode != 0
    assert 'The APIService "wrong" is invalid' in res.stderr
    assert 'metadata.name: Invalid value: "wrong": must be `spec.version+"."+spec.group`: "v1.x.example.com"' \
        in res.stderr
    assert "spec.groupPriorityMinimum: Invalid value: 0: must be positive and less than 20000" in res.stderr
    assert "spec.insecureSkipTLSVerify: Invalid value: true: may not be true if caBundle is present" in res.stderr


def test_the_aggregated_api_becomes_available_and_discoverable(srv: ServerProcess, backend: AggregatedServer) -> None:
    cond = eventually(lambda: (c := _available(srv)).get("status") == "True" and c)
    assert (cond["reason"], cond["message"]) == ("Passed", "all checks passed")
    row = srv.kubectl("get", "apiservice", APISERVICE).stdout.splitlines()[1].split()
    assert row[1:3] == [f"{NAMESPACE}/metrics-api", "True"]
    resources = srv.kubectl("api-resources", f"--api-group={GROUP}").stdout.splitlines()
    assert resources[1].split() == ["nodes", f"{GROUP}/{VERSION}", "false", "NodeMetrics"]
    groups = json.loads(srv.kubectl("get", "--raw", "/apis").stdout)["groups"]
    assert groups[-1] == {"name": GROUP, "versions": [{"groupVersion": f"{GROUP}/{VERSION}", "version": VERSION}],
                          "preferredVersion": {"groupVersion": f"{GROUP}/{VERSION}", "version": VERSION}}
    assert [g["name"] for g in groups][:2] == ["apiregistration.k8s.io", "apps"]  # priority order kept
    group = json.loads(srv.kubectl("get", "--raw", f"/apis/{GROUP}").stdout)
    assert group["kind"] == "APIGroup" and group["preferredVersion"]["version"] == VERSION


def test_the_backends_openapi_is_merged(srv: ServerProcess, backend: AggregatedServer) -> None:
    index = eventually(lambda: f"apis/{GROUP}/{VERSION}" in (i := json.loads(
        srv.kubectl("get", "--raw", "/openapi/v3").stdout))["paths"] and i)
    assert "apis/apps/v1" in index["paths"]
    url = index["paths"][f"apis/{GROUP}/{VERSION}"]["serverRelativeURL"]
    doc = json.loads(srv.kubectl("get", "--raw", url).stdout)
    assert "com.example.metrics.v1beta1.NodeMetrics" in doc["components"]["schemas"]
    v2 = json.loads(srv.kubectl("get", "--raw", "/openapi/v2").stdout)
    assert "com.example.metrics.v1beta1.NodeMetrics" in v2["definitions"]
    assert "io.k8s.api.apps.v1.Deployment" in v2["definitions"]
    explained = srv.kubectl("explain", "nodes.window", f"--api-version={GROUP}/{VERSION}").stdout
    assert "NodeMetrics" in explained and "The window of the usage sample." in explained


def test_requests_are_proxied_as_the_authenticated_user(srv: ServerProcess, backend: AggregatedServer) -> None:
    table = srv.kubectl("get", f"nodes.{GROUP}").stdout.splitlines()
    assert [line.split() for line in table] == [["NAME", "USER"], ["alpha", "system:admin"], ["beta", "system:admin"]]
    node = json.loads(srv.kubectl("get", f"nodes.{GROUP}", "alpha", "-o", "json").stdout)
    assert node["kind"] == "NodeMetrics" and node["user"] == "system:admin"
    assert sorted(node["groups"]) == ["system:authenticated", "system:masters"]
    seen = [r for r in backend.requests if r["path"].endswith("/nodes/alpha")][-1]
    assert seen["cn"] == "front-proxy-client" and seen["authorization"] == ""
    missing = srv.kubectl("get", f"nodes.{GROUP}", "gamma", check=False)
    assert f'Error from server (NotFound): nodemetrics.{GROUP} "gamma" not found' in missing.stderr


def test_impersonated_users_and_their_extras_are_forwarded(srv: ServerProcess, backend: AggregatedServer) -> None:
    """Through the official client's TLS pool (the admin's certificate), impersonating a user with
    extras; a client's own front-proxy header is not passed on."""
    config = pytest.importorskip("kubernetes.config")
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "metrics-reader"},
            "rules": [{"apiGroups": [GROUP], "resources": ["nodes"], "verbs": ["get", "list"]}]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": "metrics-reader-alice"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "metrics-reader"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}]}
    for doc in (role, binding):
        srv.kubectl("apply", "-f", "-", input=json.dumps(doc))
    srv.wait_allowed("get", f"nodes.{GROUP}", "alice")
    headers = {"Impersonate-User": "alice", "Impersonate-Group": "readers", "Impersonate-Extra-Scopes": "a b",
               "Impersonate-Extra-acme.com%2Fproject": "p1", "X-Remote-User": "mallory"}
    api = config.new_client_from_config(config_file=str(srv.kubeconfig))
    try:
        resp = api.rest_client.pool_manager.request("GET", f"{api.configuration.host}/apis/{GROUP}/{VERSION}/nodes/beta",
                                                    headers=headers, preload_content=True, timeout=30)
    finally:
        api.close()
    assert resp.status == 200, resp.data
    body = json.loads(resp.data)
    assert body["user"] == "alice" and sorted(body["groups"]) == ["readers", "system:authenticated"]
    assert body["extra"] == {"scopes": ["a b"], "acme.com%2fproject": ["p1"]}


def test_upgrades_are_proxied(srv: ServerProcess, backend: AggregatedServer) -> None:
    """A WebSocket to the aggregated server through the API server, as the admin."""
    import asyncio
    import ssl

    import aiohttp

    tls = srv.data_dir / "tls"
    ctx = ssl.create_default_context(cafile=str(tls / "ca.crt"))
    ctx.load_cert_chain(tls / "admin.crt", tls / "admin.key")

    async def talk() -> tuple[str | None, str]:
        async with aiohttp.ClientSession() as session:
            url = f"{srv.url}/apis/{GROUP}/{VERSION}/nodes/alpha/echo"
            async with session.ws_connect(url, ssl=ctx, protocols=("echo.test",)) as ws:
                await ws.send_str("hello")
                return ws.protocol, (await ws.receive(timeout=10)).data

    assert asyncio.run(talk()) == ("echo.test", "system:admin: hello")


def test_a_user_without_permission_is_refused_before_the_proxy(srv: ServerProcess, backend: AggregatedServer) -> None:
    before = len(backend.requests)
    res = srv.kubectl("get", f"nodes.{GROUP}", "--as=bob", check=False)
    assert res.returncode != 0
    assert (f'Error from server (Forbidden): nodes.{GROUP} is forbidden: User "bob" cannot list resource "nodes" '
            f'in API group "{GROUP}" at the cluster scope') in res.stderr
    assert all(r["user"] != "bob" for r in backend.requests[before:])


def test_watches_stream_through(srv: ServerProcess, backend: AggregatedServer) -> None:
    out = srv.kubectl("get", "--raw", f"/apis/{GROUP}/{VERSION}/nodes?watch=true").stdout
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "alpha"), ("ADDED", "beta")]
    watches = [r for r in backend.requests if r["path"].endswith("/nodes") and r["query"]]
    assert watches[-1]["query"] == {"watch": "true"} and watches[-1]["user"] == "system:admin"


def test_backend_down_makes_the_apiservice_unavailable(srv: ServerProcess, backend: AggregatedServer) -> None:
    port = backend.port
    backend.stop()
    cond = eventually(lambda: (c := _available(srv)).get("status") == "False" and c)
    url = f"https://{backend.host}:{port}/apis/{GROUP}/{VERSION}"
    assert cond["reason"] == "FailedDiscoveryCheck"
    assert cond["message"].startswith(f"failing or missing response from {url}: Get \"{url}\": "), cond["message"]
    row = srv.kubectl("get", "apiservice", APISERVICE).stdout.splitlines()[1].split()
    assert row[2:4] == ["False", "(FailedDiscoveryCheck)"]
    # Its discovery is now Stale (kubectl then knows no such resource), and a request gets 503.
    res = srv.kubectl("get", "--raw", f"/apis/{GROUP}/{VERSION}/nodes/alpha", check=False)
    assert "Error from server (ServiceUnavailable): the server is currently unable to handle the request" \
        in res.stderr
    aggregated = json.loads(srv.kubectl("get", "--raw", "/apis", check=False).stdout)
    assert {g["name"] for g in aggregated["groups"]} >= {GROUP}
    srv.kubectl("delete", "endpointslice", "-n", NAMESPACE, "metrics-api-1")
    cond = eventually(lambda: (c := _available(srv)).get("reason") == "EndpointsNotFound" and c)
    assert cond["message"] == f'cannot find endpointslices for service/metrics-api in "{NAMESPACE}"'
    srv.kubectl("delete", "service", "-n", NAMESPACE, "metrics-api")
    cond = eventually(lambda: (c := _available(srv)).get("reason") == "ServiceNotFound" and c)
    assert cond["message"] == f'service/metrics-api in "{NAMESPACE}" is not present'
