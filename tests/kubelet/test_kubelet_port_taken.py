"""A kubelet whose port is taken stops cleanly with Kubernetes' one-line error.

The kubelet runs as a process against the tests' API server and containerd, with
``--drain-on-exit`` (as the agent runs it), on a port this test holds. It must exit 1 with
``failed to listen and serve: listen tcp ADDR:PORT: bind: address already in use`` and no
traceback: its shutdown has to cope with a start that stopped before the pod lifecycle existed.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from kybernetes.testing import ServerProcess
from tests.kubelet.test_kubelet_e2e import KubeletProcess
from tests.node.conftest import NodeRuntime, require_runtime

pytestmark = pytest.mark.integration


def test_taken_port_is_a_clear_error(srv: ServerProcess, node_runtime: NodeRuntime, tmp_path: Path) -> None:
    require_runtime()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        kubelet = KubeletProcess(srv, node_runtime, tmp_path,
                                 extra_args=("--port", str(port), "--address", "127.0.0.1", "--drain-on-exit"))
        kubelet.start()
        assert kubelet.proc is not None
        try:
            rc = kubelet.proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            kubelet.stop()
            pytest.fail(f"the kubelet did not exit on a taken port:\n{kubelet.log()}")
    out = kubelet.log()
    assert rc == 1, out
    assert "Traceback" not in out, out
    assert out.rstrip().splitlines()[-1] == (
        f"Error: failed to listen and serve: listen tcp 127.0.0.1:{port}: bind: address already in use"), out
