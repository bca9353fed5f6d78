"""A kubelet that owns its containerd (its own data dir, bridge and pod CIDR), end to end with a
real API server: image garbage collection (thresholds 1% and 0%: every unused image that is not
built in goes, checked each second, once 3 s old: a younger one may still be being imported); the runtime killed with -9 is restarted and running pods are adopted, not
restarted; then, last (the kubelet exits), graceful node shutdown on SIGTERM.

One API server and one kubelet for the module; the teardown removes the pods, containerd, its
shims and mounts, and the bridge.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kybernetes.api.timeutil import parse_epoch
from kybernetes.images.importer import import_images
from kybernetes.images.oci import BUSYBOX_IMAGE, PAUSE_IMAGE, build_busybox_image
from kybernetes.kubelet.cni import gateway_ip
from kybernetes.kubelet.containerd import Containerd, process_alive
from kybernetes.kubelet.cri import CRIClient
from kybernetes.kubelet.shutdown import NODE_SHUTDOWN_MESSAGE
from kybernetes.testing import ServerProcess, free_network_octet, stop_process
from tests.e2e.conftest import require_kubectl
from tests.node.conftest import NodeRuntime, require_runtime, teardown_runtime

pytestmark = pytest.mark.integration

NODE = "kubelet-housekeeping"
Obj = dict[str, Any]


class OwnRuntimeKubelet:
    """`kyb kubelet` with its own containerd in `data_dir`, as a process of this test."""

    def __init__(self, srv: ServerProcess, data_dir: Path, octet: int) -> None:
        self.srv, self.data_dir = srv, data_dir
        self.bridge, self.pod_cidr = f"kyh{octet}", f"10.{octet}.0.0/24"
        self.log_path = data_dir / "kubelet.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [sys.executable, "-m", "kybernetes.kubelet.cmd", "--kubeconfig", str(self.srv.kubeconfig),
                "--node-name", NODE, "--data-dir", str(self.data_dir), "--port", "0", "--node-ip", "127.0.0.1",
                "--cni-bridge", self.bridge, "--default-pod-cidr", self.pod_cidr, "-v",
                "--cluster-ca-dir", str(self.srv.data_dir / "tls"), "--import-system-image=false",
                "--shutdown-grace-period", "6s", "--shutdown-grace-period-critical-pods", "2s",
                "--image-gc-high-threshold", "1", "--image-gc-low-threshold", "0", "--minimum-image-ttl-duration", "3s",
                "--image-gc-period", "1"]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    def containerd_pid(self) -> int | None:
        return Containerd(self.data_dir).find_running_pid()


def wait_for(fn: Callable[[], Any], timeout: float, what: str, kubelet: OwnRuntimeKubelet) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := fn()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n--- kubelet log ---\n{kubelet.log()}"
        time.sleep(0.1)
    return value


@pytest.fixture(scope="module")
def kubelet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnRuntimeKubelet]:
    require_runtime()
    require_kubectl()
    srv = ServerProcess.start(tmp_path_factory.mktemp("apiserver"))
    octet = free_network_octet(200, 230, "kyh{}")
    k = OwnRuntimeKubelet(srv, tmp_path_factory.mktemp("kubelet"), octet)
    try:
        k.start()
        wait_for(lambda: srv.kubectl("get", "node", NODE, check=False).returncode == 0, 60, "the node", k)
        srv.kubectl("wait", "--for=condition=Ready", f"node/{NODE}", "--timeout=60s", timeout=70)
        yield k
    finally:
        if k.proc is not None:
            k.proc.send_signal(signal.SIGHUP)  # a plain stop: no node shutdown here
            stop_process(k.proc, 20)
        srv.stop()
        runtime = Containerd(k.data_dir)
        with contextlib.suppress(Exception):
            asyncio.run(runtime.start())  # adopts the kubelet's containerd (or starts one) to remove the pods
        teardown_runtime(NodeRuntime(containerd=runtime, data_dir=k.data_dir, pod_cidr=k.pod_cidr, bridge=k.bridge,
                                     gateway=gateway_ip(k.pod_cidr), registry_config_dir=k.data_dir / "registry.d"))


def pod(name: str, script: str, *, namespace: str = "default", grace: int = 30, **spec: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
            "spec": {"nodeName": NODE, "automountServiceAccountToken": False, "terminationGracePeriodSeconds": grace,
                     "containers": [{"name": "main", "image": "busybox", "imagePullPolicy": "Never",
                                     "command": ["sh", "-c", script]}], **spec}}


def get_pod(srv: ServerProcess, name: str, namespace: str = "default") -> Obj:
    p: Obj = json.loads(srv.kubectl("get", "pod", name, "-n", namespace, "-o", "json").stdout)
    return p


def main_status(p: Obj) -> Obj:
    return (p["status"].get("containerStatuses") or [{}])[0]


async def _image_ids(kubelet: OwnRuntimeKubelet, *names: str) -> list[str | None]:
    async with CRIClient(Containerd(kubelet.data_dir).endpoint, timeout=10) as cri:
        return [None if (i := await cri.image_status(name)) is None else i.id for name in names]


def test_unused_image_is_garbage_collected_and_builtins_stay(kubelet: OwnRuntimeKubelet, tmp_path: Path) -> None:
    runtime = Containerd(kubelet.data_dir)
    name = "docker.io/kyb-test/collected:1"
    archive = tmp_path / "collected.tar"
    archive.write_bytes(build_busybox_image(name, extra_files={"/collected": b"yes"}))
    assert asyncio.run(import_images(runtime.socket, [archive], snapshotter=runtime.choose_snapshotter())) == [name]
    wait_for(lambda: asyncio.run(_image_ids(kubelet, name)) == [None], 20, "the image's collection", kubelet)
    assert None not in asyncio.run(_image_ids(kubelet, PAUSE_IMAGE, BUSYBOX_IMAGE))

    def failed_events() -> list[Obj]:  # the kubelet writes its events asynchronously
        return list(json.loads(kubelet.srv.kubectl(
            "get", "events", "-A", "--field-selector", f"involvedObject.name={NODE},reason=FreeDiskSpaceFailed",
            "-o", "json").stdout)["items"])
    events = wait_for(failed_events, 10, "a FreeDiskSpaceFailed event", kubelet)
    assert events[0]["message"].startswith("Failed to garbage collect required amount of images.")


def test_killed_containerd_is_restarted_and_pods_adopted(kubelet: OwnRuntimeKubelet) -> None:
    srv = kubelet.srv
    srv.kubectl("create", "-f", "-", input=json.dumps(pod("survivor", "sleep 3600", grace=1)))
    srv.kubectl("wait", "--for=condition=Ready", "pod/survivor", "--timeout=60s", timeout=70)
    before = main_status(get_pod(srv, "survivor"))
    old_pid = kubelet.containerd_pid()
    assert old_pid is not None
    os.kill(old_pid, signal.SIGKILL)
    wait_for(lambda: not process_alive(old_pid), 10, "containerd to die", kubelet)
    new_pid = wait_for(lambda: kubelet.containerd_pid(), 20, "a restarted containerd", kubelet)
    assert new_pid != old_pid
    # The runtime works again for new pods, and the old one's container was adopted as it was.
    srv.kubectl("create", "-f", "-", input=json.dumps(pod("after", "sleep 3600", grace=1)))
    srv.kubectl("wait", "--for=condition=Ready", "pod/after", "--timeout=60s", timeout=70)
    after = main_status(get_pod(srv, "survivor"))
    assert after["containerID"] == before["containerID"]
    assert after["restartCount"] == 0 and "running" in after["state"]
    assert after["state"]["running"]["startedAt"] == before["state"]["running"]["startedAt"]
    srv.kubectl("delete", "pod", "survivor", "after", "--wait=true", "--timeout=30s", timeout=40)


def test_sigterm_shuts_the_node_down_gracefully_critical_pods_last(kubelet: OwnRuntimeKubelet) -> None:
    """Runs last: the kubelet exits. 6 s in all, 2 s for critical pods: the others get 4 s."""
    srv = kubelet.srv
    obedient = 'trap "exit 0" TERM; while true; do sleep 0.1; done'
    stubborn = 'trap "" TERM; while true; do sleep 0.1; done'
    pods = [pod("regular", obedient), pod("stubborn", stubborn),
            pod("critical", obedient, namespace="kube-system", priorityClassName="system-node-critical")]
    for p in pods:
        srv.kubectl("create", "-f", "-", input=json.dumps(p))
    for p in pods:
        srv.kubectl("wait", "--for=condition=Ready", f"pod/{p['metadata']['name']}", "-n",
                    p["metadata"]["namespace"], "--timeout=60s", timeout=70)
    assert kubelet.proc is not None
    kubelet.proc.send_signal(signal.SIGTERM)

    def not_ready() -> bool:
        node = json.loads(srv.kubectl("get", "node", NODE, "-o", "json").stdout)
        return any(c["type"] == "Ready" and c["status"] == "False" for c in node["status"]["conditions"])
    wait_for(not_ready, 5, "the node NotReady", kubelet)
    # While the stubborn pod holds the shutdown (4 s), a pod bound to the node is not admitted.
    srv.kubectl("create", "-f", "-", input=json.dumps(pod("late", obedient)))
    assert kubelet.proc.wait(timeout=30) == 0, kubelet.log()
    kubelet.proc = None
    late = get_pod(srv, "late")["status"]
    assert (late.get("phase"), late.get("reason"), late.get("message")) == (
        "Failed", "NodeShutdown", "Pod was rejected: Pod was rejected as the node is shutting down."), late

    finished = {}
    for p in pods:
        name, namespace = p["metadata"]["name"], p["metadata"]["namespace"]
        got = get_pod(srv, name, namespace)
        status = got["status"]
        assert (status["phase"], status.get("reason"), status.get("message")) == (
            "Failed", "Terminated", NODE_SHUTDOWN_MESSAGE), (name, status, kubelet.log())
        disruption = [c for c in status["conditions"] if c["type"] == "DisruptionTarget"]
        assert [(c["status"], c["reason"], c["message"]) for c in disruption] == [
            ("True", "TerminationByKubelet", NODE_SHUTDOWN_MESSAGE)]
        terminated = main_status(got)["state"]["terminated"]
        finished[name] = parse_epoch(terminated["finishedAt"])
    # The stubborn pod is killed when its group's 4 s are up; the critical pod only after that.
    assert finished["stubborn"] - finished["regular"] >= 3, finished
    assert finished["critical"] >= finished["stubborn"], finished
    assert main_status(get_pod(srv, "stubborn"))["state"]["terminated"]["exitCode"] == 137
    node = json.loads(srv.kubectl("get", "node", NODE, "-o", "json").stdout)
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"], ready["message"]) == ("False", "KubeletNotReady", "node is shutting down")
    events = json.loads(srv.kubectl("get", "events", "-A", "--field-selector", f"involvedObject.name={NODE}",
                                    "-o", "json").stdout)["items"]
    assert ("NodeShutdown", "Shutdown manager detected shutdown event") in {(e["reason"], e["message"])
                                                                          for e in events}
