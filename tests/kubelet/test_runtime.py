"""Config generation: pods and containers to CRI configs, env resolution, status and back-off rules."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from kybernetes.kubelet import runtime as rt
from kybernetes.kubelet.cri import api
from kybernetes.kubelet.dns import DNSSettings, compose_pod_dns, read_host_resolv_conf
from kybernetes.kubelet.images import credentials_for, split_image
from kybernetes.kubelet.podworkers import Backoff
from kybernetes.kubelet.status import ContainerRecord, PodRuntime, generate_status

Obj = dict[str, Any]


def make_pod(**spec: Any) -> Obj:
    containers = spec.pop("containers", [{"name": "c", "image": "busybox:1.36"}])
    return {"metadata": {"name": "web", "namespace": "ns", "uid": "u1", "labels": {"app": "x"},
                         "annotations": {"a": "b"}},
            "spec": {"containers": containers, "nodeName": "n1", "restartPolicy": "Always", **spec}}


def test_expand() -> None:
    env = {"A": "1", "B": "two"}
    assert rt.expand("$(A)-$(B)", env) == "1-two"
    assert rt.expand("$$(A) $(C) $", env) == "$(A) $(C) $"
    assert rt.expand("$$$(A)", env) == "$1"


def test_resolve_order_and_sources() -> None:
    import asyncio

    cms = {"cm": {"data": {"k": "v", "other": "o"}}}
    secrets = {"s": {"type": "Opaque", "data": {"pw": base64.b64encode(b"hunter2").decode()}}}

    async def cm(ns: str, name: str) -> Obj | None:
        return cms.get(name)

    async def secret(ns: str, name: str) -> Obj | None:
        return secrets.get(name)

    container = {"name": "c", "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}},
                 "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "P_"},
                             {"secretRef": {"name": "gone", "optional": True}}],
                 "env": [{"name": "X", "value": "$(P_k)/$(NODE)"},
                         {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                         {"name": "Y", "value": "$(NODE)"},
                         {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
                         {"name": "LBL", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                         {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "0"}}},
                         {"name": "CPUM", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
                         {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "requests.memory"}}}]}
    services = [{"metadata": {"name": "kubernetes", "namespace": "default"},
                 "spec": {"clusterIP": "10.43.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]}},
                {"metadata": {"name": "my-db", "namespace": "ns"},
                 "spec": {"clusterIP": "10.43.0.9", "ports": [{"port": 5432, "protocol": "TCP"}]}},
                {"metadata": {"name": "headless", "namespace": "ns"}, "spec": {"clusterIP": "None"}}]
    env = dict(asyncio.run(rt.resolve_env(make_pod(), container, get_configmap=cm, get_secret=secret,
                                          services=services)))
    assert env["P_k"] == "v" and env["P_other"] == "o"
    assert env["X"] == "v/$(NODE)"  # NODE was not defined yet where X is
    assert env["Y"] == "n1" and env["PW"] == "hunter2" and env["LBL"] == "x"
    assert env["CPU"] == "1" and env["CPUM"] == "500" and env["MEM"] == "0"
    assert env["KUBERNETES_SERVICE_HOST"] == "10.43.0.1" and env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443"
    assert env["MY_DB_PORT"] == "tcp://10.43.0.9:5432" and env["MY_DB_PORT_5432_TCP_ADDR"] == "10.43.0.9"
    assert not any(k.startswith("HEADLESS") for k in env)
    no_links = make_pod(enableServiceLinks=False)
    env = dict(asyncio.run(rt.resolve_env(no_links, {"name": "c"}, get_configmap=cm, get_secret=secret,
                                          services=services)))
    assert "MY_DB_SERVICE_HOST" not in env and env["KUBERNETES_SERVICE_HOST"] == "10.43.0.1"
    with pytest.raises(rt.ConfigError, match='configmap "nope" not found'):
        asyncio.run(rt.resolve_env(make_pod(), {"env": [{"name": "Z", "valueFrom": {"configMapKeyRef": {
            "name": "nope", "key": "k"}}}]}, get_configmap=cm, get_secret=secret))
    with pytest.raises(rt.ConfigError, match="couldn't find key missing"):
        asyncio.run(rt.resolve_env(make_pod(), {"env": [{"name": "Z", "valueFrom": {"configMapKeyRef": {
            "name": "cm", "key": "missing"}}}]}, get_configmap=cm, get_secret=secret))


def test_resources() -> None:
    r = rt.linux_resources({"resources": {"requests": {"cpu": "250m", "memory": "64Mi"},
                                          "limits": {"cpu": "1500m", "memory": "128Mi"}}}, "Burstable")
    assert (r.cpu_shares, r.cpu_quota, r.cpu_period) == (256, 150000, 100000)
    assert r.memory_limit_in_bytes == 128 * 1024 * 1024
    best_effort = rt.linux_resources({}, "BestEffort")
    assert (best_effort.cpu_shares, best_effort.cpu_quota, best_effort.memory_limit_in_bytes) == (2, 0, 0)
    assert best_effort.oom_score_adj == 1000
    assert rt.linux_resources({"resources": {"limits": {"cpu": "2"}}}, "Guaranteed").cpu_shares == 2048


def test_security_context() -> None:
    pod = make_pod(securityContext={"runAsUser": 1000, "runAsGroup": 2000, "supplementalGroups": [3]},
                   hostPID=True)
    c = {"securityContext": {"runAsUser": 5, "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
                             "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}}}
    sc = rt.security_context(pod, c)
    assert sc.run_as_user.value == 5 and sc.run_as_group.value == 2000
    assert sc.readonly_rootfs and sc.no_new_privs and not sc.privileged
    assert list(sc.capabilities.add_capabilities) == ["NET_ADMIN"]
    assert list(sc.capabilities.drop_capabilities) == ["ALL"]
    assert list(sc.supplemental_groups) == [3]
    assert sc.namespace_options.pid == api.NODE and sc.namespace_options.network == api.POD
    assert not rt.security_context(pod, {"securityContext": {"privileged": True}}).no_new_privs


def test_sandbox_config(tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 10.0.0.2\nsearch example.com\noptions ndots:2\n")
    pod = make_pod(containers=[{"name": "c", "image": "i", "ports": [{"containerPort": 80, "hostPort": 8080}]}],
                   dnsConfig={"nameservers": ["1.1.1.1"], "options": [{"name": "ndots", "value": "5"}]},
                   hostname="h1")
    dns = compose_pod_dns(pod, DNSSettings(), read_host_resolv_conf(resolv))
    config = rt.sandbox_config(pod, log_root=tmp_path, attempt=2, node_hostname="node", dns=dns)
    assert config.hostname == "h1" and config.metadata.attempt == 2
    assert config.log_directory == str(tmp_path / "ns_web_u1")
    assert config.labels[rt.LABEL_POD_UID] == "u1" and config.labels["app"] == "x"
    assert list(config.dns_config.servers) == ["10.0.0.2", "1.1.1.1"]
    assert list(config.dns_config.searches) == ["example.com"] and list(config.dns_config.options) == ["ndots:5"]
    assert [(p.container_port, p.host_port) for p in config.port_mappings] == [(80, 8080)]
    host = rt.sandbox_config(make_pod(hostNetwork=True), log_root=tmp_path, attempt=0, node_hostname="node")
    assert host.hostname == "" and host.linux.security_context.namespace_options.network == api.NODE


def test_container_config() -> None:
    pod = make_pod()
    c = {"name": "c", "image": "busybox:1.36", "command": ["sh", "-c", "echo $(A)"], "args": ["$(B)"],
         "workingDir": "/w", "tty": True, "lifecycle": {"preStop": {"exec": {"command": ["x"]}}}}
    config = rt.container_config(pod, c, restart_count=3, env=[("A", "1")], init=True,
                                 mounts=[{"container_path": "/d", "host_path": "/h", "readonly": True,
                                          "propagation": 1}])
    assert list(config.command) == ["sh", "-c", "echo 1"] and list(config.args) == ["$(B)"]
    assert config.log_path == "c/3.log" and config.metadata.attempt == 3
    assert config.annotations[rt.ANN_RESTART_COUNT] == "3" and rt.ANN_PRESTOP in config.annotations
    assert config.labels[rt.LABEL_CONTAINER_TYPE] == "init" and config.tty and config.working_dir == "/w"
    assert config.mounts[0].readonly and config.mounts[0].propagation == api.PROPAGATION_HOST_TO_CONTAINER
    assert rt.container_hash(c) != rt.container_hash({**c, "image": "other"})


def test_image_credentials() -> None:
    assert split_image("busybox") == ("docker.io", "library/busybox")
    assert split_image("registry.local:5000/team/app:1@sha256:ab") == ("registry.local:5000", "team/app")
    cfg = {"auths": {"https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:pw").decode()},
                     "registry.local:5000/team": {"username": "t", "password": "p"},
                     "registry.local:5000": {"username": "all", "password": "p"}}}
    secret = {"type": "kubernetes.io/dockerconfigjson",
              "data": {".dockerconfigjson": base64.b64encode(__import__("json").dumps(cfg).encode()).decode()}}
    assert [a.username for a in credentials_for("busybox:1", [secret])] == ["hub"]
    assert [a.username for a in credentials_for("registry.local:5000/team/app", [secret])] == ["t", "all"]
    assert [a.username for a in credentials_for("registry.local:5000/other/app", [secret])] == ["all"]
    assert credentials_for("quay.io/x/y", [secret]) == []


def test_backoff() -> None:
    now = [1000.0]
    b = Backoff(10, 300, clock=lambda: now[0])
    assert b.in_backoff_since("k", now[0]) == 0
    assert b.next("k", now[0]) == 10
    assert b.in_backoff_since("k", now[0]) == 10
    now[0] += 11
    assert b.in_backoff_since("k", 1000.0) == 0
    assert b.next("k", now[0]) == 20
    for _ in range(10):
        b.next("k", now[0])
    assert b.delay("k") == 300
    now[0] += 601  # quiet for more than twice the maximum: start over
    assert b.next("k", now[0]) == 10


def record(name: str, state: int, exit_code: int = 0, restarts: int = 0, init: bool = False) -> ContainerRecord:
    return ContainerRecord(id=f"{name}{restarts}", name=name, init=init, state=state, restart_count=restarts,
                           hash="", exit_code=exit_code, started_at=1, finished_at=2)


def status_of(pod: Obj, runtime: PodRuntime, waiting: dict[str, tuple[str, str]] | None = None,
              ready: bool = True) -> Obj:
    return generate_status(pod, runtime, waiting=waiting or {}, is_ready=lambda n: ready,
                           is_started=lambda n: True, host_ip="10.0.0.1")


def test_phases_and_conditions() -> None:
    pod = make_pod(initContainers=[{"name": "i", "image": "x"}])
    empty = PodRuntime("u1", sandbox_id="s", pod_ip="10.42.0.5")
    s = status_of(pod, empty)
    assert s["phase"] == "Pending"
    assert s["initContainerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
    assert s["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
    conds = {c["type"]: c for c in s["conditions"]}
    assert conds["Initialized"]["message"] == "containers with incomplete status: [i]"
    running = PodRuntime("u1", sandbox_id="s", pod_ip="10.42.0.5", containers={
        "i": [record("i", api.CONTAINER_EXITED, init=True)], "c": [record("c", api.CONTAINER_RUNNING)]})
    s = status_of(pod, running, ready=False)
    conds = {c["type"]: c for c in s["conditions"]}
    assert s["phase"] == "Running" and s["podIP"] == "10.42.0.5"
    assert conds["Ready"]["status"] == "False" and conds["Ready"]["reason"] == "ContainersNotReady"
    assert conds["Ready"]["message"] == "containers with unready status: [c]"
    assert status_of(pod, running)["conditions"][-1] == {**status_of(pod, running)["conditions"][-1],
                                                          "type": "Ready", "status": "True"}
    crashed = PodRuntime("u1", sandbox_id="s", containers={
        "i": [record("i", api.CONTAINER_EXITED, init=True)], "c": [record("c", api.CONTAINER_EXITED, 1, 2)]})
    s = status_of(pod, crashed, {"c": ("CrashLoopBackOff", "back-off 20s")})
    cs = s["containerStatuses"][0]
    assert s["phase"] == "Running" and cs["restartCount"] == 2
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert cs["lastState"]["terminated"]["exitCode"] == 1 and cs["lastState"]["terminated"]["reason"] == "Error"
    never = make_pod(restartPolicy="Never")
    done = PodRuntime("u1", sandbox_id="s", containers={"c": [record("c", api.CONTAINER_EXITED, 0)]})
    assert status_of(never, done)["phase"] == "Succeeded"
    failed = PodRuntime("u1", sandbox_id="s", containers={"c": [record("c", api.CONTAINER_EXITED, 2)]})
    s = status_of(never, failed)
    assert s["phase"] == "Failed" and s["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 2
    assert {c["type"]: c.get("reason") for c in s["conditions"]}["Ready"] == "PodCompleted"
    on_failure = make_pod(restartPolicy="OnFailure")
    assert status_of(on_failure, failed)["phase"] == "Running"
    # A terminal phase is never left.
    assert status_of({**never, "status": {"phase": "Failed"}}, PodRuntime("u1"))["phase"] == "Failed"


def test_a_pod_known_only_from_the_runtime_is_killed_with_the_recorded_grace() -> None:
    """A static pod whose file was removed (or a leftover) has no spec: the grace period recorded on
    its container when it was created applies, not the default 30 s (a `sleep` as PID 1 ignores
    SIGTERM and would hold a kubelet's shutdown for all of it)."""
    from kybernetes.kubelet.lifecycle import kill_grace
    from kybernetes.kubelet.sync import _recorded_grace

    rec = record("c", api.CONTAINER_RUNNING)
    rec.annotations = {rt.ANN_GRACE: "1"}
    recorded = _recorded_grace(rec)
    assert kill_grace({"metadata": {"uid": "u"}, "spec": {}}, {}, recorded=recorded) == 1
    assert kill_grace({"metadata": {}, "spec": {"terminationGracePeriodSeconds": 5}}, {}, recorded=recorded) == 5
    assert kill_grace({"metadata": {"deletionGracePeriodSeconds": 0}, "spec": {}}, {}, recorded=recorded) == 0
    assert kill_grace({"metadata": {}, "spec": {}}, {}) == 30
    assert _recorded_grace(record("d", api.CONTAINER_RUNNING)) is None
