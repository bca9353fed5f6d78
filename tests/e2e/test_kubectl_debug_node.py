"""``kubectl debug`` end to end on a real node: a ``kyb server`` with its agent, kubectl 1.32 run on
a pseudo-terminal as a user runs it (``-it``: it adds the container, waits for it to run, then
attaches to it).

- ``kubectl debug -it POD --image=busybox --target=c``: the ephemeral container joins c's PID
  namespace (PID 1 is c's process), and the pod reports it in ``ephemeralContainerStatuses``;
- without ``--target`` in a pod without ``shareProcessNamespace`` it sees only its own processes;
  with ``shareProcessNamespace`` every container's, its own included;
- ``kubectl debug node/NAME -it --image=busybox``: a pod on the node with the host's PID,
  network and IPC namespaces and the host's root at ``/host``.

One node serves the module.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kybernetes.testing import KUBECTL

from .conftest import wait_until
from .test_node import Node, _pick_network, pod, require_node, running_node

pytestmark = pytest.mark.integration

NS = "debug"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    require_node()
    with running_node(tmp_path_factory.mktemp("kyb-debug-node").resolve(), "e2e-dbg", _pick_network()) as n:
        n.kubectl("create", "namespace", NS)
        yield n


class Terminal:
    """kubectl on a pseudo-terminal of its own: what is typed goes to its stdin, what it prints
    (both streams) is read back; stopped by its PID when the test ends."""

    def __init__(self, node: Node, *args: str) -> None:
        env = {**os.environ, "KUBECONFIG": str(node.server.kubeconfig), "TERM": "dumb"}
        env.pop("KUBERNETES_SERVICE_HOST", None)
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen([KUBECTL, *args], stdin=slave, stdout=slave, stderr=slave, env=env,
                                     start_new_session=True)
        os.close(slave)
        self.raw = b""

    def expect(self, text: str, timeout: float = 45.0, since: int = 0) -> str:
        """Read until ``text`` has appeared (after the first ``since`` characters); the output so far."""
        deadline = time.monotonic() + timeout
        while text not in self.output[since:]:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {text!r}; kubectl printed:\n{self.output}")
            ready, _, _ = select.select([self.master], [], [], min(left, 0.5))
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # EIO: kubectl is gone
                    chunk = b""
                if not chunk and self.proc.poll() is not None:
                    raise AssertionError(f"kubectl exited ({self.proc.returncode}) before printing {text!r}:\n"
                                         f"{self.output}")
                self.raw += chunk
        return self.output

    @property
    def output(self) -> str:
        """Everything kubectl printed, without the terminal's carriage returns."""
        return self.raw.decode(errors="replace").replace("\r", "")

    def run(self, command: str, timeout: float = 45.0) -> str:
        """Type ``command`` into the shell; what it printed (between two markers of our own)."""
        start = len(self.output)
        os.write(self.master, f"echo BEGIN-$((6*7)); {command}; echo END-$((6*7))\n".encode())
        self.expect("END-42\n", timeout, since=start)
        text = self.output[start:]
        return text[text.index("BEGIN-42\n") + len("BEGIN-42\n"):text.index("END-42\n")]

    def close(self) -> int:
        """Type ``exit`` and wait for kubectl to end."""
        with contextlib.suppress(OSError):
            os.write(self.master, b"exit\n")
        try:
            return self.proc.wait(30)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            os.close(self.master)


@contextlib.contextmanager
def debug_shell(node: Node, *args: str) -> Iterator[Terminal]:
    """``kubectl debug ARGS -it --image=busybox -- sh``, at a prompt."""
    term = Terminal(node, "debug", *args, "-it", "--image=busybox", "--", "sh")
    try:
        term.expect("If you don't see a command prompt, try pressing enter.")
        term.run("true")  # the shell reads what we type
        yield term
    finally:
        assert term.close() == 0, term.output


def processes(text: str) -> list[str]:
    """The command lines ``ps -o args`` printed (without its header)."""
    return [line.strip() for line in text.splitlines()[1:] if line.strip()]


def test_debug_with_target_shares_the_target_process_namespace(node: Node) -> None:
    node.apply(NS, pod("web", "exec sleep 3601"), pod("alone", "exec sleep 3602"))
    node.wait_ready(NS, "web")
    node.wait_ready(NS, "alone")
    with debug_shell(node, "web", "-n", NS, "--target=c", "-c", "dbg") as sh:
        assert sh.run("cat /proc/1/cmdline | tr '\\0' ' '").strip() == "sleep 3601"
        assert "sleep 3601" in processes(sh.run("ps -o args"))
    status = node.pod(NS, "web")["status"]
    [debugger] = status["ephemeralContainerStatuses"]
    assert debugger["name"] == "dbg" and debugger["ready"] is False and "started" not in debugger
    assert debugger["containerID"].startswith("containerd://")
    # Without a target (and without shareProcessNamespace) only its own processes.
    with debug_shell(node, "alone", "-n", NS, "-c", "dbg") as sh:
        assert sh.run("cat /proc/1/cmdline | tr '\\0' ' '").strip() == "sh"
        assert not [p for p in processes(sh.run("ps -o args")) if "sleep 3602" in p]
    wait_until(lambda: "terminated" in node.pod(NS, "alone")["status"]["ephemeralContainerStatuses"][0]["state"],
               30, "the exited debugger reported terminated")
    assert node.pod(NS, "alone")["status"]["phase"] == "Running"  # it does not count towards the phase


def test_shared_process_namespace_shows_every_container(node: Node) -> None:
    shared = pod("shared", "exec sleep 3603", shareProcessNamespace=True)
    shared["spec"]["containers"].append({"name": "side", "image": shared["spec"]["containers"][0]["image"],
                                         "command": ["sleep", "3604"]})
    node.apply(NS, shared)
    node.wait_ready(NS, "shared")
    seen = node.kubectl("exec", "shared", "-n", NS, "-c", "c", "--", "ps", "-o", "args").stdout
    assert {"sleep 3603", "sleep 3604"} <= set(processes(seen))
    with debug_shell(node, "shared", "-n", NS, "-c", "dbg") as sh:
        assert {"sleep 3603", "sleep 3604"} <= set(processes(sh.run("ps -o args")))


def test_node_debug_has_the_host_namespaces_and_root(node: Node, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    marker.write_text("on the host\n")
    host = {kind: os.readlink(f"/proc/self/ns/{kind}") for kind in ("pid", "net", "ipc")}
    with debug_shell(node, f"node/{node.node_name}", "-n", NS) as sh:
        assert sh.run(f"cat /host{marker}") == "on the host\n"
        for kind, link in host.items():
            assert sh.run(f"readlink /proc/self/ns/{kind}").strip() == link, kind
        assert f"{os.getpid()}" in sh.run(f"ls -d /proc/{os.getpid()}")
    [debugger] = [p for p in node.get("pods", "-n", NS)["items"]
                  if p["metadata"]["name"].startswith(f"node-debugger-{node.node_name}-")]
    spec = debugger["spec"]
    assert (spec["hostPID"], spec["hostNetwork"], spec["hostIPC"], spec["nodeName"]) == (
        True, True, True, node.node_name)
    assert json.dumps(spec["volumes"]).count('"path": "/"') == 1
