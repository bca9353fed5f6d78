"""``--authorization-mode`` on a real server: every request after authentication is authorized,
``system:masters`` before the chain, and a refusal is Kubernetes' 403."""

from __future__ import annotations

import json
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from kybernetes.testing import KUBECTL, ServerProcess

pytestmark = pytest.mark.integration


def test_always_deny_refuses_all_but_masters_with_kubernetes_words(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "tokens.csv").write_text('jane-token,jane,1001,"devs"\n')
    with ServerProcess.start(data, "--authorization-mode", "AlwaysDeny", service_accounts=False) as srv:
        assert srv.kubectl("get", "ns", "default", "-o", "name").stdout.strip() == "namespace/default"
        res = subprocess.run([KUBECTL, "--kubeconfig", "/dev/null", "--server", srv.url,
                              "--certificate-authority", str(data / "tls" / "ca.crt"), "--token", "jane-token",
                              "get", "--raw", "/api/v1/namespaces/default/pods"],
                             capture_output=True, text=True, timeout=30)
        assert res.returncode != 0
        assert ('pods is forbidden: User "jane" cannot list resource "pods" in API group "" in the '
                'namespace "default": Everything is forbidden.') in res.stderr


def test_bad_mode_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="authorization-mode 'Foo' is not a valid mode"):
        ServerProcess.start(tmp_path / "data", "--authorization-mode", "RBAC,Foo", timeout=20)


def test_forbidden_status_body_names_the_object(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "tokens.csv").write_text("t1,bob,1002\n")
    with ServerProcess.start(data, "--authorization-mode", "AlwaysDeny", "--disable-agent",
                             service_accounts=False) as srv:
        ctx = ssl.create_default_context(cafile=str(data / "tls" / "ca.crt"))
        req = urllib.request.Request(srv.url + "/apis/apps/v1/namespaces/x/deployments/web",
                                     headers={"Authorization": "Bearer t1"})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, context=ctx, timeout=10)
        assert err.value.code == 403
        body = json.loads(err.value.read())
        assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": 'deployments.apps "web" is forbidden: User "bob" cannot get resource '
                                   '"deployments" in API group "apps" in the namespace "x": Everything is forbidden.',
                        "reason": "Forbidden", "details": {"name": "web", "group": "apps", "kind": "deployments"},
                        "code": 403}
