"""Auditing end to end: a server started with an audit policy and log, driven by kubectl.

The policy: nothing for the user ``quiet``, RequestResponse for ConfigMaps, Metadata for everything
else, and no ``RequestReceived`` stage anywhere. The log is read as kube-apiserver's would be:
one JSON ``audit.k8s.io/v1`` Event per line.
"""

from __future__ import annotations

import base64
import re
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from kybernetes.testing import KUBECTL, ServerProcess

pytestmark = pytest.mark.integration

POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: None
  users: ["quiet"]
- level: RequestResponse
  resources:
  - group: ""
    resources: ["configmaps"]
- level: Metadata
"""
MICRO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
SECRET = "hunter2-do-not-log"


def _start(tmp: Path, *flags: str) -> ServerProcess:
    data = tmp / "data"
    data.mkdir(parents=True)
    (data / "tokens.csv").write_text('quiet-token,quiet,3001,"devs"\njane-token,jane,3002,"devs"\n')
    (tmp / "policy.yaml").write_text(POLICY)
    return ServerProcess.start(data, "--audit-policy-file", str(tmp / "policy.yaml"),
                               "--audit-log-path", str(tmp / "logs" / "audit.log"), *flags,
                               service_accounts="AlwaysDeny" not in flags)  # AlwaysDeny: no controller may work


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with _start(tmp_path_factory.mktemp("audit")) as srv:
        yield srv


def _log_dir(srv: ServerProcess) -> Path:
    return srv.data_dir.parent / "logs"


def events(srv: ServerProcess) -> list[dict[str, Any]]:
    out = []
    for p in sorted(_log_dir(srv).glob("audit*.log")):
        out += [orjson.loads(line) for line in p.read_bytes().splitlines()]
    return out


def wait_events(srv: ServerProcess, match: Callable[[dict[str, Any]], bool], count: int = 1,
                timeout: float = 10.0) -> list[dict[str, Any]]:
    """The events ``match`` accepts, once there are at least ``count`` (the writer is asynchronous)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [e for e in events(srv) if match(e)]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def _ssl(srv: ServerProcess) -> ssl.SSLContext:
    tls = srv.data_dir / "tls"
    ctx = ssl.create_default_context(cafile=str(tls / "ca.crt"))
    ctx.load_cert_chain(str(tls / "admin.crt"), str(tls / "admin.key"))
    return ctx


