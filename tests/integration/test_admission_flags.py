"""``--enable-admission-plugins`` / ``--disable-admission-plugins`` reach a running API server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kybernetes.testing import ServerProcess
from tests.integration.conftest import _require_kubectl

pytestmark = pytest.mark.integration


def test_disabled_plugins_do_not_run(tmp_path: Path) -> None:
    _require_kubectl()
    with ServerProcess.start(tmp_path / "data", "--disable-admission-plugins", "ServiceAccount",
                             "--disable-admission-plugins=DefaultTolerationSeconds", command="apiserver") as srv:
        srv.kubectl("run", "p", "--image=busybox")
        spec = json.loads(srv.kubectl("get", "pod", "p", "-o", "json").stdout)["spec"]
        assert "serviceAccountName" not in spec and not spec.get("volumes")
        assert not spec.get("tolerations")
        # The plugins not disabled still run: Priority refuses an unknown class.
        res = srv.kubectl("run", "q", "--image=busybox", "--overrides", '{"spec":{"priorityClassName":"nope"}}',
                          check=False)
        assert res.returncode != 0 and 'pods "q" is forbidden: no PriorityClass with name nope was found' in res.stderr


def test_unknown_plugin_stops_kyb_server_with_kubernetes_message(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "kybernetes.cli", "server", "--data-dir", str(tmp_path),
                          "--https-port", "0", "--disable-admission-plugins", "Bogus,Nonsense"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines()[-1] == (
        'Error: [disable-admission-plugins plugin "Bogus" is unknown, '
        'disable-admission-plugins plugin "Nonsense" is unknown]')
