"""The server-join endpoints (``POST /kybernetes.io/v1/server-bootstrap``, ``.../etcd-members``),
the server token and ``kyb server --server``'s refusals, against a real ``kyb server --cluster-init``.

Two servers joined end to end are ``tests/integration/test_server_join.py``'s.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from kybernetes import join
from kybernetes.agent import AgentConfig, ensure_credentials
from kybernetes.apiserver.join import servers, tokens
from kybernetes.errors import BadRequest
from kybernetes.testing import ServerProcess, embedded_etcd_args, free_port

KYB = [sys.executable, "-m", "kybernetes.cli"]
UNAUTHORIZED = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "Unauthorized",
                "reason": "Unauthorized", "code": 401}


def _require_etcd() -> None:
    if not shutil.which("etcd"):
        if os.environ.get("CI"):
            pytest.fail("etcd (Debian's etcd-server) is required on CI")
        pytest.skip("etcd is not installed on this machine (it is on CI)")


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    _require_etcd()
    srv = ServerProcess.start(tmp_path_factory.mktemp("first"), *embedded_etcd_args("first"), timeout=90.0)
    try:
        yield srv
    finally:
        srv.stop()


def secret_of(srv: ServerProcess) -> str:
    token = tokens.read_server_token(srv.data_dir)
    assert token is not None
    return join.parse_token(token, join.SERVER_TOKEN_USER).secret


def post(srv: ServerProcess, path: str, body: bytes | None = b"{}", authorization: str | None = None,
         method: str = "POST") -> tuple[int, dict]:  # type: ignore[type-arg]
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    req = urllib.request.Request(srv.url + path, data=body, headers=headers, method=method)
    ctx = ssl.create_default_context(cafile=str(srv.data_dir / "tls" / "ca.crt"))
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


# --- the server token ------------------------------------------------------------------------------


def test_the_server_token_is_kept_apart_and_shown_by_kyb_token_server(first: ServerProcess) -> None:
    token = subprocess.run([*KYB, "token", "server", "--data-dir", str(first.data_dir)], capture_output=True,
                           text=True, timeout=60, check=True).stdout.strip()
    parsed = join.parse_token(token, join.SERVER_TOKEN_USER)
    assert parsed.ca_hash == join.ca_hash((first.data_dir / "tls" / "ca.crt").read_bytes())
    assert oct((first.data_dir / tokens.SERVER_TOKEN_FILE).stat().st_mode & 0o777) == "0o600"
    # Not one of the agent tokens that kyb token lists and deletes.
    listing = subprocess.run([*KYB, "token", "list", "--data-dir", str(first.data_dir)], capture_output=True,
                             text=True, timeout=60, check=True).stdout
    assert parsed.secret not in listing
    assert tokens.verify_secret(first.data_dir, parsed.secret) is None


def test_an_agent_may_join_with_the_server_token(first: ServerProcess, tmp_path: Path) -> None:
    """As in k3s: every server of a cluster holds the server token, so it joins an agent through any."""
    token = tokens.read_server_token(first.data_dir)
    assert token is not None
    creds = ensure_credentials(AgentConfig(server=first.url, token=token, data_dir=tmp_path / "agent",
                                           node_name="node-with-server-token", node_ip="127.0.0.1"))
    cert = x509.load_pem_x509_certificate(creds.client_cert.read_bytes())
    assert cert.subject.rfc4514_string() == "CN=system:node:node-with-server-token,O=system:nodes"


def test_kyb_token_server_on_a_server_without_etcd(tmp_path: Path) -> None:
    res = subprocess.run([*KYB, "token", "server", "--data-dir", str(tmp_path)], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 1 and "has no server token" in res.stderr


# --- the endpoints: authentication ---------------------------------------------------------------------


@pytest.mark.parametrize("path", servers.PATHS)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-secret", "Basic Zm9vOmJhcg==", "Bearer "])
def test_anything_but_the_server_token_is_401(first: ServerProcess, path: str, authorization: str | None) -> None:
    assert post(first, path, authorization=authorization) == (401, UNAUTHORIZED)


def test_an_agent_token_is_not_a_server_token(first: ServerProcess) -> None:
    agent_token = subprocess.run([*KYB, "token", "create", "--data-dir", str(first.data_dir)], capture_output=True,
                                 text=True, timeout=60, check=True).stdout.strip()
    secret = join.parse_token(agent_token).secret
    for path in servers.PATHS:
        assert post(first, path, authorization=f"Bearer {secret}") == (401, UNAUTHORIZED)


def test_a_server_without_a_server_token_accepts_none(tmp_path: Path) -> None:
    with ServerProcess.start(tmp_path / "sqlite", service_accounts=False) as srv:
        assert not (srv.data_dir / tokens.SERVER_TOKEN_FILE).exists()
        for path in servers.PATHS:
            assert post(srv, path, authorization="Bearer anything") == (401, UNAUTHORIZED)


# --- the endpoints: what they answer -----------------------------------------------------------------


def test_bootstrap_hands_out_exactly_the_shared_files(first: ServerProcess) -> None:
    code, doc = post(first, join.SERVER_BOOTSTRAP_PATH, authorization=f"Bearer {secret_of(first)}")
    assert code == 200
    assert set(doc["files"]) == set(join.SHARED_TLS_FILES)
    for name, content in doc["files"].items():
        assert content == (first.data_dir / "tls" / name).read_text()
    code, status = post(first, join.SERVER_BOOTSTRAP_PATH, None, f"Bearer {secret_of(first)}", method="GET")
    assert (code, status["reason"]) == (405, "MethodNotAllowed")


@pytest.mark.parametrize(("body", "message"), [
    (b"not json", "request body must be a JSON object"),
    (b"[]", "request body must be a JSON object"),
    (json.dumps({"peerURL": "https://127.0.0.1:2390"}).encode(), "name must be a DNS subdomain"),
    (json.dumps({"name": "Bad_Name", "peerURL": "https://127.0.0.1:2390"}).encode(), "name must be a DNS subdomain"),
    (json.dumps({"name": "n"}).encode(), "peerURL must be a string"),
    (json.dumps({"name": "n", "peerURL": "http://127.0.0.1:2390"}).encode(), "is not https://IP:PORT"),
    (json.dumps({"name": "n", "peerURL": "https://etcd.example:2390"}).encode(), "is not https://IP:PORT"),
    (json.dumps({"name": "n", "peerURL": "https://127.0.0.1"}).encode(), "is not https://IP:PORT"),
    (json.dumps({"name": "n", "peerURL": "https://127.0.0.1:99999"}).encode(), "is not https://IP:PORT"),
    (json.dumps({"name": "n", "peerURL": "https://127.0.0.1:2390/x"}).encode(), "is not https://IP:PORT"),
])
def test_bad_member_requests_are_400_and_add_nothing(first: ServerProcess, body: bytes, message: str) -> None:
    code, status = post(first, join.ETCD_MEMBERS_PATH, body, f"Bearer {secret_of(first)}")
    assert (code, status["kind"], status["reason"]) == (400, "Status", "BadRequest"), status
    assert message in status["message"]
    assert member_names(first) == ["first"]


def test_a_started_member_of_the_same_name_or_peer_url_is_a_409(first: ServerProcess) -> None:
    [peer_url] = [line.split()[3] for line in kyb_members(first)[1:]]
    for body in ({"name": "first", "peerURL": "https://127.0.0.1:1"}, {"name": "other", "peerURL": peer_url}):
        code, status = post(first, join.ETCD_MEMBERS_PATH, json.dumps(body).encode(), f"Bearer {secret_of(first)}")
        assert (code, status["reason"]) == (409, "Conflict"), status
        assert 'etcd member "first"' in status["message"] and "kyb etcd member remove first" in status["message"]
    assert member_names(first) == ["first"]


def test_a_joining_member_is_a_learner_that_costs_no_quorum(first: ServerProcess) -> None:
    """A join that never starts its member (here: only the request) leaves a learner, which does
    not count for the quorum: the one voting member still writes. A retry gets the same member."""
    body = json.dumps({"name": "never-started", "peerURL": "https://127.0.0.1:9"}).encode()
    code, added = post(first, join.ETCD_MEMBERS_PATH, body, f"Bearer {secret_of(first)}")
    try:
        assert code == 200, added
        assert "never-started=https://127.0.0.1:9" in added["initialCluster"].split(",")
        rows = {line.split()[1]: line.split()[2] for line in kyb_members(first)[1:]}
        assert rows[added["id"]] == "unstarted" and sorted(rows.values()) == ["started", "unstarted"]
        first.kubectl("create", "configmap", "written-while-a-learner-waits", timeout=20)
        code, again = post(first, join.ETCD_MEMBERS_PATH, body, f"Bearer {secret_of(first)}")
        assert (code, again) == (200, added)
    finally:
        subprocess.run([*KYB, "etcd", "member", "remove", added["id"], "--data-dir", str(first.data_dir)],
                       capture_output=True, text=True, timeout=60, check=True)
    assert member_names(first) == ["first"]


def test_peer_urls_are_normalised() -> None:
    assert servers.parse_peer_url("https://10.0.0.1:2380/") == "https://10.0.0.1:2380"
    assert servers.parse_peer_url("https://[fd00::1]:2380") == "https://[fd00::1]:2380"
    with pytest.raises(BadRequest):
        servers.parse_peer_url("https://user@10.0.0.1:2380")


# --- kyb server --server's refusals -----------------------------------------------------------------


def kyb_members(srv: ServerProcess) -> list[str]:
    return subprocess.run([*KYB, "etcd", "member", "list", "--data-dir", str(srv.data_dir)], capture_output=True,
                          text=True, timeout=60, check=True).stdout.strip().splitlines()


def member_names(srv: ServerProcess) -> list[str]:
    return sorted(line.split()[0] for line in kyb_members(srv)[1:])


def join_server(tmp_path: Path, first: ServerProcess, token: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KYB, "server", "--data-dir", str(tmp_path / "joining"), "--server", first.url,
                           "--token", token, "--node-name", "joining", "--https-port", str(free_port()),
                           "--bind-address", "127.0.0.1", "--disable-agent", "--etcd-client-port", str(free_port()),
                           "--etcd-peer-port", str(free_port())], capture_output=True, text=True, timeout=90)


def test_a_wrong_server_secret_ends_the_join_with_401s_words(first: ServerProcess, tmp_path: Path) -> None:
    token = tokens.read_server_token(first.data_dir)
    assert token is not None
    res = join_server(tmp_path, first, token.rpartition(":")[0] + ":wrongsecret")
    assert res.returncode == 1, res.stderr
    assert "refused the server token (Unauthorized)" in res.stderr
    assert not (tmp_path / "joining" / "tls" / "ca.key").exists()
    assert member_names(first) == ["first"]


def test_a_token_of_another_cluster_never_sends_its_secret(first: ServerProcess, tmp_path: Path) -> None:
    res = join_server(tmp_path, first, "K10" + "ab" * 32 + "::server:secret")
    assert res.returncode == 1, res.stderr
    assert "but the join token expects " + "ab" * 32 in res.stderr
    assert member_names(first) == ["first"]


def test_an_agent_token_or_a_missing_token_is_a_usage_error(first: ServerProcess, tmp_path: Path) -> None:
    res = join_server(tmp_path, first, "K10" + "ab" * 32 + "::node:secret")
    assert res.returncode == 1 and "expected 'server:<secret>'" in res.stderr, res.stderr
    res = subprocess.run([*KYB, "server", "--data-dir", str(tmp_path), "--server", first.url], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 2 and "--server needs --token" in res.stderr
    res = subprocess.run([*KYB, "server", "--data-dir", str(tmp_path), "--server", first.url, "--token", "x",
                          "--cluster-init"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "--cluster-init and --server are mutually exclusive" in res.stderr


def test_a_data_dir_of_another_cluster_is_refused_before_any_change(first: ServerProcess, tmp_path: Path) -> None:
    other = tmp_path / "joining" / "tls"
    other.mkdir(parents=True)
    (other / "ca.crt").write_text("another cluster's CA\n")
    token = tokens.read_server_token(first.data_dir)
    assert token is not None
    res = join_server(tmp_path, first, token)
    assert res.returncode == 1, res.stderr
    assert "belongs to another cluster" in res.stderr
    assert sorted(p.name for p in other.iterdir()) == ["ca.crt"]
    assert member_names(first) == ["first"]