def _get(srv: ServerProcess, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
    req = urllib.request.Request(srv.url + path, headers=headers or {})
    try:
        with urllib.request.urlopen(req, context=_ssl(srv), timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def _ref(e: dict[str, Any], resource: str, name: str) -> bool:
    ref = e.get("objectRef", {})
    return ref.get("resource") == resource and ref.get("name") == name


def test_configmaps_are_logged_with_request_and_response(audited: ServerProcess) -> None:
    audited.kubectl("create", "configmap", "audited-cm", "--from-literal=colour=blue")
    [ev] = wait_events(audited, lambda e: _ref(e, "configmaps", "audited-cm") and e["verb"] == "create")
    assert ev["level"] == "RequestResponse" and ev["stage"] == "ResponseComplete"
    assert ev["requestURI"].startswith("/api/v1/namespaces/default/configmaps?")
    assert ev["user"]["groups"][0] == "system:masters"
    assert ev["sourceIPs"] == ["127.0.0.1"] and ev["userAgent"].startswith("kubectl/")
    assert ev["objectRef"] == {"resource": "configmaps", "namespace": "default", "name": "audited-cm",
                               "apiVersion": "v1"}
    assert ev["responseStatus"] == {"metadata": {}, "code": 201}
    assert ev["requestObject"]["data"] == {"colour": "blue"}
    assert ev["responseObject"]["metadata"]["uid"] and ev["responseObject"]["data"] == {"colour": "blue"}
    assert MICRO.match(ev["requestReceivedTimestamp"]) and MICRO.match(ev["stageTimestamp"])
    assert ev["stageTimestamp"] >= ev["requestReceivedTimestamp"]
    assert ev["annotations"] == {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""}
    assert not [e for e in events(audited) if e["stage"] == "RequestReceived"]  # omitted by the policy


def test_secrets_at_metadata_never_show_their_data(audited: ServerProcess) -> None:
    audited.kubectl("create", "secret", "generic", "audited-secret", f"--from-literal=password={SECRET}")
    audited.kubectl("get", "secret", "audited-secret", "-o", "yaml")
    found = wait_events(audited, lambda e: _ref(e, "secrets", "audited-secret"), count=2)
    assert {e["verb"] for e in found} == {"create", "get"}
    for ev in found:
        assert ev["level"] == "Metadata"
        assert "requestObject" not in ev and "responseObject" not in ev
    text = b"".join(p.read_bytes() for p in _log_dir(audited).glob("audit*.log"))
    assert SECRET.encode() not in text and base64.b64encode(SECRET.encode()) not in text


def test_a_user_at_level_none_is_not_logged(audited: ServerProcess) -> None:
    audited.kubectl("create", "rolebinding", "quiet-view", "--clusterrole=view", "--user=quiet", "-n", "kube-public")
    audited.wait_allowed("list", "configmaps", "quiet", namespace="kube-public")
    res = subprocess.run([KUBECTL, "--kubeconfig", "/dev/null", "--server", audited.url, "--certificate-authority",
                          str(audited.data_dir / "tls" / "ca.crt"), "--token", "quiet-token",
                          "get", "configmaps", "-n", "kube-public"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    audited.kubectl("get", "configmaps", "-n", "kube-public")  # the admin's list is logged: a marker
    wait_events(audited, lambda e: e.get("objectRef", {}).get("namespace") == "kube-public")
    assert not [e for e in events(audited) if e["user"].get("username") == "quiet"]


def test_audit_id_header_is_the_events_id_and_failures_are_recorded(audited: ServerProcess) -> None:
    status, headers, _ = _get(audited, "/api/v1/namespaces/default/configmaps/no-such-cm")
    assert status == 404
    audit_id = headers["Audit-Id"]
    [ev] = wait_events(audited, lambda e: e["auditID"] == audit_id)
    assert ev["verb"] == "get" and ev["objectRef"]["name"] == "no-such-cm"
    assert ev["responseStatus"] == {"metadata": {}, "status": "Failure",
                                    "message": 'configmaps "no-such-cm" not found', "reason": "NotFound",
                                    "details": {"name": "no-such-cm", "kind": "configmaps"}, "code": 404}
    assert ev["responseObject"]["kind"] == "Status"
    # A client's own Audit-ID is used and echoed; health checks get one too.
    status, headers, _ = _get(audited, "/api/v1/namespaces/default/pods", {"Audit-ID": "my-own-id-1"})
    assert status == 200 and headers["Audit-Id"] == "my-own-id-1"
    [ev] = wait_events(audited, lambda e: e["auditID"] == "my-own-id-1")
    assert ev["verb"] == "list" and ev["level"] == "Metadata" and ev["responseStatus"]["code"] == 200
    assert _get(audited, "/healthz")[1]["Audit-Id"]


def test_a_watch_has_a_response_started_stage(audited: ServerProcess) -> None:
    status, headers, _ = _get(audited, "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1")
    assert status == 200
    found = wait_events(audited, lambda e: e["auditID"] == headers["Audit-Id"], count=2)
    assert [e["stage"] for e in found] == ["ResponseStarted", "ResponseComplete"]
    assert all(e["verb"] == "watch" and e["responseStatus"]["code"] == 200 for e in found)


def test_a_refused_request_is_recorded_with_the_decision(tmp_path: Path) -> None:
    with _start(tmp_path, "--authorization-mode", "AlwaysDeny") as srv:
        res = subprocess.run([KUBECTL, "--kubeconfig", "/dev/null", "--server", srv.url, "--certificate-authority",
                              str(srv.data_dir / "tls" / "ca.crt"), "--token", "jane-token",
                              "get", "--raw", "/api/v1/namespaces/default/secrets"],
                             capture_output=True, text=True, timeout=30)
        assert res.returncode != 0 and "forbidden" in res.stderr
        # (kubectl asks for /version first: refused too, and logged as well)
        [ev] = wait_events(srv, lambda e: e["user"].get("username") == "jane"
                           and e.get("objectRef", {}).get("resource") == "secrets")
        assert ev["user"] == {"username": "jane", "uid": "3002", "groups": ["devs", "system:authenticated"]}
        assert ev["verb"] == "list" and ev["objectRef"] == {"resource": "secrets", "namespace": "default",
                                                            "apiVersion": "v1"}
        assert ev["annotations"] == {"authorization.k8s.io/decision": "forbid",
                                     "authorization.k8s.io/reason": "Everything is forbidden."}
        assert ev["responseStatus"]["code"] == 403 and ev["responseStatus"]["reason"] == "Forbidden"
        assert ev["responseStatus"]["message"].startswith('secrets is forbidden: User "jane" cannot list')


def test_the_log_rotates_at_the_size_limit(tmp_path: Path) -> None:
    with _start(tmp_path, "--audit-log-maxsize", "1", "--audit-log-maxbackup", "2") as srv:
        blob = tmp_path / "blob"
        blob.write_text("x" * 200_000)
        for i in range(8):  # each create is logged with its request and response: ~400 KB an event
            srv.kubectl("create", "configmap", f"big-{i}", f"--from-file=blob={blob}")
        wait_events(srv, lambda e: _ref(e, "configmaps", "big-7"))
        logs = _log_dir(srv)
        backups = sorted(p.name for p in logs.glob("audit-*.log"))
        assert len(backups) == 2, backups  # more were made; --audit-log-maxbackup keeps two
        assert all(re.fullmatch(r"audit-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3}\.log", n) for n in backups)
        for p in logs.glob("audit*.log"):
            assert p.stat().st_size <= 1024 * 1024
            assert all(orjson.loads(line)["kind"] == "Event" for line in p.read_bytes().splitlines())


def test_a_bad_policy_refuses_to_start_with_kubernetes_message(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Everything\n")
    res = subprocess.run([sys.executable, "-m", "kybernetes.cli", "apiserver", "--data-dir", str(tmp_path / "d"),
                          "--https-port", "0", "--audit-policy-file", str(policy)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert ('Error: loading audit policy file: rules[0].level: Unsupported value: "Everything": supported values: '
            f'"None", "Metadata", "Request", "RequestResponse": from file {policy}') in res.stderr
    res = subprocess.run([sys.executable, "-m", "kybernetes.cli", "apiserver", "--data-dir", str(tmp_path / "d"),
                          "--https-port", "0", "--audit-log-path", str(tmp_path / "a.log"),
                          "--audit-log-maxage", "-1"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and "--audit-log-maxage -1 can't be a negative number" in res.stderr
