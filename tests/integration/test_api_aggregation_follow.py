"""The aggregation layer following the cluster while it runs, on a real API server with real
aggregated API servers (``aggregatedserver``).

Unlike ``test_api_aggregation``, the server here keeps kube-aggregator's 30 s resync period: what
these tests see within seconds comes from the watches of Services and EndpointSlices (the
availability controller) and of APIServices (the CRD APIServices' sync), not from a periodic check.
The tests run in order on one backend setup.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from kybernetes.testing import ServerProcess

from .aggregatedserver import GROUP, VERSION, AggregatedServer, host_address
from .test_api_aggregation import _available, _trust, eventually
from .webhookserver import CA

pytestmark = pytest.mark.integration

NAMESPACE = "follow-test"
APISERVICE = f"{VERSION}.{GROUP}"
SOON = 8.0
"""Seconds a change may take to show: far below the 30 s resync, with room for a loaded machine."""


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    s = ServerProcess.start(tmp_path_factory.mktemp("kyb-aggregation-follow"))
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def backends(srv: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[AggregatedServer]]:
    """Two aggregated servers; the Service's EndpointSlice points at the first."""
    address = host_address()
    if not address:
        if os.environ.get("CI"):
            pytest.fail("no global IPv4 address on this machine")
        pytest.skip("this machine has no global IPv4 address for an EndpointSlice (loopback is refused)")
    trust = _trust(srv)
    ca = CA(tmp_path_factory.mktemp("follow-ca"), [f"metrics-api.{NAMESPACE}.svc"], cn="follow-ca")
    servers = [AggregatedServer(address, ca.cert_path, ca.key_path, trust["requestheader-client-ca-file"],
                                json.loads(trust["requestheader-allowed-names"])) for _ in range(2)]
    docs = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "metrics-api", "namespace": NAMESPACE},
         "spec": {"ports": [{"name": "https", "port": 443, "targetPort": 4443}]}},
        _slice(address, servers[0].port, ready=True),
        {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": APISERVICE},
         "spec": {"group": GROUP, "version": VERSION, "groupPriorityMinimum": 100, "versionPriority": 100,
                  "service": {"namespace": NAMESPACE, "name": "metrics-api"}, "caBundle": ca.bundle}},
    ]
    for doc in docs:
        srv.kubectl("create", "-f", "-", input=json.dumps(doc))
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()


def _slice(address: str, port: int, *, ready: bool) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "metrics-api-1", "namespace": NAMESPACE,
                         "labels": {"kubernetes.io/service-name": "metrics-api"}},
            "addressType": "IPv4", "ports": [{"name": "https", "port": port}],
            "endpoints": [{"addresses": [address], "conditions": {"ready": ready}}]}


def _reason_soon(srv: ServerProcess, reason: str) -> dict[str, Any]:
    return eventually(lambda: (c := _available(srv)).get("reason") == reason and c, timeout=SOON)  # type: ignore[no-any-return]


def test_aggregated_groups_are_in_the_root_paths_and_discovery(srv: ServerProcess,
                                                               backends: list[AggregatedServer]) -> None:
    _reason_soon(srv, "Passed")
    paths = json.loads(srv.kubectl("get", "--raw", "/").stdout)["paths"]
    assert f"/apis/{GROUP}" in paths and f"/apis/{GROUP}/{VERSION}" in paths
    assert "/apis/apps" in paths and "/apis/apps/v1" in paths
    assert paths == sorted(paths)
    groups = [g["name"] for g in json.loads(srv.kubectl("get", "--raw", "/apis").stdout)["groups"]]
    assert GROUP in groups
    rows = srv.kubectl("api-resources", "--no-headers").stdout.splitlines()
    assert ["nodes", f"{GROUP}/{VERSION}", "false", "NodeMetrics"] in [r.split() for r in rows]


def test_an_endpoint_losing_readiness_makes_it_unavailable_at_once(srv: ServerProcess,
                                                                   backends: list[AggregatedServer]) -> None:
    _reason_soon(srv, "Passed")
    address = backends[0].host
    srv.kubectl("replace", "-f", "-", input=json.dumps(_slice(address, backends[0].port, ready=False)))
    cond = _reason_soon(srv, "MissingEndpoints")
    assert cond["status"] == "False"
    assert cond["message"] == (f'endpointslices for service/metrics-api in "{NAMESPACE}" have no addresses '
                               'with port name "https"')
    res = srv.kubectl("get", "--raw", f"/apis/{GROUP}/{VERSION}/nodes/alpha", check=False)
    assert "the server is currently unable to handle the request" in res.stderr


def test_a_new_ready_endpoint_is_available_and_served_at_once(srv: ServerProcess,
                                                              backends: list[AggregatedServer]) -> None:
    first, second = backends
    srv.kubectl("replace", "-f", "-", input=json.dumps(_slice(second.host, second.port, ready=True)))
    cond = _reason_soon(srv, "Passed")
    assert (cond["status"], cond["message"]) == ("True", "all checks passed")
    before = len(first.requests)
    node = json.loads(srv.kubectl("get", "--raw", f"/apis/{GROUP}/{VERSION}/nodes/alpha").stdout)
    assert node["user"] == "system:admin"
    assert any(r["path"].endswith("/nodes/alpha") for r in second.requests)
    assert not any(r["path"].endswith("/nodes/alpha") for r in first.requests[before:])


