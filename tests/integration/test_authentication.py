"""Authentication APIs: TokenReview, SelfSubjectReview (``kubectl auth whoami``) and the
service-account issuer discovery documents, against a real server."""

from __future__ import annotations

import json
import ssl
import subprocess
import time
import urllib.request
from typing import Any

import jwt
import pytest

from kybernetes.testing import KUBECTL, ServerProcess

pytestmark = pytest.mark.integration

ISSUER = "https://kubernetes.default.svc.cluster.local"


def _as_token(server: ServerProcess, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KUBECTL, "--kubeconfig", "/dev/null", "--server", server.url,
                           "--certificate-authority", str(server.data_dir / "tls" / "ca.crt"),
                           "--token", token, *args], capture_output=True, text=True, timeout=30)


def _get_json(server: ServerProcess, path: str, token: str) -> tuple[str, Any]:
    """(Content-Type, body) of a GET; kube-apiserver lets clients cache both documents an hour."""
    ctx = ssl.create_default_context(cafile=str(server.data_dir / "tls" / "ca.crt"))
    req = urllib.request.Request(server.url + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
        assert resp.headers["Cache-Control"] == "public, max-age=3600"
        return resp.headers["Content-Type"], json.loads(resp.read())


def test_whoami_admin(server: ServerProcess) -> None:
    out = server.kubectl("auth", "whoami", "-o", "json").stdout
    review = json.loads(out)
    assert review["kind"] == "SelfSubjectReview" and review["apiVersion"] == "authentication.k8s.io/v1"
    assert review["status"]["userInfo"] == {"username": "system:admin",
                                            "groups": ["system:masters", "system:authenticated"]}
    table = server.kubectl("auth", "whoami").stdout
    assert table.split() == ["ATTRIBUTE", "VALUE", "Username", "system:admin",
                             "Groups", "[system:masters", "system:authenticated]"]


def test_whoami_service_account(server: ServerProcess, namespace: str) -> None:
    k = server.kubectl
    k("-n", namespace, "create", "serviceaccount", "me")
    token = k("-n", namespace, "create", "token", "me").stdout.strip()
    res = _as_token(server, token, "auth", "whoami", "-o", "json")
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)["status"]["userInfo"]
    uid = json.loads(k("-n", namespace, "get", "sa", "me", "-o", "json").stdout)["metadata"]["uid"]
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    assert info == {"username": f"system:serviceaccount:{namespace}:me", "uid": uid,
                    "groups": ["system:serviceaccounts", f"system:serviceaccounts:{namespace}",
                               "system:authenticated"],
                    "extra": {"authentication.kubernetes.io/credential-id": [f"JTI={jti}"]}}


def _review(api: Any, token: str, audiences: list[str] | None = None) -> Any:
    from kubernetes import client

    body = client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token, audiences=audiences))
    return client.AuthenticationV1Api(api).create_token_review(body)


def test_token_review(server: ServerProcess, namespace: str, api: Any) -> None:
    k = server.kubectl
    k("-n", namespace, "create", "serviceaccount", "bot")
    token = k("-n", namespace, "create", "token", "bot").stdout.strip()
    uid = json.loads(k("-n", namespace, "get", "sa", "bot", "-o", "json").stdout)["metadata"]["uid"]

    good = _review(api, token).status
    assert good.authenticated is True and good.error is None
    assert good.user.username == f"system:serviceaccount:{namespace}:bot" and good.user.uid == uid
    assert good.user.groups == ["system:serviceaccounts", f"system:serviceaccounts:{namespace}",
                                "system:authenticated"]
    assert good.audiences == [ISSUER]
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    assert good.user.extra == {"authentication.kubernetes.io/credential-id": [f"JTI={jti}"]}

    other = _review(api, token, ["vault"]).status  # not an audience the token was issued for
    assert not other.authenticated and other.error == "invalid bearer token"

    garbage = _review(api, "not-a-token").status
    assert not garbage.authenticated and garbage.error == "invalid bearer token"
    assert garbage.user.username is None

    k("-n", namespace, "delete", "serviceaccount", "bot")
    deadline = time.monotonic() + 10
    while (revoked := _review(api, token).status).authenticated and time.monotonic() < deadline:
        time.sleep(0.1)  # the deletion reaches the watch cache the authenticator reads
    assert not revoked.authenticated
    assert revoked.error == "[invalid bearer token, service account token has been invalidated]"


def test_token_review_without_token_is_bad_request(server: ServerProcess) -> None:
    res = server.kubectl("create", "--raw", "/apis/authentication.k8s.io/v1/tokenreviews", "-f", "-",
                         input='{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{}}',
                         check=False)
    assert res.returncode != 0
    assert "token is required for TokenReview in authentication" in res.stderr


def test_kubectl_create_token_review(server: ServerProcess) -> None:
    """kubectl validates the TokenReview against the served OpenAPI (a kind without a List type)."""
    out = server.kubectl("create", "-o", "json", "-f", "-",
                         input='{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"x"}}')
    assert json.loads(out.stdout)["status"] == {"user": {}, "error": "invalid bearer token"}


@pytest.mark.parametrize("verb", ["get", "delete"])
def test_review_has_no_item_path(server: ServerProcess, verb: str) -> None:
    """Nothing is stored: an item path is a path the server does not have (404), never a read."""
    res = server.kubectl(verb, "--raw", "/apis/authentication.k8s.io/v1/tokenreviews/x", check=False)
    assert res.returncode != 0
    assert "(NotFound): the server could not find the requested resource" in res.stderr


def test_issuer_discovery_and_offline_verification(server: ServerProcess, namespace: str) -> None:
    k = server.kubectl
    k("-n", namespace, "create", "serviceaccount", "wl")
    token = k("-n", namespace, "create", "token", "wl").stdout.strip()
    ctype, config = _get_json(server, "/.well-known/openid-configuration", token)
    assert ctype == "application/json"
    assert config == {"issuer": ISSUER, "jwks_uri": f"{server.url}/openid/v1/jwks",
                      "response_types_supported": ["id_token"], "subject_types_supported": ["public"],
                      "id_token_signing_alg_values_supported": ["ES256"]}
    ctype, jwks = _get_json(server, "/openid/v1/jwks", token)
    assert ctype == "application/jwk-set+json"
    [key] = jwks["keys"]
    assert (key["use"], key["alg"], key["kty"], key["crv"]) == ("sig", "ES256", "EC", "P-256")
    assert key["kid"] == jwt.get_unverified_header(token)["kid"]
    public = jwt.PyJWK(key).key
    claims = jwt.decode(token, public, algorithms=["ES256"], audience=ISSUER, issuer=ISSUER)
    assert claims["sub"] == f"system:serviceaccount:{namespace}:wl"
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(tampered, public, algorithms=["ES256"], audience=ISSUER, issuer=ISSUER)
