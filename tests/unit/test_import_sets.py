"""What each process imports: modules paid for at start (CPU) and for life (RSS) that its idle
path does not use stay out (issue 18: start time and idle memory). Each check runs a fresh
interpreter, so that modules other tests imported do not hide an import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_schemas_load_without_jsonschema() -> None:
    """The OpenAPI definitions come from kubernetes-validate's data, not its validator: loading
    them imports neither the package's code nor jsonschema."""
    mods = _modules_after("from kybernetes.api import schema\n"
                          "assert schema.for_kind('', 'v1', 'Pod') is not None\n"
                          "assert schema.for_kind('apps', 'v1', 'Deployment') is not None")
    assert "jsonschema" not in mods
    assert "kubernetes_validate" not in mods


def test_control_plane_components_import_no_pki() -> None:
    """The scheduler and the controller manager serve with the certificate they are given (``kyb
    server`` gives each one): the PKI's cryptography is not loaded for a self-signed one they
    do not make."""
    for module in ("kybernetes.scheduler.cmd", "kybernetes.serving", "kybernetes.controlplane"):
        mods = _modules_after(f"import {module}")
        assert "cryptography" not in mods, module
        assert "kybernetes.pki" not in mods, module


_START_API_SERVER = """
import asyncio
from kybernetes import cli
from kybernetes.apiserver.server import APIServer
ctx = cli.apiserver.make_context("apiserver", ["--data-dir", {data_dir!r}, "--https-port", "0"])
params = dict(ctx.params)
params.pop("verbose", None)

async def run() -> None:
    server = APIServer(cli._config(**params))
    await server.start()
    await server.stop()

asyncio.run(run())"""


def test_api_server_starts_without_aiohttp(tmp_path: Path) -> None:
    """An API server's start (imports, bootstrap, listening) loads no HTTP client: aiohttp comes
    with the first call to a webhook, an aggregated API server or a kubelet (logs, exec, ...)."""
    mods = _modules_after(_START_API_SERVER.format(data_dir=str(tmp_path)))
    assert "kybernetes.apiserver.server" in mods
    assert "aiohttp" not in mods


def test_api_server_on_sqlite_starts_without_cel_or_grpc(tmp_path: Path) -> None:
    """An API server on SQLite whose objects have no CEL loads neither cel-expr-python (~14 MB of
    C extensions: it comes with the first expression compiled) nor grpc (etcd's client: it comes
    with an etcd store or a server joining one)."""
    mods = _modules_after(_START_API_SERVER.format(data_dir=str(tmp_path)))
    assert "kybernetes.apiserver.server" in mods
    for heavy in ("cel_expr_python", "kybernetes.apiserver.cel.env", "grpc", "kybernetes.storage.etcd_client"):
        assert heavy not in mods, heavy


def test_cel_loads_with_the_first_expression() -> None:
    """The modules that compile expressions import CEL when they compile one, not before."""
    mods = _modules_after("from kybernetes.apiserver.admission.webhook import conditions\n"
                          "from kybernetes.apiserver.admission.validatingadmissionpolicy import evaluate\n"
                          "from kybernetes.apiserver.cel import admission\n"
                          "assert not conditions.Conditions([])\n"
                          "import sys; assert 'cel_expr_python' not in sys.modules\n"
                          "assert conditions.compile_error('object.x ==') != ''")
    assert "cel_expr_python" in mods


def test_server_bundle_imports_no_grpc(tmp_path: Path) -> None:
    """``kyb server`` (the bundle, whose process runs the API server) loads etcd's client only
    for an embedded member (``--cluster-init``, ``--server``, a data dir holding one): not on
    SQLite, although it looks for a member in its data dir on every start."""
    mods = _modules_after("import kybernetes.cli, kybernetes.bundle\n"
                          "from pathlib import Path\n"
                          "assert kybernetes.cli._embedded_etcd(False, '', '', 'n', 2379, 2380, "
                          f"{{'data_dir': Path({str(tmp_path)!r})}}) is None")
    assert "kybernetes.etcdmember" in mods
    assert "grpc" not in mods


def test_controller_manager_imports_no_cel() -> None:
    """The ValidatingAdmissionPolicy status controller type-checks with CEL only once a policy is
    there to check."""
    mods = _modules_after("import kybernetes.controllers.manager, kybernetes.controllers.vapstatus")
    assert "cel_expr_python" not in mods
