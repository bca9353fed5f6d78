"""kybernetes accepting request-header authentication, as kube-apiserver with ``--requestheader-*``.

A real server started with a test front-proxy CA (``--requestheader-client-ca-file``), one allowed
name and kube-apiserver's usual header names; requests over TLS with real client certificates ask
``selfsubjectreviews`` who they are. Only a certificate of that CA with the allowed name may assert
a user in the headers; any other certificate's headers are ignored, and a certificate of that CA
is no identity by itself.
"""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kybernetes.join import CREDENTIALS_PATH
from kybernetes.pki import PKI
from kybernetes.testing import ServerProcess

pytestmark = pytest.mark.integration

ALLOWED = "front-proxy-test"
REVIEW = "/apis/authentication.k8s.io/v1/selfsubjectreviews"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """Client certificates: of the trusted test CA (allowed name, other name, an admin-looking
    name) and of a CA the server does not trust."""
    base = tmp_path_factory.mktemp("requestheader-pki")
    trusted = PKI.load_or_create(base / "trusted", "front-proxy-ca", "test-front-proxy-ca")
    other = PKI.load_or_create(base / "other", "other-ca", "untrusted-ca")
    return {
        "ca": (trusted.ca_path, trusted.ca_key_path),
        "allowed": trusted.ensure("allowed", common_name=ALLOWED, client=True),
        "not-allowed": trusted.ensure("not-allowed", common_name="someone-else", client=True),
        "masters": trusted.ensure("masters", common_name="system:admin", organizations=("system:masters",),
                                  client=True),
        "untrusted": other.ensure("untrusted", common_name=ALLOWED, client=True),
        "node": trusted.ensure("node", common_name="system:node:n1", organizations=("system:nodes",), client=True),
    }


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, pki: dict[str, tuple[Path, Path]]) -> Iterator[ServerProcess]:
    s = ServerProcess.start(tmp_path_factory.mktemp("kyb-requestheader"),
                            "--requestheader-client-ca-file", str(pki["ca"][0]),
                            "--requestheader-allowed-names", ALLOWED,
                            "--requestheader-username-headers", "X-Remote-User",
                            "--requestheader-group-headers", "X-Remote-Group",
                            "--requestheader-extra-headers-prefix", "X-Remote-Extra-")
    try:
        yield s
    finally:
        s.stop()


def whoami(srv: ServerProcess, cert: tuple[Path, Path], headers: list[tuple[str, str]],
           path: str = REVIEW) -> tuple[int, Any]:
    """POST a SelfSubjectReview (to ``path``) with ``cert`` and ``headers``: (status, body)."""
    ctx = ssl.create_default_context(cafile=str(srv.data_dir / "tls" / "ca.crt"))
    ctx.load_cert_chain(*cert)
    conn = http.client.HTTPSConnection("127.0.0.1", srv.port, context=ctx, timeout=30)
    try:
        conn.putrequest("POST", path)
        body = json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}).encode()
        for name, value in [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *headers]:
            conn.putheader(name, value)
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        conn.close()


ALICE = [("X-Remote-User", "alice"), ("X-Remote-Group", "devs"), ("X-Remote-Group", "ops"),
         ("X-Remote-Extra-Scopes", "read"), ("X-Remote-Extra-Scopes", "write"),
         ("X-Remote-Extra-Acme.com%2Fproject", "p1")]


def test_the_allowed_front_proxy_asserts_the_user(srv: ServerProcess, pki: dict[str, tuple[Path, Path]]) -> None:
    status, body = whoami(srv, pki["allowed"], ALICE)
    assert status == 201, body
    info = body["status"]["userInfo"]
    assert info["username"] == "alice"
    assert info["groups"] == ["devs", "ops", "system:authenticated"]
    assert info["extra"] == {"scopes": ["read", "write"], "acme.com/project": ["p1"]}


def test_the_first_non_empty_username_header_and_empty_groups_skipped(srv: ServerProcess,
                                                                      pki: dict[str, tuple[Path, Path]]) -> None:
    status, body = whoami(srv, pki["allowed"], [("X-Remote-User", "bob"), ("X-Remote-Group", "")])
    assert status == 201, body
    assert body["status"]["userInfo"]["username"] == "bob"
    assert body["status"]["userInfo"]["groups"] == ["system:authenticated"]


def test_a_front_proxy_certificate_without_a_user_header_is_no_identity(srv: ServerProcess,
                                                                        pki: dict[str, tuple[Path, Path]]) -> None:
    status, body = whoami(srv, pki["allowed"], [])
    assert (status, body["reason"]) == (401, "Unauthorized")
    # Not even one whose subject names the admin: the front-proxy CA issues no cluster users.
    status, body = whoami(srv, pki["masters"], [])
    assert (status, body["reason"]) == (401, "Unauthorized")


def test_a_name_not_allowed_may_not_assert_a_user(srv: ServerProcess, pki: dict[str, tuple[Path, Path]]) -> None:
    status, body = whoami(srv, pki["not-allowed"], ALICE)
    assert (status, body["message"]) == (401, "Unauthorized")


def test_a_certificate_of_another_ca_is_refused(srv: ServerProcess, pki: dict[str, tuple[Path, Path]]) -> None:
    with pytest.raises((ssl.SSLError, ConnectionError)):
        whoami(srv, pki["untrusted"], ALICE)


def test_a_cluster_users_headers_are_ignored(srv: ServerProcess) -> None:
    admin = (srv.data_dir / "tls" / "admin.crt", srv.data_dir / "tls" / "admin.key")
    status, body = whoami(srv, admin, ALICE)
    assert status == 201, body
    info = body["status"]["userInfo"]
    assert info["username"] == "system:admin" and "extra" not in info


def test_a_front_proxy_certificate_is_no_node_for_credential_renewal(srv: ServerProcess,
                                                                     pki: dict[str, tuple[Path, Path]]) -> None:
    """A joined node renews its credentials with its own certificate: one of the cluster CA only."""
    status, body = whoami(srv, pki["node"], [], path=CREDENTIALS_PATH)
    assert (status, body["message"]) == (401, "a join token is required (Authorization: Bearer <secret>)")
