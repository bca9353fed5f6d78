"""Status bodies byte for byte as kube-apiserver 1.32 writes them, read over raw HTTPS.

kube-apiserver encodes with Go's ``json.NewEncoder``: fields in the order of the Go structs
(``metav1.Status``: kind, apiVersion, metadata, status, message, reason, details, code;
``StatusDetails``: name, group, kind, uid, causes, retryAfterSeconds; ``StatusCause``: reason,
message, field), empty fields left out, ``<``, ``>``, ``&`` escaped, and a newline after the
object. A curl user agent gets ``json.MarshalIndent`` instead: indented, no final newline.
"""

from __future__ import annotations

import http.client
import json
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kybernetes.testing import ServerProcess

pytestmark = pytest.mark.integration


class RawHTTP:
    """Exact response bytes, with the admin client certificate."""

    def __init__(self, server: ServerProcess) -> None:
        tls = server.data_dir / "tls"
        self.ctx = ssl.create_default_context(cafile=str(tls / "ca.crt"))
        self.ctx.load_cert_chain(str(tls / "admin.crt"), str(tls / "admin.key"))
        self.port = server.port
        self.last_headers: Any = None

    def __call__(self, method: str, path: str, body: Any = None, user_agent: str = "kybernetes-test") -> tuple[int, bytes]:
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=20)
        try:
            data = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, body=data, headers={"Content-Type": "application/json", "User-Agent": user_agent,
                                                           "Accept": "application/json"})
            resp = conn.getresponse()
            self.last_headers = resp.headers
            return resp.status, resp.read()
        finally:
            conn.close()


@pytest.fixture
def raw(server: ServerProcess) -> Iterator[RawHTTP]:
    yield RawHTTP(server)


def failure(message: str, reason: str, code: int, details: str | None = None) -> bytes:
    """The expected body, written out by hand in Go's field order."""
    d = f',"details":{details}' if details is not None else ""
    return (f'{{"kind":"Status","apiVersion":"v1","metadata":{{}},"status":"Failure","message":{message},'
            f'"reason":"{reason}"{d},"code":{code}}}\n').encode()


def configmap(name: str, **extra: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, **extra}, "data": {"a": "b"}}


def test_404(raw: RawHTTP, namespace: str) -> None:
    code, body = raw("GET", f"/api/v1/namespaces/{namespace}/configmaps/nope")
    assert (code, body) == (404, failure(r'"configmaps \"nope\" not found"', "NotFound", 404,
                                         '{"name":"nope","kind":"configmaps"}'))
    code, body = raw("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments/nope")
    assert (code, body) == (404, failure(r'"deployments.apps \"nope\" not found"', "NotFound", 404,
                                         '{"name":"nope","group":"apps","kind":"deployments"}'))
    code, body = raw("GET", "/api/v1/nosuchresources")
    assert (code, body) == (404, failure('"the server could not find the requested resource"', "NotFound", 404, "{}"))


def test_404_for_curl_is_indented_without_a_final_newline(raw: RawHTTP, namespace: str) -> None:
    code, body = raw("GET", f"/api/v1/namespaces/{namespace}/configmaps/nope", user_agent="curl/8.5.0")
    assert code == 404
    assert body == (b'{\n  "kind": "Status",\n  "apiVersion": "v1",\n  "metadata": {},\n  "status": "Failure",\n'
                    b'  "message": "configmaps \\"nope\\" not found",\n  "reason": "NotFound",\n'
                    b'  "details": {\n    "name": "nope",\n    "kind": "configmaps"\n  },\n  "code": 404\n}')


