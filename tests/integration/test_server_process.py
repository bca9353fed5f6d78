"""The ``kyb server`` process: durability under SIGKILL, signals, tokens, the kubeconfig it writes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from kybernetes.testing import KUBECTL, ServerProcess

pytestmark = pytest.mark.integration


def _ssl(data_dir: Path) -> ssl.SSLContext:
    tls = data_dir / "tls"
    ctx = ssl.create_default_context(cafile=str(tls / "ca.crt"))
    ctx.load_cert_chain(str(tls / "admin.crt"), str(tls / "admin.key"))
    return ctx


async def _write_until_killed(srv: ServerProcess, acked: list[str], writers: int = 16) -> None:
    """Create ConfigMaps from many clients; record each one the server acknowledged; kill -9."""
    ctx = _ssl(srv.data_dir)
    stop = asyncio.Event()

    async def writer(session: aiohttp.ClientSession, w: int) -> None:
        i = 0
        while not stop.is_set():
            name = f"cm-{w}-{i}"
            i += 1
            body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"w": str(w)}}
            try:
                async with session.post(f"{srv.url}/api/v1/namespaces/default/configmaps", json=body,
                                        ssl=ctx) as resp:
                    await resp.read()
                    if resp.status == 201:
                        acked.append(name)
            except (aiohttp.ClientError, OSError):
                return

    async with aiohttp.ClientSession() as session:
        tasks = [asyncio.create_task(writer(session, w)) for w in range(writers)]
        deadline = time.monotonic() + 20
        while len(acked) < 300 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        os.kill(srv.proc.pid, signal.SIGKILL)  # mid-stream, writes in flight
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    srv.proc.wait()


def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    srv = ServerProcess.start(tmp_path / "d")
    acked: list[str] = []
    try:
        asyncio.run(_write_until_killed(srv, acked))
    finally:
        srv.kill()
    assert len(acked) >= 100
    again = ServerProcess.start(srv.data_dir, port=srv.port)
    try:
        out = again.kubectl("get", "configmaps", "-n", "default", "-o", "json").stdout
        present = {item["metadata"]["name"] for item in json.loads(out)["items"]}
        missing = [n for n in acked if n not in present]
        assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:5]}"
    finally:
        again.stop()


def test_sigint_stops_cleanly_and_kubeconfig_names_real_port(tmp_path: Path) -> None:
    srv = ServerProcess.start(tmp_path / "d")
    try:
        cfg = srv.kubeconfig.read_text()
        assert f"https://127.0.0.1:{srv.port}" in cfg
        assert oct(srv.kubeconfig.stat().st_mode & 0o777) == "0o600"
        assert "export KUBECONFIG=" + str(srv.kubeconfig) in srv.log()
        srv.proc.send_signal(signal.SIGINT)
        assert srv.proc.wait(20) == 0
    finally:
        srv.kill()


def test_https_port_zero_picks_a_free_port(tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "kybernetes.cli",
         "server", "--data-dir", str(data), "--https-port", "0", "--disable-agent"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line == f"export KUBECONFIG={data / 'kubeconfig.yaml'}"
        env = dict(os.environ, KUBECONFIG=str(data / "kubeconfig.yaml"))
        out = subprocess.run([KUBECTL, "get", "ns", "default", "-o", "name"], capture_output=True, text=True,
                             env=env, timeout=30)
        assert out.stdout.strip() == "namespace/default"
    finally:
        proc.terminate()
        proc.wait(20)


def test_bearer_token_file_authenticates(tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.mkdir()
    (data / "tokens.csv").write_text('s3cr3t-token,alice,1001,"devs,ops"\n')
    srv = ServerProcess.start(data)
    try:
        srv.kubectl("create", "clusterrolebinding", "devs-view", "--clusterrole=view", "--group=devs")
        srv.kubectl("create", "clusterrole", "ns-reader", "--verb=list", "--resource=namespaces")
        srv.kubectl("create", "clusterrolebinding", "devs-ns", "--clusterrole=ns-reader", "--group=devs")
        srv.wait_allowed("list", "namespaces", "alice", groups=("devs",))
        base = [KUBECTL, "--kubeconfig", "/dev/null", "--server", srv.url,
                "--certificate-authority", str(data / "tls" / "ca.crt")]
        ok = subprocess.run([*base, "--token", "s3cr3t-token", "get", "ns", "-o", "name"], capture_output=True,
                            text=True, timeout=30)
        assert ok.returncode == 0 and "namespace/default" in ok.stdout
        bad = subprocess.run([*base, "--token", "wrong", "get", "ns"], capture_output=True, text=True, timeout=30)
        assert bad.returncode != 0 and "Unauthorized" in bad.stderr
    finally:
        srv.stop()
