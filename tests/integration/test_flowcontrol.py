"""API Priority and Fairness against a real ``kyb server``: default objects, headers, the bootstrap
ensurer, and rejection under load, driven by kubectl and the official client's HTTP pool."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from kybernetes.apiserver.flowcontrol import bootstrap
from kybernetes.testing import ServerProcess

kubernetes = pytest.importorskip("kubernetes")
import urllib3  # noqa: E402
from kubernetes import client, config  # noqa: E402

pytestmark = pytest.mark.integration

FS_HEADER, PL_HEADER = "X-Kubernetes-PF-FlowSchema-UID", "X-Kubernetes-PF-PriorityLevel-UID"
FC = "/apis/flowcontrol.apiserver.k8s.io/v1"


def names(objs: tuple[dict, ...]) -> set[str]:
    return {o["metadata"]["name"] for o in objs}


def raw(api: client.ApiClient, method: str, path: str, body: Any = None, *,
        token_pool: tuple[urllib3.PoolManager, str] | None = None) -> Any:
    """One request through the official client's own TLS pool (the admin's certificate), or with a
    bearer token through a pool that presents no certificate (a certificate would win over the
    token, as in Kubernetes); the urllib3 response."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    pool = api.rest_client.pool_manager
    if token_pool is not None:
        pool, token = token_pool
        headers["Authorization"] = f"Bearer {token}"
    return pool.request(method, api.configuration.host + path, headers=headers,
                        body=json.dumps(body) if body is not None else None, preload_content=True, timeout=30)


def uid(srv: ServerProcess, kind: str, name: str) -> str:
    return srv.kubectl("get", kind, name, "-o", "jsonpath={.metadata.uid}").stdout


def test_kubectl_lists_the_default_configuration(server: ServerProcess) -> None:
    out = server.kubectl("get", "flowschemas,prioritylevelconfigurations").stdout
    headers = [line.split() for line in out.splitlines() if line.startswith("NAME")]
    assert headers == [["NAME", "PRIORITYLEVEL", "MATCHINGPRECEDENCE", "DISTINGUISHERMETHOD", "AGE", "MISSINGPL"],
                       ["NAME", "TYPE", "NOMINALCONCURRENCYSHARES", "QUEUES", "HANDSIZE", "QUEUELENGTHLIMIT", "AGE"]]
    listed = server.kubectl("get", "flowschemas,prioritylevelconfigurations", "-o", "name").stdout.split()
    want = {f"flowschema.flowcontrol.apiserver.k8s.io/{n}"
            for n in names(bootstrap.MANDATORY_FLOW_SCHEMAS) | names(bootstrap.SUGGESTED_FLOW_SCHEMAS)}
    want |= {f"prioritylevelconfiguration.flowcontrol.apiserver.k8s.io/{n}"
             for n in names(bootstrap.MANDATORY_PRIORITY_LEVELS) | names(bootstrap.SUGGESTED_PRIORITY_LEVELS)}
    assert set(listed) == want
    row = next(line for line in out.splitlines() if line.startswith("prioritylevelconfiguration.flowcontrol."
                                                                    "apiserver.k8s.io/workload-low "))
    assert row.split()[1:6] == ["Limited", "100", "128", "6", "50"]


def test_responses_carry_the_classification(server: ServerProcess, api: client.ApiClient, namespace: str) -> None:
    resp = raw(api, "GET", "/api/v1/namespaces")
    assert resp.status == 200
    # The admin certificate is in system:masters: the exempt schema and level.
    assert resp.headers[FS_HEADER] == uid(server, "flowschema", "exempt")
    assert resp.headers[PL_HEADER] == uid(server, "prioritylevelconfiguration", "exempt")
    watch = api.rest_client.pool_manager.request(
        "GET", api.configuration.host + "/api/v1/namespaces?watch=true&timeoutSeconds=1", preload_content=False)
    try:
        assert watch.headers[FS_HEADER] == uid(server, "flowschema", "exempt")
    finally:
        watch.release_conn()
    # A service account's request: the service-accounts schema, workload-low.
    server.kubectl("create", "serviceaccount", "app", "-n", namespace)
    server.kubectl("create", "rolebinding", "app-view", "--clusterrole=view", f"--serviceaccount={namespace}:app",
                   "-n", namespace)
    server.wait_allowed("list", "configmaps", f"system:serviceaccount:{namespace}:app", namespace=namespace)
    token = server.kubectl("create", "token", "app", "-n", namespace).stdout.strip()
    pool = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=api.configuration.ssl_ca_cert)
    resp = raw(api, "GET", f"/api/v1/namespaces/{namespace}/configmaps", token_pool=(pool, token))
    assert resp.status == 200
    assert resp.headers[FS_HEADER] == uid(server, "flowschema", "service-accounts")
    assert resp.headers[PL_HEADER] == uid(server, "prioritylevelconfiguration", "workload-low")