def test_a_service_port_change_and_removal_show_at_once(srv: ServerProcess, backends: list[AggregatedServer]) -> None:
    _reason_soon(srv, "Passed")
    patch = {"spec": {"ports": [{"name": "https", "port": 8443, "targetPort": 4443}]}}
    srv.kubectl("patch", "service", "-n", NAMESPACE, "metrics-api", "--type=merge", "-p", json.dumps(patch))
    cond = _reason_soon(srv, "ServicePortError")
    assert cond["message"] == f'service/metrics-api in "{NAMESPACE}" is not listening on port 443'
    patch = {"spec": {"ports": [{"name": "https", "port": 443, "targetPort": 4443}]}}
    srv.kubectl("patch", "service", "-n", NAMESPACE, "metrics-api", "--type=merge", "-p", json.dumps(patch))
    _reason_soon(srv, "Passed")
    srv.kubectl("delete", "service", "-n", NAMESPACE, "metrics-api")
    cond = _reason_soon(srv, "ServiceNotFound")
    assert cond["message"] == f'service/metrics-api in "{NAMESPACE}" is not present'


def test_a_backend_going_away_is_a_failed_discovery_check(srv: ServerProcess, backends: list[AggregatedServer]) -> None:
    """With the Service back, the check probes the backend, which is down."""
    backends[1].stop()
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "metrics-api", "namespace": NAMESPACE},
           "spec": {"ports": [{"name": "https", "port": 443, "targetPort": 4443}]}}
    srv.kubectl("create", "-f", "-", input=json.dumps(svc))
    cond = _reason_soon(srv, "FailedDiscoveryCheck")
    assert cond["message"].startswith("failing or missing response from https://"), cond["message"]


def test_a_deleted_or_changed_crd_apiservice_comes_back(srv: ServerProcess) -> None:
    """kube-aggregator's autoregister controller keeps the CRD groups' APIServices ("sync always")."""
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "gadgets.follow.example.com"},
           "spec": {"group": "follow.example.com", "scope": "Namespaced",
                    "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                    "versions": [{"name": "v1", "served": True, "storage": True,
                                  "schema": {"openAPIV3Schema": {"type": "object"}}}]}}
    srv.kubectl("create", "-f", "-", input=json.dumps(crd))
    name = "v1.follow.example.com"

    def spec_and_uid() -> tuple[dict[str, Any], str] | None:
        res = srv.kubectl("get", "apiservice", name, "-o", "json", check=False)
        if res.returncode != 0:
            return None
        obj = json.loads(res.stdout)
        return obj["spec"], obj["metadata"]["uid"]

    spec, uid = eventually(spec_and_uid)
    srv.kubectl("delete", "apiservice", name)
    again = eventually(lambda: (s := spec_and_uid()) is not None and s[1] != uid and s, timeout=SOON)
    assert again[0] == spec
    patch = {"spec": {"groupPriorityMinimum": 5}}
    srv.kubectl("patch", "apiservice", name, "--type=merge", "-p", json.dumps(patch))
    eventually(lambda: (s := spec_and_uid()) is not None and s[0] == spec, timeout=SOON)
    assert _available(srv, name)["reason"] == "Local"


def test_local_apiservices_are_synced_at_start(tmp_path_factory: pytest.TempPathFactory) -> None:
    """autoregister's "sync on start": at the next start a changed built-in APIService gets its
    spec back, a deleted one is created again, and an ``onstart`` one for a group/version the
    server does not serve is deleted; an APIService nobody manages is left alone. (While the server
    runs, kube-apiserver leaves them to the user: ``checkAPIService`` returns once synced.)"""
    data = tmp_path_factory.mktemp("kyb-autoregister")
    s = ServerProcess.start(data)
    try:
        stale = {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
                 "metadata": {"name": "v1.gone.example.com",
                              "labels": {"kube-aggregator.kubernetes.io/automanaged": "onstart"}},
                 "spec": {"group": "gone.example.com", "version": "v1", "groupPriorityMinimum": 100,
                          "versionPriority": 10}}
        mine = {**stale, "metadata": {"name": "v1.mine.example.com"},
                "spec": {**stale["spec"], "group": "mine.example.com"}}
        for doc in (stale, mine):
            s.kubectl("create", "-f", "-", input=json.dumps(doc))
        s.kubectl("patch", "apiservice", "v1.apps", "--type=merge", "-p", '{"spec":{"versionPriority":3}}')
        s.kubectl("delete", "apiservice", "v1.batch")
    finally:
        s.stop()
    s = ServerProcess.start(data)
    try:
        names = s.kubectl("get", "apiservices", "-o", "name").stdout.split()
        assert "apiservice.apiregistration.k8s.io/v1.gone.example.com" not in names
        assert "apiservice.apiregistration.k8s.io/v1.mine.example.com" in names
        assert "apiservice.apiregistration.k8s.io/v1.batch" in names
        apps = json.loads(s.kubectl("get", "apiservice", "v1.apps", "-o", "json").stdout)
        assert apps["spec"]["versionPriority"] == 15
    finally:
        s.stop()