def test_409_already_exists_and_conflict(raw: RawHTTP, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    code, body = raw("POST", path, configmap("cm"))
    assert code == 201 and body.endswith(b"}\n") and body.count(b"\n") == 1
    created = json.loads(body)
    code, body = raw("POST", path, configmap("cm"))
    assert (code, body) == (409, failure(r'"configmaps \"cm\" already exists"', "AlreadyExists", 409,
                                         '{"name":"cm","kind":"configmaps"}'))
    stale = configmap("cm", resourceVersion="1")
    code, body = raw("PUT", f"{path}/cm", stale)
    assert (code, body) == (409, failure(
        r'"Operation cannot be fulfilled on configmaps \"cm\": the object has been modified; please apply your '
        r'changes to the latest version and try again"', "Conflict", 409, '{"name":"cm","kind":"configmaps"}'))
    # Objects and lists end with the newline too, objects in Go's field order (kubectl sent
    # apiVersion before kind, and the server added uid and the rest after the name).
    code, body = raw("GET", f"{path}/cm")
    assert code == 200 and json.loads(body) == created and body.endswith(b"}\n")
    assert body.startswith(b'{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"cm","namespace":')
    assert list(created["metadata"]) == ["name", "namespace", "uid", "resourceVersion", "creationTimestamp",
                                         "managedFields"]
    code, body = raw("GET", path)
    assert code == 200 and body.endswith(b"]}\n") and body.count(b"\n") == 1


def test_422_with_causes(raw: RawHTTP, namespace: str) -> None:
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                  "spec": {"replicas": -1, "selector": {"matchLabels": {"app": "web"}},
                           "template": {"metadata": {"labels": {"app": "web"}},
                                        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}
    code, body = raw("POST", f"/apis/apps/v1/namespaces/{namespace}/deployments", deployment)
    cause = "Invalid value: -1: must be greater than or equal to 0"
    assert (code, body) == (422, failure(
        f'"Deployment.apps \\"web\\" is invalid: spec.replicas: {cause}"', "Invalid", 422,
        f'{{"name":"web","group":"apps","kind":"Deployment","causes":[{{"reason":"FieldValueInvalid",'
        f'"message":"{cause}","field":"spec.replicas"}}]}}'))
    # Go escapes <, > and & in every string.
    code, body = raw("POST", f"/api/v1/namespaces/{namespace}/configmaps", configmap("cm2", labels={"a": "<b>"}))
    label = (r"Invalid value: \"\u003cb\u003e\": a valid label must be an empty string or consist of alphanumeric "
             r"characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  "
             r"or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
    assert (code, body) == (422, failure(
        f'"ConfigMap \\"cm2\\" is invalid: metadata.labels: {label}"', "Invalid", 422,
        f'{{"name":"cm2","kind":"ConfigMap","causes":[{{"reason":"FieldValueInvalid","message":"{label}",'
        f'"field":"metadata.labels"}}]}}'))


def test_400(raw: RawHTTP, namespace: str) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "dGVzdA"}}
    code, body = raw("POST", f"/api/v1/namespaces/{namespace}/secrets", secret)
    assert (code, body) == (400, failure(
        r'"Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data at input byte 4"',
        "BadRequest", 400))


def test_429_with_retry_after(raw: RawHTTP, namespace: str) -> None:
    """A PodDisruptionBudget whose status the disruption controller has not written yet (no
    controller manager here): Kubernetes refuses the eviction and says when to retry."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"app": "p"}},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    code, body = raw("POST", f"/api/v1/namespaces/{namespace}/pods", pod)
    assert code == 201, body
    running = json.loads(body)
    running["status"] = {"phase": "Running"}
    code, body = raw("PUT", f"/api/v1/namespaces/{namespace}/pods/p/status", running)
    assert code == 200, body
    pdb = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "pdb"},
           "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "p"}}}}
    code, body = raw("POST", f"/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets", pdb)
    assert code == 201, body
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "p", "namespace": namespace}}
    code, body = raw("POST", f"/api/v1/namespaces/{namespace}/pods/p/eviction", eviction)
    assert (code, body) == (429, failure(
        "\"Cannot evict pod as it would violate the pod's disruption budget.\"", "TooManyRequests", 429,
        '{"causes":[{"reason":"DisruptionBudget","message":"The disruption budget pdb is still being processed '
        'by the server."}],"retryAfterSeconds":10}'))
    assert raw.last_headers["Retry-After"] == "10"


def wait_for_410(raw: RawHTTP, path: str) -> tuple[int, bytes]:
    """GET ``path`` until compaction has passed the revision it asks for."""
    deadline = time.monotonic() + 30
    while True:
        code, body = raw("GET", path)
        if code != 200 or time.monotonic() > deadline:
            return code, body
        time.sleep(0.2)


def test_410(tmp_path: Path) -> None:
    srv = ServerProcess.start(tmp_path / "data", "--compact-interval", "0.2", "--compact-keep", "5")
    try:
        raw = RawHTTP(srv)
        for i in range(20):
            code, _ = raw("POST", "/api/v1/namespaces/default/configmaps", configmap(f"c{i}"))
            assert code == 201
        code, body = raw("GET", "/api/v1/namespaces/default/configmaps?limit=5")
        token = json.loads(body)["metadata"]["continue"]
        for i in range(20, 30):  # history moves on, so the token's revision gets compacted
            raw("POST", "/api/v1/namespaces/default/configmaps", configmap(f"c{i}"))
        path = "/api/v1/namespaces/default/configmaps?resourceVersion=2&resourceVersionMatch=Exact&limit=5"
        code, body = wait_for_410(raw, path)
        assert (code, body) == (410, failure('"The resourceVersion for the provided list is too old."', "Expired", 410))

        # An expired continue token: the Status's metadata carries one that goes on from there.
        code, body = wait_for_410(raw, f"/api/v1/namespaces/default/configmaps?limit=5&continue={token}")
        fresh = json.loads(body)["metadata"]["continue"]
        message = ("The provided continue parameter is too old to display a consistent list result. You can start a "
                   "new list without the continue parameter, or use the continue token in this response to retrieve "
                   "the remainder of the results. Continuing with the provided token results in an inconsistent "
                   "list - objects that were created, modified, or deleted between the time the first chunk was "
                   "returned and now may show up in the list.")
        assert (code, body) == (410, failure(f'"{message}"', "Expired", 410).replace(
            b'"metadata":{}', f'"metadata":{{"continue":"{fresh}"}}'.encode()))
        code, body = raw("GET", f"/api/v1/namespaces/default/configmaps?limit=100&continue={fresh}")
        assert code == 200
        assert json.loads(body)["items"][0]["metadata"]["name"] == "c13"  # after c0, c1, c10, c11, c12
    finally:
        srv.stop()
