"""The kubelet's part of ephemeral containers that needs no runtime: the CRI config's PID namespace
(TARGET only where the pod's containers each have their own) and ``ephemeralContainerStatuses``."""

from __future__ import annotations

from typing import Any

import pytest

from kybernetes.kubelet import runtime as rtcfg
from kybernetes.kubelet.cri import api
from kybernetes.kubelet.ephemeral import configure
from kybernetes.kubelet.status import ContainerRecord, PodRuntime, generate_status

Obj = dict[str, Any]


def _pod(**spec: Any) -> Obj:
    return {"metadata": {"name": "web", "namespace": "ns", "uid": "u1"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], "restartPolicy": "Always",
                     "ephemeralContainers": [{"name": "dbg", "image": "busybox", "targetContainerName": "c"}],
                     **spec}}


def _config(pod: Obj, target_id: str) -> api.ContainerConfig:
    config = rtcfg.container_config(pod, pod["spec"]["ephemeralContainers"][0], restart_count=0, env=[], mounts=[],
                                    init=True)
    configure(config, target_id)
    return config


def test_a_target_means_the_target_pid_namespace() -> None:
    config = _config(_pod(), "c0ffee")
    ns = config.linux.security_context.namespace_options
    assert (ns.pid, ns.target_id, ns.network, ns.ipc) == (api.TARGET, "c0ffee", api.POD, api.POD)
    assert config.labels[rtcfg.LABEL_CONTAINER_TYPE] == "ephemeral"


@pytest.mark.parametrize(("spec", "pid"), [({"shareProcessNamespace": True}, api.POD), ({"hostPID": True}, api.NODE)])
def test_a_pod_wide_pid_namespace_is_kept(spec: Obj, pid: int) -> None:
    ns = _config(_pod(**spec), "c0ffee").linux.security_context.namespace_options
    assert (ns.pid, ns.target_id) == (pid, "")


def test_no_target_no_target_namespace() -> None:
    ns = _config(_pod(), "").linux.security_context.namespace_options
    assert (ns.pid, ns.target_id) == (api.CONTAINER, "")


def _record(name: str, state: int) -> ContainerRecord:
    return ContainerRecord(id=f"{name}-id", name=name, init=False, state=state, restart_count=0, hash="",
                           exit_code=0, started_at=1, finished_at=2)


def _status(pod: Obj, rt: PodRuntime, waiting: dict[str, tuple[str, str]] | None = None) -> Obj:
    return generate_status(pod, rt, waiting=waiting or {}, is_ready=lambda n: True, is_started=lambda n: True,
                           host_ip="10.0.0.1")


def test_ephemeral_container_statuses() -> None:
    pod = _pod()
    missing = PodRuntime("u1", sandbox_id="s", containers={"c": [_record("c", api.CONTAINER_RUNNING)]})
    waiting = _status(pod, missing, {"dbg": ("CreateContainerConfigError", "unable to find target container c")})
    [dbg] = waiting["ephemeralContainerStatuses"]
    assert dbg["state"] == {"waiting": {"reason": "CreateContainerConfigError",
                                        "message": "unable to find target container c"}}
    assert "started" not in dbg and dbg["ready"] is False
    assert _status(pod, missing)["ephemeralContainerStatuses"][0]["state"] == {"waiting": {"reason": "ContainerCreating"}}
    running = PodRuntime("u1", sandbox_id="s", containers={"c": [_record("c", api.CONTAINER_RUNNING)],
                                                           "dbg": [_record("dbg", api.CONTAINER_RUNNING)]})
    s = _status(pod, running)
    [dbg] = s["ephemeralContainerStatuses"]
    assert "running" in dbg["state"] and dbg["containerID"] == "containerd://dbg-id" and dbg["ready"] is False
    assert [c["name"] for c in s["containerStatuses"]] == ["c"]
    exited = PodRuntime("u1", sandbox_id="s", containers={"c": [_record("c", api.CONTAINER_RUNNING)],
                                                          "dbg": [_record("dbg", api.CONTAINER_EXITED)]})
    s = _status(pod, exited)
    assert s["ephemeralContainerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    assert s["phase"] == "Running"  # an ephemeral container counts for neither phase nor readiness
    assert {c["type"]: c["status"] for c in s["conditions"]}["Ready"] == "True"
