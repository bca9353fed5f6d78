"""Credentials the controller manager takes part in, on a server with its control plane: legacy
service-account token Secrets, bootstrap tokens and node client certificates. (``kubectl
certificate approve|deny`` is covered by test_certificates.py.)"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from kybernetes.testing import KUBECTL, ServerProcess
from tests.integration.conftest import _require_kubectl

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with its scheduler and controller manager (no node), signing certificates for 60 s
    (``--cluster-signing-duration``), so that rotation comes due within the test."""
    _require_kubectl()
    srv = ServerProcess.start(tmp_path_factory.mktemp("kyb-cp"), "--kube-controller-manager-arg",
                              "cluster-signing-duration=60s", control_plane=True)
    try:
        yield srv
    finally:
        srv.stop()


def _as_token(server: ServerProcess, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KUBECTL, "--kubeconfig", "/dev/null", "--server", server.url,
                           "--certificate-authority", str(server.data_dir / "tls" / "ca.crt"),
                           "--token", token, *args], capture_output=True, text=True, timeout=30)


def _wait(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _json(server: ServerProcess, *args: str) -> Any:
    out = server.kubectl(*args, "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else None


def test_legacy_token_secret_authenticates_until_deleted(cp: ServerProcess, tmp_path: Path) -> None:
    k = cp.kubectl
    k("create", "namespace", "legacy")
    k("-n", "legacy", "create", "serviceaccount", "bot")
    k("-n", "legacy", "apply", "-f", "-", input=(
        "apiVersion: v1\nkind: Secret\ntype: kubernetes.io/service-account-token\nmetadata:\n"
        "  name: bot-token\n  annotations: {kubernetes.io/service-account.name: bot}\n"))
    secret = _wait("the token", lambda: (s := _json(cp, "-n", "legacy", "get", "secret", "bot-token"))
                   and (s.get("data") or {}).get("token") and s)
    token = base64.b64decode(secret["data"]["token"]).decode()
    who = _as_token(cp, token, "auth", "whoami", "-o", "json")
    assert who.returncode == 0, who.stderr
    info = json.loads(who.stdout)["status"]["userInfo"]
    assert info["username"] == "system:serviceaccount:legacy:bot"
    assert info["groups"] == ["system:serviceaccounts", "system:serviceaccounts:legacy", "system:authenticated"]
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    _wait("the last-used label", lambda: ((_json(cp, "-n", "legacy", "get", "secret", "bot-token") or {})
                                          .get("metadata", {}).get("labels") or {})
          .get("kubernetes.io/legacy-token-last-used") in (today, (dt.datetime.now(dt.UTC)
                                                                  + dt.timedelta(days=1)).strftime("%Y-%m-%d")))
    k("-n", "legacy", "delete", "secret", "bot-token")
    _wait("the token to stop working",
          lambda: "error: You must be logged in to the server (Unauthorized)" in
          _as_token(cp, token, "auth", "whoami").stderr)
    review = json.loads(k("create", "-o", "json", "-f", "-", input=json.dumps({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}})).stdout)
    assert review["status"] == {"user": {}, "error": "[invalid bearer token, Token has been invalidated]"}


def _bootstrap_secret(cp: ServerProcess, token_id: str, secret: str, *extra: str) -> None:
    cp.kubectl("-n", "kube-system", "create", "secret", "generic", f"bootstrap-token-{token_id}",
               "--type", "bootstrap.kubernetes.io/token", f"--from-literal=token-id={token_id}",
               f"--from-literal=token-secret={secret}", "--from-literal=usage-bootstrap-authentication=true",
               *extra)


def _rfc3339(delta: dt.timedelta) -> str:
    return (dt.datetime.now(dt.UTC) + delta).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_bootstrap_token_authenticates_and_expires(cp: ServerProcess) -> None:
    _bootstrap_secret(cp, "abcdef", "0123456789abcdef",
                      "--from-literal=auth-extra-groups=system:bootstrappers:kubeadm:default-node-token",
                      f"--from-literal=expiration={_rfc3339(dt.timedelta(hours=1))}")
    who = _wait("the bootstrap token to authenticate",
                lambda: (r := _as_token(cp, "abcdef.0123456789abcdef", "auth", "whoami", "-o", "json"))
                .returncode == 0 and r)
    info = json.loads(who.stdout)["status"]["userInfo"]
    assert info["username"] == "system:bootstrap:abcdef"
    assert info["groups"] == ["system:bootstrappers", "system:bootstrappers:kubeadm:default-node-token",
                              "system:authenticated"]
    wrong = _as_token(cp, "abcdef.0123456789abcde0", "auth", "whoami")
    assert "Unauthorized" in wrong.stderr
    # Expired: refused at once, and the tokencleaner (on in kyb server, as kubeadm turns it on)
    # deletes the Secret.
    _bootstrap_secret(cp, "oldtok", "0123456789abcdef",
                      f"--from-literal=expiration={_rfc3339(dt.timedelta(seconds=-5))}")
    assert "Unauthorized" in _as_token(cp, "oldtok.0123456789abcdef", "auth", "whoami").stderr
    _wait("the tokencleaner to delete the expired token",
          lambda: _json(cp, "-n", "kube-system", "get", "secret", "bootstrap-token-oldtok") is None)


def test_agent_bootstraps_a_node_client_certificate(cp: ServerProcess, tmp_path: Path) -> None:
    """The agent's credential step with a bootstrap token: the CA pinned by kubeadm's public-key
    hash, a kube-apiserver-client-kubelet CSR approved (nodeclient) and signed by the controller
    manager, then the serving certificate; no kubelet is started."""
    from kybernetes import agent, join

    _bootstrap_secret(cp, "node01", "fedcba9876543210",
                      "--from-literal=auth-extra-groups=system:bootstrappers:kubeadm:default-node-token")
    ca_pem = (cp.data_dir / "tls" / "ca.crt").read_bytes()
    cfg = agent.AgentConfig(server=cp.url, token="", data_dir=tmp_path / "agent-data", node_name="boot-node",
                            node_ip="127.0.0.1", bootstrap_token="node01.fedcba9876543210",
                            discovery_hash=join.ca_public_key_hash(ca_pem))
    bad = agent.AgentConfig(**{**cfg.__dict__, "data_dir": tmp_path / "bad",
                               "discovery_hash": "sha256:" + "0" * 64})
    with pytest.raises(agent.JoinError, match="refusing to join"):
        agent.ensure_credentials(bad)
    creds = agent.ensure_credentials(cfg)
    who = subprocess.run([KUBECTL, "--kubeconfig", str(creds.kubeconfig), "auth", "whoami", "-o", "json"],
                         capture_output=True, text=True, timeout=30)
    assert who.returncode == 0, who.stderr
    info = json.loads(who.stdout)["status"]["userInfo"]
    assert info["username"] == "system:node:boot-node"
    assert info["groups"] == ["system:nodes", "system:authenticated"]
    csrs = _json(cp, "get", "csr")["items"]
    mine = [c for c in csrs if c["spec"]["username"] == "system:bootstrap:node01"]
    assert mine and mine[0]["spec"]["signerName"] == "kubernetes.io/kube-apiserver-client-kubelet"
    assert [c["reason"] for c in mine[0]["status"]["conditions"]] == ["AutoApproved"]
    assert creds.serving_cert.exists()



def test_agent_rotates_its_client_certificate(cp: ServerProcess, tmp_path: Path) -> None:
    """At its jittered deadline (here the earliest, 70% of the lifetime) the agent renews its client
    certificate through a CSR authenticated with the current one (approved as selfnodeclient),
    rewrites the kubeconfig and tells the kubelet and kube-proxy (here: a callback)."""
    from kybernetes import agent, join
    from kybernetes.kubelet.certificate import Rotation

    _bootstrap_secret(cp, "rotate", "0123456789abcdef")
    ca_pem = (cp.data_dir / "tls" / "ca.crt").read_bytes()
    cfg = agent.AgentConfig(server=cp.url, token="", data_dir=tmp_path / "agent-data", node_name="rot-node",
                            node_ip="127.0.0.1", bootstrap_token="rotate.0123456789abcdef",
                            discovery_hash=join.ca_public_key_hash(ca_pem))
    creds = agent.ensure_credentials(cfg)
    first = x509.load_pem_x509_certificate(creds.client_cert.read_bytes())
    # --cluster-signing-duration=60s, backdated 5 minutes: a 6-minute certificate due 4.2 minutes
    # after its notBefore, i.e. before now.
    assert first.not_valid_after_utc - first.not_valid_before_utc == dt.timedelta(minutes=6)
    rotation = Rotation([creds.client_cert, creds.serving_cert], partial(agent.renew_certificates, cfg),
                        jitter=lambda: 0.0)
    assert rotation.deadline(creds.client_cert) == first.not_valid_before_utc + dt.timedelta(minutes=6) * 0.7

    async def rotate_once() -> None:
        stop, renewed = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(rotation.run(stop, renewed.set))
        try:
            await asyncio.wait_for(renewed.wait(), 60)
        finally:
            stop.set()
            await task

    asyncio.run(rotate_once())
    second = x509.load_pem_x509_certificate(creds.client_cert.read_bytes())
    assert second.serial_number != first.serial_number and second.subject == first.subject
    who = subprocess.run([KUBECTL, "--kubeconfig", str(creds.kubeconfig), "auth", "whoami", "-o", "json"],
                         capture_output=True, text=True, timeout=30)
    assert who.returncode == 0, who.stderr
    assert json.loads(who.stdout)["status"]["userInfo"]["username"] == "system:node:rot-node"
    kc_cert = yaml.safe_load(creds.kubeconfig.read_text())["users"][0]["user"]["client-certificate-data"]
    assert base64.b64decode(kc_cert) == creds.client_cert.read_bytes()
    renewals = [c for c in _json(cp, "get", "csr")["items"] if c["spec"]["username"] == "system:node:rot-node"]
    assert renewals, "the renewal was not a CSR of the node's own"
    assert renewals[0]["status"]["conditions"][0]["message"] == (
        "Auto approving self kubelet client certificate after SubjectAccessReview.")
