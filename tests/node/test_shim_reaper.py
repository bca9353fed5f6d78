"""A containerd shim leaked as containerd 1.6 leaks it (containerd#6860: containerd died after starting
the shim, before creating its task) is stopped by the kubelet's :class:`ShimReaper` once it has
served nothing for the grace period; the shims of live sandboxes are left alone. Found by
``bench.faults``: a kill -9 of containerd while a pod started left a shim running after the pod,
its sandbox and the whole node were gone. Root only (a real containerd and shim)."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

from kybernetes.kubelet.containerd import process_alive, shim_pids_for
from kybernetes.kubelet.cri import CRIClient
from kybernetes.kubelet.shimreaper import ShimReaper, runtime_ids, shims_of
from tests.node.conftest import NodeRuntime, sandbox_config


def start_taskless_shim(node: NodeRuntime, sid: str, namespace: str = "k8s.io") -> int:
    """A shim started the way containerd starts one (``start`` in its bundle, which containerd
    prepares: a spec, the ``log`` fifo), whose task is then never created: what a containerd killed
    at that moment leaves."""
    bundle = node.containerd.state / "io.containerd.runtime.v2.task" / namespace / sid
    bundle.mkdir(parents=True)
    (bundle / "config.json").write_text('{"ociVersion": "1.0.2", "annotations": {}}')
    os.mkfifo(bundle / "log")
    reader = os.open(bundle / "log", os.O_RDONLY | os.O_NONBLOCK)  # containerd reads the shim's log
    try:
        res = subprocess.run(
            ["containerd-shim-runc-v2", "-namespace", namespace, "-id", sid, "-address", node.socket,
             "-publish-binary", "containerd", "start"],
            cwd=bundle, env={**os.environ, "TTRPC_ADDRESS": node.socket + ".ttrpc"},
            capture_output=True, text=True, timeout=30)
    finally:
        os.close(reader)
    assert res.returncode == 0, res.stderr
    (bundle / "address").write_text(res.stdout.strip())
    pids = [pid for pid in shim_pids_for(node.socket) if sid.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert len(pids) == 1, pids
    return pids[0]


async def test_a_leaked_shim_is_stopped_after_the_grace_live_ones_stay(cri: CRIClient,
                                                                      node_runtime: NodeRuntime) -> None:
    sandbox_id = await cri.run_pod_sandbox(sandbox_config(node_runtime, "reaper-live"))
    leaked_id = f"leaked-{uuid.uuid4().hex}"
    leaked_pid = start_taskless_shim(node_runtime, leaked_id)
    bundle = node_runtime.containerd.state / "io.containerd.runtime.v2.task" / "k8s.io" / leaked_id
    address = Path((bundle / "address").read_text().removeprefix("unix://"))
    assert address.exists()
    # A shim of another namespace (``ctr run`` by hand) is no business of CRI's: it stays.
    other_id = f"other-{uuid.uuid4().hex}"
    other_pid = start_taskless_shim(node_runtime, other_id, namespace="default")
    now = [0.0]
    reaper = ShimReaper(node_runtime.socket, node_runtime.containerd.state, lambda: runtime_ids(cri), grace=30,
                        clock=lambda: now[0])
    try:
        assert await reaper.sweep() == []  # unknown from now on: judged after the grace
        now[0] = 29.0
        assert await reaper.sweep() == []
        assert process_alive(leaked_pid)
        now[0] = 31.0
        assert await reaper.sweep() == [leaked_id]
        assert not process_alive(leaked_pid)
        assert not address.exists(), "the leaked shim's socket was left behind"
        live = [pid for pid, sid in shims_of(node_runtime.socket).items() if sid == sandbox_id]
        assert len(live) == 1 and process_alive(live[0]), "the live sandbox's shim was stopped"
        assert (await cri.pod_sandbox_status(sandbox_id)).status.state == 0  # SANDBOX_READY
        # A node that has drained its pods (nothing can be starting) stops such a shim at once.
        second_id = f"leaked-{uuid.uuid4().hex}"
        second_pid = start_taskless_shim(node_runtime, second_id)
        assert await reaper.sweep(grace=0) == [second_id]
        assert not process_alive(second_pid)
        assert [sid for sid in shims_of(node_runtime.socket).values()] == [sandbox_id]
        assert process_alive(other_pid), "a shim of another namespace was stopped"
    finally:
        for pid in (leaked_pid, other_pid):
            if process_alive(pid):
                os.kill(pid, 9)
        address.unlink(missing_ok=True)
        other_bundle = node_runtime.containerd.state / "io.containerd.runtime.v2.task" / "default" / other_id
        Path((other_bundle / "address").read_text().removeprefix("unix://")).unlink(missing_ok=True)
        shutil.rmtree(other_bundle, ignore_errors=True)
        shutil.rmtree(bundle, ignore_errors=True)
        await cri.stop_pod_sandbox(sandbox_id)
        await cri.remove_pod_sandbox(sandbox_id)
