"""SIGTERM to a ``kyb agent`` whose kubelet runs in its process (the default layout, issue 18) is the
node going down: with ``shutdownGracePeriod`` the kubelet kills the pods first (graceful node
shutdown: the pod Failed, reason Terminated, the node's message), and only then does the agent
exit 0 with its containerd stopped. Root with containerd only (the node is real).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from kybernetes.kubelet.containerd import Containerd
from kybernetes.kubelet.shutdown import NODE_SHUTDOWN_MESSAGE
from kybernetes.testing import ServerProcess, free_port
from tests.join.test_join import KYB, _kubelet_available, _stop_all, _wait, create_token

pytestmark = pytest.mark.integration


def test_sigterm_to_the_agent_shuts_its_in_process_kubelets_node_down_gracefully(tmp_path: Path) -> None:
    reason = _kubelet_available()
    if reason:
        pytest.skip(reason)
    bridge, cidr = "kyb7", "10.42.97.0/24"
    ip_forward = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    data_dir = Path(tempfile.mkdtemp(prefix="kybs-", dir="/tmp"))  # containerd's socket path limit
    srv = ServerProcess.start(tmp_path / "server")
    agent: subprocess.Popen[bytes] | None = None
    log = tmp_path / "agent.log"
    try:
        token = create_token(srv)
        with open(log, "ab") as out:
            agent = subprocess.Popen(
                [*KYB, "agent", "--server", srv.url, "--token", token, "--data-dir", str(data_dir),
                 "--node-name", "goes-down", "--node-ip", "127.0.0.1", "--kubelet-port", str(free_port()),
                 "--cni-bridge", bridge, "--default-pod-cidr", cidr, "--lb-server-port", "0",
                 "--kubelet-arg", "shutdown-grace-period=6s", "--kubelet-arg", "shutdown-grace-period-critical-pods=2s"],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        srv.kubectl("create", "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "victim", "namespace": "default"},
            "spec": {"nodeName": "goes-down", "terminationGracePeriodSeconds": 30,
                     "automountServiceAccountToken": False,
                     "containers": [{"name": "c", "image": "docker.io/library/busybox:1.36",
                                     "command": ["sh", "-c", 'trap "exit 0" TERM; while true; do sleep 0.1; done']}]},
        }))

        def phase() -> str:
            res = srv.kubectl("get", "pod", "victim", "-o", "jsonpath={.status.phase}", check=False)
            return res.stdout.strip()

        _wait("pod victim to run", lambda: phase() == "Running", 180, agent, log)
        started = time.monotonic()
        agent.send_signal(15)
        assert agent.wait(120) == 0, log.read_text(errors="replace")[-6000:]
        # The pod was killed before the agent exited, as for a node going down: not merely left running.
        status = json.loads(srv.kubectl("get", "pod", "victim", "-o", "json").stdout)["status"]
        assert (status["phase"], status.get("reason"), status.get("message")) == (
            "Failed", "Terminated", NODE_SHUTDOWN_MESSAGE), status
        assert time.monotonic() - started < 60
        stopped = Containerd(data_dir)
        assert stopped.find_running_pid() is None, "the agent left its containerd running"
    finally:
        _stop_all(agent, srv, data_dir, bridge, ip_forward)
