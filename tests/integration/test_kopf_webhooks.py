"""An operator built on kopf (from PyPI) with an admission webhook, against a real ``kyb server``.

kopf runs its own webhook server (HTTPS with the certificate the test gives it) and registers its
own ValidatingWebhookConfiguration (``settings.admission.managed``); the API server then calls it,
and a request the handler refuses fails with kopf's message, as on Kubernetes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kybernetes.testing import ServerProcess, free_port, stop_process

from .webhookserver import CA

pytestmark = pytest.mark.integration

OPERATOR = '''
import os

import kopf


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_):
    settings.admission.server = kopf.WebhookServer(
        addr="127.0.0.1", port=int(os.environ["HOOK_PORT"]), host="127.0.0.1",
        certfile=os.environ["HOOK_CERT"], pkeyfile=os.environ["HOOK_KEY"], cafile=os.environ["HOOK_CA"])
    settings.admission.managed = "kyb-test.kopf.dev"


@kopf.on.validate("configmaps", id="no-secrets-in-configmaps")
def no_secrets(body, **_):
    if "password" in (body.get("data") or {}):
        raise kopf.AdmissionError("passwords belong in Secrets, not ConfigMaps", code=422)
'''


def _configmap(name: str, data: dict[str, str]) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})


def test_kopf_operator_webhook_denies_a_request(fresh_server: ServerProcess, tmp_path: Path) -> None:
    pytest.importorskip("kopf", reason="kopf is in the test extras (installed on CI by scripts/setup.sh)")
    ca = CA(tmp_path / "pki", ["127.0.0.1"], cn="kopf-ca")
    ca_file = tmp_path / "pki" / "ca.crt"
    ca_file.write_bytes(ca.ca_pem)
    (tmp_path / "operator.py").write_text(OPERATOR)
    env = {**os.environ, "KUBECONFIG": str(fresh_server.kubeconfig), "HOOK_PORT": str(free_port()),
           "HOOK_CERT": str(ca.cert_path), "HOOK_KEY": str(ca.key_path), "HOOK_CA": str(ca_file)}
    log = (tmp_path / "kopf.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "kopf", "run", "--standalone", "--all-namespaces",
                             str(tmp_path / "operator.py")], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        res = None
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "kopf.log").read_text()
            res = fresh_server.kubectl("create", "-f", "-", "--dry-run=server", check=False,
                                       input=_configmap("probe", {"password": "x"}))
            if res.returncode != 0:
                break
            time.sleep(0.2)
        assert res is not None and res.returncode != 0, (tmp_path / "kopf.log").read_text()
        hooks = json.loads(fresh_server.kubectl("get", "validatingwebhookconfiguration", "kyb-test.kopf.dev",
                                                "-o", "json").stdout)["webhooks"]
        assert [h["name"] for h in hooks] == ["no-secrets-in-configmaps.kyb-test.kopf.dev"]
        assert hooks[0]["clientConfig"]["url"].startswith("https://127.0.0.1:")
        denied = fresh_server.kubectl("create", "-f", "-", check=False, input=_configmap("bad", {"password": "x"}))
        assert denied.returncode != 0
        assert ('admission webhook "no-secrets-in-configmaps.kyb-test.kopf.dev" denied the request: '
                "passwords belong in Secrets, not ConfigMaps") in denied.stderr
        assert fresh_server.kubectl("create", "-f", "-", input=_configmap("fine", {"color": "blue"})).returncode == 0
    finally:
        stop_process(proc, 15)
        log.close()
