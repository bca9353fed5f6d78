"""Credentials the controller manager takes part in, on a server with its control plane: legacy
service-account token Secrets, bootstrap tokens and node client certificates, CSR approval."""

from __future__ import annotations

import base64
import datetime as dt
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kybernetes.testing import KUBECTL, ServerProcess
from tests.integration.conftest import _require_kubectl

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with its scheduler and controller manager (no node)."""
    _require_kubectl()
    srv = ServerProcess.start(tmp_path_factory.mktemp("kyb-cp"), control_plane=True)
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
