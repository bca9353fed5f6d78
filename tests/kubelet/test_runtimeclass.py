"""RuntimeClass handlers in the node's containerd: `runc` (the default) and `crun` (Debian's crun),
both under the runc v2 shim; an unconfigured handler fails the sandbox with the runtime's error,
which the kubelet prints as Go prints a gRPC error. (The kubelet's side, a pod's runtimeClassName
resolved through the API, is in test_security_context_e2e.py.)"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import grpc
import pytest

from kybernetes.kubelet.containerd import Containerd
from kybernetes.kubelet.cri import CRIClient, CRIError
from tests.node.conftest import NodeRuntime, container_config, remove_sandbox, sandbox_config, wait_exited


def require_crun() -> None:
    if shutil.which("crun") is None:
        reason = "needs Debian's crun (scripts/setup.sh installs it)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def test_config_declares_runc_and_crun_handlers(tmp_path: Path) -> None:
    require_crun()
    runtime = Containerd(tmp_path, snapshotter="native")
    assert runtime.runtime_handlers() == {"runc": "", "crun": shutil.which("crun")}
    config = runtime.render_config()
    crun = '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.crun.options]'
    assert crun in config
    assert config.split(crun, 1)[1].split("\n")[1] == f"  BinaryName = {json.dumps(shutil.which('crun'))}"
    assert '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]' in config
    assert 'default_runtime_name = "runc"' in config


def crun_can_create_cgroups() -> bool:
    """False on a hybrid cgroup layout (v1 controllers, and a cgroup2 at /sys/fs/cgroup/unified
    that has controllers of its own), which crun 1.8 refuses: "cgroups in hybrid mode not
    supported, drop all controllers from cgroupv2"."""
    controllers = Path("/sys/fs/cgroup/unified/cgroup.controllers")
    try:
        return not controllers.read_text().split()
    except OSError:
        return True  # pure v1 or pure v2


async def test_crun_handler_runs_the_pod(node_runtime: NodeRuntime, cri: CRIClient) -> None:
    """The `crun` handler reaches crun: the pod runs under it, or, on a cgroup layout crun refuses,
    the sandbox fails with crun's own words (this machine's kind has such a layout)."""
    require_crun()
    config = sandbox_config(node_runtime, "on-crun")
    if not crun_can_create_cgroups():
        with pytest.raises(CRIError) as err:
            await cri.run_pod_sandbox(config, "crun")
        assert "cgroups in hybrid mode not supported, drop all controllers from cgroupv2" in err.value.details
        return
    sandbox_id = await cri.run_pod_sandbox(config, "crun")
    try:
        status = await cri.pod_sandbox_status(sandbox_id, verbose=True)
        assert status.status.runtime_handler == "crun"
        cid = await cri.create_container(sandbox_id, container_config("c", ["echo", "hello from crun"]), config)
        await cri.start_container(cid)
        exited = await wait_exited(cri, cid)
        assert exited.exit_code == 0 and "hello from crun" in Path(exited.log_path).read_text()
        info = json.loads((await cri.container_status(cid, verbose=True)).info["info"])
        assert json.dumps(shutil.which("crun")) in json.dumps(info.get("runtimeOptions")), info
    finally:
        await remove_sandbox(cri, sandbox_id)


async def test_unconfigured_handler_fails_the_sandbox(node_runtime: NodeRuntime, cri: CRIClient) -> None:
    with pytest.raises(CRIError) as err:
        await cri.run_pod_sandbox(sandbox_config(node_runtime, "on-nope"), "nope")
    assert err.value.go_error == \
        'rpc error: code = Unknown desc = failed to get sandbox runtime: no runtime for "nope" is configured'


def test_cri_errors_read_as_the_kubelet_prints_grpc_errors() -> None:
    assert CRIError("RunPodSandbox", grpc.StatusCode.UNKNOWN, "boom").go_error == "rpc error: code = Unknown desc = boom"
    assert CRIError("PullImage", grpc.StatusCode.DEADLINE_EXCEEDED, "late").go_error == \
        "rpc error: code = DeadlineExceeded desc = late"
    assert CRIError("ImageStatus", grpc.StatusCode.NOT_FOUND, "x").go_error == "rpc error: code = NotFound desc = x"
    assert CRIError("Version", None, "no answer").go_error == "no answer"