def test_deleted_mandatory_object_comes_back_and_dangling_is_reported(fresh_server: ServerProcess) -> None:
    srv = fresh_server
    before = uid(srv, "flowschema", "catch-all")
    srv.kubectl("delete", "flowschema", "catch-all")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        res = srv.kubectl("get", "flowschema", "catch-all", "-o", "jsonpath={.metadata.uid}", check=False)
        if res.returncode == 0 and res.stdout and res.stdout != before:
            break
        time.sleep(0.2)
    else:
        pytest.fail("the catch-all FlowSchema was not recreated")
    # A mandatory spec cannot be changed at all.
    bad = srv.kubectl("patch", "prioritylevelconfiguration", "catch-all", "--type=merge", "-p",
                      '{"spec":{"limited":{"nominalConcurrencyShares":6}}}', check=False)
    assert bad.returncode != 0 and "spec of 'catch-all' must equal the fixed value" in bad.stderr
    # A suggested object the operator opted out of keeps the operator's spec.
    srv.kubectl("patch", "prioritylevelconfiguration", "workload-low", "--type=merge", "-p",
                '{"metadata":{"annotations":{"apf.kubernetes.io/autoupdate-spec":"false"}},'
                '"spec":{"limited":{"nominalConcurrencyShares":7}}}')
    srv.kubectl("create", "-f", "-", input=json.dumps({
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "FlowSchema", "metadata": {"name": "orphan"},
        "spec": {"priorityLevelConfiguration": {"name": "nowhere"}, "rules": [{
            "subjects": [{"kind": "User", "user": {"name": "nobody"}}],
            "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["/x"]}]}]}}))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        row = srv.kubectl("get", "flowschema", "orphan", "--no-headers").stdout.split()
        if row[-1] == "True":
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"the orphan FlowSchema was not marked Dangling: {row}")
    assert row[1:4] == ["nowhere", "1000", "<none>"]
    shares = srv.kubectl("get", "prioritylevelconfiguration", "workload-low", "-o",
                         "jsonpath={.spec.limited.nominalConcurrencyShares}").stdout
    assert shares == "7"


@pytest.fixture
def one_seat_server(tmp_path: Path) -> Iterator[ServerProcess]:
    data = tmp_path / "data"
    data.mkdir()
    (data / "tokens.csv").write_text("loader-token,loader,2001\n")
    srv = ServerProcess.start(data, "--max-requests-inflight", "1", "--max-mutating-requests-inflight", "0")
    srv.kubectl("create", "rolebinding", "loader-edit", "--clusterrole=edit", "--user=loader", "-n", "default")
    srv.wait_allowed("create", "configmaps", "loader", namespace="default")
    try:
        yield srv
    finally:
        srv.stop()


def test_one_seat_level_rejects_with_429_while_exempt_requests_pass(one_seat_server: ServerProcess) -> None:
    srv = one_seat_server
    srv.kubectl("create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "PriorityLevelConfiguration",
         "metadata": {"name": "one-seat"},
         "spec": {"type": "Limited", "limited": {"nominalConcurrencyShares": 1,
                                                 "limitResponse": {"type": "Reject"}}}},
        {"apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "FlowSchema", "metadata": {"name": "loader"},
         "spec": {"priorityLevelConfiguration": {"name": "one-seat"}, "matchingPrecedence": 100,
                  "rules": [{"subjects": [{"kind": "User", "user": {"name": "loader"}}],
                             "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"],
                                                "namespaces": ["*"], "clusterScope": True}]}]}}]}))
    fs_uid, pl_uid = uid(srv, "flowschema", "loader"), uid(srv, "prioritylevelconfiguration", "one-seat")
    api = config.new_client_from_config(config_file=str(srv.kubeconfig))
    loader = (urllib3.PoolManager(maxsize=64, cert_reqs="CERT_REQUIRED", ca_certs=api.configuration.ssl_ca_cert),
              "loader-token")
    try:
        # The configuration reaches the gate through the watch: wait until the loader is classified.
        deadline = time.monotonic() + 20
        while raw(api, "GET", "/api/v1/namespaces/default/configmaps", token_pool=loader).headers.get(
                FS_HEADER) != fs_uid:
            assert time.monotonic() < deadline, "the loader FlowSchema never took effect"
            time.sleep(0.2)

        def load(i: int) -> Any:
            return raw(api, "POST", "/api/v1/namespaces/default/configmaps",
                       {"metadata": {"name": f"load-{i}"}, "data": {"k": "v" * 2000}}, token_pool=loader)

        def admin(i: int) -> Any:
            return raw(api, "GET", "/api/v1/namespaces/default/configmaps")

        rejected: list[Any] = []
        admin_statuses: list[int] = []
        with ThreadPoolExecutor(48) as pool:
            for round_ in range(10):
                loads = [pool.submit(load, round_ * 100 + i) for i in range(40)]
                admins = [pool.submit(admin, i) for i in range(8)]
                rejected += [r for r in (f.result() for f in loads) if r.status == 429]
                admin_statuses += [f.result().status for f in admins]
                if rejected:
                    break
        assert rejected, "40 concurrent requests on a one-seat level were never rejected"
        r = rejected[0]
        assert r.data == b"Too many requests, please try again later.\n"
        assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert int(r.headers["Retry-After"]) >= 1
        assert (r.headers[FS_HEADER], r.headers[PL_HEADER]) == (fs_uid, pl_uid)
        assert set(admin_statuses) == {200}
    finally:
        api.close()
